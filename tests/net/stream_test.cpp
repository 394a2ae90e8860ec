// TcpStream on real loopback sockets (127.0.0.1, port 0): round trips, EOF and
// half-close, refused and timed-out connects, resets, send timeouts, cancelled
// and timed-out recvs (nothing lost), the one-reader rule, BufferLease and the
// per-connection buffer cap, closing through the ring and fd leaks.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates it
// twice); every awaited value goes to a local first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/net_support.hpp"

using namespace coring_test;

namespace {

// ---- helpers ----

bool set_int_option(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

Task<net::Received> recv_once(net::TcpStream* s) {
  net::Received r = co_await s->recv();
  co_return r;
}

}  // namespace

// ---- connecting, round trips, EOF ----

TEST_CASE("TcpStream: connect, send_all and recv carry every byte both ways", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);

    const std::string hello = "hello over io_uring";
    net::SendResult w = co_await p.client.send_all(hello);
    CHECK(w);
    CHECK(w.bytes == hello.size());
    ReadResult got = co_await read_until(&p.server, hello.size(), 5s);
    CHECK_FALSE(got.error);
    CHECK(got.data == hello);

    // 1 MiB each way at once: many ring buffers, short sends, both directions.
    const std::string down = pattern(1 << 20, 1);
    const std::string up = pattern(1 << 20, 2);
    auto sending_down = coring::spawn(send_text(&p.server, &down, 10s));
    auto sending_up = coring::spawn(send_text(&p.client, &up, 10s));
    auto reading_up = coring::spawn(read_until(&p.server, up.size(), 10s));
    ReadResult back = co_await read_until(&p.client, down.size(), 10s);
    ReadResult there = co_await reading_up;
    net::SendResult s1 = co_await sending_down;
    net::SendResult s2 = co_await sending_up;
    CHECK_FALSE(s1.error);
    CHECK_FALSE(s2.error);
    CHECK(s1.bytes == down.size());
    CHECK(s2.bytes == up.size());
    CHECK(back.data.size() == down.size());
    CHECK(back.data == down);
    CHECK(there.data.size() == up.size());
    CHECK(there.data == up);
  };
  coring::run(body());
}

TEST_CASE("TcpStream: recv after the peer closed gives eof(), every time", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    net::SendResult w = co_await p.client.send_all("last words");
    CHECK(w);
    p.client = net::TcpStream();  // destroyed: closed through the ring (FIN)

    ReadResult got = co_await read_to_end(&p.server, 5s);
    CHECK(got.data == "last words");
    CHECK(got.eof);
    CHECK_FALSE(got.error);
    // EOF stays EOF.
    for (int i = 0; i < 3; ++i) {
      net::Received again = co_await p.server.recv(1s);
      CHECK(again.eof());
      CHECK_FALSE(again.error);
      CHECK_FALSE(again);
      CHECK(again.size() == 0);
    }
  };
  coring::run(body());
}

namespace {

// The server side of the half-close test: reads the whole request, then
// answers on its still open sending side; true when all of that went right.
Task<bool> half_close_server(net::TcpStream* s, const std::string* request,
                             const std::string* reply) {
  ReadResult got = co_await read_to_end(s, 5s);
  CHECK(got.eof);
  CHECK_FALSE(got.error);
  CHECK(got.data.size() == request->size());
  CHECK(got.data == *request);
  // Our sending side is still open after the peer's SHUT_WR.
  net::SendResult w = co_await s->send_all(*reply, 5s);
  CHECK_FALSE(w.error);
  CHECK(w.bytes == reply->size());
  const std::error_code closed = co_await s->close();
  CHECK_FALSE(closed);
  const bool ok = got.eof && got.data == *request && w.bytes == reply->size();
  co_return ok;
}

}  // namespace

TEST_CASE("TcpStream: half-close: the peer reads all then EOF and can still answer",
          "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const std::string request = pattern(300 * 1024, 3);
    const std::string reply = pattern(500 * 1024, 4);
    auto server = coring::spawn(half_close_server(&p.server, &request, &reply));

    net::SendResult w = co_await p.client.send_all(request, 5s);
    CHECK(w.bytes == request.size());
    const std::error_code shut = p.client.shutdown(SHUT_WR);
    CHECK_FALSE(shut);
    // Sending after our own SHUT_WR is a broken pipe, as a value.
    net::SendResult late = co_await p.client.send_all("too late", 1s);
    CHECK(late.error == std::errc::broken_pipe);
    CHECK(late.bytes == 0);

    ReadResult back = co_await read_to_end(&p.client, 5s);
    CHECK(back.eof);
    CHECK_FALSE(back.error);
    CHECK(back.data.size() == reply.size());
    CHECK(back.data == reply);
    const bool server_ok = co_await server;
    CHECK(server_ok);
  };
  coring::run(body());
}

TEST_CASE("TcpStream: connect to a port nobody listens on gives connection_refused",
          "[net][stream]") {
  auto body = []() -> Task<void> {
    // A bound socket that does not listen: the port is ours (nobody else can
    // listen on it meanwhile) and a SYN to it is answered with RST.
    const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(holder >= 0);
    const net::Address any_port = net::Address::loopback_v4(0);
    REQUIRE(::bind(holder, any_port.sockaddr_ptr(), any_port.sockaddr_len()) == 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    REQUIRE(::getsockname(holder, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    const net::Address closed = net::Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    REQUIRE(closed.port() != 0);

    co_await coring::sleep_for(1ms);
    const std::size_t fds_before = count_open_fds();
    for (int i = 0; i < 3; ++i) {
      net::Connected c = co_await net::connect(closed, 2s);
      CHECK_FALSE(c);
      CHECK(c.error == std::errc::connection_refused);
      CHECK_FALSE(c.stream.is_open());
    }
    // The failed attempts' sockets are closed (through the ring: give it a turn).
    co_await coring::sleep_for(10ms);
    CHECK(count_open_fds() == fds_before);
    ::close(holder);
  };
  coring::run(body());
}

TEST_CASE("TcpStream: connect with a timeout to a listener whose queue is full", "[net][stream]") {
  auto body = []() -> Task<void> {
    // Backlog 0: the accept queue holds one connection. Once it is full (we never
    // accept), the kernel drops further SYNs; the client would retransmit after
    // 1 s, so a 250 ms connect timeout must fire.
    net::ListenOptions lo;
    lo.backlog = 0;
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0), lo);
    const net::Address where = listener.local_address();
    co_await coring::sleep_for(1ms);
    const std::size_t fds_before = count_open_fds();
    std::vector<net::TcpStream> filling;
    bool timed_out = false;
    Duration took{};
    for (int i = 0; i < 8 && !timed_out; ++i) {
      const auto t0 = Clock::now();
      net::Connected c = co_await net::connect(where, 250ms);
      took = Clock::now() - t0;
      if (c) {
        filling.push_back(std::move(c.stream));
        continue;
      }
      INFO("connect error: " << c.error.message());
      CHECK(c.error == std::errc::timed_out);
      CHECK_FALSE(c.stream.is_open());
      timed_out = c.error == std::errc::timed_out;
    }
    if (!timed_out) {
      WARN("every SYN was answered (accept queue never full): timeout not exercised");
      co_return;
    }
    INFO("connected before the queue was full: " << filling.size());
    CHECK(filling.size() >= 1);
    CHECK(took >= 240ms);
    CHECK(took < 900ms);  // well before the kernel's own 1 s SYN retransmission
    filling.clear();
    co_await coring::sleep_for(20ms);
    CHECK(count_open_fds() == fds_before);
  };
  coring::run(body());
}

// ---- resets and timeouts ----

TEST_CASE("TcpStream: a peer reset is a value on recv and on send", "[net][stream]") {
  SECTION("reset while data is being received") {
    auto body = []() -> Task<void> {
      net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
      Pair p = co_await make_pair(&listener);
      const std::string data = pattern(64 * 1024, 5);
      net::SendResult w = co_await p.server.send_all(data, 5s);
      REQUIRE(w.bytes == data.size());

      std::string got;
      net::Received first = co_await p.client.recv(5s);
      REQUIRE(first);
      got.append(first.buffer.as_string_view());
      first.buffer.reset();

      // The peer aborts: RST instead of FIN.
      REQUIRE(set_linger_zero(p.server.native_handle()));
      p.server = net::TcpStream();
      co_await coring::sleep_for(10ms);

      // What was received before the RST may still come; then the reset, as a value.
      std::error_code ended;
      for (int i = 0; i < 1000; ++i) {
        net::Received r = co_await p.client.recv(5s);
        if (r.error) {
          ended = r.error;
          break;
        }
        REQUIRE_FALSE(r.eof());  // a reset is not an orderly EOF
        got.append(r.buffer.as_string_view());
      }
      CHECK(ended == std::errc::connection_reset);
      CHECK(got.size() <= data.size());
      CHECK(got == data.substr(0, got.size()));
      // The error is sticky.
      net::Received again = co_await p.client.recv(1s);
      CHECK(again.error == std::errc::connection_reset);
      // And sending on the reset connection fails as a value too.
      net::SendResult s = co_await p.client.send_all("anyone there?", 1s);
      INFO("send after reset: " << s.error.message());
      CHECK((s.error == std::errc::broken_pipe || s.error == std::errc::connection_reset));
      CHECK(s.bytes == 0);
    };
    coring::run(body());
  }
  SECTION("reset while send_all is stalled") {
    auto body = []() -> Task<void> {
      net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
      Pair p = co_await make_pair(&listener);
      REQUIRE(set_int_option(p.client.native_handle(), SOL_SOCKET, SO_SNDBUF, 32 * 1024));
      REQUIRE(set_int_option(p.server.native_handle(), SOL_SOCKET, SO_RCVBUF, 32 * 1024));
      const std::string big = pattern(8 << 20, 6);
      auto sending = coring::spawn(send_text(&p.client, &big, 10s));
      co_await coring::sleep_for(50ms);
      REQUIRE_FALSE(sending.done());  // stalled: the peer does not read
      REQUIRE(set_linger_zero(p.server.native_handle()));
      p.server = net::TcpStream();
      net::SendResult s = co_await sending;
      INFO("send_all ended with: " << s.error.message() << " after " << s.bytes << " bytes");
      CHECK((s.error == std::errc::connection_reset || s.error == std::errc::broken_pipe));
      CHECK(s.bytes > 0);
      CHECK(s.bytes < big.size());
    };
    coring::run(body());
  }
}

TEST_CASE("TcpStream: send_all to a peer that never reads times out with an exact count",
          "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    // Small socket buffers: the stall comes after a few tens of KiB.
    REQUIRE(set_int_option(p.client.native_handle(), SOL_SOCKET, SO_SNDBUF, 32 * 1024));
    REQUIRE(set_int_option(p.server.native_handle(), SOL_SOCKET, SO_RCVBUF, 32 * 1024));
    const std::string big = pattern(8 << 20, 7);
    const auto t0 = Clock::now();
    net::SendResult w = co_await p.client.send_all(big, 300ms);
    const Duration took = Clock::now() - t0;
    INFO("sent " << w.bytes << " of " << big.size() << ": " << w.error.message());
    CHECK(w.error == std::errc::timed_out);
    CHECK_FALSE(w);
    CHECK(w.bytes > 0);
    CHECK(w.bytes < big.size());
    CHECK(took >= 290ms);
    CHECK(took < 3s);

    // SendResult::bytes is exact: the peer gets exactly that prefix, no more.
    ReadResult got = co_await read_until(&p.server, w.bytes, 5s);
    CHECK_FALSE(got.error);
    CHECK(got.data.size() == w.bytes);
    CHECK(got.data == big.substr(0, w.bytes));
    net::Received extra = co_await p.server.recv(100ms);
    CHECK(extra.error == std::errc::timed_out);

    // The stream still works after the timed-out send.
    net::SendResult more = co_await p.client.send_all("still alive", 5s);
    CHECK_FALSE(more.error);
    ReadResult tail = co_await read_until(&p.server, 11, 5s);
    CHECK(tail.data == "still alive");
  };
  coring::run(body());
}

// ---- cancelled and timed-out recvs, the one-reader rule ----

TEST_CASE("TcpStream: a cancelled recv ends its task and the stream still works", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);

    auto waiting = coring::spawn(recv_once(&p.server));
    co_await coring::sleep_for(20ms);
    REQUIRE_FALSE(waiting.done());
    waiting.cancel();
    const coring::Outcome<net::Received> ended = co_await waiting.join();
    CHECK(ended.cancelled());

    // The same stream, a new recv: data sent later arrives.
    net::SendResult w = co_await p.client.send_all("after the cancel");
    CHECK(w);
    ReadResult got = co_await read_until(&p.server, 16, 5s);
    CHECK_FALSE(got.error);
    CHECK(got.data == "after the cancel");
  };
  coring::run(body());
}

TEST_CASE("TcpStream: recvs cancelled around the data's arrival lose nothing", "[net][stream]") {
  auto body = []() -> Task<void> {
    // A recv cancelled at varying points around the data's arrival either gets
    // the data or is cancelled; either way nothing is lost or duplicated.
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    std::string expected;
    std::string got;
    int cancelled = 0;
    int delivered = 0;
    for (int i = 0; i < 60; ++i) {
      auto waiting = coring::spawn(recv_once(&p.server));
      for (int k = 0; k < i % 3; ++k) co_await coring::yield_now();
      const std::string msg = "<" + std::to_string(i) + ">";
      expected += msg;
      // A plain send(2): the bytes are in the server's socket when it returns.
      REQUIRE(::send(p.client.native_handle(), msg.data(), msg.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(msg.size()));
      for (int k = 0; k < (i / 3) % 4; ++k) co_await coring::yield_now();
      waiting.cancel();
      coring::Outcome<net::Received> ended = co_await waiting.join();
      if (ended.cancelled()) {
        ++cancelled;
      } else {
        net::Received r = std::move(ended).value();
        REQUIRE_FALSE(r.error);
        got.append(r.buffer.as_string_view());
        ++delivered;
      }
    }
    // Whatever the cancelled recvs did not take is still queued, in order.
    while (got.size() < expected.size()) {
      net::Received r = co_await p.server.recv(2s);
      if (!r) break;
      got.append(r.buffer.as_string_view());
    }
    INFO("cancelled " << cancelled << ", delivered " << delivered);
    CHECK(got == expected);
    CHECK(cancelled > 0);
  };
  coring::run(body());
}

TEST_CASE("TcpStream: recv timeout, then a later recv gets the data", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const auto t0 = Clock::now();
    net::Received r = co_await p.server.recv(100ms);
    const Duration took = Clock::now() - t0;
    CHECK(r.error == std::errc::timed_out);
    CHECK_FALSE(r);
    CHECK_FALSE(r.eof());
    CHECK(took >= 95ms);
    CHECK(took < 2s);

    net::SendResult w = co_await p.client.send_all("late data");
    CHECK(w);
    net::Received later = co_await p.server.recv(5s);
    CHECK_FALSE(later.error);
    CHECK(later.buffer.as_string_view() == "late data");
  };
  coring::run(body());
}

TEST_CASE("TcpStream: two tasks in recv at once is a logic_error", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    auto first = coring::spawn(recv_once(&p.server));
    co_await coring::sleep_for(10ms);
    REQUIRE_FALSE(first.done());
    std::string message;
    try {
      net::Received r = co_await p.server.recv(1s);
      FAIL("a second reader was let in: " << r.size() << " bytes, " << r.error.message());
    } catch (const std::logic_error& e) {
      message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("two tasks are in recv()"));
    // The first reader is undisturbed.
    net::SendResult w = co_await p.client.send_all("for the first");
    CHECK(w);
    net::Received r = co_await first;
    CHECK(r.buffer.as_string_view() == "for the first");
  };
  coring::run(body());
}

// ---- BufferLease and the per-connection buffer cap ----

TEST_CASE("TcpStream: BufferLease moves, release() and destruction give the buffer back",
          "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    CHECK(p.server.buffers_held() == 0);

    net::SendResult w1 = co_await p.client.send_all("first");
    CHECK(w1);
    net::Received r1 = co_await p.server.recv(5s);
    REQUIRE(r1.buffer.as_string_view() == "first");
    CHECK(p.server.buffers_held() == 1);

    // Moving a lease moves the buffer, not a copy; the source is empty.
    net::BufferLease held = std::move(r1.buffer);
    CHECK(r1.buffer.empty());
    CHECK(r1.buffer.size() == 0);
    CHECK(r1.buffer.bytes().empty());
    CHECK(held.as_string_view() == "first");
    CHECK(held.size() == 5);
    CHECK(p.server.buffers_held() == 1);

    net::SendResult w2 = co_await p.client.send_all("second");
    CHECK(w2);
    net::Received r2 = co_await p.server.recv(5s);
    REQUIRE(r2.buffer.as_string_view() == "second");
    CHECK(p.server.buffers_held() == 2);
    // Move-assigning over a lease gives the old buffer back.
    held = std::move(r2.buffer);
    CHECK(held.as_string_view() == "second");
    CHECK(p.server.buffers_held() == 1);
    // Self-move keeps it.
    net::BufferLease& alias = held;
    held = std::move(alias);
    CHECK(held.as_string_view() == "second");
    CHECK(p.server.buffers_held() == 1);

    held.reset();
    CHECK(held.empty());
    CHECK(p.server.buffers_held() == 0);
    held.reset();  // twice is harmless
    CHECK(p.server.buffers_held() == 0);

    // A lease dropped with its Received also gives the buffer back.
    net::SendResult w3 = co_await p.client.send_all("third");
    CHECK(w3);
    {
      net::Received r3 = co_await p.server.recv(5s);
      CHECK(r3.buffer.as_string_view() == "third");
      CHECK(p.server.buffers_held() == 1);
    }
    CHECK(p.server.buffers_held() == 0);
  };
  coring::run(body());
}

namespace {

// Holds every lease of a 4 MiB stream with max_buffers 4 until reading pauses,
// then gives them back and reads the rest; returns the peak of buffers_held().
// Shared by the next two tests.
Task<std::uint32_t> lease_cap_scenario() {
  net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  Pair p = co_await make_pair(&listener);
  constexpr std::uint32_t kMax = 4;
  p.server.set_max_buffers(kMax);
  CHECK(p.server.max_buffers() == kMax);
  const std::string data = pattern(4 << 20, 8);
  auto sending = coring::spawn(send_text(&p.client, &data, 10s));

  std::vector<net::BufferLease> held;
  std::string got;
  std::uint32_t max_seen = 0;
  // Keep every lease: reading must pause (at the cap, plus whatever the kernel
  // delivered before the cancel of the multishot recv reached it).
  for (int i = 0; i < 1000; ++i) {
    net::Received r = co_await p.server.recv(150ms);
    max_seen = std::max(max_seen, p.server.buffers_held());
    if (r.error) {
      CHECK(r.error == std::errc::timed_out);
      break;
    }
    REQUIRE(r);
    got.append(r.buffer.as_string_view());
    held.push_back(std::move(r.buffer));
  }
  INFO("held " << held.size() << " leases, buffers_held peaked at " << max_seen);
  CHECK(held.size() >= kMax);
  // Every lease is a ring buffer or, past the cap, a heap copy (spilled).
  CHECK(p.server.buffers_held() + p.server.buffers_spilled() == held.size());
  CHECK(p.server.buffers_held() <= kMax);
  CHECK(got.size() < data.size());
  // Paused: nothing more is taken from the socket while we hold them.
  co_await coring::sleep_for(50ms);
  CHECK(p.server.buffers_held() + p.server.buffers_spilled() == held.size());
  net::Received none = co_await p.server.recv(20ms);
  CHECK(none.error == std::errc::timed_out);

  // Giving the leases back resumes reading; everything arrives in order.
  held.clear();
  CHECK(p.server.buffers_held() == 0);
  while (got.size() < data.size()) {
    net::Received r = co_await p.server.recv(5s);
    if (!r) break;
    got.append(r.buffer.as_string_view());
  }
  net::SendResult w = co_await sending;
  CHECK(w.bytes == data.size());
  CHECK(got.size() == data.size());
  CHECK(got == data);
  co_return max_seen;
}

}  // namespace

TEST_CASE("TcpStream: held leases pause reading; releasing them resumes it", "[net][stream]") {
  const std::uint32_t max_seen = coring::run(lease_cap_scenario());
  INFO("buffers_held peaked at " << max_seen);
  CHECK(max_seen >= 4);
}

TEST_CASE("TcpStream: a stream never holds more than max_buffers ring buffers", "[net][stream]") {
  // Regression: the cap was enforced only by cancelling the multishot recv when
  // a CQE showed it reached; the kernel posts up to ~33 CQEs per multishot run
  // (MULTISHOT_MAX_RETRY) and may run it again before the cancel is submitted,
  // so a connection with max_buffers 4 was seen holding 66 ring buffers. Now
  // what arrives over the cap is copied to the heap and its buffer recycled.
  const std::uint32_t max_seen = coring::run(lease_cap_scenario());
  INFO("buffers_held peaked at " << max_seen << " with max_buffers 4");
  CHECK(max_seen <= 4);
}

TEST_CASE("TcpStream: EOF hands out no ring buffer; the stream's core is freed", "[net][stream]") {
  // Regression: StreamCore::pop once returned 1 both for data and for EOF, so
  // RecvAwaiter wrapped EOF in a BufferLease of buffer 0 that the stream did
  // not own; releasing it drove leased_ below zero (buffers_held() 4294967295,
  // the core never freed) and handed buffer 0 back to the kernel while another
  // connection still read it (X's lease below turned into Z's data).
  // A stream that has seen EOF holds no ring buffer, and its core is freed when
  // it is dropped.
  auto body = []() -> Task<std::string> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair x = co_await make_pair(&listener);
    Pair y = co_await make_pair(&listener);
    Pair z = co_await make_pair(&listener);
    net::detail::NetService& svc = net::detail::NetService::of(EventLoop::current_or_throw());

    // X holds a lease on a ring buffer.
    net::SendResult wx = co_await x.client.send_all("XXXX");
    CHECK(wx);
    net::Received rx = co_await x.server.recv(5s);
    REQUIRE(rx.buffer.as_string_view() == "XXXX");
    CHECK(svc.pool().in_use() == 1);

    // Y reads EOF (twice).
    y.client = net::TcpStream();
    for (int i = 0; i < 2; ++i) {
      net::Received ry = co_await y.server.recv(5s);
      CHECK(ry.eof());
      CHECK(ry.buffer.bytes().empty());
    }
    CHECK(y.server.buffers_held() == 0);
    CHECK(svc.pool().in_use() == 1);  // X's lease, nothing else

    // Z takes the rest of the (4-buffer) ring: X's buffer must not be among the
    // buffers the kernel hands out.
    z.server.set_max_buffers(16);
    std::vector<net::BufferLease> zl;
    for (int i = 0; i < 3; ++i) {
      const std::string m = "zz" + std::to_string(i);
      net::SendResult wz = co_await z.client.send_all(m);
      CHECK(wz);
      net::Received rz = co_await z.server.recv(300ms);
      if (!rz) break;
      CHECK(rz.buffer.as_string_view() == m);
      zl.push_back(std::move(rz.buffer));
    }
    const std::string lease_after(rx.buffer.as_string_view());
    CHECK(lease_after == "XXXX");

    // Dropped after EOF: the core is freed (only the listener and X, Z remain).
    y.server = net::TcpStream();
    co_await coring::sleep_for(10ms);
    CHECK(loop_sockets() == 5);
    co_return lease_after;
  };
  EventLoop loop;
  net::NetOptions opts;
  opts.buffers.entries = 4;
  opts.buffers.buffer_size = 256;
  net::configure(loop, opts);
  const std::string lease_after = loop.run(body());
  CHECK(lease_after == "XXXX");
}

// ---- closing, leaks, loop shutdown ----

TEST_CASE("TcpStream: destroyed with a multishot recv armed, no fd or socket core leaks",
          "[net][stream]") {
  const std::size_t fds_before = count_open_fds();
  const auto frames_before = coring::FrameAllocator::live_frames();
  {
    EventLoop loop;
    const std::size_t fds_with_loop = count_open_fds();
    auto body = [&]() -> Task<void> {
      {
        net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
        Pair p = co_await make_pair(&listener);
        // A recv that times out leaves the multishot recv armed on each end.
        net::Received r1 = co_await p.server.recv(10ms);
        CHECK(r1.error == std::errc::timed_out);
        net::Received r2 = co_await p.client.recv(10ms);
        CHECK(r2.error == std::errc::timed_out);
        // And the server end has a buffer queued that nobody takes.
        net::SendResult w = co_await p.client.send_all("never read");
        CHECK(w);
        co_await coring::sleep_for(10ms);
        CHECK(p.server.buffers_held() == 1);
        CHECK(loop_sockets() == 3);
      }  // both streams (and the listener) destroyed with operations in the kernel
      for (int i = 0; i < 5; ++i) co_await coring::sleep_for(2ms);
      CHECK(count_open_fds() == fds_with_loop);
      CHECK(loop_sockets() == 0);
    };
    loop.run(body());
  }
  CHECK(count_open_fds() == fds_before);
  CHECK(coring::FrameAllocator::live_frames() == frames_before);
}

namespace {

// Owns its stream and waits in recv forever: the loop's shutdown must unwind it.
Task<void> park_in_recv(net::TcpStream s) {
  net::Received r = co_await s.recv();
  (void)r;
}

}  // namespace

TEST_CASE("TcpStream: streams parked in recv when their loop is destroyed leak nothing",
          "[net][stream]") {
  const std::size_t fds_before = count_open_fds();
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    coring::spawn(park_in_recv(std::move(p.client))).detach();
    coring::spawn(park_in_recv(std::move(p.server))).detach();
    co_await coring::sleep_for(5ms);
  };
  coring_test::StderrCapture err;
  const auto t0 = Clock::now();
  {
    EventLoop loop;
    loop.run(body());
    CHECK(loop.scheduler().live_tasks() == 2);
  }
  const Duration took = Clock::now() - t0;
  const std::string said = err.finish();
  CHECK(said.empty());
  CHECK(took < 1s);
  CHECK(count_open_fds() == fds_before);
}

TEST_CASE("TcpStream: stream objects that outlive their loop leak nothing", "[net][stream]") {
  // Regression: the loop's shutdown cancels everything in the ring, and
  // StreamCore::on_recv answered the -ECANCELED of a recv it had not cancelled
  // itself by arming a new one (EventLoop::shutting_down() is still false while
  // the loop drains), so the destructor waited out its 2 s deadline and printed
  // "coring: N I/O operations still in flight at loop shutdown". An unrequested
  // cancel now ends the stream (and stops a listener).
  const std::size_t fds_before = count_open_fds();
  net::TcpListener listener;
  net::TcpStream client;
  net::TcpStream server;
  // A connected pair and the listener, each with its multishot operation armed.
  auto make_armed = [&]() -> Task<void> {
    listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    // A recv (accept) that times out leaves the multishot operation armed.
    net::Received r1 = co_await p.server.recv(5ms);
    CHECK(r1.error == std::errc::timed_out);
    net::Received r2 = co_await p.client.recv(5ms);
    CHECK(r2.error == std::errc::timed_out);
    net::Accepted a = co_await listener.accept(5ms);
    CHECK(a.error == std::errc::timed_out);
    client = std::move(p.client);
    server = std::move(p.server);
  };
  coring_test::StderrCapture err;
  auto loop = std::make_unique<EventLoop>();
  loop->run(make_armed());
  CHECK(client.is_open());
  CHECK(server.is_open());
  const auto t0 = Clock::now();
  loop.reset();
  const Duration took = Clock::now() - t0;
  const std::string said = err.finish();
  // The loop closed their fds; the streams free their cores when they go.
  CHECK(client.native_handle() == -1);
  CHECK(server.native_handle() == -1);
  CHECK(listener.native_handle() == -1);
  CHECK(count_open_fds() == fds_before);
  INFO("stderr: " << said);
  CHECK(said.empty());
  CHECK(took < 1s);
}

TEST_CASE("TcpStream: close() goes through the ring and reports no error", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const int fd = p.client.native_handle();
    REQUIRE(fd >= 0);
    const std::error_code rc = co_await p.client.close();
    CHECK_FALSE(rc);
    CHECK_FALSE(p.client.is_open());
    CHECK(p.client.native_handle() == -1);
    // The peer sees an orderly EOF.
    ReadResult got = co_await read_to_end(&p.server, 5s);
    CHECK(got.eof);
    CHECK(got.data.empty());
    // Closing a closed stream: the ring reports EBADF, nothing else is touched.
    const std::error_code again = co_await p.client.close();
    CHECK(again == std::errc::bad_file_descriptor);
    // A stream with a recv armed closes just as well.
    net::Received r = co_await p.server.recv(5ms);
    CHECK(r.eof());
    const std::error_code rc2 = co_await p.server.close();
    CHECK_FALSE(rc2);
  };
  coring::run(body());
}

TEST_CASE("TcpStream: a default-constructed or closed stream reports bad_file_descriptor",
          "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpStream none;
    CHECK_FALSE(none.is_open());
    CHECK(none.native_handle() == -1);
    CHECK(none.buffers_held() == 0);
    CHECK(none.max_buffers() == 0);
    net::Received r = co_await none.recv();
    CHECK(r.error == std::errc::bad_file_descriptor);
    CHECK_FALSE(r.eof());
    net::Received rt = co_await none.recv(10ms);
    CHECK(rt.error == std::errc::bad_file_descriptor);
    net::SendResult s = co_await none.send_all("x");
    CHECK(s.error == std::errc::bad_file_descriptor);
    CHECK(s.bytes == 0);
    CHECK(none.shutdown() == std::errc::bad_file_descriptor);
    CHECK(none.set_nodelay(true) == std::errc::bad_file_descriptor);
    CHECK(none.local_address() == net::Address());
    CHECK(none.peer_address() == net::Address());

    // After close(), the same.
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const std::error_code rc = co_await p.client.close();
    CHECK_FALSE(rc);
    net::Received after = co_await p.client.recv(1s);
    CHECK(after.error == std::errc::bad_file_descriptor);
    net::SendResult s2 = co_await p.client.send_all("y");
    CHECK(s2.error == std::errc::bad_file_descriptor);
    // Moved-from streams are closed too.
    net::TcpStream moved = std::move(p.server);
    CHECK_FALSE(p.server.is_open());
    net::Received from_moved = co_await p.server.recv();
    CHECK(from_moved.error == std::errc::bad_file_descriptor);
    CHECK(moved.is_open());
  };
  coring::run(body());
}

TEST_CASE("TcpStream: local_address and peer_address", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    const net::Address where = listener.local_address();
    Pair p = co_await make_pair(&listener);
    CHECK(p.client.peer_address() == where);
    CHECK(p.server.local_address() == where);
    CHECK(p.client.local_address() == p.server.peer_address());
    CHECK(p.client.local_address().host() == "127.0.0.1");
    CHECK(p.client.local_address().port() != 0);
    CHECK(p.client.local_address().port() != where.port());
    CHECK_FALSE(p.client.set_nodelay(true));
    int v = 0;
    socklen_t len = sizeof v;
    REQUIRE(::getsockopt(p.client.native_handle(), IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    CHECK(v != 0);
  };
  coring::run(body());
}

TEST_CASE("regression: close() while another task is in send_all wakes the sender with EBADF",
          "[net][stream]") {
  const std::size_t fds = coring_test::count_open_fds();
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    REQUIRE(set_int_option(p.client.native_handle(), SOL_SOCKET, SO_SNDBUF, 32 * 1024));
    REQUIRE(set_int_option(p.server.native_handle(), SOL_SOCKET, SO_RCVBUF, 32 * 1024));
    const std::string big = pattern(8 << 20, 9);
    auto sending = coring::spawn(send_text(&p.client, &big, 10s));
    co_await coring::sleep_for(50ms);
    REQUIRE_FALSE(sending.done());  // stalled: the peer does not read
    const auto closed = co_await p.client.close();
    CHECK_FALSE(closed);
    net::SendResult s = co_await sending;  // woken by the close, not by the 10 s timeout
    CHECK(s.error == std::errc::bad_file_descriptor);
    CHECK(s.bytes > 0);
    CHECK(s.bytes < big.size());
  };
  coring::run(body());
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("regression: a stream closed under a stalled send_all, then its loop shut down",
          "[net][stream]") {
  const std::size_t fds = coring_test::count_open_fds();
  const auto frames = coring::FrameAllocator::live_frames();
  {
    EventLoop loop;
    auto body = []() -> Task<void> {
      net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
      Pair p = co_await make_pair(&listener);
      REQUIRE(set_int_option(p.client.native_handle(), SOL_SOCKET, SO_SNDBUF, 32 * 1024));
      REQUIRE(set_int_option(p.server.native_handle(), SOL_SOCKET, SO_RCVBUF, 32 * 1024));
      static const std::string big = pattern(8 << 20, 10);
      coring::spawn(send_text(&p.client, &big, 10s)).detach();
      co_await coring::sleep_for(50ms);
      p.client = net::TcpStream();  // closed under the sender, which is never joined
      co_await coring::sleep_for(10ms);
    };
    loop.run(body());
  }  // the loop cancels whatever is left; nothing may touch the freed stream
  CHECK(coring::FrameAllocator::live_frames() == frames);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("a stream at its cap takes in no more than its cap in bytes", "[net][stream]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    p.server.set_max_buffers(2);
    // Start receiving, and keep the first buffer: the stream is then at its cap
    // as soon as one more buffer arrives.
    const std::string first = "x";
    net::SendResult w = co_await p.client.send_all(first);
    REQUIRE(w);
    net::Received held = co_await p.server.recv(5s);
    REQUIRE(held);
    // Far more than the cap, as fast as the kernel takes it.
    const std::string flood = pattern(4 << 20, 11);
    auto sending = coring::spawn(send_text(&p.client, &flood, 3s));
    co_await coring::sleep_for(200ms);
    const bool limits = net::detail::NetService::of(EventLoop::current_or_throw()).recv_limits();
    INFO("kernel limits multishot recvs: " << limits);
    CHECK(p.server.buffers_held() <= 2);
    // With the kernel's byte limit, one multishot run brings at most the cap
    // in bytes (2 x 16 KiB): the 1-byte first message took a whole buffer, so
    // at most one buffer's worth went to the heap. Without it, a run brings
    // what the socket had.
    if (limits) CHECK(p.server.buffers_spilled() <= 1);
    // Every byte still arrives, in order, once the application reads again.
    held.buffer.reset();
    ReadResult got = co_await read_until(&p.server, flood.size(), 10s);
    CHECK(got.data == flood);
    (void)co_await sending;
  };
  coring::run(body());
}
