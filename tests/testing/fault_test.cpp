// coring::testing::FaultBackend: the backend decorator itself (synthetic
// completions come from poll(), count as in flight, win against cancel; exact
// faults by operation index; the seed from the environment), and the real echo
// server on loopback sockets under injected faults: each fault kind alone at a
// fixed rate, a random mix of all kinds over many seeds, and io_uring with a
// tiny ring (SQ full and CQ overflow for real).
//
// Under faults every client either gets back exactly the bytes it sent, in
// order, or ends with a clean error (EOF, reset, the injected errno) -- never
// wrong bytes, never a hang (every wait has a timeout, and a timeout fails the
// test). Transient faults (eintr, eagain, short_send, short_read) and enobufs
// must cost nothing: every client gets all its bytes. Afterwards no fd is left
// open and no coroutine frame is left alive, and the fault counters show that
// faults were injected.
//
// Half the clients use TcpStream (connect, send_all, recv: the net layer's
// handling of results); the other half a raw socket with single-shot sends and
// async_read (IoAwaiter: the application sees EAGAIN and short transfers).
//
// A failure prints the seed; CORING_FAULT_SEED=<seed> runs only that seed again.
// Never co_await inside a Catch macro (GCC 12 evaluates it twice).
#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <coring/coring.hpp>
#include <coring/testing/fault_backend.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/net_support.hpp"
#include "support/ring_probe.hpp"
#include "support/uring_only.hpp"

using namespace coring_test;
using coring::FrameAllocator;
using coring::IoRequest;
using coring::IoResult;
using coring::testing::Fault;
using coring::testing::FaultBackend;
using coring::testing::FaultPlan;
using coring::testing::FaultStats;

namespace {

constexpr std::size_t kNpos = static_cast<std::size_t>(-1);
constexpr Duration kIoTimeout = 5s;

std::uint64_t mix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// ---- what one client saw ----

struct ClientResult {
  bool raw = false;
  std::size_t size = 0;
  std::size_t sent = 0;
  std::size_t received = 0;
  std::size_t first_mismatch = kNpos;  // first byte that came back wrong
  bool eof = false;
  std::error_code connect_error;
  std::error_code send_error;
  std::error_code recv_error;

  [[nodiscard]] bool timed_out() const {
    return connect_error == std::errc::timed_out || send_error == std::errc::timed_out ||
           recv_error == std::errc::timed_out;
  }
  [[nodiscard]] bool any_error() const {
    return static_cast<bool>(connect_error) || static_cast<bool>(send_error) ||
           static_cast<bool>(recv_error);
  }
  // Every byte sent came back, then EOF, and nothing failed.
  [[nodiscard]] bool complete() const {
    return !any_error() && eof && sent == size && received == size && first_mismatch == kNpos;
  }
  [[nodiscard]] std::string describe() const {
    std::ostringstream o;
    o << (raw ? "raw" : "stream") << " size=" << size << " sent=" << sent
      << " received=" << received << " eof=" << eof << " mismatch_at="
      << (first_mismatch == kNpos ? std::string("none") : std::to_string(first_mismatch))
      << " connect='" << connect_error.message() << "' send='" << send_error.message() << "' recv='"
      << recv_error.message() << "'";
    return o.str();
  }
};

void check_chunk(const std::byte* p, std::size_t n, const std::vector<std::byte>& expected,
                 ClientResult* out) {
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t at = out->received + k;
    if (at >= expected.size() || p[k] != expected[at]) {
      if (out->first_mismatch == kNpos) out->first_mismatch = at;
      break;
    }
  }
  out->received += n;
}

// Chunks of 1..20000 bytes, so that sends of many lengths reach the backend.
std::size_t next_chunk(std::uint64_t& rng, std::size_t left) {
  return std::min<std::size_t>(left, 1 + mix64(rng) % 20000);
}

// ---- a TcpStream client ----

Task<void> stream_sender(TcpStream* s, const std::vector<std::byte>* data, std::uint64_t seed,
                         ClientResult* out) {
  std::size_t off = 0;
  while (off < data->size()) {
    const std::size_t n = next_chunk(seed, data->size() - off);
    SendResult w =
        co_await s->send_all(std::span<const std::byte>(data->data() + off, n), kIoTimeout);
    off += w.bytes;
    if (!w) {
      out->send_error = w.error;
      break;
    }
  }
  out->sent = off;
  (void)s->shutdown(SHUT_WR);  // however it went: the server echoes the rest and ends
}

Task<void> stream_receiver(TcpStream* s, const std::vector<std::byte>* data, ClientResult* out) {
  for (;;) {
    Received r = co_await s->recv(kIoTimeout);
    if (!r) {
      if (r.eof()) {
        out->eof = true;
      } else {
        out->recv_error = r.error;
        (void)s->shutdown(SHUT_RDWR);  // stops our sender too
      }
      co_return;
    }
    check_chunk(r.data().data(), r.size(), *data, out);
    if (out->first_mismatch != kNpos) {
      (void)s->shutdown(SHUT_RDWR);
      co_return;
    }
  }
}

Task<ClientResult> stream_client(Address addr, std::vector<std::byte> data, std::uint64_t seed) {
  ClientResult out;
  out.size = data.size();
  Connected c = co_await net::connect(addr, kIoTimeout);
  if (!c) {
    out.connect_error = c.error;
    co_return out;
  }
  JoinHandle<void> sender = coring::spawn(stream_sender(&c.stream, &data, seed, &out), "sender");
  co_await stream_receiver(&c.stream, &data, &out);
  co_await sender;
  co_return out;
}

// ---- a raw-socket client on IoAwaiter (send / async_read) ----

// Closes the fd the way the backend contract asks (forget_fd, then close).
struct RawFd {
  int fd;
  ~RawFd() {
    EventLoop::current_or_throw().backend().forget_fd(fd);
    ::close(fd);
  }
};

Task<void> raw_writer(int fd, const std::vector<std::byte>* data, std::uint64_t seed,
                      ClientResult* out) {
  std::size_t off = 0;
  while (off < data->size()) {
    const std::size_t n = next_chunk(seed, data->size() - off);
    // A send(MSG_NOSIGNAL) rather than a write: a peer that is gone must give
    // EPIPE, not SIGPIPE.
    IoRequest req;
    req.opcode = coring::IoOpcode::send;
    req.fd = fd;
    req.addr = const_cast<std::byte*>(data->data() + off);
    req.len = static_cast<std::uint32_t>(n);
    req.op_flags = MSG_NOSIGNAL;
    coring::IoAwaiter op(req);
    op.set_timeout(kIoTimeout);
    const IoResult r = co_await op;
    if (r.res == -EAGAIN) continue;  // IoAwaiter hands EAGAIN back: ours to try again
    if (!r.ok()) {
      out->send_error = r.error();
      break;
    }
    if (r.res == 0) {
      out->send_error = std::make_error_code(std::errc::broken_pipe);
      break;
    }
    off += r.bytes();  // a short write goes on with the rest
  }
  out->sent = off;
  ::shutdown(fd, SHUT_WR);
}

Task<void> raw_reader(int fd, const std::vector<std::byte>* data, std::uint64_t seed,
                      ClientResult* out) {
  std::vector<std::byte> buf(16384);
  for (;;) {
    const std::size_t len = 512 + mix64(seed) % (buf.size() - 512);
    auto op = coring::async_read(fd, std::span<std::byte>(buf.data(), len));
    op.set_timeout(kIoTimeout);
    const IoResult r = co_await op;
    if (r.res == -EAGAIN) continue;
    if (!r.ok()) {
      out->recv_error = r.error();
      ::shutdown(fd, SHUT_RDWR);
      co_return;
    }
    if (r.res == 0) {
      out->eof = true;
      co_return;
    }
    check_chunk(buf.data(), r.bytes(), *data, out);
    if (out->first_mismatch != kNpos) {
      ::shutdown(fd, SHUT_RDWR);
      co_return;
    }
  }
}

Task<ClientResult> raw_client(Address addr, std::vector<std::byte> data, std::uint64_t seed) {
  ClientResult out;
  out.raw = true;
  out.size = data.size();
  // A blocking loopback connect completes in the kernel (the listener's backlog).
  const int fd = raw_connect(addr);
  if (fd < 0) {
    out.connect_error = std::error_code(errno, std::system_category());
    co_return out;
  }
  RawFd guard{fd};
  JoinHandle<void> writer = coring::spawn(raw_writer(fd, &data, seed, &out), "raw writer");
  co_await raw_reader(fd, &data, seed ^ 0x5555, &out);
  co_await writer;
  co_return out;
}

// ---- one run: an echo server and its clients on a fresh faulty loop ----

struct Scenario {
  std::size_t clients = 16;
  std::size_t max_bytes = 128 * 1024;  // per client: 1 .. max_bytes
  std::uint64_t data_seed = 1;
};

struct RunResult {
  std::vector<ClientResult> clients;
  std::optional<EchoStats> server;  // nullopt: serve() did not end in time
  std::string backend;
};

Task<RunResult> echo_under_faults(Scenario sc) {
  RunResult out;
  out.backend = EventLoop::current_or_throw().describe();
  EchoOptions eo;
  eo.grace = 2s;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), eo);
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::uint64_t rng = sc.data_seed;
  std::vector<JoinHandle<ClientResult>> handles;
  for (std::size_t i = 0; i < sc.clients; ++i) {
    // Some tiny, some spanning many ring buffers and many sends.
    const std::size_t size = i % 4 == 0 ? 1 + mix64(rng) % 64 : 1 + mix64(rng) % sc.max_bytes;
    std::vector<std::byte> data = random_bytes(size, mix64(rng));
    const std::uint64_t seed = mix64(rng);
    if (i % 2 == 0) {
      handles.push_back(coring::spawn(stream_client(addr, std::move(data), seed), "client"));
    } else {
      handles.push_back(coring::spawn(raw_client(addr, std::move(data), seed), "raw client"));
    }
  }
  for (auto& h : handles) {
    ClientResult r = co_await h;
    out.clients.push_back(r);
  }
  server.stop();
  std::optional<EchoStats> st = co_await coring::with_timeout(10s, serving);
  out.server = st;
  co_return out;
}

// Runs `sc` on a fresh loop with `options`; checks what every run must hold:
// no wrong bytes, no hang, no fd and no frame left, serve() ended.
RunResult run_checked(const coring::LoopOptions& options, const Scenario& sc) {
  const std::size_t fds = count_open_fds();
  const std::int64_t frames = FrameAllocator::live_frames();
  RunResult res;
  {
    EventLoop loop(options);
    res = loop.run(echo_under_faults(sc));
  }
  INFO("backend: " << res.backend);
  CHECK(count_open_fds() == fds);
  CHECK(FrameAllocator::live_frames() == frames);
  CHECK(res.server.has_value());
  REQUIRE(res.clients.size() == sc.clients);
  for (std::size_t i = 0; i < res.clients.size(); ++i) {
    const ClientResult& c = res.clients[i];
    INFO("client " << i << ": " << c.describe());
    CHECK(c.first_mismatch == kNpos);  // never wrong bytes
    CHECK_FALSE(c.timed_out());        // never a hang
    CHECK(c.received <= c.sent);       // nothing comes back that was not sent
    CHECK((c.eof || c.any_error()));   // it ended cleanly: EOF or an error
    // An EOF before every byte came back, without an error of the client's
    // own, is the server closing cleanly after a fault on its side.
  }
  return res;
}

std::size_t complete_clients(const RunResult& r) {
  return static_cast<std::size_t>(std::count_if(
      r.clients.begin(), r.clients.end(), [](const ClientResult& c) { return c.complete(); }));
}

// fault_options(plan, base, stats) with plan.tiny_ring, and a RingProbe
// between the FaultBackend and the ring.
coring::LoopOptions tiny_ring_options(const FaultPlan& plan, coring::LoopOptions base,
                                      const std::shared_ptr<FaultStats>& stats,
                                      const std::shared_ptr<RingCounts>& counts) {
  base.backend_factory = [plan, stats, counts](const coring::LoopOptions& o) {
    coring::LoopOptions inner = o;
    inner.uring.sq_entries = 2;
    inner.uring.cq_entries = 4;
    return std::unique_ptr<coring::Backend>(std::make_unique<FaultBackend>(
        std::make_unique<RingProbe>(coring::make_backend(inner), counts), plan, stats));
  };
  return base;
}

// The faults after which a correct program loses nothing.
bool lossless(Fault f) {
  return coring::testing::transient(f) || f == Fault::enobufs;
}

std::string stats_text(const FaultStats& s) {
  return s.summary();
}

}  // namespace

// ---- the decorator itself ----

TEST_CASE(
    "FaultBackend: a synthetic completion comes from poll(), is in flight until then, "
    "and wins against cancel",
    "[testing][fault]") {
  FaultPlan plan;
  plan.seed = 7;
  plan.at = {{0, Fault::eagain}, {1, Fault::eintr}, {3, Fault::econnreset}};
  auto stats = std::make_shared<FaultStats>();
  FaultBackend b(coring::make_backend(coring::LoopOptions{}), plan, stats);
  b.bind_to_current_thread();
  CHECK(b.describe().rfind("fault(", 0) == 0);
  CHECK(b.describe().find("seed=7") != std::string::npos);
  CHECK(b.seed() == 7);

  Pipe p;
  struct Rec : coring::Completion {
    int res = 1;
    std::uint32_t flags = 99;
    int calls = 0;
  } rec;
  rec.on_complete = [](coring::Completion* c, int res, std::uint32_t flags) noexcept {
    auto* r = static_cast<Rec*>(c);
    r->res = res;
    r->flags = flags;
    ++r->calls;
  };
  char buf[8];
  IoRequest read_req;
  read_req.opcode = coring::IoOpcode::read;
  read_req.fd = p.r;
  read_req.addr = buf;
  read_req.len = sizeof buf;

  // Operation 0: EAGAIN, without running (the pipe is empty: a real read would wait).
  b.start(read_req, &rec);
  CHECK(rec.calls == 0);  // never from start()
  CHECK(b.in_flight() == 1);
  CHECK(b.pending_submissions() == 1);
  b.cancel(&rec);  // too late: it completes with its injected result
  CHECK(rec.calls == 0);
  const Duration long_wait = 5s;
  TimePoint t0 = Clock::now();
  std::size_t n = b.poll(&long_wait);
  CHECK(ms_since(t0) < 1000);  // did not wait: a completion was ready
  CHECK(n == 1);
  CHECK(rec.calls == 1);
  CHECK(rec.res == -EAGAIN);
  CHECK(rec.flags == 0);  // final
  CHECK(b.in_flight() == 0);
  CHECK(b.pending_submissions() == 0);

  // Operation 1: EINTR; poll(nullptr) must not block with it queued.
  b.start(read_req, &rec);
  t0 = Clock::now();
  n = b.poll(nullptr);
  CHECK(ms_since(t0) < 1000);
  CHECK(n == 1);
  CHECK(rec.calls == 2);
  CHECK(rec.res == -EINTR);

  // Operation 2: forwarded, and runs for real.
  b.start(read_req, &rec);
  REQUIRE(write_str(p.w, "abc"));
  for (int i = 0; i < 100 && rec.calls == 2; ++i) {
    const Duration step = 50ms;
    (void)b.poll(&step);
  }
  CHECK(rec.calls == 3);
  CHECK(rec.res == 3);

  // Operation 3: ECONNRESET does not apply to a read: forwarded unchanged, not counted.
  b.start(read_req, &rec);
  REQUIRE(write_str(p.w, "de"));
  for (int i = 0; i < 100 && rec.calls == 3; ++i) {
    const Duration step = 50ms;
    (void)b.poll(&step);
  }
  CHECK(rec.calls == 4);
  CHECK(rec.res == 2);

  CHECK(b.operations() == 4);
  CHECK(stats->operations == 4);
  CHECK(b.injected(Fault::eagain) == 1);
  CHECK(b.injected(Fault::eintr) == 1);
  CHECK(b.injected(Fault::econnreset) == 0);
  CHECK(stats->total_injected() == 2);
  REQUIRE(stats->log.size() == 2);
  CHECK(stats->log[0].op == 0);
  CHECK(stats->log[0].fault == Fault::eagain);
  CHECK(stats->log[0].opcode == coring::IoOpcode::read);
  CHECK(stats->log[0].fd == p.r);
  CHECK(stats->log[1].op == 1);
  CHECK(stats->log[1].fault == Fault::eintr);
  b.forget_fd(p.r);
}

TEST_CASE("FaultBackend: which faults apply to which operations", "[testing][fault]") {
  using coring::IoOpcode;
  auto req = [](IoOpcode op, std::uint32_t len = 100, bool pooled = false) {
    IoRequest r;
    r.opcode = op;
    r.len = len;
    if (pooled) r.buffers = reinterpret_cast<coring::BufferPool*>(0x1000);  // never used
    return r;
  };
  CHECK(FaultBackend::applies(Fault::enobufs, req(IoOpcode::recv, 0, true)));
  CHECK_FALSE(FaultBackend::applies(Fault::enobufs, req(IoOpcode::recv)));
  CHECK_FALSE(FaultBackend::applies(Fault::ecanceled, req(IoOpcode::accept)));
  CHECK_FALSE(FaultBackend::applies(Fault::ecanceled, req(IoOpcode::close)));
  CHECK(FaultBackend::applies(Fault::ecanceled, req(IoOpcode::poll_add)));
  CHECK(FaultBackend::applies(Fault::eintr, req(IoOpcode::accept)));
  CHECK(FaultBackend::applies(Fault::eintr, req(IoOpcode::connect)));
  CHECK_FALSE(FaultBackend::applies(Fault::eintr, req(IoOpcode::close)));
  CHECK_FALSE(FaultBackend::applies(Fault::eintr, req(IoOpcode::nop)));
  CHECK(FaultBackend::applies(Fault::eagain, req(IoOpcode::accept)));
  CHECK_FALSE(FaultBackend::applies(Fault::eagain, req(IoOpcode::connect)));
  CHECK(FaultBackend::applies(Fault::econnreset, req(IoOpcode::send)));
  CHECK_FALSE(FaultBackend::applies(Fault::econnreset, req(IoOpcode::read)));
  CHECK(FaultBackend::applies(Fault::short_send, req(IoOpcode::send, 2)));
  CHECK_FALSE(FaultBackend::applies(Fault::short_send, req(IoOpcode::send, 1)));
  CHECK_FALSE(FaultBackend::applies(Fault::short_send, req(IoOpcode::write)));
  CHECK(FaultBackend::applies(Fault::short_read, req(IoOpcode::read, 2)));
  CHECK(FaultBackend::applies(Fault::short_read, req(IoOpcode::recv, 2)));
  CHECK_FALSE(FaultBackend::applies(Fault::short_read, req(IoOpcode::recv, 2, true)));
}

TEST_CASE("FaultBackend: CORING_FAULT_SEED replaces the fallback seed", "[testing][fault]") {
  const char* old = std::getenv("CORING_FAULT_SEED");
  const std::string saved = old != nullptr ? old : "";
  const bool had = old != nullptr;
  ::setenv("CORING_FAULT_SEED", "0x2a", 1);
  CHECK(coring::testing::fault_seed(7) == 42);
  ::setenv("CORING_FAULT_SEED", "1234", 1);
  CHECK(coring::testing::fault_seed(7) == 1234);
  ::setenv("CORING_FAULT_SEED", "twelve", 1);
  CHECK_THROWS_AS(coring::testing::fault_seed(7), std::invalid_argument);
  ::unsetenv("CORING_FAULT_SEED");
  CHECK(coring::testing::fault_seed(7) == 7);
  if (had) ::setenv("CORING_FAULT_SEED", saved.c_str(), 1);
}

TEST_CASE("FaultBackend: FaultPlan::at faults exactly the operation it names", "[testing][fault]") {
  // Operation 0 is the loop's own eventfd read (armed when the loop starts);
  // the task's writes and read come after it, one operation each, and the
  // test reads the index of each from the stats before starting it.
  FaultPlan plan;
  plan.seed = coring::testing::fault_seed(11);
  plan.at = {
      {3, Fault::eagain}, {5, Fault::enobufs}, {6, Fault::ecanceled}, {9, Fault::short_read}};
  auto stats = std::make_shared<FaultStats>();
  const std::size_t fds = count_open_fds();
  {
    EventLoop loop(coring::testing::fault_options(plan, {}, stats));
    loop.run([](FaultStats* st) -> Task<void> {
      Pipe p;
      const std::byte one[1] = {std::byte{'x'}};
      int written = 0;
      for (int i = 0; i < 8; ++i) {
        const std::uint64_t index = st->operations.load();
        const IoResult r = co_await coring::async_write(p.w, one);
        INFO("write " << i << " is operation " << index);
        if (index == 3) {
          CHECK(r.res == -EAGAIN);
        } else if (index == 6) {
          CHECK(r.res == -ECANCELED);
        } else {
          CHECK(r.res == 1);  // 5: enobufs does not apply to a write
          if (r.res == 1) ++written;
        }
      }
      CHECK(written == 6);
      CHECK(bytes_available(p.r) == 6);  // the faulted writes did not run
      std::byte buf[64];
      const std::uint64_t read_index = st->operations.load();
      const IoResult got = co_await coring::async_read(p.r, buf);
      CHECK(read_index == 9);
      REQUIRE(st->log.size() == 3);
      const std::uint32_t shorter = st->log[2].new_len;
      CHECK(shorter >= 1);
      CHECK(shorter <= 63);
      CHECK(got.res == static_cast<int>(std::min<std::uint32_t>(shorter, 6)));
      EventLoop::current_or_throw().backend().forget_fd(p.r);
      EventLoop::current_or_throw().backend().forget_fd(p.w);
    }(stats.get()));
  }
  CHECK(count_open_fds() == fds);
  CHECK(stats->injected(Fault::eagain) == 1);
  CHECK(stats->injected(Fault::ecanceled) == 1);
  CHECK(stats->injected(Fault::short_read) == 1);
  CHECK(stats->injected(Fault::enobufs) == 0);
  CHECK(stats->total_injected() == 3);
  REQUIRE(stats->log.size() == 3);
  CHECK(stats->log[0].op == 3);
  CHECK(stats->log[0].opcode == coring::IoOpcode::write);
  CHECK(stats->log[1].op == 6);
  CHECK(stats->log[1].opcode == coring::IoOpcode::write);
  CHECK(stats->log[2].op == 9);
  CHECK(stats->log[2].opcode == coring::IoOpcode::read);
  CHECK(stats->log[2].len == 64);
}

TEST_CASE("FaultBackend: a listener takes EINTR and EAGAIN from accept in its stride",
          "[testing][fault]") {
  // The first six accepts fail with a transient result: the listener arms
  // again each time without counting an error, and every client is accepted.
  // Operation 0 is the loop's eventfd read; the first accept is operation 1,
  // each fault's re-arm the next one (nothing else starts in between).
  FaultPlan plan;
  plan.seed = coring::testing::fault_seed(5);
  plan.at = {{1, Fault::eintr},  {2, Fault::eagain}, {3, Fault::eintr},
             {4, Fault::eagain}, {5, Fault::eintr},  {6, Fault::eagain}};
  auto stats = std::make_shared<FaultStats>();
  const std::size_t fds = count_open_fds();
  net::ListenerStats ls;
  std::size_t accepted = 0;
  {
    EventLoop loop(coring::testing::fault_options(plan, {}, stats));
    loop.run([](net::ListenerStats* out, std::size_t* n) -> Task<void> {
      TcpListener listener = TcpListener::bind(Address::loopback_v4(0));
      std::vector<int> raw;
      for (int i = 0; i < 40; ++i) {
        // Connected in the kernel at once; the accepts come one by one, each
        // a new operation once the listener is throttled or faulted.
        raw.push_back(raw_connect(listener.local_address()));
        Accepted a = co_await listener.accept(kIoTimeout);
        if (a) ++*n;
      }
      *out = listener.stats();
      for (int fd : raw) {
        if (fd >= 0) ::close(fd);
      }
    }(&ls, &accepted));
  }
  INFO("faults: " << stats_text(*stats));
  CHECK(count_open_fds() == fds);
  CHECK(accepted == 40);
  CHECK(ls.accepted == 40);
  CHECK(ls.accept_errors == 0);
  CHECK(stats->injected(Fault::eintr) == 3);
  CHECK(stats->injected(Fault::eagain) == 3);
  REQUIRE(stats->log.size() == 6);
  for (const auto& rec : stats->log) CHECK(rec.opcode == coring::IoOpcode::accept);
}

// ---- the echo server under faults ----

TEST_CASE("FaultBackend: echo server under each fault kind alone", "[testing][fault]") {
  const std::uint64_t seed = coring::testing::fault_seed(0xfa17);
  for (Fault kind : coring::testing::kAllFaults) {
    INFO("fault " << coring::testing::to_string(kind) << " rate 0.2, seed " << seed
                  << " (CORING_FAULT_SEED=" << seed << " replays)");
    FaultPlan plan;
    plan.seed = seed;
    plan.rate = 0.2;
    plan.kinds = {kind};
    auto stats = std::make_shared<FaultStats>();
    Scenario sc;
    sc.data_seed = seed + static_cast<std::uint64_t>(kind);
    const RunResult r = run_checked(coring::testing::fault_options(plan, {}, stats), sc);
    INFO("faults: " << stats_text(*stats));
    CHECK(stats->injected(kind) > 0);  // injection is not a no-op
    CHECK(stats->total_injected() == stats->injected(kind));
    if (lossless(kind)) {
      for (std::size_t i = 0; i < r.clients.size(); ++i) {
        INFO("client " << i << ": " << r.clients[i].describe());
        CHECK(r.clients[i].complete());
      }
      if (r.server) {
        CHECK(r.server->errors == 0);
        std::uint64_t total = 0;
        for (const ClientResult& c : r.clients) total += c.size;
        CHECK(r.server->bytes == total);
      }
    }
  }
}

TEST_CASE("FaultBackend: echo server under a random mix of every fault, many seeds",
          "[testing][fault]") {
  // CORING_FAULT_SEED set: only that seed.
  const bool replay = std::getenv("CORING_FAULT_SEED") != nullptr;
  const std::uint64_t first = coring::testing::fault_seed(1000);
  const std::uint64_t seeds = replay ? 1 : 30;
  std::uint64_t injected[coring::testing::kFaultKinds] = {};
  std::size_t complete = 0;
  std::size_t clients = 0;
  for (std::uint64_t s = first; s < first + seeds; ++s) {
    INFO("seed " << s << " (CORING_FAULT_SEED=" << s << " replays)");
    FaultPlan plan;
    plan.seed = s;
    plan.rate = 0.1 + static_cast<double>(s % 4) * 0.05;  // 0.1 .. 0.25
    plan.kinds.assign(coring::testing::kAllFaults.begin(), coring::testing::kAllFaults.end());
    auto stats = std::make_shared<FaultStats>();
    Scenario sc;
    sc.clients = 12;
    sc.max_bytes = 64 * 1024;
    sc.data_seed = s;
    const RunResult r = run_checked(coring::testing::fault_options(plan, {}, stats), sc);
    INFO("faults: " << stats_text(*stats));
    CHECK(stats->total_injected() > 0);
    for (Fault f : coring::testing::kAllFaults) {
      injected[static_cast<std::size_t>(f)] += stats->injected(f);
    }
    complete += complete_clients(r);
    clients += r.clients.size();
  }
  if (!replay) {
    // Over all the seeds every kind happened, and the runs were not all failures.
    for (Fault f : coring::testing::kAllFaults) {
      INFO("fault " << coring::testing::to_string(f));
      CHECK(injected[static_cast<std::size_t>(f)] > 0);
    }
    CHECK(complete > clients / 4);
  }
}

TEST_CASE("FaultBackend: io_uring with a tiny ring (SQ 2, CQ 4) serves many clients",
          "[testing][fault]") {
  CORING_IO_URING_ONLY();
  // Every ring mode: they submit and reap differently (DEFER_TASKRUN posts
  // completions only when the loop enters the kernel; the others as they
  // happen, so the CQ overflows while the loop is busy elsewhere).
  auto counts = std::make_shared<RingCounts>();
  for (coring::RingMode mode :
       {coring::RingMode::defer_taskrun, coring::RingMode::coop_taskrun, coring::RingMode::plain}) {
    INFO("ring mode " << static_cast<int>(mode));
    FaultPlan plan;
    plan.seed = coring::testing::fault_seed(77);
    plan.tiny_ring = true;
    coring::LoopOptions base;
    base.backend = coring::BackendKind::io_uring;
    base.uring.ring_mode = mode;
    try {
      EventLoop probe(coring::testing::fault_options(plan, base));
      INFO(probe.describe());
      CHECK(probe.describe().find("sq=2 cq=4") != std::string::npos);
      CHECK(probe.describe().find("tiny_ring") != std::string::npos);
    } catch (const std::system_error& e) {
      if (e.code().category() == std::system_category() &&
          (coring::uring_unavailable(e.code().value()) || e.code().value() == EINVAL)) {
        WARN("io_uring (mode " << static_cast<int>(mode) << ") is unavailable here: " << e.what());
        continue;
      }
      throw;
    }
    {
      INFO("no faults");
      auto stats = std::make_shared<FaultStats>();
      Scenario sc;
      sc.clients = 48;
      sc.max_bytes = 64 * 1024;
      sc.data_seed = plan.seed;
      const RunResult r = run_checked(tiny_ring_options(plan, base, stats, counts), sc);
      CHECK(complete_clients(r) == sc.clients);
      CHECK(stats->total_injected() == 0);
    }
    {
      plan.rate = 0.1;
      plan.kinds = {Fault::eintr, Fault::eagain, Fault::short_send, Fault::short_read,
                    Fault::enobufs};
      INFO("lossless faults, seed " << plan.seed << " (CORING_FAULT_SEED=" << plan.seed
                                    << " replays)");
      auto stats = std::make_shared<FaultStats>();
      Scenario sc;
      sc.clients = 32;
      sc.max_bytes = 64 * 1024;
      sc.data_seed = plan.seed + 1;
      const RunResult r = run_checked(tiny_ring_options(plan, base, stats, counts), sc);
      INFO("faults: " << stats_text(*stats));
      CHECK(stats->total_injected() > 0);
      for (std::size_t i = 0; i < r.clients.size(); ++i) {
        INFO("client " << i << ": " << r.clients[i].describe());
        CHECK(r.clients[i].complete());
      }
    }
  }
  // The tiny ring did what it is for.
  INFO("sq_full=" << counts->sq_full << " cq_overflow=" << counts->cq_overflow);
  CHECK(counts->sq_full > 0);
  CHECK(counts->cq_overflow > 0);
}

TEST_CASE("FaultBackend: an ECANCELED on the loop's wake-up read leaves it awake to stop()",
          "[testing][fault]") {
  // Regression: EventLoop took any ECANCELED on its eventfd read for its own
  // shutdown and stopped reading, so a stop() or post() from another thread
  // never woke it again. Operation 0 is that read (armed when run() starts).
  FaultPlan plan;
  plan.at = {{0, Fault::ecanceled}};
  auto stats = std::make_shared<FaultStats>();
  coring::EventLoop loop(coring::testing::fault_options(plan, {}, stats));
  // A backstop so that the bug makes the test fail instead of hang.
  loop.scheduler()
      .spawn(
          [](coring::EventLoop* l) -> coring::Task<void> {
            co_await coring::sleep_for(3s);
            l->stop();
          }(&loop),
          "backstop")
      .detach();
  std::thread stopper([&loop] {
    std::this_thread::sleep_for(50ms);
    loop.stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  loop.run();
  const auto took = std::chrono::steady_clock::now() - t0;
  stopper.join();
  CHECK(stats->injected(Fault::ecanceled) == 1);
  CHECK(took < 2s);
}
