// io_uring set-up failures and ring-mode fallback, injected through the
// UringSyscalls seam (the only fake in these tests: everything else is a real ring).
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "support/test_support.hpp"
#include "support/uring_only.hpp"

using namespace std::chrono_literals;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::LoopOptions;
using coring::RingMode;
using coring::Task;
using coring::UringSyscalls;

using namespace coring_test;

namespace {

// The hooks are plain function pointers, so their behaviour is set through globals.
struct HookState {
  int fail_errno = 0;         // positive errno the fake returns
  unsigned reject_flags = 0;  // fake_or_real: -EINVAL when any of these flags is asked for
  int disabled = 0;           // what read_io_uring_disabled reports
  int disabled_reads = 0;
  std::vector<unsigned> flags_seen;
  std::vector<unsigned> entries_seen;
  std::vector<unsigned> cq_entries_seen;
};
HookState g_hook;

void reset_hook() {
  g_hook = HookState{};
}

void record(unsigned entries, const io_uring_params* p) {
  g_hook.flags_seen.push_back(p->flags);
  g_hook.entries_seen.push_back(entries);
  g_hook.cq_entries_seen.push_back(p->cq_entries);
}

// Always fails with g_hook.fail_errno.
int failing_init(unsigned entries, io_uring* /*ring*/, io_uring_params* p) {
  record(entries, p);
  return -g_hook.fail_errno;
}

// -EINVAL for the rejected flags (as an older kernel would), the real call otherwise.
int fake_or_real_init(unsigned entries, io_uring* ring, io_uring_params* p) {
  record(entries, p);
  if ((p->flags & g_hook.reject_flags) != 0) return -EINVAL;
  return io_uring_queue_init_params(entries, ring, p);
}

int read_disabled() {
  ++g_hook.disabled_reads;
  return g_hook.disabled;
}

bool contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

constexpr unsigned kDefer = IORING_SETUP_DEFER_TASKRUN;
constexpr unsigned kCoop = IORING_SETUP_COOP_TASKRUN;
constexpr unsigned kSubmitAll = IORING_SETUP_SUBMIT_ALL;

struct ErrorCase {
  const char* label;
  int err;
  int disabled;
  std::vector<const char*> keywords;
};

Task<std::string> pipe_roundtrip(int rfd, int wfd) {
  const std::string msg = "fallback ring works";
  coring::IoResult w =
      co_await coring::async_write(wfd, std::as_bytes(std::span(msg.data(), msg.size())));
  if (w.res != static_cast<int>(msg.size())) co_return "short write";
  char buf[64] = {};
  coring::IoResult r = co_await coring::async_read(rfd, std::as_writable_bytes(std::span(buf)));
  if (!r.ok()) co_return "read failed";
  co_await coring::sleep_for(1ms);
  co_return std::string(buf, r.bytes());
}

}  // namespace

TEST_CASE("each set-up errno throws std::system_error naming the cause and the fix",
          "[runtime][setup]") {
  const ErrorCase c = GENERATE(
      ErrorCase{"ENOSYS", ENOSYS, -1, {"ENOSYS", "kernel", "CONFIG_IO_URING", "Fix"}},
      ErrorCase{"EPERM, io_uring_disabled=2",
                EPERM,
                2,
                {"EPERM", "kernel.io_uring_disabled=2", "sysctl",
                 "sysctl -w kernel.io_uring_disabled=0"}},
      ErrorCase{"EPERM, io_uring_disabled=1",
                EPERM,
                1,
                {"EPERM", "kernel.io_uring_disabled=1", "sysctl", "kernel.io_uring_group"}},
      ErrorCase{"EPERM, io_uring_disabled=0 (seccomp)",
                EPERM,
                0,
                {"EPERM", "seccomp", "io_uring_setup", "profile"}},
      ErrorCase{"EPERM, no sysctl (seccomp)", EPERM, -1, {"EPERM", "seccomp"}},
      ErrorCase{"ENOMEM", ENOMEM, 0, {"ENOMEM", "RLIMIT_MEMLOCK", "ulimit -l", "sq_entries"}},
      ErrorCase{"EMFILE", EMFILE, 0, {"file descriptors", "ulimit -n"}},
      ErrorCase{"EACCES (a security module)", EACCES, 0, {"EACCES", "security module", "epoll"}},
      ErrorCase{"EFAULT (other)", EFAULT, 0, {"io_uring_setup failed", "errno 14"}});
  INFO(c.label);
  reset_hook();
  g_hook.fail_errno = c.err;
  g_hook.disabled = c.disabled;
  bool threw = false;
  try {
    (void)coring::make_uring_backend(LoopOptions{}, UringSyscalls{&failing_init, &read_disabled});
  } catch (const std::system_error& e) {
    threw = true;
    const std::string what = e.what();
    INFO(what);
    CHECK(e.code().value() == c.err);
    CHECK(e.code().category() == std::system_category());
    for (const char* k : c.keywords) {
      INFO("keyword " << k);
      CHECK(contains(what, k));
    }
    CHECK(contains(what, coring::describe_uring_setup_error(c.err, c.disabled).c_str()));
  }
  CHECK(threw);
  // Only EINVAL moves on to the next ring mode; any other errno stops at once.
  CHECK(g_hook.flags_seen.size() == 1);
  REQUIRE_FALSE(g_hook.flags_seen.empty());
  CHECK((g_hook.flags_seen[0] & kDefer) != 0);
}

TEST_CASE("the EPERM message depends on kernel.io_uring_disabled", "[runtime][setup]") {
  const std::string d2 = coring::describe_uring_setup_error(EPERM, 2);
  const std::string d1 = coring::describe_uring_setup_error(EPERM, 1);
  const std::string d0 = coring::describe_uring_setup_error(EPERM, 0);
  CHECK(contains(d2, "kernel.io_uring_disabled=2"));
  CHECK_FALSE(contains(d2, "io_uring_group"));  // group membership does not help at 2
  CHECK(contains(d1, "kernel.io_uring_group"));
  CHECK(contains(d0, "seccomp"));
  CHECK_FALSE(contains(d2, "seccomp"));
  const std::string mem = coring::describe_uring_setup_error(ENOMEM, 0);
  CHECK((contains(mem, "unlimited") || contains(mem, " bytes")));
}

TEST_CASE("EINVAL on every attempt tries each ring mode, then throws", "[runtime][setup]") {
  reset_hook();
  g_hook.fail_errno = EINVAL;
  bool threw = false;
  try {
    (void)coring::make_uring_backend(LoopOptions{}, UringSyscalls{&failing_init, &read_disabled});
  } catch (const std::system_error& e) {
    threw = true;
    const std::string what = e.what();
    INFO(what);
    CHECK(e.code().value() == EINVAL);
    CHECK(contains(what, "EINVAL"));
    CHECK(contains(what, "every ring mode"));
    CHECK(contains(what, "5.19"));
  }
  CHECK(threw);
  // DEFER_TASKRUN, then COOP_TASKRUN, then plain with SUBMIT_ALL, then plain.
  REQUIRE(g_hook.flags_seen.size() == 4);
  CHECK((g_hook.flags_seen[0] & kDefer) != 0);
  CHECK((g_hook.flags_seen[0] & IORING_SETUP_SINGLE_ISSUER) != 0);
  CHECK((g_hook.flags_seen[1] & kDefer) == 0);
  CHECK((g_hook.flags_seen[1] & kCoop) != 0);
  CHECK((g_hook.flags_seen[2] & (kDefer | kCoop)) == 0);
  CHECK((g_hook.flags_seen[2] & kSubmitAll) != 0);
  CHECK((g_hook.flags_seen[3] & (kDefer | kCoop | kSubmitAll)) == 0);
  for (unsigned f : g_hook.flags_seen) CHECK((f & IORING_SETUP_CQSIZE) != 0);
}

TEST_CASE("a forced ring mode does not fall back to another", "[runtime][setup]") {
  reset_hook();
  g_hook.reject_flags = kDefer;
  LoopOptions o;
  o.uring.ring_mode = RingMode::defer_taskrun;
  o.backend = coring::BackendKind::io_uring;
  bool threw = false;
  try {
    (void)coring::make_uring_backend(o, UringSyscalls{&fake_or_real_init, &read_disabled});
  } catch (const std::system_error& e) {
    threw = true;
    CHECK(e.code().value() == EINVAL);
  }
  CHECK(threw);
  CHECK(g_hook.flags_seen.size() == 1);
}

TEST_CASE("a non-EINVAL error does not fall back to the next ring mode", "[runtime][setup]") {
  reset_hook();
  g_hook.fail_errno = ENOMEM;
  bool threw = false;
  try {
    (void)coring::make_uring_backend(LoopOptions{}, UringSyscalls{&failing_init, &read_disabled});
  } catch (const std::system_error& e) {
    threw = true;
    CHECK(e.code().value() == ENOMEM);
  }
  CHECK(threw);
  CHECK(g_hook.flags_seen.size() == 1);
}

TEST_CASE("the ring is asked for the configured SQ and CQ sizes", "[runtime][setup]") {
  reset_hook();
  g_hook.fail_errno = ENOSYS;
  LoopOptions o;
  o.uring.sq_entries = 8;
  o.uring.cq_entries = 64;
  CHECK_THROWS_AS(coring::make_uring_backend(o, UringSyscalls{&failing_init, &read_disabled}),
                  std::system_error);
  REQUIRE(g_hook.entries_seen.size() == 1);
  CHECK(g_hook.entries_seen[0] == 8);
  CHECK(g_hook.cq_entries_seen[0] == 64);

  reset_hook();
  g_hook.fail_errno = ENOSYS;
  o.uring.cq_entries = 0;  // default: four times the SQ
  CHECK_THROWS_AS(coring::make_uring_backend(o, UringSyscalls{&failing_init, &read_disabled}),
                  std::system_error);
  REQUIRE(g_hook.cq_entries_seen.size() == 1);
  CHECK(g_hook.cq_entries_seen[0] == 32);
}

TEST_CASE("an EventLoop whose ring cannot be set up throws, leaking no fd or frame",
          "[runtime][setup]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  const int err = GENERATE(ENOSYS, EPERM, ENOMEM, EINVAL);
  INFO("errno " << err);
  reset_hook();
  g_hook.fail_errno = err;
  g_hook.disabled = 2;
  LoopOptions o;
  o.backend_factory = [](const LoopOptions& opts) {
    return coring::make_uring_backend(opts, UringSyscalls{&failing_init, &read_disabled});
  };
  bool threw = false;
  try {
    EventLoop loop(o);
  } catch (const std::system_error& e) {
    threw = true;
    CHECK(e.code().value() == err);
    CHECK(contains(e.what(), "coring: "));
    if (err == EPERM) {
      CHECK(contains(e.what(), "kernel.io_uring_disabled=2"));
      CHECK(g_hook.disabled_reads >= 1);
    }
  }
  CHECK(threw);
  CHECK(count_open_fds() == fds_before);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("EINVAL for DEFER_TASKRUN falls back to COOP_TASKRUN, and the ring works",
          "[runtime][setup]") {
  CORING_IO_URING_ONLY();
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  reset_hook();
  g_hook.reject_flags = kDefer;
  std::string desc;
  std::string got;
  {
    LoopOptions o;
    o.backend_factory = [](const LoopOptions& opts) {
      return coring::make_uring_backend(opts, UringSyscalls{&fake_or_real_init, &read_disabled});
    };
    EventLoop loop(o);
    desc = loop.describe();
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    got = loop.run(pipe_roundtrip(fds[0], fds[1]));
    ::close(fds[0]);
    ::close(fds[1]);
  }
  INFO(desc);
  CHECK(contains(desc, "(COOP_TASKRUN)"));
  CHECK_FALSE(contains(desc, "DEFER_TASKRUN"));
  CHECK(got == "fallback ring works");
  REQUIRE(g_hook.flags_seen.size() == 2);
  CHECK((g_hook.flags_seen[1] & kCoop) != 0);
  CHECK(g_hook.disabled_reads == 0);  // not a failure: the sysctl is not consulted
  CHECK(count_open_fds() == fds_before);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("EINVAL for DEFER_TASKRUN and COOP_TASKRUN falls back to a plain ring",
          "[runtime][setup]") {
  CORING_IO_URING_ONLY();
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  // Also reject SUBMIT_ALL (5.18+): the last attempt is a ring with no flags at all.
  const unsigned rejected = GENERATE(kDefer | kCoop, kDefer | kCoop | kSubmitAll);
  INFO("rejected flags " << rejected);
  reset_hook();
  g_hook.reject_flags = rejected;
  std::string desc;
  std::string got;
  {
    LoopOptions o;
    o.backend_factory = [](const LoopOptions& opts) {
      return coring::make_uring_backend(opts, UringSyscalls{&fake_or_real_init, &read_disabled});
    };
    EventLoop loop(o);
    desc = loop.describe();
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    got = loop.run(pipe_roundtrip(fds[0], fds[1]));
    ::close(fds[0]);
    ::close(fds[1]);
  }
  INFO(desc);
  CHECK(contains(desc, "io_uring (plain)"));
  CHECK_FALSE(contains(desc, "TASKRUN"));
  CHECK(got == "fallback ring works");
  CHECK(g_hook.flags_seen.size() == ((rejected & kSubmitAll) != 0 ? 4u : 3u));
  CHECK(count_open_fds() == fds_before);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("the default hooks set up a real ring", "[runtime][setup]") {
  CORING_IO_URING_ONLY();
  auto backend = coring::make_uring_backend(LoopOptions{}, UringSyscalls{});
  REQUIRE(backend != nullptr);
  CHECK(contains(backend->describe(), "io_uring ("));
  CHECK(coring::uring_native_ring(*backend) != nullptr);
  CHECK(backend->kind() == coring::BackendKind::io_uring);
  CHECK(backend->in_flight() == 0);
  CHECK(backend->pending_submissions() == 0);
}

// ---- automatic backend choice ----

namespace {

// CORING_BACKEND unset for the scope (the epoll pass of the suite sets it,
// which would replace the automatic choice these tests are about).
struct NoBackendEnv {
  std::string saved;
  bool had = false;
  NoBackendEnv() {
    if (const char* v = std::getenv("CORING_BACKEND")) {
      saved = v;
      had = true;
    }
    ::unsetenv("CORING_BACKEND");
  }
  ~NoBackendEnv() {
    if (had) ::setenv("CORING_BACKEND", saved.c_str(), 1);
  }
};

LoopOptions failing_setup(int err) {
  reset_hook();
  g_hook.fail_errno = err;
  LoopOptions o;
  o.uring.syscalls = UringSyscalls{&failing_init, &read_disabled};
  return o;
}

}  // namespace

TEST_CASE(
    "automatic: io_uring unavailable (ENOSYS, EPERM, EACCES) falls back to epoll, which works",
    "[runtime][setup]") {
  NoBackendEnv no_env;
  const int err = GENERATE(ENOSYS, EPERM, EACCES);
  INFO("errno " << err);
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  {
    EventLoop loop(failing_setup(err));
    const std::string d = loop.describe();
    INFO(d);
    CHECK(loop.backend().kind() == coring::BackendKind::epoll);
    CHECK(d.rfind("epoll", 0) == 0);
    CHECK(contains(d, "automatic: io_uring is unavailable"));
    CHECK(contains(d, coring::describe_uring_setup_error(err, 0).c_str()));
    CHECK(g_hook.flags_seen.size() == 1);  // one attempt, then epoll
    // It serves: a timer and a pipe read through the fallback backend.
    Pipe p;
    std::string got;
    loop.run([&]() -> Task<void> {
      co_await coring::sleep_for(1ms);
      REQUIRE(write_str(p.w, "through epoll"));
      char buf[32] = {};
      coring::IoResult r =
          co_await coring::async_read(p.r, std::as_writable_bytes(std::span<char>(buf)));
      got.assign(buf, r.bytes());
    }());
    CHECK(got == "through epoll");
  }
  CHECK(count_open_fds() == fds_before);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

// Run (hidden) by the next test in a process of its own: two loops fall back.
TEST_CASE("automatic: two loops falling back in one process", "[.][setup_child]") {
  NoBackendEnv no_env;
  EventLoop a(failing_setup(EPERM));
  EventLoop b(failing_setup(EPERM));
  CHECK(a.backend().kind() == coring::BackendKind::epoll);
  CHECK(b.backend().kind() == coring::BackendKind::epoll);
}

TEST_CASE("automatic: the fallback is said once per process, on stderr", "[runtime][setup]") {
  NoBackendEnv no_env;
  // In a new process: this one may have said it already (the flag is per process).
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // A fresh process (exec), so the once-per-process flag starts clear.
    ::close(pipe_fds[0]);
    ::dup2(pipe_fds[1], 2);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 1);
    ::execl("/proc/self/exe", "coring_tests", "[setup_child]", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  std::string said;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0)
    said.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = -1;
  ::waitpid(pid, &status, 0);
  INFO(said);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  std::size_t lines = 0;
  for (std::size_t at = said.find("coring: using the epoll backend; io_uring is unavailable");
       at != std::string::npos;
       at = said.find("coring: using the epoll backend; io_uring is unavailable", at + 1)) {
    ++lines;
  }
  CHECK(lines == 1);
  CHECK(contains(said, "EPERM"));
}

TEST_CASE("automatic: other set-up failures (ENOMEM, EMFILE, EINVAL) are not hidden by a fallback",
          "[runtime][setup]") {
  NoBackendEnv no_env;
  const int err = GENERATE(ENOMEM, EMFILE, EINVAL);
  INFO("errno " << err);
  try {
    EventLoop loop(failing_setup(err));
    FAIL("the loop started: " << loop.describe());
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == err);
    CHECK(contains(e.what(), coring::describe_uring_setup_error(err, 0).c_str()));
  }
}

TEST_CASE("CORING_BACKEND picks the backend; a bad value is an error naming the choices",
          "[runtime][setup]") {
  NoBackendEnv no_env;
  CHECK(coring::backend_from_environment() == coring::BackendKind::automatic);
  ::setenv("CORING_BACKEND", "epoll", 1);
  CHECK(coring::backend_from_environment() == coring::BackendKind::epoll);
  {
    EventLoop loop;
    CHECK(loop.backend().kind() == coring::BackendKind::epoll);
  }
  try {
    LoopOptions o;
    o.backend = coring::BackendKind::io_uring;  // an explicit choice wins
    EventLoop loop(o);
    CHECK(loop.backend().kind() == coring::BackendKind::io_uring);
  } catch (const std::system_error& e) {
    CHECK(coring::uring_unavailable(e.code().value()));  // no io_uring here at all
  }
  ::setenv("CORING_BACKEND", "io_uring", 1);
  CHECK(coring::backend_from_environment() == coring::BackendKind::io_uring);
  ::setenv("CORING_BACKEND", "kqueue", 1);
  CHECK_THROWS_AS(coring::backend_from_environment(), std::invalid_argument);
  CHECK_THROWS_WITH(EventLoop(), Catch::Contains("CORING_BACKEND=kqueue") &&
                                     Catch::Contains("io_uring, epoll or automatic"));
  ::unsetenv("CORING_BACKEND");
}
