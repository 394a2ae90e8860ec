// Heavier echo server runs ([stress]): thousands of idle connections and what
// each costs, hundreds of connections ping-ponging at once, and connect/close
// churn next to steady clients. Counts shrink under sanitizers and when the fd
// limit is too low; every test checks every byte and that no fd is left open.
#include <fmt/core.h>
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "support/net_support.hpp"

using namespace coring_test;

namespace {

// `plain` in a normal build, less under a sanitizer (3-10x slower).
constexpr std::size_t scaled(std::size_t plain, std::size_t asan, std::size_t tsan) {
  return kSanitizer == 0 ? plain : kSanitizer == 1 ? asan : tsan;
}

// Gives cached frames and free heap pages back, so that what comes next shows
// in RSS instead of reusing pages that earlier tests left resident.
void release_free_memory() {
  coring::FrameAllocator::trim();
  ::malloc_trim(0);
}

// One round trip of `msg`: true when every byte came back, in order.
Task<bool> round_trip(TcpStream* s, const std::string* msg, Duration timeout) {
  SendResult w = co_await s->send_all(*msg, timeout);
  if (!w) co_return false;
  std::size_t got = 0;
  while (got < msg->size()) {
    Received r = co_await s->recv(timeout);
    if (!r) co_return false;
    const std::string_view v = r.buffer.as_string_view();
    if (got + v.size() > msg->size() || msg->compare(got, v.size(), v) != 0) co_return false;
    got += v.size();
  }
  co_return true;
}

// ---- idle connections ----

Task<void> open_one(Address addr, TcpStream* slot, bool* ok) {
  Connected c = co_await net::connect(addr, 10s);
  if (c) {
    *slot = std::move(c.stream);
    *ok = true;
  }
}

Task<bool> echo_tagged(TcpStream* s, std::size_t index) {
  const std::string msg = fmt::format("connection {:06} says hello", index);
  co_return co_await round_trip(s, &msg, 20s);
}

struct IdleOutcome {
  std::size_t n = 0;
  std::size_t opened = 0;
  bool all_active = false;
  std::size_t rss_before = 0;
  std::size_t rss_after = 0;
  std::size_t heap_before = 0;
  std::size_t heap_after = 0;
  std::uint64_t open_ms = 0;
  std::size_t echoed = 0;
  std::uint64_t echo_ms = 0;
  std::uint32_t ring_in_use_idle = 0;
  bool all_closed = false;
  EchoStats stats;
};

Task<IdleOutcome> idle_connections(std::size_t n) {
  IdleOutcome out;
  out.n = n;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::vector<TcpStream> streams(n);
  std::unique_ptr<bool[]> ok(new bool[n]());
  // Warm up: the ring, the frame allocator's pools, the scheduler's queue.
  {
    std::vector<TcpStream> warm(64);
    std::vector<JoinHandle<void>> hs;
    bool wok[64] = {};
    for (std::size_t i = 0; i < warm.size(); ++i) {
      hs.push_back(coring::spawn(open_one(addr, &warm[i], &wok[i])));
    }
    for (auto& h : hs) co_await h;
    for (std::size_t i = 0; i < warm.size(); ++i) {
      if (wok[i]) (void)co_await echo_tagged(&warm[i], i);
    }
  }
  (void)co_await eventually([&server] { return server.stats().active == 0; }, 5s);
  release_free_memory();
  out.rss_before = rss_bytes();
  out.heap_before = heap_in_use();

  const TimePoint t0 = Clock::now();
  constexpr std::size_t kBatch = 250;
  for (std::size_t base = 0; base < n; base += kBatch) {
    std::vector<JoinHandle<void>> hs;
    for (std::size_t i = base; i < std::min(n, base + kBatch); ++i) {
      hs.push_back(coring::spawn(open_one(addr, &streams[i], &ok[i]), "open"));
    }
    for (auto& h : hs) co_await h;
  }
  out.opened = static_cast<std::size_t>(std::count(ok.get(), ok.get() + n, true));
  out.all_active = co_await eventually([&server, n] { return server.stats().active == n; }, 20s);
  out.open_ms = ms_since(t0);
  co_await coring::sleep_for(50ms);
  out.rss_after = rss_bytes();
  out.heap_after = heap_in_use();
  out.ring_in_use_idle = net::detail::NetService::of(EventLoop::current_or_throw()).ring().in_use();

  // Every one of them still echoes, all at once: more receives than the ring
  // has buffers.
  const TimePoint t1 = Clock::now();
  std::vector<JoinHandle<bool>> echoes;
  echoes.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    echoes.push_back(coring::spawn(echo_tagged(&streams[i], i), "echo"));
  }
  for (auto& h : echoes) {
    const bool e = co_await h;
    if (e) ++out.echoed;
  }
  out.echo_ms = ms_since(t1);
  streams.clear();
  out.all_closed = co_await eventually([&server] { return server.stats().active == 0; }, 20s);
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

// ---- many ping-pongs ----

Task<std::size_t> pinger(Address addr, std::size_t rounds, std::uint64_t seed) {
  Connected c = co_await net::connect(addr, 10s);
  if (!c) co_return 0;
  std::mt19937_64 rng(seed);
  std::string msg;
  std::size_t ok = 0;
  for (std::size_t i = 0; i < rounds; ++i) {
    msg.resize(1 + rng() % 2048);
    for (char& ch : msg) ch = static_cast<char>(rng());
    const bool good = co_await round_trip(&c.stream, &msg, 10s);
    if (!good) break;
    ++ok;
  }
  (void)c.stream.shutdown(SHUT_WR);
  Received end = co_await c.stream.recv(5s);
  if (!end.eof()) co_return 0;
  co_return ok;
}

struct PingOutcome {
  std::vector<std::size_t> done;
  std::uint64_t ms = 0;
  EchoStats stats;
};

Task<PingOutcome> many_ping_pongs(std::size_t conns, std::size_t rounds) {
  PingOutcome out;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  const TimePoint t0 = Clock::now();
  std::vector<JoinHandle<std::size_t>> hs;
  for (std::size_t i = 0; i < conns; ++i) hs.push_back(coring::spawn(pinger(addr, rounds, i)));
  for (auto& h : hs) {
    const std::size_t d = co_await h;
    out.done.push_back(d);
  }
  out.ms = ms_since(t0);
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

// ---- churn ----

struct SteadyResult {
  std::size_t rounds = 0;
  bool failed = false;
  Duration max_rtt{0};
};

Task<void> steady_client(Address addr, const bool* stop, std::uint64_t seed, SteadyResult* out) {
  Connected c = co_await net::connect(addr, 10s);
  if (!c) {
    out->failed = true;
    co_return;
  }
  std::mt19937_64 rng(seed);
  std::string msg;
  while (!*stop) {
    msg.resize(1 + rng() % 1024);
    for (char& ch : msg) ch = static_cast<char>(rng());
    const TimePoint t0 = Clock::now();
    const bool good = co_await round_trip(&c.stream, &msg, 10s);
    if (!good) {
      out->failed = true;
      co_return;
    }
    out->max_rtt = std::max<Duration>(out->max_rtt, Clock::now() - t0);
    ++out->rounds;
  }
  (void)c.stream.shutdown(SHUT_WR);
  Received end = co_await c.stream.recv(5s);
  if (!end.eof()) out->failed = true;
}

struct ChurnCounts {
  std::size_t clean = 0;     // round trip, shutdown, EOF, close
  std::size_t silent = 0;    // connect and close without a word
  std::size_t reset = 0;     // send, then close with SO_LINGER {1, 0}: RST
  std::size_t failures = 0;  // anything that did not go as expected
};

Task<void> churner(Address addr, std::size_t cycles, std::size_t offset, ChurnCounts* counts) {
  const std::string msg = "churn churn churn";
  for (std::size_t i = 0; i < cycles; ++i) {
    Connected c = co_await net::connect(addr, 10s);
    if (!c) {
      ++counts->failures;
      continue;
    }
    switch ((i + offset) % 3) {
      case 0: {
        const bool good = co_await round_trip(&c.stream, &msg, 10s);
        (void)c.stream.shutdown(SHUT_WR);
        Received end = co_await c.stream.recv(5s);
        if (good && end.eof()) {
          ++counts->clean;
        } else {
          ++counts->failures;
        }
        break;
      }
      case 1:
        ++counts->silent;
        break;  // closed as `c` goes out of scope
      default: {
        SendResult w = co_await c.stream.send_all(msg, 5s);
        if (!w) ++counts->failures;
        const linger lg{1, 0};
        ::setsockopt(c.stream.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ++counts->reset;
        break;
      }
    }
  }
}

struct ChurnOutcome {
  std::vector<SteadyResult> steady;
  ChurnCounts counts;
  std::uint64_t ms = 0;
  bool drained = false;
  EchoStats stats;
};

Task<ChurnOutcome> churn(std::size_t steady, std::size_t churners, std::size_t cycles) {
  ChurnOutcome out;
  out.steady.resize(steady);
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  bool stop = false;
  std::vector<JoinHandle<void>> steady_hs;
  for (std::size_t i = 0; i < steady; ++i) {
    steady_hs.push_back(coring::spawn(steady_client(addr, &stop, 77 + i, &out.steady[i])));
  }
  const TimePoint t0 = Clock::now();
  std::vector<JoinHandle<void>> churn_hs;
  for (std::size_t i = 0; i < churners; ++i) {
    churn_hs.push_back(coring::spawn(churner(addr, cycles, i, &out.counts)));
  }
  for (auto& h : churn_hs) co_await h;
  out.ms = ms_since(t0);
  stop = true;
  for (auto& h : steady_hs) co_await h;
  out.drained = co_await eventually([&server] { return server.stats().active == 0; }, 10s);
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

}  // namespace

TEST_CASE("stress: 5,000 idle connections cost little memory and all still echo", "[net][stress]") {
  const std::size_t fds = coring_test::count_open_fds();
  std::size_t n = 5000;
  rlimit rl{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  // Client and server share this process: two fds per connection, plus headroom.
  const std::size_t headroom = fds + 200;
  if (rl.rlim_cur != RLIM_INFINITY && 2 * n + headroom > rl.rlim_cur) {
    n = rl.rlim_cur > headroom ? (rl.rlim_cur - headroom) / 2 : 0;
    WARN("RLIMIT_NOFILE is " << rl.rlim_cur << ": scaled down to " << n << " connections");
  }
  REQUIRE(n >= 100);
  IdleOutcome out;
  {
    EventLoop loop;
    out = loop.run(idle_connections(n));
  }
  REQUIRE(out.opened == n);
  REQUIRE(out.all_active);
  const auto growth =
      static_cast<std::int64_t>(out.rss_after) - static_cast<std::int64_t>(out.rss_before);
  const auto heap =
      static_cast<std::int64_t>(out.heap_after) - static_cast<std::int64_t>(out.heap_before);
  const double per_conn = static_cast<double>(growth) / static_cast<double>(n);
  const double heap_per_conn = static_cast<double>(heap) / static_cast<double>(n);
  WARN(fmt::format(
      "{} idle echo connections: RSS +{:.2f} MiB = {:.0f} bytes per connection, heap +{:.0f} "
      "bytes per connection (client and server side together: both live in this process; "
      "kernel socket memory not included); opened in {} ms, all echoed in {} ms",
      n, static_cast<double>(growth) / (1 << 20), per_conn, heap_per_conn, out.open_ms,
      out.echo_ms));
  // An idle connection holds no receive buffer: nothing of the ring is leased.
  CHECK(out.ring_in_use_idle == 0);
  const double bound = kSanitizer == 0 ? 16 * 1024 : 64 * 1024;
  CHECK(per_conn < bound);
  CHECK(heap_per_conn < bound);
  CHECK(heap_per_conn > 0);  // the measurement measures something
  CHECK(out.echoed == n);
  CHECK(out.all_closed);
  CHECK(out.stats.accepted == n + 64);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.rejected == 0);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("stress: 200 connections x 200 ping-pongs of random sizes, every byte checked",
          "[net][stress]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t conns = scaled(200, 200, 150);
  const std::size_t rounds = scaled(200, 200, 150);
  PingOutcome out;
  {
    EventLoop loop;
    out = loop.run(many_ping_pongs(conns, rounds));
  }
  REQUIRE(out.done.size() == conns);
  std::size_t complete = 0;
  for (std::size_t d : out.done) complete += d == rounds ? 1 : 0;
  CAPTURE(out.ms);
  CHECK(complete == conns);
  CHECK(out.stats.accepted == conns);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("stress: connect/close churn next to clients that keep echoing", "[net][stress]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t steady = 20;
  const std::size_t churners = 8;
  const std::size_t cycles = scaled(250, 250, 250);  // per churner
  ChurnOutcome out;
  {
    EventLoop loop;
    out = loop.run(churn(steady, churners, cycles));
  }
  CAPTURE(out.ms, out.counts.clean, out.counts.silent, out.counts.reset);
  CHECK(out.counts.failures == 0);
  CHECK(out.counts.clean + out.counts.silent + out.counts.reset == churners * cycles);
  for (std::size_t i = 0; i < out.steady.size(); ++i) {
    CAPTURE(i, out.steady[i].rounds);
    CHECK_FALSE(out.steady[i].failed);
    CHECK(out.steady[i].rounds > 0);
    CHECK(out.steady[i].max_rtt < 1s);
  }
  CHECK(out.drained);
  CHECK(out.stats.accepted == steady + churners * cycles);
  // Only the connections closed with a reset end in an error.
  CHECK(out.stats.errors == out.counts.reset);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}
