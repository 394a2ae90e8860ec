// EventLoop on a real io_uring ring: cross-thread post()/stop(), small rings
// (full SQ, CQ overflow), run_budget fairness, ring modes, failure reports and
// pipe I/O, and running a loop on a thread other than the one that built it.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/ring_probe.hpp"
#include "support/test_support.hpp"
#include "support/uring_only.hpp"

using namespace std::chrono_literals;
using coring::Clock;
using coring::Duration;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::JoinHandle;
using coring::LoopOptions;
using coring::RingMode;
using coring::Task;
using coring::TimePoint;

using namespace coring_test;

namespace {

// Runs `body` in a forked child so that a crash (std::terminate, abort) fails
// one test instead of killing the test binary. Returns the wait status; the
// child's stderr is returned in `child_stderr`.
int run_in_child(const std::function<bool()>& body, std::string* child_stderr) {
  std::fflush(stdout);
  std::fflush(stderr);
  char path[] = "/tmp/coring_child_stderr_XXXXXX";
  const int file = ::mkstemp(path);
  ::unlink(path);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Die of the signal itself, not through the test framework's handlers.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE}) std::signal(sig, SIG_DFL);
    ::dup2(file, 2);
    bool ok = false;
    try {
      ok = body();
    } catch (...) {
      ok = false;
    }
    std::fflush(stderr);
    ::_exit(ok ? 0 : 1);
  }
  int status = -1;
  if (pid > 0) ::waitpid(pid, &status, 0);
  ::lseek(file, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(file, buf, sizeof buf)) > 0)
    child_stderr->append(buf, static_cast<std::size_t>(n));
  ::close(file);
  return status;
}

bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int ma = 0;
  int mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

// ---- task bodies ----

Task<int> one_nop() {
  coring::IoResult r = co_await coring::async_nop();
  co_return r.res;
}

Task<void> nop_forever(std::uint64_t* n) {
  for (;;) {
    co_await coring::async_nop();
    ++*n;
  }
}

Task<void> tick_forever(std::uint64_t* n) {
  for (;;) {
    co_await coring::sleep_for(200us);
    ++*n;
  }
}

Task<void> sleep_then_flag(Duration d, bool* flag) {
  co_await coring::sleep_for(d);
  *flag = true;
}

Task<int> read_some(int fd, std::string* out) {
  std::array<char, 256> buf{};
  coring::IoResult r = co_await coring::async_read(fd, std::as_writable_bytes(std::span(buf)));
  if (r.ok()) out->assign(buf.data(), r.bytes());
  co_return r.res;
}

Task<std::size_t> write_all(int fd, const std::vector<unsigned char>* data, int* calls) {
  std::size_t off = 0;
  while (off < data->size()) {
    coring::IoResult r = co_await coring::async_write(
        fd, std::as_bytes(std::span(data->data() + off, data->size() - off)));
    ++*calls;
    if (!r.ok()) throw std::system_error(r.error(), "async_write");
    off += r.bytes();
  }
  co_return off;
}

Task<std::size_t> read_all(int fd, std::vector<unsigned char>* out, std::size_t expected) {
  std::array<unsigned char, 8192> buf{};
  while (out->size() < expected) {
    coring::IoResult r = co_await coring::async_read(fd, std::as_writable_bytes(std::span(buf)));
    if (!r.ok()) throw std::system_error(r.error(), "async_read");
    if (r.bytes() == 0) break;  // EOF
    out->insert(out->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.bytes()));
  }
  co_return out->size();
}

// A ping-pong through a pipe plus a timer and a nop: what every ring mode must do.
Task<std::string> pipe_roundtrip(int rfd, int wfd) {
  std::string got;
  auto reader = coring::spawn(read_some(rfd, &got), "reader");
  co_await coring::sleep_for(1ms);
  const std::string msg = "ping through the ring";
  coring::IoResult w =
      co_await coring::async_write(wfd, std::as_bytes(std::span(msg.data(), msg.size())));
  if (w.res != static_cast<int>(msg.size())) co_return "short write";
  const int n = co_await reader;
  if (n != static_cast<int>(msg.size())) co_return "short read";
  coring::IoResult nop = co_await coring::async_nop();
  if (nop.res != 0) co_return "nop failed";
  co_return got;
}

}  // namespace

TEST_CASE("post() from 4 threads x 10,000 runs every function once, on the loop thread",
          "[runtime][loop]") {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10'000;
  std::vector<int> runs(static_cast<std::size_t>(kThreads * kPerThread), 0);  // loop thread only
  int off_thread = 0;                                                         // loop thread only
  std::uint64_t load_nops = 0;
  std::uint64_t load_ticks = 0;
  coring::LoopStats stats{};
  std::int64_t frames_delta = -1;
  std::promise<EventLoop*> ready;
  auto ready_future = ready.get_future();
  // The loop is destroyed only once every poster is done (not required since
  // post() finishes under the loop's mutex, but it keeps this test about load).
  std::promise<void> callers_done;
  auto callers_done_future = callers_done.get_future();

  std::thread loop_thread([&] {
    const auto frames_before = FrameAllocator::live_frames();
    {
      EventLoop loop;
      // Load: the loop never idles while the posts arrive.
      for (int i = 0; i < 4; ++i) loop.scheduler().spawn(nop_forever(&load_nops), "load").detach();
      loop.scheduler().spawn(tick_forever(&load_ticks), "ticker").detach();
      ready.set_value(&loop);
      loop.run();
      stats = loop.stats();
      (void)callers_done_future.wait_for(10s);
    }
    frames_delta = FrameAllocator::live_frames() - frames_before;
  });
  const std::thread::id loop_tid = loop_thread.get_id();
  REQUIRE(ready_future.wait_for(10s) == std::future_status::ready);
  EventLoop* loop = ready_future.get();

  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::size_t idx = static_cast<std::size_t>(t * kPerThread + i);
        loop->post([&runs, &off_thread, loop_tid, idx] {
          if (std::this_thread::get_id() != loop_tid) ++off_thread;
          ++runs[idx];
        });
      }
    });
  }
  for (auto& p : posters) p.join();
  // Posted after every other function: by the time it runs, they all have.
  loop->post([loop] { loop->stop(); });
  callers_done.set_value();
  loop_thread.join();

  std::size_t not_once = 0;
  for (int r : runs) not_once += (r == 1) ? 0 : 1;
  CHECK(not_once == 0);
  CHECK(off_thread == 0);
  CHECK(load_nops > 0);
  CHECK(stats.posted == static_cast<std::uint64_t>(kThreads * kPerThread + 1));
  INFO("wakeups_sent=" << stats.wakeups_sent << " post_drains=" << stats.post_drains
                       << " posted=" << stats.posted << " turns=" << stats.turns);
  CHECK(stats.wakeups_sent <= stats.post_drains + 1);
  // A burst costs at most one eventfd write per loop turn, far fewer than one per post.
  CHECK(stats.wakeups_sent * 10 <= stats.posted);
  CHECK(frames_delta == 0);
}

TEST_CASE("a burst of posts before the loop runs costs no wake-up", "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kPosts = 10'000;
  int ran = 0;
  coring::LoopStats before{};
  coring::LoopStats after{};
  {
    EventLoop loop;
    for (int i = 0; i < kPosts; ++i) loop.post([&ran] { ++ran; });
    before = loop.stats();
    loop.run([]() -> Task<void> { co_await coring::yield_now(); }());
    after = loop.stats();
  }
  CHECK(before.posted == static_cast<std::uint64_t>(kPosts));
  CHECK(before.wakeups_sent == 0);  // the loop was not asleep: it finds them when it runs
  CHECK(before.post_drains == 0);
  CHECK(ran == kPosts);
  CHECK(after.post_drains >= 1);
  CHECK(after.wakeups_sent == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("posts made while the loop is busy running posted work cost no wake-up",
          "[runtime][loop]") {
  // The loop thread is held inside a posted function while another thread posts
  // 10,000 more: the loop is running, not asleep, so none of them writes the
  // eventfd (see Notifier); it finds them on its next turn.
  constexpr int kPosts = 10'000;
  std::atomic<bool> blocker_running{false};
  std::atomic<bool> release{false};
  std::atomic<int> ran{0};
  coring::LoopStats at_last_post{};  // taken on the loop thread by the last function
  coring::LoopStats at_blocker{};    // taken by the blocker as it starts
  std::promise<EventLoop*> ready;
  auto ready_future = ready.get_future();
  std::promise<void> callers_done;
  auto callers_done_future = callers_done.get_future();
  std::thread loop_thread([&] {
    EventLoop loop;
    ready.set_value(&loop);
    loop.run();
    (void)callers_done_future.wait_for(10s);
  });
  REQUIRE(ready_future.wait_for(10s) == std::future_status::ready);
  EventLoop* loop = ready_future.get();
  loop->post([&] {
    at_blocker = loop->stats();
    blocker_running.store(true);
    const TimePoint limit = Clock::now() + 10s;
    while (!release.load() && Clock::now() < limit) std::this_thread::yield();
  });
  TimePoint limit = Clock::now() + 10s;
  while (!blocker_running.load() && Clock::now() < limit) std::this_thread::yield();
  const bool blocked = blocker_running.load();
  for (int i = 0; i < kPosts; ++i) {
    loop->post([&ran, &at_last_post, loop] {
      // The stats first, then the count: once `ran` reaches kPosts this thread
      // calls stop(), whose eventfd write would otherwise be counted too.
      // (Only the loop's thread runs these, so the load-then-add is not racy.)
      if (ran.load() + 1 == kPosts) at_last_post = loop->stats();
      ran.fetch_add(1);
    });
  }
  release.store(true);
  limit = Clock::now() + 10s;
  while (ran.load() < kPosts && Clock::now() < limit) std::this_thread::yield();
  loop->stop();
  callers_done.set_value();
  loop_thread.join();
  REQUIRE(blocked);
  CHECK(ran.load() == kPosts);
  CHECK(at_last_post.posted == static_cast<std::uint64_t>(kPosts + 1));
  INFO("wakeups_sent=" << at_last_post.wakeups_sent << " at the blocker " << at_blocker.wakeups_sent
                       << " post_drains=" << at_last_post.post_drains);
  CHECK(at_blocker.wakeups_sent <= 1);  // the blocker's post, if the loop was asleep
  CHECK(at_last_post.wakeups_sent == at_blocker.wakeups_sent);  // none for the burst
  CHECK(at_last_post.post_drains == 2);
}

TEST_CASE("a posted function that throws is reported; the others still run", "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  int before = 0;
  int after = 0;
  int result = 0;
  std::string err;
  {
    EventLoop loop;
    loop.post([&before] { ++before; });
    loop.post([] { throw std::runtime_error("posted function failure 1234"); });
    loop.post([&after] { ++after; });
    StderrCapture capture;
    result = loop.run([&]() -> Task<int> {
      co_await coring::yield_now();
      // Posting from the loop thread itself works too, and runs on a later turn.
      EventLoop::current()->post([&after] { ++after; });
      co_await coring::sleep_for(1ms);
      co_return 6;
    }());
    err = capture.finish();
  }
  INFO(err);
  CHECK(result == 6);
  CHECK(before == 1);
  CHECK(after == 2);
  CHECK(err.find("posted function failure 1234") != std::string::npos);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a loop that never ran frees the tasks spawned on it, which never start",
          "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  bool started = false;
  JoinHandle<void> kept;
  {
    EventLoop loop;
    kept = loop.scheduler().spawn(sleep_then_flag(1ms, &started), "never-run");
    loop.scheduler().spawn(sleep_then_flag(1ms, &started), "detached-never-run").detach();
    loop.post([&started] { started = true; });  // never drained either
  }
  CHECK_FALSE(started);
  CHECK(kept.done());
  CHECK_THROWS_AS(kept.result(), coring::TaskCancelled);
  kept = JoinHandle<void>{};
  CHECK(count_open_fds() == fds_before);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("stop() from another thread ends run()", "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  Duration first_run{};
  bool second_run_task_ran = false;
  bool sleeper_woke = false;
  {
    EventLoop loop;
    // Something to wait for that is far away: run() blocks in the kernel.
    loop.scheduler().spawn(sleep_then_flag(1h, &sleeper_woke), "sleeper").detach();
    const TimePoint t0 = Clock::now();
    std::thread stopper([&loop] {
      std::this_thread::sleep_for(20ms);
      loop.stop();
    });
    loop.run();
    first_run = Clock::now() - t0;
    stopper.join();

    // The loop can be run again, and stopped again (this time from a task's post).
    loop.scheduler()
        .spawn(
            [](bool* ran) -> Task<void> {
              co_await coring::sleep_for(1ms);
              *ran = true;
              EventLoop* l = EventLoop::current();
              std::thread([l] { l->stop(); }).join();
            }(&second_run_task_ran),
            "second")
        .detach();
    loop.run();
  }
  CHECK(first_run >= 20ms);
  CHECK(first_run < 30s);
  CHECK(second_run_task_ran);
  CHECK_FALSE(sleeper_woke);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a 4-entry SQ runs 1,000 concurrent nops", "[runtime][loop]") {
  CORING_IO_URING_ONLY();
  const auto frames_before = FrameAllocator::live_frames();
  const auto mode = GENERATE(RingMode::automatic, RingMode::coop_taskrun, RingMode::plain);
  INFO("ring mode " << static_cast<int>(mode));
  constexpr int kOps = 1000;
  int ok = 0;
  std::string desc;
  std::size_t in_flight_after = 99;
  {
    LoopOptions o;
    o.uring.sq_entries = 4;
    o.uring.ring_mode = mode;
    o.backend = coring::BackendKind::io_uring;
    o.run_budget = 4096;  // all 1,000 start in one turn
    EventLoop loop(o);
    desc = loop.describe();
    loop.run([&]() -> Task<void> {
      std::vector<JoinHandle<int>> hs;
      for (int i = 0; i < kOps; ++i) hs.push_back(coring::spawn(one_nop()));
      for (auto& h : hs) ok += (co_await h) == 0 ? 1 : 0;
      in_flight_after = EventLoop::current()->backend().in_flight();
    }());
  }
  CHECK(desc.find("sq=4") != std::string::npos);
  CHECK(ok == kOps);
  CHECK(in_flight_after == 1);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("an 8-entry CQ loses none of 1,000 concurrent completions (CQ overflow)",
          "[runtime][loop]") {
  CORING_IO_URING_ONLY();
  const auto frames_before = FrameAllocator::live_frames();
  const auto mode = GENERATE(RingMode::automatic, RingMode::defer_taskrun, RingMode::coop_taskrun,
                             RingMode::plain);
  INFO("ring mode " << static_cast<int>(mode));
  constexpr int kOps = 1000;
  int ok = 0;
  std::string desc;
  std::size_t in_flight_after = 99;
  Duration elapsed{};
  auto counts = std::make_shared<coring_test::RingCounts>();
  {
    LoopOptions o;
    o.uring.sq_entries = 4;
    o.uring.cq_entries = 8;
    o.uring.ring_mode = mode;
    o.backend = coring::BackendKind::io_uring;
    o.run_budget = 4096;
    o.backend_factory = [counts](const LoopOptions& opts) -> std::unique_ptr<coring::Backend> {
      return std::make_unique<coring_test::RingProbe>(coring::make_uring_backend(opts), counts);
    };
    EventLoop loop(o);
    desc = loop.describe();
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = Clock::now();
      for (int round = 0; round < 3; ++round) {
        std::vector<JoinHandle<int>> hs;
        for (int i = 0; i < kOps; ++i) hs.push_back(coring::spawn(one_nop()));
        for (auto& h : hs) ok += (co_await h) == 0 ? 1 : 0;
      }
      elapsed = Clock::now() - t0;
      in_flight_after = EventLoop::current()->backend().in_flight();
    }());
  }
  INFO(desc);
  CHECK(desc.find("cq=8") != std::string::npos);
  CHECK(ok == 3 * kOps);
  CHECK(in_flight_after == 1);
  CHECK(elapsed < 30s);
  CHECK(counts->cq_overflow > 0);  // the overflow path really was taken
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("run_budget: a task spinning on yield_now does not starve timers or I/O",
          "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t budget = GENERATE(std::size_t{1}, std::size_t{8}, std::size_t{256});
  INFO("run_budget " << budget);
  constexpr std::uint64_t kMaxSpins = 200'000'000;
  bool timer_fired = false;
  bool read_done = false;
  std::string got;
  std::uint64_t spins = 0;
  std::uint64_t turns = 0;
  bool gave_up = false;
  {
    Pipe p;
    LoopOptions o;
    o.run_budget = budget;
    EventLoop loop(o);
    std::thread writer;
    loop.run([&]() -> Task<void> {
      auto sleeper = coring::spawn(sleep_then_flag(20ms, &timer_fired));
      auto reader = coring::spawn(read_some(p.r, &got));
      writer = std::thread([fd = p.w] {
        std::this_thread::sleep_for(20ms);
        [[maybe_unused]] ssize_t n = ::write(fd, "wake", 4);
      });
      const TimePoint limit = Clock::now() + 8s;
      // This task never blocks: only the budget lets the loop poll.
      while (!(sleeper.done() && reader.done())) {
        co_await coring::yield_now();
        if (++spins >= kMaxSpins || ((spins & 1023) == 0 && Clock::now() > limit)) {
          gave_up = true;
          break;
        }
      }
      read_done = reader.done() && (co_await reader) == 4;
      co_await sleeper;
    }());
    writer.join();
    turns = loop.stats().turns;
  }
  CHECK_FALSE(gave_up);
  CHECK(timer_fired);
  CHECK(read_done);
  CHECK(got == "wake");
  CHECK(spins > 0);
  CHECK(turns >= spins / budget);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("run_budget 0 is taken as 1", "[runtime][loop]") {
  LoopOptions o;
  o.run_budget = 0;
  EventLoop loop(o);
  CHECK(loop.options().run_budget == 1);
  CHECK(loop.run([]() -> Task<int> {
    co_await coring::yield_now();
    co_return 3;
  }()) == 3);
}

TEST_CASE("describe() names the ring mode it chose", "[runtime][loop]") {
  CORING_IO_URING_ONLY();
  coring::LoopOptions o;
  o.backend = coring::BackendKind::io_uring;  // a ring, whatever CORING_BACKEND says
  EventLoop loop(o);
  const std::string d = loop.describe();
  INFO(d);
  CHECK(d.rfind("io_uring (", 0) == 0);
  const bool names_mode = d.find("(SINGLE_ISSUER|DEFER_TASKRUN)") != std::string::npos ||
                          d.find("(COOP_TASKRUN)") != std::string::npos ||
                          d.find("(plain)") != std::string::npos;
  CHECK(names_mode);
  if (kernel_at_least(6, 1)) CHECK(d.find("(SINGLE_ISSUER|DEFER_TASKRUN)") != std::string::npos);
  CHECK(d.find("sq=256") != std::string::npos);
  CHECK(d.find("cq=1024") != std::string::npos);
}

TEST_CASE("every forced RingMode does pipe I/O, timers and nops", "[runtime][loop]") {
  CORING_IO_URING_ONLY();
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  struct ModeCase {
    RingMode mode;
    const char* name;
  };
  const auto mc = GENERATE(ModeCase{RingMode::defer_taskrun, "(SINGLE_ISSUER|DEFER_TASKRUN)"},
                           ModeCase{RingMode::coop_taskrun, "(COOP_TASKRUN)"},
                           ModeCase{RingMode::plain, "(plain)"});
  INFO(mc.name);
  std::string desc;
  std::string got;
  {
    Pipe p;
    LoopOptions o;
    o.uring.ring_mode = mc.mode;
    o.backend = coring::BackendKind::io_uring;
    EventLoop loop(o);
    desc = loop.describe();
    got = loop.run(pipe_roundtrip(p.r, p.w));
  }
  INFO(desc);
  CHECK(desc.find(mc.name) != std::string::npos);
  CHECK(got == "ping through the ring");
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("async_write / async_read round trip 1 MiB through a pipe", "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  constexpr std::size_t kBytes = 1u << 20;
  std::vector<unsigned char> data(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i)
    data[i] = static_cast<unsigned char>((i * 131 + i / 4096) & 0xff);
  std::vector<unsigned char> received;
  std::size_t written = 0;
  int write_calls = 0;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto reader = coring::spawn(read_all(p.r, &received, kBytes), "reader");
      written = co_await write_all(p.w, &data, &write_calls);
      (void)co_await reader;
    }());
  }
  CHECK(written == kBytes);
  CHECK(write_calls >= 1);
  REQUIRE(received.size() == kBytes);
  CHECK(received == data);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("I/O errors come back as results, not exceptions", "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  coring::IoResult bad_read;
  coring::IoResult eof;
  coring::IoResult polled;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      std::array<char, 8> buf{};
      bad_read = co_await coring::async_read(-1, std::as_writable_bytes(std::span(buf)));
      CHECK(::write(p.w, "x", 1) == 1);
      polled = co_await coring::async_poll(p.r, POLLIN);
      ::close(p.w);
      p.w = -1;
      std::array<char, 8> one{};
      (void)co_await coring::async_read(p.r, std::as_writable_bytes(std::span(one)));
      eof = co_await coring::async_read(p.r, std::as_writable_bytes(std::span(buf)));
    }());
  }
  CHECK_FALSE(bad_read.ok());
  CHECK(bad_read.error() == std::error_code(EBADF, std::system_category()));
  CHECK(polled.ok());
  CHECK((polled.res & POLLIN) != 0);
  CHECK(eof.ok());
  CHECK(eof.bytes() == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a detached task that throws is reported with its name; the loop keeps running",
          "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::string err;
  int result = 0;
  {
    EventLoop loop;
    StderrCapture capture;
    result = loop.run([]() -> Task<int> {
      coring::spawn(
          []() -> Task<void> {
            co_await coring::sleep_for(1ms);
            throw std::runtime_error("boom from the detached task 4711");
          }(),
          "exploding-worker")
          .detach();
      co_await coring::sleep_for(10ms);
      // Still alive: timers, I/O and new tasks all work.
      coring::IoResult r = co_await coring::async_nop();
      auto h = coring::spawn([]() -> Task<int> { co_return 40; }());
      co_return (co_await h) + 2 + r.res;
    }());
    err = capture.finish();
  }
  INFO(err);
  CHECK(result == 42);
  CHECK(err.find("exploding-worker") != std::string::npos);
  CHECK(err.find("boom from the detached task 4711") != std::string::npos);
  CHECK(err.find("detached") != std::string::npos);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("an unjoined failed handle is reported when dropped, a joined one is not",
          "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::string while_held;
  std::string on_drop;
  std::string joined_and_cancelled;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto failing = [](const char* msg) -> Task<void> {
        co_await coring::yield_now();
        throw std::runtime_error(msg);
      };
      {
        StderrCapture capture;
        auto h = coring::spawn(failing("unjoined failure 99"), "never-joined");
        while (!h.done()) co_await coring::yield_now();
        while_held = capture.finish();  // nothing reported while the handle lives
        StderrCapture drop_capture;
        { auto dropped = std::move(h); }
        on_drop = drop_capture.finish();
      }
      {
        StderrCapture capture;
        auto joined = coring::spawn(failing("joined failure"), "joined-task");
        try {
          co_await joined;
        } catch (const std::runtime_error&) {
        }
        auto cancelled = coring::spawn(sleep_then_flag(1h, nullptr), "cancelled-task");
        co_await coring::yield_now();
        cancelled.cancel();
        while (!cancelled.done()) co_await coring::yield_now();
        { auto drop1 = std::move(joined); }
        { auto drop2 = std::move(cancelled); }
        joined_and_cancelled = capture.finish();
      }
    }());
  }
  CHECK(while_held.empty());
  INFO(on_drop);
  CHECK(on_drop.find("never-joined") != std::string::npos);
  CHECK(on_drop.find("unjoined failure 99") != std::string::npos);
  CHECK(on_drop.find("unjoined") != std::string::npos);
  CHECK(joined_and_cancelled.empty());
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("run(task) returns the value or rethrows; EventLoop::current() is set inside",
          "[runtime][loop]") {
  const auto frames_before = FrameAllocator::live_frames();
  EventLoop* inside = nullptr;
  {
    EventLoop loop;
    CHECK(EventLoop::current() == nullptr);
    CHECK_THROWS_AS(EventLoop::current_or_throw(), std::logic_error);
    CHECK_THROWS_WITH(loop.run([]() -> Task<int> {
      co_await coring::async_nop();
      throw std::runtime_error("task failed");
    }()),
                      "task failed");
    // The same loop runs the next task.
    CHECK(loop.run([&]() -> Task<int> {
      inside = EventLoop::current();
      co_await coring::sleep_for(1ms);
      co_return 5;
    }()) == 5);
    CHECK(inside == &loop);
    CHECK(EventLoop::current() == nullptr);
    // run_once(false) never blocks, even with a far timer pending.
    loop.scheduler().spawn(sleep_then_flag(1h, nullptr)).detach();
    const TimePoint t0 = Clock::now();
    for (int i = 0; i < 10; ++i) loop.run_once(false);
    CHECK(Clock::now() - t0 < 1h);
    CHECK(loop.timers().size() == 1);
  }
  CHECK(coring::run([]() -> Task<int> { co_return 9; }()) == 9);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a loop built on one thread runs (and is destroyed) on another", "[runtime][loop]") {
  CORING_IO_URING_ONLY();
  const auto mode = GENERATE(RingMode::automatic, RingMode::coop_taskrun);
  INFO("ring mode " << static_cast<int>(mode));
  LoopOptions o;
  o.uring.ring_mode = mode;
  o.backend = coring::BackendKind::io_uring;
  auto loop = std::make_unique<EventLoop>(o);  // built here
  std::string got;
  std::int64_t frames_delta = -1;
  bool threw = false;
  std::thread::id ran_on;
  std::thread runner([&] {
    const auto frames_before = FrameAllocator::live_frames();
    try {
      Pipe p;
      got = loop->run([&](int r, int w) -> Task<std::string> {
        ran_on = std::this_thread::get_id();
        co_return co_await pipe_roundtrip(r, w);
      }(p.r, p.w));
      loop.reset();  // destroyed on the thread that ran it
    } catch (...) {
      threw = true;
    }
    frames_delta = FrameAllocator::live_frames() - frames_before;
  });
  const std::thread::id runner_id = runner.get_id();
  runner.join();
  CHECK_FALSE(threw);
  CHECK(ran_on == runner_id);
  CHECK(got == "ping through the ring");
  CHECK(loop == nullptr);
  CHECK(frames_delta == 0);
}

TEST_CASE("a loop built on one thread, run on another, can be destroyed where it was built",
          "[runtime][loop]") {
  // Regression: with a SINGLE_ISSUER ring the destructor's io_uring_enter from
  // the building thread failed with EEXIST and the exception escaped ~EventLoop
  // (std::terminate). Runs in a child process so a crash fails this test alone.
  std::string child_stderr;
  const int status = run_in_child(
      [] {
        std::string got;
        {
          EventLoop loop;  // built on this thread
          std::thread runner([&] {
            Pipe p;
            got = loop.run(pipe_roundtrip(p.r, p.w));
          });
          runner.join();
        }  // destroyed on this thread, after its runner has finished
        return got == "ping through the ring";
      },
      &child_stderr);
  INFO("child wait status " << status << ", stderr: " << child_stderr);
  CHECK(WIFEXITED(status));
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

TEST_CASE(
    "the loop thread may destroy the loop as soon as run() returns, while post()/stop() return",
    "[runtime][loop]") {
  // A thread ends the loop with post(fn-that-stops) or stop(); the loop thread
  // destroys the loop as soon as run() returns. The caller's post()/stop() must
  // not touch the loop once the loop can act on the request. Regression: post()
  // used to write the eventfd and update counters after releasing post_mutex_,
  // and stop() published stop_requested_ before taking it, so both could touch a
  // loop being destroyed (ThreadSanitizer reported it). Runs in a child process
  // so that a sanitizer report or a crash fails this test alone.
  std::string child_stderr;
  const int status = run_in_child(
      [] {
        for (int i = 0; i < 200; ++i) {
          std::promise<EventLoop*> ready;
          auto ready_future = ready.get_future();
          const bool use_stop = (i % 2) != 0;
          std::thread loop_thread([&ready, use_stop] {
            std::uint64_t nops = 0;
            auto loop = std::make_unique<EventLoop>();
            // Busy, so that it notices stop_requested_ without waiting for a wake-up.
            if (use_stop) loop->scheduler().spawn(nop_forever(&nops)).detach();
            ready.set_value(loop.get());
            loop->run();
            loop.reset();  // at once
          });
          EventLoop* loop = ready_future.get();
          if (use_stop) {
            loop->stop();
          } else {
            loop->post([loop] { loop->stop(); });
          }
          loop_thread.join();
        }
        return true;
      },
      &child_stderr);
  INFO("child wait status " << status << ", stderr: " << child_stderr.substr(0, 3000));
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(child_stderr.find("Sanitizer") == std::string::npos);
}

TEST_CASE("an idle loop waits in the kernel instead of spinning", "[runtime][loop]") {
  // Regression (epoll backend): the loop's eventfd read carries offset 0, which
  // pread(2) refuses on an eventfd (ESPIPE); the failed read was re-armed at
  // once, so an idle epoll loop never blocked. Whatever the backend, a task
  // sleeping 200 ms costs a handful of turns, not thousands.
  EventLoop loop;
  INFO(loop.describe());
  bool ran = false;
  loop.run([](bool* r) -> Task<void> {
    // A post wakes the loop through its eventfd read (the path that spun).
    EventLoop::current()->post([r] { *r = true; });
    co_await coring::sleep_for(200ms);
  }(&ran));
  CHECK(ran);
  const std::uint64_t turns = loop.stats().turns;
  INFO("turns: " << turns);
  CHECK(turns < 50);
}

TEST_CASE("a read or write at an offset on a pipe goes to the pipe (the offset is ignored)",
          "[runtime][loop]") {
  Pipe p;
  std::string got;
  int wrote = -1;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      const std::string msg = "offset ignored";
      coring::IoResult w = co_await coring::async_write(
          p.w, std::as_bytes(std::span<const char>(msg.data(), msg.size())), 0);
      wrote = w.res;
      char buf[32] = {};
      coring::IoResult r =
          co_await coring::async_read(p.r, std::as_writable_bytes(std::span<char>(buf)), 0);
      got.assign(buf, r.bytes());
    }());
  }
  CHECK(wrote == 14);
  CHECK(got == "offset ignored");
}
