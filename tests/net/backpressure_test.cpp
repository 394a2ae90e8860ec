// Backpressure in the echo server: a peer that sends without ever reading must
// not make the server absorb its data (ring buffers, heap, RSS), and must not
// slow anyone else down; slow peers that trickle one byte at a time must not
// hold up a fast one.
//
// What a stuck connection holds is measured two ways: BufferPool::in_use() (the
// loop's own count), and independently of that bookkeeping by taking every free
// ring buffer through a probe connection and counting them; the heap is watched
// too, so that data cannot simply move from the ring to copies.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/net_support.hpp"

using namespace coring_test;

namespace {

// ---- helpers ----

constexpr std::uint32_t kBufferSize = 16 * 1024;  // BufferPoolOptions' default
constexpr std::size_t kMaxPending = 32 * 1024;    // -> 2 buffers per connection
constexpr std::uint32_t kCap = 2;

// A peer on its own thread, with blocking sockets, that writes up to 64 MiB and
// never reads (or reads the echo of its first `read_first` bytes, on a second
// thread, and then stops reading). `stuck` is set once a send has made no
// progress for the send timeout (100 ms) after that: every buffer between it
// and the server's task is full.
class NonReader {
 public:
  NonReader(Address addr, int sock_buffers, std::size_t read_first = 0) {
    thread_ = std::thread(
        [this, addr, sock_buffers, read_first] { run(addr, sock_buffers, read_first); });
  }
  ~NonReader() { finish(); }
  NonReader(const NonReader&) = delete;
  NonReader& operator=(const NonReader&) = delete;

  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] bool stuck() const noexcept { return stuck_; }
  [[nodiscard]] bool done() const noexcept { return done_; }
  [[nodiscard]] std::size_t written() const noexcept { return written_; }
  [[nodiscard]] std::size_t read() const noexcept { return read_; }
  [[nodiscard]] int error() const noexcept { return error_; }

 private:
  void run(Address addr, int sock_buffers, std::size_t read_first) {
    const int fd = raw_connect(addr, sock_buffers);
    if (fd < 0) {
      error_ = errno;
      done_ = true;
      return;
    }
    const timeval tv{0, 100'000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::atomic<bool> reading{read_first > 0};
    std::thread reader;
    if (read_first > 0) {
      reader = std::thread([this, fd, read_first, &reading] {
        char buf[64 * 1024];  // on the stack: the peer's threads allocate nothing
        while (read_ < read_first && !stop_) {
          const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n > 0) {
            read_ += static_cast<std::size_t>(n);
          } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
          }
        }
        reading = false;
      });
    }
    static const std::array<char, 64 * 1024> chunk{};
    while (!stop_ && written_ < (64u << 20)) {
      const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) {
        written_ += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!reading) stuck_ = true;
      } else {
        error_ = n < 0 ? errno : -1;
        break;
      }
    }
    if (reader.joinable()) reader.join();
    ::close(fd);  // unread echo in our receive queue: the server sees a reset
    done_ = true;
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stuck_{false};
  std::atomic<bool> done_{false};
  std::atomic<std::size_t> written_{0};
  std::atomic<std::size_t> read_{0};
  std::atomic<int> error_{0};
};

using Peers = std::vector<std::unique_ptr<NonReader>>;

struct PingStats {
  std::size_t done = 0;
  std::size_t failed = 0;
  Duration max_rtt{0};
  Duration total{0};
  std::vector<Duration> rtts;
};

// `count` round trips of 64 random bytes (count 0: until *until_flag turns true,
// at least `min_count`), every byte compared.
Task<void> ping_pong(TcpStream* s, std::size_t count, const bool* until_flag, std::size_t min_count,
                     PingStats* out) {
  std::mt19937 rng(42);
  std::string msg(64, '\0');
  const TimePoint start = Clock::now();
  for (std::size_t i = 0;; ++i) {
    if (count != 0 && i >= count) break;
    if (count == 0 && *until_flag && i >= min_count) break;
    for (char& ch : msg) ch = static_cast<char>(rng());
    const TimePoint t0 = Clock::now();
    SendResult w = co_await s->send_all(msg, 2s);
    if (!w) {
      ++out->failed;
      break;
    }
    std::string got;
    while (got.size() < msg.size()) {
      Received r = co_await s->recv(2s);
      if (!r) break;
      got.append(r.buffer.as_string_view());
    }
    if (got != msg) {
      ++out->failed;
      break;
    }
    const Duration rtt = Clock::now() - t0;
    out->max_rtt = std::max(out->max_rtt, rtt);
    out->rtts.push_back(rtt);
    ++out->done;
  }
  out->total = Clock::now() - start;
}

// Samples the loop's leased ring buffers every millisecond until *stop.
Task<void> sample_in_use(const bool* stop, std::uint32_t* max_in_use) {
  coring::BufferPool& ring = net::detail::NetService::of(EventLoop::current_or_throw()).pool();
  while (!*stop) {
    *max_in_use = std::max(*max_in_use, ring.in_use());
    co_await coring::sleep_for(1ms);
  }
}

// Counts the free buffers of the loop's ring: a probe connection, whose peer
// sends more than the ring can hold, takes buffers until none is left.
Task<std::size_t> count_free_buffers(TcpListener* probe_listener) {
  const int fd = raw_connect(probe_listener->local_address());
  if (fd < 0) co_return 0;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  Accepted a = co_await probe_listener->accept(2s);
  if (!a) {
    ::close(fd);
    co_return 0;
  }
  TcpStream probe = std::move(a.stream);
  probe.set_max_buffers(1u << 15);
  std::vector<BufferLease> held;
  const std::vector<char> chunk(64 * 1024, 'p');
  int idle_rounds = 0;
  while (idle_rounds < 5) {
    bool progress = false;
    if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) progress = true;
    Received r = co_await probe.recv(10ms);
    if (r) {
      held.push_back(std::move(r.buffer));
      progress = true;
    }
    idle_rounds = progress ? 0 : idle_rounds + 1;
  }
  const std::size_t n = held.size();
  held.clear();
  probe = TcpStream();
  ::close(fd);
  co_return n;
}

std::string fmt_ms(Duration d) {
  return std::to_string(std::chrono::duration<double, std::milli>(d).count()) + " ms";
}

}  // namespace

// ---- a peer that never reads ----

TEST_CASE(
    "backpressure: a peer that never reads is held back; ping-pong on another connection "
    "stays fast",
    "[net][backpressure]") {
  const std::size_t fds = coring_test::count_open_fds();
  Peers peers;  // outlives the loop: its threads never wait on it
  auto body = [&peers]() -> Task<void> {
    EchoOptions opt;
    opt.max_pending_bytes = kMaxPending;
    TcpListener listener = TcpListener::bind(Address::loopback_v4(0));
    // Small, fixed socket buffers (inherited by accepted sockets): what the peer
    // manages to write is then bounded by them plus what the server holds.
    set_buffers(listener.native_handle(), 64 * 1024);
    EchoServer server(std::move(listener), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");

    Connected c = co_await net::connect(addr, 5s);
    REQUIRE(c);
    // Warm-up: more round trips than the ring has buffers, so that every buffer's
    // first page has been touched before RSS is measured.
    PingStats warm;
    co_await ping_pong(&c.stream, 1100, nullptr, 0, &warm);
    REQUIRE(warm.done == 1100);

    const std::size_t rss_before = rss_bytes();
    NonReader& nr = *peers.emplace_back(std::make_unique<NonReader>(addr, 64 * 1024));
    const bool ended = co_await eventually([&nr] { return nr.stuck() || nr.done(); }, 20s);
    const bool got_stuck = ended && nr.stuck();
    REQUIRE(got_stuck);
    const std::size_t written_when_stuck = nr.written();

    bool stop_sampling = false;
    std::uint32_t max_in_use = 0;  // sampled during the ping-pong
    JoinHandle<void> sampler = coring::spawn(sample_in_use(&stop_sampling, &max_in_use));
    PingStats ping;
    co_await ping_pong(&c.stream, 1000, nullptr, 0, &ping);
    // Give the stuck peer more time: nothing more may get through.
    co_await coring::sleep_for(300ms);
    stop_sampling = true;
    co_await sampler;
    const std::size_t written_after = nr.written();
    // After the ping-pong: the stuck connection's alone.
    const std::uint32_t in_use_quiet =
        net::detail::NetService::of(EventLoop::current_or_throw()).pool().in_use();
    const std::uint64_t active_during = server.stats().active;
    const std::size_t rss_after = rss_bytes();
    CHECK(nr.error() == 0);

    // The server stopped taking the peer's data: it got through little more than
    // the socket buffers (4 x 128 KiB) and the connection's 2 ring buffers; a
    // server that kept reading would take in the whole 16 MiB ring and more.
    CAPTURE(written_when_stuck, written_after);
    CHECK(written_when_stuck < (2u << 20));
    CHECK(written_after - written_when_stuck < 256u * 1024);
    // Ring buffers held (BufferPool::in_use(): queued and leased, loop-wide): the
    // stuck connection's cap (+1 slack), and during the ping-pong at most one
    // more on each of its two sides.
    CAPTURE(in_use_quiet, max_in_use);
    CHECK(in_use_quiet <= kCap + 1);
    CHECK(max_in_use <= kCap + 1 + 2);
    CHECK(active_during == 2);
    // Meanwhile the other connection's ping-pong went on at full speed.
    CAPTURE(fmt_ms(ping.max_rtt), fmt_ms(ping.total));
    CHECK(ping.done == 1000);
    CHECK(ping.failed == 0);
    CHECK(ping.max_rtt < (kSanitized ? 250ms : 100ms));
    CHECK(ping.total < (kSanitized ? 20s : 10s));
    // And the process did not grow: a server buffering the peer's data would.
    const auto growth =
        static_cast<std::int64_t>(rss_after) - static_cast<std::int64_t>(rss_before);
    CAPTURE(rss_before, rss_after, growth);
    CHECK(growth < (kSanitized ? 16 : 4) * (1 << 20));

    nr.finish();  // closes its socket (within its 100 ms send timeout)
    (void)co_await eventually([&server] { return server.stats().active == 1; }, 5s);
    (void)c.stream.shutdown(SHUT_WR);
    Received end = co_await c.stream.recv(2s);
    (void)end;
    server.stop();
    const EchoStats stats = co_await serving;
    // The peer's close reset its connection: one error, the ping-pong ended cleanly.
    CHECK(stats.accepted == 2);
    CHECK(stats.errors == 1);
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    loop.run(body());
  }
  peers.clear();
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("backpressure: a stuck connection holds at most max_pending_bytes of ring buffers",
          "[net][backpressure]") {
  const std::size_t fds = coring_test::count_open_fds();
  // Socket buffers small and fixed, or the kernel's (autotuned) defaults; a peer
  // that never reads, or one that reads its first 16 MiB of echo at full speed
  // (so that the kernel grows the server's receive buffer) and then stops.
  struct Case {
    int sock_buffers;
    std::size_t read_first;
    std::uint32_t entries;
  };
  const Case c = GENERATE(Case{16 * 1024, 0, 64}, Case{64 * 1024, 0, 64}, Case{0, 0, 64},
                          Case{0, 16u << 20, 1024});
  CAPTURE(c.sock_buffers, c.read_first, c.entries);
  Peers peers;
  auto body = [&]() -> Task<void> {
    EchoOptions opt;
    opt.max_pending_bytes = kMaxPending;
    TcpListener listener = TcpListener::bind(Address::loopback_v4(0));
    if (c.sock_buffers > 0) set_buffers(listener.native_handle(), c.sock_buffers);
    EchoServer server(std::move(listener), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    TcpListener probe_listener = TcpListener::bind(Address::loopback_v4(0));

    // Nothing else holds ring buffers: the probe gets all of them, nothing stuck.
    const std::size_t free_idle = co_await count_free_buffers(&probe_listener);
    CHECK(free_idle == c.entries);
    peers.reserve(1);
    const std::size_t heap_before = heap_in_use();
    NonReader& nr =
        *peers.emplace_back(std::make_unique<NonReader>(addr, c.sock_buffers, c.read_first));
    const bool ended = co_await eventually([&nr] { return nr.stuck() || nr.done(); }, 20s);
    const bool got_stuck = ended && nr.stuck();
    co_await coring::sleep_for(100ms);
    // Heap taken while the peer got stuck.
    const std::int64_t heap_growth =
        static_cast<std::int64_t>(heap_in_use()) - static_cast<std::int64_t>(heap_before);
    REQUIRE(got_stuck);
    // With the peer stuck, the probe gets all the buffers but the stuck
    // connection's.
    const std::size_t free_stuck = co_await count_free_buffers(&probe_listener);
    const EchoStats at_probe = server.stats();
    const bool peer_done_at_probe = nr.done();
    const std::size_t written_at_probe = nr.written();
    const bool recv_limits =
        net::detail::NetService::of(EventLoop::current_or_throw()).recv_limits();
    const std::size_t held = c.entries - free_stuck;
    CAPTURE(free_idle, free_stuck, held, written_at_probe);
    // The stuck peer is still connected, and the server still has it.
    CHECK_FALSE(peer_done_at_probe);
    CHECK(at_probe.active == 1);
    CHECK(at_probe.errors == 0);
    CHECK(held <= kCap + 1);
    // Nor does it hold the peer's data on the heap instead: what the server took
    // in for it is max_pending_bytes at most (plus the connection's own state),
    // given the kernel's byte limit on multishot recvs (Linux 6.17+). Without
    // it, one multishot run can bring whatever the socket had buffered.
    CAPTURE(heap_growth, recv_limits);
    if (recv_limits) {
      CHECK(heap_growth < static_cast<std::int64_t>(kMaxPending + 64 * 1024));
    } else {
      WARN("no multishot recv limits on this kernel: heap grew by " << heap_growth);
    }

    nr.finish();
    (void)co_await eventually([&server] { return server.stats().active == 0; }, 5s);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    net::NetOptions o;
    o.buffers.entries = c.entries;
    net::configure(loop, o);
    loop.run(body());
  }
  peers.clear();
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("backpressure: eight stuck peers cannot starve a ping-pong client of ring buffers",
          "[net][backpressure]") {
  const std::size_t fds = coring_test::count_open_fds();
  Peers peers;
  auto body = [&peers]() -> Task<void> {
    constexpr std::size_t kNonReaders = 8;
    EchoOptions opt;
    opt.max_pending_bytes = kMaxPending;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    for (std::size_t i = 0; i < kNonReaders; ++i) {
      peers.push_back(std::make_unique<NonReader>(addr, 0));
    }
    (void)co_await eventually(
        [&peers] {
          return std::all_of(peers.begin(), peers.end(),
                             [](const auto& p) { return p->stuck() || p->done(); });
        },
        20s);
    std::size_t stuck = 0;
    for (const auto& p : peers) stuck += p->stuck() ? 1 : 0;
    REQUIRE(stuck == kNonReaders);
    co_await coring::sleep_for(100ms);
    // The free buffers with the peers stuck.
    TcpListener probe_listener = TcpListener::bind(Address::loopback_v4(0));
    const std::size_t free_buffers = co_await count_free_buffers(&probe_listener);
    Connected c = co_await net::connect(addr, 5s);
    PingStats ping;
    if (c) co_await ping_pong(&c.stream, 200, nullptr, 0, &ping);
    CAPTURE(fmt_ms(ping.max_rtt), ping.done, free_buffers);
    CHECK(free_buffers >= 64 - 8 * (kCap + 1));
    CHECK(ping.done == 200);
    CHECK(ping.failed == 0);
    CHECK(ping.max_rtt < (kSanitized ? 250ms : 100ms));

    for (auto& p : peers) p->finish();
    c.stream = TcpStream();
    (void)co_await eventually([&server] { return server.stats().active == 0; }, 5s);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    net::NetOptions o;
    o.buffers.entries = 64;  // 8 x (2 + 1) is far below: if the cap holds, no one starves
    net::configure(loop, o);
    loop.run(body());
  }
  peers.clear();
  CHECK(coring_test::count_open_fds() == fds);
}

// ---- slow peers ----

namespace {

// Sends `n` bytes one at a time, `gap` apart, then shuts down its sending side.
Task<bool> trickle(TcpStream* s, std::string bytes, Duration gap) {
  for (char ch : bytes) {
    const std::string one(1, ch);
    SendResult w = co_await s->send_all(one, 2s);
    if (!w) co_return false;
    co_await coring::sleep_for(gap);
  }
  (void)s->shutdown(SHUT_WR);
  co_return true;
}

// What one slow client saw.
struct SlowResult {
  bool connected = false;
  bool sent = false;
  bool eof = false;
  std::string expected;
  std::string got;
};

Task<SlowResult> slow_client(Address addr, int index, std::size_t n, Duration gap) {
  SlowResult out;
  for (std::size_t i = 0; i < n; ++i) {
    out.expected.push_back(static_cast<char>(' ' + (index * 7 + static_cast<int>(i)) % 90));
  }
  Connected c = co_await net::connect(addr, 5s);
  if (!c) co_return out;
  out.connected = true;
  JoinHandle<bool> sender = coring::spawn(trickle(&c.stream, out.expected, gap), "trickle");
  for (;;) {
    Received r = co_await c.stream.recv(5s);
    if (!r) {
      out.eof = r.eof();
      break;
    }
    out.got.append(r.buffer.as_string_view());
  }
  out.sent = co_await sender;
  co_return out;
}

Task<void> collect_slow(std::vector<JoinHandle<SlowResult>>* hs, std::vector<SlowResult>* out,
                        bool* all_done) {
  for (auto& h : *hs) {
    SlowResult r = co_await h;
    out->push_back(std::move(r));
  }
  *all_done = true;
}

}  // namespace

TEST_CASE("backpressure: 20 clients trickling one byte at a time do not hold up a fast client",
          "[net][backpressure]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    constexpr int kClients = 20;
    constexpr std::size_t kBytesEach = 40;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected fast = co_await net::connect(addr, 5s);
    REQUIRE(fast);
    std::vector<JoinHandle<SlowResult>> hs;
    for (int i = 0; i < kClients; ++i) {
      const Duration gap = std::chrono::milliseconds(2 + i % 3);
      hs.push_back(coring::spawn(slow_client(addr, i, kBytesEach, gap), "slow"));
    }
    bool all_done = false;
    std::vector<SlowResult> slow;
    JoinHandle<void> collector = coring::spawn(collect_slow(&hs, &slow, &all_done));
    // The fast client ping-pongs for as long as the slow ones trickle.
    const bool all_in = co_await eventually(
        [&server] { return server.stats().active == static_cast<std::uint64_t>(kClients) + 1; },
        5s);
    const std::uint64_t max_active = all_in ? server.stats().active : 0;
    PingStats ping;
    co_await ping_pong(&fast.stream, 0, &all_done, 200, &ping);
    co_await collector;

    REQUIRE(slow.size() == static_cast<std::size_t>(kClients));
    for (std::size_t i = 0; i < slow.size(); ++i) {
      CAPTURE(i);
      CHECK(slow[i].connected);
      CHECK(slow[i].sent);
      CHECK(slow[i].eof);
      CHECK(slow[i].got == slow[i].expected);  // every byte, in order
    }
    CHECK(max_active == static_cast<std::uint64_t>(kClients) + 1);
    CAPTURE(fmt_ms(ping.max_rtt), fmt_ms(ping.total), ping.done);
    CHECK(ping.failed == 0);
    CHECK(ping.done >= 200);
    CHECK(ping.max_rtt < (kSanitized ? 250ms : 100ms));

    (void)fast.stream.shutdown(SHUT_WR);
    Received end = co_await fast.stream.recv(2s);
    (void)end;
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == static_cast<std::uint64_t>(kClients) + 1);
    CHECK(stats.bytes == kClients * kBytesEach + ping.done * 64);
    CHECK(stats.errors == 0);
  });
}
