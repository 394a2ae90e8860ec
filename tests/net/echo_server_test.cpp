// EchoServer on real loopback sockets: byte-exact echo for awkward sizes over
// many concurrent clients, half-close, stop() with a graceful drain and with
// grace expiry, max_connections, idle_timeout, the connect/disconnect callbacks,
// a peer that resets mid-stream, and serve_echo cancelled through its JoinHandle.
// Every test also checks that no file descriptor is left open afterwards.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "support/net_support.hpp"

using namespace coring_test;

namespace {

// ---- helpers ----

constexpr std::size_t kNpos = static_cast<std::size_t>(-1);

// What one echo client saw.
struct ClientResult {
  std::error_code connect_error;
  std::error_code send_error;
  std::error_code recv_error;
  std::size_t sent = 0;
  std::size_t received = 0;
  std::size_t first_mismatch = kNpos;  // first byte that came back wrong
  bool eof = false;
  Address local;
};

// Compares what came back against `expected`, from offset out->received on.
void check_chunk(std::span<const std::byte> got, const std::vector<std::byte>& expected,
                 ClientResult* out) {
  for (std::size_t k = 0; k < got.size(); ++k) {
    const std::size_t at = out->received + k;
    if (at >= expected.size() || got[k] != expected[at]) {
      if (out->first_mismatch == kNpos) out->first_mismatch = at;
      break;
    }
  }
  out->received += got.size();
}

Task<SendResult> send_then_shut(TcpStream* stream, const std::vector<std::byte>* data) {
  SendResult w = co_await stream->send_all(std::span<const std::byte>(*data), 20s);
  if (w) (void)stream->shutdown(SHUT_WR);
  co_return w;
}

// Receives until EOF (or an error / a timeout), checking every byte.
Task<void> recv_until_eof(TcpStream* stream, const std::vector<std::byte>* expected,
                          ClientResult* out) {
  for (;;) {
    Received r = co_await stream->recv(10s);
    if (!r) {
      if (r.eof()) {
        out->eof = true;
      } else {
        out->recv_error = r.error;
      }
      co_return;
    }
    check_chunk(r.data(), *expected, out);
  }
}

// Connects, sends `data` while receiving the echo, shuts down its sending side
// after the last byte, and reads until EOF.
Task<ClientResult> echo_client(Address addr, std::vector<std::byte> data) {
  ClientResult out;
  Connected c = co_await net::connect(addr, 5s);
  if (!c) {
    out.connect_error = c.error;
    co_return out;
  }
  out.local = c.stream.local_address();
  JoinHandle<SendResult> sender = coring::spawn(send_then_shut(&c.stream, &data), "sender");
  co_await recv_until_eof(&c.stream, &data, &out);
  SendResult w = co_await sender;
  out.sent = w.bytes;
  out.send_error = w.error;
  co_return out;
}

void require_clean_echo(const ClientResult& r, std::size_t size) {
  CAPTURE(size, r.connect_error.message(), r.send_error.message(), r.recv_error.message());
  CHECK(!r.connect_error);
  CHECK(!r.send_error);
  CHECK(!r.recv_error);
  CHECK(r.sent == size);
  CHECK(r.received == size);
  CHECK(r.first_mismatch == kNpos);
  CHECK(r.eof);
}

// One round trip of `msg` on an open stream; true when it came back intact.
Task<bool> round_trip(TcpStream* stream, std::string msg, Duration timeout) {
  SendResult w = co_await stream->send_all(msg, timeout);
  if (!w) co_return false;
  std::string got;
  while (got.size() < msg.size()) {
    Received r = co_await stream->recv(timeout);
    if (!r) co_return false;
    got.append(r.buffer.as_string_view());
  }
  co_return got == msg;
}

// How a connection ended, seen from the client: "eof", "reset", "timeout", "data".
Task<std::string> wait_end(TcpStream* stream, Duration timeout) {
  Received r = co_await stream->recv(timeout);
  if (r) co_return "data";
  if (r.eof()) co_return "eof";
  if (r.error == std::errc::timed_out) co_return "timeout";
  if (r.error == std::errc::connection_reset) co_return "reset";
  co_return "error " + r.error.message();
}

Task<void> sleep_ms(int ms) {
  co_await coring::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

// ---- many clients, half-close ----

namespace {

constexpr std::size_t kSizes[] = {0,     1,     63,    64,       4095,
                                  16384, 16385, 65536, 1u << 20, (1u << 20) + 1};

}  // namespace

TEST_CASE("echo server: 50 concurrent clients, sizes 0 B to 1 MiB+1, every byte checked",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    constexpr std::size_t kClients = 50;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    std::vector<std::size_t> sizes;
    std::vector<JoinHandle<ClientResult>> handles;
    for (std::size_t i = 0; i < kClients; ++i) {
      const std::size_t size = kSizes[i % std::size(kSizes)];
      sizes.push_back(size);
      handles.push_back(coring::spawn(echo_client(addr, random_bytes(size, 1000 + i)), "client"));
    }
    std::vector<ClientResult> results;
    for (auto& h : handles) {
      ClientResult r = co_await h;
      results.push_back(r);
    }
    REQUIRE(results.size() == kClients);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      CAPTURE(i);
      require_clean_echo(results[i], sizes[i]);
      total += sizes[i];
    }
    const EchoStats live = server.stats();
    CHECK(live.active == 0);

    const TimePoint t0 = Clock::now();
    server.stop();
    const EchoStats stats = co_await serving;
    const std::uint64_t serve_ms = ms_since(t0);
    CHECK(stats.accepted == kClients);
    CHECK(stats.bytes == total);
    CHECK(stats.errors == 0);
    CHECK(stats.active == 0);
    CHECK(stats.rejected == 0);
    CHECK(stats.timeouts == 0);
    CHECK(stats.cut_off == 0);
    CHECK(serve_ms < 1000);  // nothing to drain: serve() returns at once

    // The listener is gone: connecting now is refused. A moment first for the
    // loop to take the listener's accept out of the kernel (see the "same turn
    // as stop()" test below for a connect in the very same turn).
    co_await sleep_ms(20);
    Connected late = co_await net::connect(addr, 2s);
    const std::error_code after_stop = late ? std::error_code() : late.error;
    CHECK(after_stop == std::errc::connection_refused);
  });
}

TEST_CASE("echo server: a client that shuts down its sending side first still gets every byte",
          "[net][echo]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t size = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{40000});
  auto body = [&]() -> Task<void> {
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    const std::vector<std::byte> data = random_bytes(size, 7);
    Connected c = co_await net::connect(server.local_address(), 5s);
    REQUIRE(c);
    ClientResult r;
    SendResult w = co_await c.stream.send_all(std::span<const std::byte>(data), 5s);
    r.sent = w.bytes;
    r.send_error = w.error;
    (void)c.stream.shutdown(SHUT_WR);
    // Let the server see the EOF before we read a single byte of the echo.
    co_await sleep_ms(50);
    co_await recv_until_eof(&c.stream, &data, &r);
    require_clean_echo(r, size);
    Received again = co_await c.stream.recv(1s);
    CHECK(again.eof());
    // Our side is shut: a send must fail, not hang or raise SIGPIPE.
    SendResult late = co_await c.stream.send_all("late", 1s);
    CHECK(late.error == std::errc::broken_pipe);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == 1);
    CHECK(stats.bytes == size);
    CHECK(stats.errors == 0);
    CHECK(stats.active == 0);
  };
  {
    EventLoop loop;
    loop.run(body());
  }
  CHECK(coring_test::count_open_fds() == fds);
}

// ---- stop(): drain, grace period ----

TEST_CASE("echo server: stop() lets a connected client finish within the grace period",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoOptions opt;
    opt.grace = 5s;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected c = co_await net::connect(addr, 5s);
    REQUIRE(c);
    const bool before = co_await round_trip(&c.stream, "before stop", 2s);
    const TimePoint t0 = Clock::now();
    server.stop();
    // Still connected, within the grace period: the exchange goes on.
    co_await sleep_ms(30);
    Connected late = co_await net::connect(addr, 2s);
    const std::error_code connect_after_stop = late ? std::error_code() : late.error;
    CHECK(connect_after_stop == std::errc::connection_refused);
    const bool after = co_await round_trip(&c.stream, "after stop: still echoed", 2s);
    const bool echoed_after_stop = before && after;
    CHECK(echoed_after_stop);
    (void)c.stream.shutdown(SHUT_WR);
    const std::string end = co_await wait_end(&c.stream, 2s);
    CHECK(end == "eof");
    const EchoStats stats = co_await serving;
    const std::uint64_t drain_ms = ms_since(t0);
    CHECK(stats.accepted == 1);
    CHECK(stats.cut_off == 0);
    CHECK(stats.errors == 0);
    CHECK(stats.active == 0);
    CHECK(stats.bytes ==
          std::string("before stop").size() + std::string("after stop: still echoed").size());
    // serve() returned when the client left, not at the end of the 5 s grace.
    CHECK(drain_ms < 2000);
  });
}

TEST_CASE("echo server: a connect in the same turn as stop() is refused, not accepted then reset",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected c = co_await net::connect(addr, 5s);
    REQUIRE(c);
    const bool served_before = co_await round_trip(&c.stream, "served", 2s);
    CHECK(served_before);
    server.stop();
    // No turn of the loop in between: the connect goes to the kernel together
    // with whatever stop() asked of it.
    Connected late = co_await net::connect(addr, 2s);
    std::string late_result;
    if (!late) {
      late_result = late.error == std::errc::connection_refused ? "refused" : late.error.message();
    } else {
      (void)co_await late.stream.send_all("anyone there?", 1s);
      const std::string late_end = co_await wait_end(&late.stream, 2s);
      late_result = "connected, then " + late_end;
    }
    CHECK(late_result == "refused");
    (void)c.stream.shutdown(SHUT_WR);
    const std::string client_end = co_await wait_end(&c.stream, 2s);
    CHECK(client_end == "eof");
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == 1);
    CHECK(stats.active == 0);
  });
}

TEST_CASE("echo server: a client still connected when the grace period ends is cut off",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoOptions opt;
    opt.grace = 100ms;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected c = co_await net::connect(server.local_address(), 5s);
    REQUIRE(c);
    const bool ok = co_await round_trip(&c.stream, "hello", 2s);
    REQUIRE(ok);
    const TimePoint t0 = Clock::now();
    server.stop();
    const std::string end = co_await wait_end(&c.stream, 5s);
    const std::uint64_t end_ms = ms_since(t0);  // stop() to the client seeing the end
    const EchoStats stats = co_await serving;
    const std::uint64_t serve_ms = ms_since(t0);  // stop() to serve() returning
    CHECK(end == "eof");
    CHECK(end_ms >= 90);
    CHECK(end_ms < 2000);
    CHECK(serve_ms >= 90);
    CHECK(serve_ms < 2000);
    CHECK(stats.cut_off == 1);
    CHECK(stats.accepted == 1);
    CHECK(stats.active == 0);
    CHECK(stats.bytes == 5);
  });
}

// ---- max_connections ----

TEST_CASE("echo server: max_connections 2 turns a third client away, the first two go on",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoOptions opt;
    opt.max_connections = 2;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected c1 = co_await net::connect(addr, 5s);
    Connected c2 = co_await net::connect(addr, 5s);
    REQUIRE(c1);
    REQUIRE(c2);
    const bool e1 = co_await round_trip(&c1.stream, "one", 2s);
    const bool e2 = co_await round_trip(&c2.stream, "two", 2s);
    const bool first_two_echo = e1 && e2;
    CHECK(first_two_echo);
    // Both are being served: a third is over the limit.
    const TimePoint t0 = Clock::now();
    Connected c3 = co_await net::connect(addr, 5s);
    std::string third_end;
    if (c3) {
      (void)co_await c3.stream.send_all("three", 1s);  // may fail: the server closed it
      third_end = co_await wait_end(&c3.stream, 3s);
    } else {
      third_end = "connect failed: " + c3.error.message();
    }
    const std::uint64_t third_ms = ms_since(t0);
    CAPTURE(third_end);
    CHECK((third_end == "eof" || third_end == "reset"));
    CHECK(third_ms < 1000);
    CHECK(server.stats().rejected == 1);
    const bool a1 = co_await round_trip(&c1.stream, "one again", 2s);
    const bool a2 = co_await round_trip(&c2.stream, "two again", 2s);
    const bool first_two_echo_after = a1 && a2;
    CHECK(first_two_echo_after);
    // Ending the first frees a slot.
    (void)c1.stream.shutdown(SHUT_WR);
    const std::string end1 = co_await wait_end(&c1.stream, 2s);
    const bool freed = co_await eventually([&server] { return server.stats().active == 1; }, 2s);
    bool fourth_echo_after_slot_freed = false;
    if (end1 == "eof" && freed) {
      Connected c4 = co_await net::connect(addr, 5s);
      if (c4) fourth_echo_after_slot_freed = co_await round_trip(&c4.stream, "four", 2s);
    }
    CHECK(fourth_echo_after_slot_freed);
    server.stop();
    c2.stream = TcpStream();
    const EchoStats stats = co_await serving;
    CHECK(stats.rejected == 1);
    CHECK(stats.accepted == 3);
    CHECK(stats.active == 0);
  });
}

namespace {

// Outcome of a client in a burst: "served" when its message came back.
Task<std::string> burst_client(Address addr) {
  Connected c = co_await net::connect(addr, 5s);
  if (!c) co_return "connect failed";
  const bool ok = co_await round_trip(&c.stream, "burst", 2s);
  if (ok) {
    // Hold the connection a little so that all three overlap.
    co_await sleep_ms(100);
    co_return "served";
  }
  co_return "rejected";
}

}  // namespace

TEST_CASE("echo server: max_connections holds when three clients arrive at once", "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoOptions opt;
    opt.max_connections = 2;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    std::vector<JoinHandle<std::string>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(burst_client(addr), "burst"));
    int served = 0;
    int rejected = 0;
    for (auto& h : hs) {
      const std::string s = co_await h;
      if (s == "served") ++served;
      if (s == "rejected") ++rejected;
    }
    CHECK(served == 2);
    CHECK(rejected == 1);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.accepted == 2);
    CHECK(stats.rejected == 1);
  });
}

// ---- idle_timeout ----

namespace {

// Sends a byte every `every` for `total`, checking each comes straight back.
Task<bool> chatty_client(TcpStream* stream, Duration every, Duration total) {
  const TimePoint until = Clock::now() + total;
  int n = 0;
  while (Clock::now() < until) {
    const std::string msg(1, static_cast<char>('a' + n++ % 26));
    const bool ok = co_await round_trip(stream, msg, 2s);
    if (!ok) co_return false;
    co_await coring::sleep_for(every);
  }
  co_return true;
}

}  // namespace

TEST_CASE("echo server: idle_timeout closes an idle client, not an active one", "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    const Duration timeout = 300ms;
    EchoOptions opt;
    opt.idle_timeout = timeout;
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    Connected idle = co_await net::connect(addr, 5s);
    Connected chatty = co_await net::connect(addr, 5s);
    REQUIRE(idle);
    REQUIRE(chatty);
    const TimePoint t0 = Clock::now();
    JoinHandle<bool> talker =
        coring::spawn(chatty_client(&chatty.stream, timeout / 6, timeout * 3), "chatty");
    const std::string idle_end = co_await wait_end(&idle.stream, timeout * 10);
    const std::uint64_t idle_ms = ms_since(t0);
    CHECK(idle_end == "eof");
    CHECK(idle_ms >= 250);
    CHECK(idle_ms < 2000);
    const bool chatty_ok = co_await talker;
    CHECK(chatty_ok);  // echoed for 3x the timeout without being closed
    CHECK(server.stats().timeouts == 1);
    CHECK(server.stats().active == 1);
    (void)chatty.stream.shutdown(SHUT_WR);
    const std::string chatty_end = co_await wait_end(&chatty.stream, 2s);
    CHECK(chatty_end == "eof");

    // A client that sends but never reads what comes back is cut off too: the
    // server's send makes no progress for idle_timeout.
    const int fd = raw_connect(addr);
    REQUIRE(fd >= 0);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const std::vector<char> chunk(64 * 1024, 'x');
    const TimePoint t1 = Clock::now();
    // Write until the pipe is full and stays full, then wait for the server.
    int stuck_rounds = 0;
    while (stuck_rounds < 3 && ms_since(t1) < 5000) {
      const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) {
        ++stuck_rounds;
        co_await sleep_ms(10);
      } else if (n < 0) {
        break;  // already cut off
      } else {
        stuck_rounds = 0;
      }
    }
    const TimePoint t2 = Clock::now();
    const bool nonreader_cut =
        co_await eventually([&server] { return server.stats().timeouts == 2; }, timeout * 20);
    const std::uint64_t nonreader_cut_ms = ms_since(t2);
    ::close(fd);
    CHECK(nonreader_cut);
    CHECK(nonreader_cut_ms < 3000);

    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.timeouts == 2);
    CHECK(stats.accepted == 3);
    CHECK(stats.active == 0);
  });
}

// ---- callbacks ----

TEST_CASE("echo server: on_connect and on_disconnect get each client's address", "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    std::vector<std::string> connected;
    std::vector<std::string> disconnected;
    std::vector<std::string> clients;
    EchoOptions opt;
    opt.on_connect = [&connected](const Address& peer) { connected.push_back(peer.to_string()); };
    opt.on_disconnect = [&disconnected](const Address& peer) {
      disconnected.push_back(peer.to_string());
    };
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)), std::move(opt));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    std::vector<Connected> cs;
    for (int i = 0; i < 3; ++i) {
      Connected c = co_await net::connect(addr, 5s);
      REQUIRE(c);
      clients.push_back(c.stream.local_address().to_string());
      const bool ok = co_await round_trip(&c.stream, "hi", 2s);
      REQUIRE(ok);
      cs.push_back(std::move(c));
    }
    const std::size_t disconnects_before_close = disconnected.size();
    CHECK(disconnects_before_close == 0);
    for (auto& c : cs) {
      (void)c.stream.shutdown(SHUT_WR);
      const std::string end = co_await wait_end(&c.stream, 2s);
      CHECK(end == "eof");
    }
    server.stop();
    EchoStats st = co_await serving;
    CHECK(st.accepted == 3);
    REQUIRE(clients.size() == 3);
    CHECK(connected == clients);  // one call each, in order of arrival
    auto sorted = [](std::vector<std::string> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    CHECK(sorted(disconnected) == sorted(clients));
    for (const auto& a : clients) CHECK(a.rfind("127.0.0.1:", 0) == 0);
  });
}

// ---- a peer that resets ----

namespace {

// Sends without reading until the server is stuck echoing to it, then closes
// with RST.
Task<ClientResult> resetting_client(Address addr, std::size_t* written) {
  ClientResult out;
  const int fd = raw_connect(addr);
  if (fd < 0) {
    out.connect_error = std::error_code(errno, std::system_category());
    co_return out;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::vector<std::byte> chunk = random_bytes(64 * 1024, 99);
  // Send without reading until neither side's buffers take more: the server is
  // now stuck in the middle of echoing to us.
  int stuck_rounds = 0;
  const TimePoint t0 = Clock::now();
  while (stuck_rounds < 5 && ms_since(t0) < 5000) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      *written += static_cast<std::size_t>(n);
      stuck_rounds = 0;
    } else {
      ++stuck_rounds;
      co_await sleep_ms(5);
    }
  }
  set_linger_zero(fd);
  ::close(fd);  // RST
  co_return out;
}

}  // namespace

TEST_CASE("echo server: a peer that resets mid-stream counts as an error, others carry on",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
    const Address addr = server.local_address();
    JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
    std::vector<std::size_t> sizes;
    std::vector<JoinHandle<ClientResult>> handles;
    for (std::size_t i = 0; i < 6; ++i) {
      const std::size_t size = (256u << 10) + i * 1000;
      sizes.push_back(size);
      handles.push_back(coring::spawn(echo_client(addr, random_bytes(size, 500 + i)), "client"));
    }
    std::size_t reset_written = 0;
    JoinHandle<ClientResult> resetter =
        coring::spawn(resetting_client(addr, &reset_written), "resetter");
    ClientResult rr = co_await resetter;
    CHECK(!rr.connect_error);
    CHECK(reset_written > 0);
    const bool error_counted =
        co_await eventually([&server] { return server.stats().errors == 1; }, 5s);
    CHECK(error_counted);
    std::vector<ClientResult> results;
    for (auto& h : handles) {
      ClientResult r = co_await h;
      results.push_back(r);
    }
    REQUIRE(results.size() == sizes.size());
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      CAPTURE(i);
      require_clean_echo(results[i], sizes[i]);
      total += sizes[i];
    }
    CHECK(server.stats().active == 0);
    server.stop();
    const EchoStats stats = co_await serving;
    CHECK(stats.errors == 1);
    CHECK(stats.accepted == 7);
    CHECK(stats.bytes >= total);
    CHECK(stats.bytes <= total + reset_written);
    CHECK(stats.active == 0);
  });
}

// ---- serve_echo cancelled ----

TEST_CASE("serve_echo cancelled through its JoinHandle: cancelled, connections closed, no fd left",
          "[net][echo]") {
  coring_test::run_checking_fds([]() -> Task<void> {
    const std::size_t fds_at_start = coring_test::count_open_fds();
    TcpListener listener = TcpListener::bind(Address::loopback_v4(0));
    const Address addr = listener.local_address();
    JoinHandle<EchoStats> serving =
        coring::spawn(net::serve_echo(std::move(listener), EchoOptions{}), "serve_echo");
    std::vector<Connected> cs;
    bool all_ok = true;
    for (int i = 0; i < 4; ++i) {
      Connected c = co_await net::connect(addr, 5s);
      REQUIRE(c);
      const bool ok = co_await round_trip(&c.stream, "before cancel", 2s);
      all_ok = all_ok && ok;
      cs.push_back(std::move(c));
    }
    CHECK(all_ok);
    // 4 clients and 4 server sides were open, plus the listener.
    const std::size_t fds_with_clients = coring_test::count_open_fds();
    CHECK(fds_with_clients >= fds_at_start + 8);
    serving.cancel();
    const coring::Outcome<EchoStats> ended = co_await serving.join();
    CHECK(ended.cancelled());
    // Every connection was shut down by the cancelled server.
    std::string client_end = co_await wait_end(&cs[0].stream, 2s);
    for (std::size_t i = 1; i < cs.size(); ++i) {
      const std::string e = co_await wait_end(&cs[i].stream, 2s);
      if (e != client_end) client_end += " / " + e;
    }
    CHECK(client_end == "eof");
    Connected late = co_await net::connect(addr, 2s);
    const std::error_code connect_after = late ? std::error_code() : late.error;
    CHECK(connect_after == std::errc::connection_refused);
    cs.clear();
    late.stream = TcpStream();
    const bool fds_back = co_await eventually(
        [fds_at_start] { return coring_test::count_open_fds() == fds_at_start; }, 3s);
    const std::size_t fds_after = coring_test::count_open_fds();
    CAPTURE(fds_at_start, fds_after);
    CHECK(fds_back);
  });
}

// ---- out of fds ----

namespace {

// Sends `msg` on a non-blocking raw socket and polls (from the loop) for its echo.
Task<bool> raw_round_trip(int fd, std::string msg, Duration timeout) {
  if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    co_return false;
  }
  std::string got;
  const TimePoint until = Clock::now() + timeout;
  char buf[256];
  while (got.size() < msg.size() && Clock::now() < until) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      co_return false;
    } else {
      co_await sleep_ms(2);
    }
  }
  co_return got == msg;
}

struct FdPauseOutcome {
  bool limit_lowered = false;
  bool paused = false;
  std::uint64_t accepted_while_paused = 0;
  std::uint64_t live_fd_pauses = 0;  // server.stats() just before stop()
  int served_after = 0;
  EchoStats stats;
};

// Accepting runs out of fds (RLIMIT_NOFILE lowered to the next free fd), the
// clients wait in the backlog, and are served once fds are available again.
// Shared by the next two tests, which check different parts of the outcome;
// it records instead of asserting, as no Catch assertion may run while the fd
// limit leaves no fd free.
Task<FdPauseOutcome> fd_pause_scenario() {
  FdPauseOutcome out;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  // Everything that needs an fd comes before the limit: the clients' sockets.
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int next_fd = ::dup(0);
  ::close(next_fd);
  // The accept is armed (and reads the limit) when serve() first accepts.
  NofileLimit limit(static_cast<rlim_t>(next_fd));
  out.limit_lowered = limit.ok();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  for (int fd : clients) {
    if (fd >= 0) (void)::connect(fd, addr.sockaddr_ptr(), addr.sockaddr_len());
  }
  out.paused = co_await eventually([&server] { return server.stats().fd_pauses >= 1; }, 2s);
  co_await sleep_ms(30);
  out.accepted_while_paused = server.stats().accepted;
  limit.restore();
  for (int fd : clients) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const bool ok = co_await raw_round_trip(fd, "after the pause", 3s);
    if (ok) ++out.served_after;
  }
  out.live_fd_pauses = server.stats().fd_pauses;
  for (int fd : clients) ::close(fd);
  (void)co_await eventually([&server] { return server.stats().active == 0; }, 2s);
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

}  // namespace

TEST_CASE("echo server: out of fds, accepting pauses; the waiting clients are served after",
          "[net][echo]") {
  const std::size_t fds = coring_test::count_open_fds();
  FdPauseOutcome out;
  {
    EventLoop loop;
    out = loop.run(fd_pause_scenario());
  }
  REQUIRE(out.limit_lowered);
  CHECK(out.paused);
  CHECK(out.accepted_while_paused == 0);
  CHECK(out.served_after == 3);
  CHECK(out.live_fd_pauses >= 1);
  CHECK(out.stats.accepted == 3);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: serve()'s totals after stop() keep the fd_pauses count", "[net][echo]") {
  const std::size_t fds = coring_test::count_open_fds();
  FdPauseOutcome out;
  {
    EventLoop loop;
    out = loop.run(fd_pause_scenario());
  }
  REQUIRE(out.limit_lowered);
  REQUIRE(out.live_fd_pauses >= 1);
  CHECK(out.stats.fd_pauses == out.live_fd_pauses);
  CHECK(coring_test::count_open_fds() == fds);
}
