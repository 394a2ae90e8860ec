// BufferPool: on the backend alone (buffers taken by real recvs, take/recycle
// accounting, invalid options; on io_uring, registration with the kernel), and
// through a loop:
// stream data arrives in ring buffers of the configured size, and an exhausted
// ring (ENOBUFS) makes a connection wait, without a busy loop, until buffers
// come back.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates it
// twice); every awaited value goes to a local first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/net_support.hpp"
#include "support/uring_only.hpp"

using namespace coring_test;
using Catch::Contains;

namespace {

// ---- helpers: a backend, without the loop ----

struct SocketPair {
  int a = -1;
  int b = -1;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
      a = fds[0];
      b = fds[1];
    }
  }
  ~SocketPair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

struct RawRecv : coring::Completion {
  int res = 0;
  bool done = false;
  bool has_buffer = false;
  std::uint16_t bid = 0;
};

// One recv on `fd` through `backend` that takes its buffer from `pool`, after
// `data` was written to `peer` (nothing written when empty).
RawRecv raw_recv(coring::Backend& backend, int fd, int peer, const std::string& data,
                 coring::BufferPool& pool) {
  if (!data.empty() &&
      ::write(peer, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    RawRecv bad;
    bad.res = -999;
    return bad;
  }
  RawRecv out;
  out.on_complete = [](coring::Completion* c, int res, std::uint32_t flags) noexcept {
    auto* r = static_cast<RawRecv*>(c);
    r->res = res;
    r->done = true;
    r->has_buffer = coring::completion::has_buffer(flags);
    r->bid = coring::completion::buffer_id(flags);
  };
  coring::IoRequest req;
  req.opcode = coring::IoOpcode::recv;
  req.fd = fd;
  req.buffers = &pool;
  backend.start(req, &out);
  const coring::Duration step = 1s;
  for (int i = 0; i < 5 && !out.done; ++i) backend.poll(&step);
  if (!out.done) out.res = -998;
  return out;
}

// ---- helpers: through a loop ----

net::detail::NetService& service() {
  return net::detail::NetService::of(EventLoop::current_or_throw());
}

Task<net::Received> recv_with_timeout(net::TcpStream* s, Duration timeout) {
  net::Received r = co_await s->recv(timeout);
  co_return r;
}

// Reads `n` bytes, giving each buffer back at once.
Task<std::string> read_rest(net::TcpStream* s, std::size_t n) {
  std::string out;
  while (out.size() < n) {
    net::Received r = co_await s->recv(5s);
    if (!r) break;
    out.append(r.buffer.as_string_view());
  }
  co_return out;
}

// What a recv waiting on a dry ring saw while the loop was watched.
struct DryWait {
  std::uint64_t turns = 0;  // loop turns over 200 ms (none should pass: no spinning on ENOBUFS)
  bool recv_done = false;   // whether the recv finished meanwhile
};

// Sends "hello B" to B's server while `b_recv` waits there on a dry ring, and
// watches the loop for the next 200 ms.
Task<DryWait> send_b_while_dry(Pair* b, const JoinHandle<net::Received>* b_recv) {
  EventLoop& loop = EventLoop::current_or_throw();
  net::SendResult wb = co_await b->client.send_all("hello B");
  CHECK(wb);
  const std::uint64_t turns0 = loop.stats().turns;
  co_await coring::sleep_for(200ms);
  DryWait out;
  out.turns = loop.stats().turns - turns0;
  out.recv_done = b_recv->done();
  co_return out;
}

}  // namespace

// ---- a raw ring, without the loop ----

TEST_CASE("BufferPool: made by the backend; real recvs take its buffers", "[net][buffer_ring]") {
  std::unique_ptr<coring::Backend> backend = coring::make_backend(coring::LoopOptions{});
  backend->bind_to_current_thread();
  INFO(backend->describe());
  SocketPair sp;
  REQUIRE(sp.a >= 0);
  coring::BufferPoolOptions o;
  o.entries = 8;
  o.buffer_size = 4096;
  o.group = 3;
  {
    std::unique_ptr<coring::BufferPool> pool = backend->make_buffer_pool(o);
    coring::BufferPool& br = *pool;
    CHECK(br.entries() == 8);
    CHECK(br.buffer_size() == 4096);
    CHECK(br.group() == 3);
    CHECK(br.in_use() == 0);

    if (backend->kind() == coring::BackendKind::io_uring) {
      // The same group twice on one ring is refused by the kernel, with a message.
      try {
        auto again = backend->make_buffer_pool(o);
        FAIL("buffer group 3 registered twice");
      } catch (const std::system_error& e) {
        CHECK((e.code().value() == EEXIST || e.code().value() == EINVAL));
        CHECK_THAT(std::string(e.what()), Contains("io_uring_register_buf_ring"));
      }
    }

    // Eight recvs take the eight buffers; each completion names a distinct one.
    std::set<std::uint16_t> bids;
    std::vector<std::pair<std::uint16_t, std::byte*>> taken;
    for (int i = 0; i < 8; ++i) {
      const std::string msg = "message #" + std::to_string(i);
      const RawRecv r = raw_recv(*backend, sp.a, sp.b, msg, br);
      REQUIRE(r.res == static_cast<int>(msg.size()));
      REQUIRE(r.has_buffer);
      CHECK(r.bid < 8);
      bids.insert(r.bid);
      std::byte* mem = br.take(r.bid);
      CHECK(std::memcmp(mem, msg.data(), msg.size()) == 0);
      taken.emplace_back(r.bid, mem);
      CHECK(br.in_use() == static_cast<std::uint32_t>(i + 1));
    }
    CHECK(bids.size() == 8);
    // Buffer `bid` lives at bid * buffer_size in one block.
    for (const auto& [bid, mem] : taken) {
      CHECK(mem - taken[0].second == (static_cast<std::ptrdiff_t>(bid) - taken[0].first) * 4096);
    }

    // Dry: no buffer for the next recv.
    const RawRecv dry = raw_recv(*backend, sp.a, sp.b, "no room", br);
    CHECK(dry.res == -ENOBUFS);
    CHECK_FALSE(dry.has_buffer);

    // One recycled buffer is the one the next recv gets (the data still waits
    // in the socket).
    const std::uint16_t back = taken[5].first;
    br.recycle(back);
    CHECK(br.in_use() == 7);
    const RawRecv again = raw_recv(*backend, sp.a, sp.b, "", br);
    REQUIRE(again.res == 7);
    REQUIRE(again.has_buffer);
    CHECK(again.bid == back);
    std::byte* mem = br.take(again.bid);
    CHECK(std::memcmp(mem, "no room", 7) == 0);
    CHECK(br.in_use() == 8);
    for (const auto& [bid, m] : taken) br.recycle(bid);
    CHECK(br.in_use() == 0);

    // A recv shorter than the data: at most one buffer's worth.
    const std::string big = pattern(6000, 1);
    const RawRecv part = raw_recv(*backend, sp.a, sp.b, big, br);
    REQUIRE(part.has_buffer);
    CHECK(part.res == 4096);
    CHECK(std::memcmp(br.take(part.bid), big.data(), 4096) == 0);
    br.recycle(part.bid);
  }
  // Destroyed: the group is unregistered and can be registered again.
  auto second = backend->make_buffer_pool(o);
  CHECK(second->in_use() == 0);
  backend->forget_fd(sp.a);
  CHECK(backend->in_flight() == 0);
}

TEST_CASE("BufferPool: invalid options throw invalid_argument with a clear message",
          "[net][buffer_ring]") {
  std::unique_ptr<coring::Backend> backend = coring::make_backend(coring::LoopOptions{});
  backend->bind_to_current_thread();
  auto with = [](std::uint32_t entries, std::uint32_t size) {
    coring::BufferPoolOptions o;
    o.entries = entries;
    o.buffer_size = size;
    return o;
  };
  for (std::uint32_t bad : {0U, 3U, 100U, 1000U, 65536U, 40000U}) {
    INFO("entries = " << bad);
    CHECK_THROWS_AS(backend->make_buffer_pool(with(bad, 4096)), std::invalid_argument);
    CHECK_THROWS_WITH(
        backend->make_buffer_pool(with(bad, 4096)),
        Contains("entries must be a power of two in 1..32768, not " + std::to_string(bad)));
  }
  CHECK_THROWS_AS(backend->make_buffer_pool(with(8, 0)), std::invalid_argument);
  CHECK_THROWS_WITH(backend->make_buffer_pool(with(8, 0)), Contains("buffer_size must not be 0"));

  // The bounds themselves are fine.
  coring::BufferPoolOptions one = with(1, 64);
  one.group = 1;
  auto smallest = backend->make_buffer_pool(one);
  CHECK(smallest->entries() == 1);
  coring::BufferPoolOptions most = with(32768, 16);
  most.group = 2;
  auto largest = backend->make_buffer_pool(most);
  CHECK(largest->entries() == 32768);
}

// ---- through a loop ----

TEST_CASE("BufferRing: a stream's data arrives through the loop's ring", "[net][buffer_ring]") {
  EventLoop loop;
  net::NetOptions opts;
  opts.buffers.entries = 64;
  opts.buffers.buffer_size = 1024;
  net::configure(loop, opts);
  auto body = []() -> Task<void> {
    net::detail::NetService& svc = service();
    CHECK_FALSE(svc.has_pool());  // made on the first recv, not before
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    CHECK_FALSE(svc.has_pool());

    const std::string data = pattern(40 * 1024 + 123, 9);
    auto sending = coring::spawn(send_text(&p.client, &data, 5s));
    p.server.set_max_buffers(64);
    std::string got;
    std::vector<net::BufferLease> held;
    std::size_t biggest = 0;
    while (got.size() < data.size()) {
      net::Received r = co_await p.server.recv(5s);
      REQUIRE(r);
      biggest = std::max(biggest, r.size());
      got.append(r.buffer.as_string_view());
      held.push_back(std::move(r.buffer));
      // A ring buffer is in use from its CQE on: leased, or queued in the stream.
      CHECK(svc.pool().in_use() == p.server.buffers_held());
      CHECK(svc.pool().in_use() >= held.size());
    }
    net::SendResult w = co_await sending;
    CHECK(w.bytes == data.size());
    REQUIRE(svc.has_pool());
    CHECK(svc.pool().buffer_size() == 1024);
    CHECK(svc.pool().entries() == 64);
    // Every recv filled at most one configured buffer.
    CHECK(biggest <= 1024);
    CHECK(held.size() >= data.size() / 1024);
    CHECK(got == data);
    // Distinct leases are distinct ring buffers.
    std::set<const std::byte*> addresses;
    for (const auto& l : held) addresses.insert(l.bytes().data());
    CHECK(addresses.size() == held.size());
    held.clear();
    CHECK(svc.pool().in_use() == 0);
    CHECK(p.server.buffers_held() == 0);

    // Too late to configure now.
    std::string what;
    try {
      net::configure(EventLoop::current_or_throw(), net::NetOptions{});
    } catch (const std::logic_error& e) {
      what = e.what();
    }
    CHECK_THAT(what, Contains("before the loop's first recv"));
  };
  loop.run(body());
}

TEST_CASE("BufferRing: an exhausted ring (ENOBUFS) waits without spinning, then recovers",
          "[net][buffer_ring]") {
  const auto fds_before = coring_test::count_open_fds();
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair a = co_await make_pair(&listener);
    Pair b = co_await make_pair(&listener);
    a.server.set_max_buffers(1000);  // A alone may take the whole ring
    net::detail::NetService& svc = service();

    // A: 64 KiB arrive; hold every lease until the 4-buffer ring is dry.
    const std::string a_data = pattern(64 * 1024, 10);
    auto sending_a = coring::spawn(send_text(&a.client, &a_data, 10s));
    std::vector<net::BufferLease> held;
    std::string a_got;
    while (held.size() < svc.pool().entries()) {
      net::Received r = co_await a.server.recv(2s);
      REQUIRE(r);
      a_got.append(r.buffer.as_string_view());
      held.push_back(std::move(r.buffer));
    }
    CHECK(svc.pool().in_use() == 4);
    // Nothing more for A while the ring is dry.
    net::Received more = co_await a.server.recv(50ms);
    CHECK(more.error == std::errc::timed_out);

    // B: a recv waits, data is sent; it cannot be received (no buffer) and the
    // loop must not spin on ENOBUFS meanwhile.
    auto b_recv = coring::spawn(recv_with_timeout(&b.server, 5s));
    const DryWait dry = co_await send_b_while_dry(&b, &b_recv);
    INFO("loop turns over 200 ms with the ring dry: " << dry.turns);
    CHECK_FALSE(dry.recv_done);
    CHECK(dry.turns < 50);

    // Buffers back, and A read on (its data would otherwise take them again):
    // B gets its data, A the rest of its stream.
    held.clear();
    auto draining_a = coring::spawn(read_rest(&a.server, a_data.size() - a_got.size()));
    net::Received rb = co_await b_recv;
    const std::string b_error = rb.error ? rb.error.message() : "";
    CHECK(b_error.empty());
    CHECK(rb.buffer.as_string_view() == "hello B");
    rb.buffer.reset();
    const std::string rest = co_await draining_a;
    a_got += rest;
    net::SendResult wa = co_await sending_a;
    CHECK(wa.bytes == a_data.size());
    CHECK(a_got == a_data);
    CHECK(svc.pool().in_use() == 0);
  };
  {
    EventLoop loop;
    net::NetOptions opts;
    opts.buffers.entries = 4;
    opts.buffers.buffer_size = 4096;
    net::configure(loop, opts);
    loop.run(body());
  }
  CHECK(coring_test::count_open_fds() == fds_before);
}

TEST_CASE("BufferRing: a ring dry with data queued in another stream does not spin",
          "[net][buffer_ring]") {
  // The buffers are named in CQEs and queued in A's core, but no recv took
  // them yet: the ring is empty all the same, and B must wait, not retry in a
  // loop.
  // Regression: NetService::wait_for_buffers() treats ring().in_use() <
  // entries() as "buffers are free", and in_use() once counted only buffers
  // taken by a recv, not those queued in a StreamCore; so B re-armed, got
  // ENOBUFS, re-armed... (55,783 loop turns in 200 ms). A buffer now counts as
  // in use from its CQE on.
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair a = co_await make_pair(&listener);
    Pair b = co_await make_pair(&listener);
    a.server.set_max_buffers(1000);
    net::detail::NetService& svc = service();

    net::Received a0 = co_await a.server.recv(5ms);  // arms A's multishot recv
    CHECK(a0.error == std::errc::timed_out);
    const std::string a_data = pattern(64 * 1024, 11);
    auto sending_a = coring::spawn(send_text(&a.client, &a_data, 10s));
    co_await coring::sleep_for(20ms);
    // The whole ring is queued in A, nothing is leased.
    const auto a_held = a.server.buffers_held();
    const auto in_use_when_dry = svc.pool().in_use();
    CHECK(a_held == 4);

    auto b_recv = coring::spawn(recv_with_timeout(&b.server, 5s));
    const DryWait dry = co_await send_b_while_dry(&b, &b_recv);
    INFO("loop turns over 200 ms with the ring dry: " << dry.turns
                                                      << "; ring in_use: " << in_use_when_dry);
    CHECK_FALSE(dry.recv_done);
    CHECK(dry.turns < 50);

    // A reads its stream, each buffer given back at once: B gets its turn.
    auto draining_a = coring::spawn(read_rest(&a.server, a_data.size()));
    net::Received rb = co_await b_recv;
    const std::string b_error = rb.error ? rb.error.message() : "";
    CHECK(b_error.empty());
    CHECK(rb.buffer.as_string_view() == "hello B");
    rb.buffer.reset();
    const std::string a_got = co_await draining_a;
    net::SendResult wa = co_await sending_a;
    CHECK(wa.bytes == a_data.size());
    CHECK(a_got == a_data);
  };
  EventLoop loop;
  net::NetOptions opts;
  opts.buffers.entries = 4;
  opts.buffers.buffer_size = 4096;
  net::configure(loop, opts);
  loop.run(body());
}

TEST_CASE("BufferRing: buffers recycled before an ENOBUFS completion is handled are not missed",
          "[net][buffer_ring]") {
  CORING_IO_URING_ONLY();
  // Without DEFER_TASKRUN the kernel may run B's recv (and post its ENOBUFS) on
  // the way back from send(2), before A's buffers are recycled; if the loop
  // then parked B among the buffer waiters, no further recycle would wake it.
  auto mode = GENERATE(coring::RingMode::automatic, coring::RingMode::coop_taskrun,
                       coring::RingMode::plain);
  INFO("ring mode " << static_cast<int>(mode));
  // The ring runs dry while B's multishot recv is armed and waiting; B's data
  // arrives (a plain send(2), synchronous on loopback), and in the same task,
  // before the loop handles B's completion, A's buffers go back to the ring. B
  // must get its data.
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair a = co_await make_pair(&listener);
    Pair b = co_await make_pair(&listener);
    a.server.set_max_buffers(1000);
    net::detail::NetService& svc = service();

    // A's multishot recv armed (a recv that times out leaves it armed).
    net::Received a0 = co_await a.server.recv(5ms);
    CHECK(a0.error == std::errc::timed_out);
    // B's recv waits with buffers still free.
    auto b_recv = coring::spawn(recv_with_timeout(&b.server, 1500ms));
    co_await coring::sleep_for(5ms);

    // Four small messages to A, one buffer each: the ring (4 entries) is dry.
    for (int i = 0; i < 4; ++i) {
      const std::string m = "a" + std::to_string(i);
      REQUIRE(::send(a.client.native_handle(), m.data(), m.size(), MSG_NOSIGNAL) == 2);
      co_await coring::sleep_for(3ms);
    }
    std::vector<net::BufferLease> held;
    for (int i = 0; i < 4; ++i) {
      net::Received r = co_await a.server.recv(1s);
      REQUIRE(r);
      held.push_back(std::move(r.buffer));
    }
    REQUIRE(svc.pool().in_use() == 4);

    const std::string hello = "hello B";
    REQUIRE(::send(b.client.native_handle(), hello.data(), hello.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(hello.size()));
    // Without DEFER_TASKRUN, B's recv has already run (and failed) by now.
    const unsigned cqes_before_recycle =
        ::io_uring_cq_ready(coring::uring_native_ring(EventLoop::current_or_throw().backend()));
    held.clear();  // no suspension between the send and the recycling
    CHECK(svc.pool().in_use() == 0);

    net::Received rb = co_await b_recv;
    // 1 in coop_taskrun and plain modes on Linux 6.18: B's ENOBUFS, handled after
    // the recycle (0 with DEFER_TASKRUN: B's recv runs after it, and succeeds).
    INFO("completions waiting in the CQ ring before the recycle: " << cqes_before_recycle);
    const std::string b_error = rb.error ? rb.error.message() : "";
    CHECK(b_error.empty());
    CHECK(rb.buffer.as_string_view() == "hello B");
  };
  coring::LoopOptions lo;
  lo.uring.ring_mode = mode;
  lo.backend = coring::BackendKind::io_uring;
  EventLoop loop(lo);
  INFO(loop.describe());
  net::NetOptions opts;
  opts.buffers.entries = 4;
  opts.buffers.buffer_size = 4096;
  net::configure(loop, opts);
  loop.run(body());
}
