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

// ---- helpers ----

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

}  // namespace

// ---- idle connections ----

namespace {

// Opens one connection into *slot; *ok tells whether that worked.
Task<void> open_one(Address addr, TcpStream* slot, bool* ok) {
  Connected c = co_await net::connect(addr, 10s);
  if (c) {
    *slot = std::move(c.stream);
    *ok = true;
  }
}

// One round trip of a message that names the connection.
Task<bool> echo_tagged(TcpStream* s, std::size_t index) {
  const std::string msg = fmt::format("connection {:06} says hello", index);
  co_return co_await round_trip(s, &msg, 20s);
}

}  // namespace

TEST_CASE("stress: 5,000 idle connections cost little memory and all still echo",
          "[net][echo][stress]") {
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
  auto body = [&]() -> Task<void> {
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
    const std::size_t rss_before = rss_bytes();
    const std::size_t heap_before = heap_in_use();

    const TimePoint t0 = Clock::now();
    constexpr std::size_t kBatch = 250;
    for (std::size_t base = 0; base < n; base += kBatch) {
      std::vector<JoinHandle<void>> hs;
      for (std::size_t i = base; i < std::min(n, base + kBatch); ++i) {
        hs.push_back(coring::spawn(open_one(addr, &streams[i], &ok[i]), "open"));
      }
      for (auto& h : hs) co_await h;
    }
    const auto opened = static_cast<std::size_t>(std::count(ok.get(), ok.get() + n, true));
    const bool all_active =
        co_await eventually([&server, n] { return server.stats().active == n; }, 20s);
    const std::uint64_t open_ms = ms_since(t0);
    co_await coring::sleep_for(50ms);
    const std::size_t rss_after = rss_bytes();
    const std::size_t heap_after = heap_in_use();
    const std::uint32_t ring_in_use_idle =
        net::detail::NetService::of(EventLoop::current_or_throw()).pool().in_use();
    REQUIRE(opened == n);
    REQUIRE(all_active);

    // Every one of them still echoes, all at once: more receives than the ring
    // has buffers.
    const TimePoint t1 = Clock::now();
    std::vector<JoinHandle<bool>> echoes;
    echoes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      echoes.push_back(coring::spawn(echo_tagged(&streams[i], i), "echo"));
    }
    std::size_t echoed = 0;
    for (auto& h : echoes) {
      const bool e = co_await h;
      if (e) ++echoed;
    }
    const std::uint64_t echo_ms = ms_since(t1);

    const auto growth =
        static_cast<std::int64_t>(rss_after) - static_cast<std::int64_t>(rss_before);
    const auto heap =
        static_cast<std::int64_t>(heap_after) - static_cast<std::int64_t>(heap_before);
    const double per_conn = static_cast<double>(growth) / static_cast<double>(n);
    const double heap_per_conn = static_cast<double>(heap) / static_cast<double>(n);
    WARN(fmt::format(
        "{} idle echo connections: RSS +{:.2f} MiB = {:.0f} bytes per connection, heap +{:.0f} "
        "bytes per connection (client and server side together: both live in this process; "
        "kernel socket memory not included); opened in {} ms, all echoed in {} ms",
        n, static_cast<double>(growth) / (1 << 20), per_conn, heap_per_conn, open_ms, echo_ms));
    // An idle connection holds no receive buffer: nothing of the ring is leased.
    CHECK(ring_in_use_idle == 0);
    const double bound = kSanitizer == 0 ? 16 * 1024 : 64 * 1024;
    CHECK(per_conn < bound);
    CHECK(heap_per_conn < bound);
    CHECK(heap_per_conn > 0);  // the measurement measures something
    CHECK(echoed == n);

    streams.clear();
    const bool all_closed =
        co_await eventually([&server] { return server.stats().active == 0; }, 20s);
    CHECK(all_closed);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == n + 64);
    CHECK(stats.errors == 0);
    CHECK(stats.rejected == 0);
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    loop.run(body());
  }
  CHECK(coring_test::count_open_fds() == fds);
}

// ---- many ping-pongs ----

namespace {

// Connects and does `rounds` round trips of random sizes; how many came back
// intact (0 when the connection did not end cleanly).
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

}  // namespace

TEST_CASE("stress: 200 connections x 200 ping-pongs of random sizes, every byte checked",
          "[net][echo][stress]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t conns = scaled(200, 200, 150);
  const std::size_t rounds = scaled(200, 200, 150);
  auto body = [&]() -> Task<void> {
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    const TimePoint t0 = Clock::now();
    std::vector<JoinHandle<std::size_t>> hs;
    for (std::size_t i = 0; i < conns; ++i) hs.push_back(coring::spawn(pinger(addr, rounds, i)));
    std::vector<std::size_t> done;
    for (auto& h : hs) {
      const std::size_t d = co_await h;
      done.push_back(d);
    }
    const std::uint64_t ms = ms_since(t0);
    REQUIRE(done.size() == conns);
    std::size_t complete = 0;
    for (std::size_t d : done) complete += d == rounds ? 1 : 0;
    CAPTURE(ms);
    CHECK(complete == conns);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == conns);
    CHECK(stats.errors == 0);
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    loop.run(body());
  }
  CHECK(coring_test::count_open_fds() == fds);
}

// ---- churn ----

namespace {

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

}  // namespace

TEST_CASE("stress: connect/close churn next to clients that keep echoing", "[net][echo][stress]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t steady = 20;
  const std::size_t churners = 8;
  const std::size_t cycles = scaled(250, 250, 250);  // per churner
  auto body = [&]() -> Task<void> {
    std::vector<SteadyResult> steady_results(steady);
    ChurnCounts counts;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    bool stop = false;
    std::vector<JoinHandle<void>> steady_hs;
    for (std::size_t i = 0; i < steady; ++i) {
      steady_hs.push_back(coring::spawn(steady_client(addr, &stop, 77 + i, &steady_results[i])));
    }
    const TimePoint t0 = Clock::now();
    std::vector<JoinHandle<void>> churn_hs;
    for (std::size_t i = 0; i < churners; ++i) {
      churn_hs.push_back(coring::spawn(churner(addr, cycles, i, &counts)));
    }
    for (auto& h : churn_hs) co_await h;
    const std::uint64_t ms = ms_since(t0);
    stop = true;
    for (auto& h : steady_hs) co_await h;
    CAPTURE(ms, counts.clean, counts.silent, counts.reset);
    CHECK(counts.failures == 0);
    CHECK(counts.clean + counts.silent + counts.reset == churners * cycles);
    for (std::size_t i = 0; i < steady_results.size(); ++i) {
      CAPTURE(i, steady_results[i].rounds);
      CHECK_FALSE(steady_results[i].failed);
      CHECK(steady_results[i].rounds > 0);
      CHECK(steady_results[i].max_rtt < 1s);
    }
    const bool drained = co_await eventually([&server] { return server.stats().active == 0; }, 10s);
    CHECK(drained);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == steady + churners * cycles);
    // Only the connections closed with a reset end in an error.
    CHECK(stats.errors == counts.reset);
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    loop.run(body());
  }
  CHECK(coring_test::count_open_fds() == fds);
}
