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

// ---- scenarios ----

constexpr std::size_t kSizes[] = {0,     1,     63,    64,       4095,
                                  16384, 16385, 65536, 1u << 20, (1u << 20) + 1};

struct ManyOutcome {
  std::vector<std::size_t> sizes;
  std::vector<ClientResult> results;
  EchoStats stats;
  EchoStats live_stats;  // just before stop()
  std::error_code after_stop;
  std::uint64_t serve_ms = 0;
};

Task<ManyOutcome> many_clients(std::size_t clients) {
  ManyOutcome out;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::vector<JoinHandle<ClientResult>> handles;
  for (std::size_t i = 0; i < clients; ++i) {
    const std::size_t size = kSizes[i % std::size(kSizes)];
    out.sizes.push_back(size);
    handles.push_back(coring::spawn(echo_client(addr, random_bytes(size, 1000 + i)), "client"));
  }
  for (auto& h : handles) {
    ClientResult r = co_await h;
    out.results.push_back(r);
  }
  out.live_stats = server.stats();
  const TimePoint t0 = Clock::now();
  server.stop();
  out.stats = co_await serving;
  out.serve_ms = ms_since(t0);
  // A moment for the loop to take the listener's accept out of the kernel (see
  // the "at once" test below for a connect in the very same turn as stop()).
  co_await sleep_ms(20);
  Connected late = co_await net::connect(addr, 2s);
  out.after_stop = late ? std::error_code() : late.error;
  co_return out;
}

struct HalfCloseOutcome {
  ClientResult r;
  std::size_t size = 0;
  bool recv_after_eof_is_eof = false;
  SendResult send_after_shutdown;
  EchoStats stats;
};

Task<HalfCloseOutcome> half_close(std::size_t size) {
  HalfCloseOutcome out;
  out.size = size;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  const std::vector<std::byte> data = random_bytes(size, 7);
  Connected c = co_await net::connect(server.local_address(), 5s);
  if (!c) {
    out.r.connect_error = c.error;
    server.stop();
    (void)co_await serving;
    co_return out;
  }
  SendResult w = co_await c.stream.send_all(std::span<const std::byte>(data), 5s);
  out.r.sent = w.bytes;
  out.r.send_error = w.error;
  (void)c.stream.shutdown(SHUT_WR);
  // Let the server see the EOF before we read a single byte of the echo.
  co_await sleep_ms(50);
  co_await recv_until_eof(&c.stream, &data, &out.r);
  Received again = co_await c.stream.recv(1s);
  out.recv_after_eof_is_eof = again.eof();
  // Our side is shut: a send must fail, not hang or raise SIGPIPE.
  out.send_after_shutdown = co_await c.stream.send_all("late", 1s);
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

struct GracefulOutcome {
  bool echoed_after_stop = false;
  std::string end;  // how the client's connection ended
  std::error_code connect_after_stop;
  EchoStats stats;
  std::uint64_t drain_ms = 0;
};

Task<GracefulOutcome> graceful_stop() {
  GracefulOutcome out;
  EchoOptions opt;
  opt.grace = 5s;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  Connected c = co_await net::connect(addr, 5s);
  if (!c) co_return out;
  const bool before = co_await round_trip(&c.stream, "before stop", 2s);
  const TimePoint t0 = Clock::now();
  server.stop();
  // Still connected, within the grace period: the exchange goes on.
  co_await sleep_ms(30);
  Connected late = co_await net::connect(addr, 2s);
  out.connect_after_stop = late ? std::error_code() : late.error;
  const bool after = co_await round_trip(&c.stream, "after stop: still echoed", 2s);
  out.echoed_after_stop = before && after;
  (void)c.stream.shutdown(SHUT_WR);
  out.end = co_await wait_end(&c.stream, 2s);
  out.stats = co_await serving;
  out.drain_ms = ms_since(t0);
  co_return out;
}

struct AtOnceOutcome {
  bool served_before = false;
  std::string late;  // what a connect in the same turn as stop() got
  std::string client_end;
  EchoStats stats;
};

Task<AtOnceOutcome> connect_right_after_stop() {
  AtOnceOutcome out;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  Connected c = co_await net::connect(addr, 5s);
  if (!c) co_return out;
  out.served_before = co_await round_trip(&c.stream, "served", 2s);
  server.stop();
  // No turn of the loop in between: the connect goes to the kernel together
  // with whatever stop() asked of it.
  Connected late = co_await net::connect(addr, 2s);
  if (!late) {
    out.late = late.error == std::errc::connection_refused ? "refused" : late.error.message();
  } else {
    (void)co_await late.stream.send_all("anyone there?", 1s);
    out.late = "connected, then " + co_await wait_end(&late.stream, 2s);
  }
  (void)c.stream.shutdown(SHUT_WR);
  out.client_end = co_await wait_end(&c.stream, 2s);
  out.stats = co_await serving;
  co_return out;
}

struct GraceExpiryOutcome {
  std::string end;
  std::uint64_t end_ms = 0;    // stop() to the client seeing the end
  std::uint64_t serve_ms = 0;  // stop() to serve() returning
  EchoStats stats;
};

Task<GraceExpiryOutcome> grace_expiry(Duration grace) {
  GraceExpiryOutcome out;
  EchoOptions opt;
  opt.grace = grace;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  Connected c = co_await net::connect(server.local_address(), 5s);
  if (!c) co_return out;
  const bool ok = co_await round_trip(&c.stream, "hello", 2s);
  if (!ok) co_return out;
  const TimePoint t0 = Clock::now();
  server.stop();
  out.end = co_await wait_end(&c.stream, 5s);
  out.end_ms = ms_since(t0);
  out.stats = co_await serving;
  out.serve_ms = ms_since(t0);
  co_return out;
}

struct MaxConnOutcome {
  bool first_two_echo = false;
  std::string third_end;
  std::uint64_t third_ms = 0;
  std::uint64_t rejected_after_third = 0;
  bool first_two_echo_after = false;
  bool fourth_echo_after_slot_freed = false;
  EchoStats stats;
};

Task<MaxConnOutcome> max_connections_sequential() {
  MaxConnOutcome out;
  EchoOptions opt;
  opt.max_connections = 2;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  Connected c1 = co_await net::connect(addr, 5s);
  Connected c2 = co_await net::connect(addr, 5s);
  if (!c1 || !c2) co_return out;
  const bool e1 = co_await round_trip(&c1.stream, "one", 2s);
  const bool e2 = co_await round_trip(&c2.stream, "two", 2s);
  out.first_two_echo = e1 && e2;
  // Both are being served: a third is over the limit.
  const TimePoint t0 = Clock::now();
  Connected c3 = co_await net::connect(addr, 5s);
  if (c3) {
    (void)co_await c3.stream.send_all("three", 1s);  // may fail: the server closed it
    out.third_end = co_await wait_end(&c3.stream, 3s);
  } else {
    out.third_end = "connect failed: " + c3.error.message();
  }
  out.third_ms = ms_since(t0);
  out.rejected_after_third = server.stats().rejected;
  const bool a1 = co_await round_trip(&c1.stream, "one again", 2s);
  const bool a2 = co_await round_trip(&c2.stream, "two again", 2s);
  out.first_two_echo_after = a1 && a2;
  // Ending the first frees a slot.
  (void)c1.stream.shutdown(SHUT_WR);
  const std::string end1 = co_await wait_end(&c1.stream, 2s);
  const bool freed = co_await eventually([&server] { return server.stats().active == 1; }, 2s);
  if (end1 == "eof" && freed) {
    Connected c4 = co_await net::connect(addr, 5s);
    if (c4) out.fourth_echo_after_slot_freed = co_await round_trip(&c4.stream, "four", 2s);
  }
  server.stop();
  c2.stream = TcpStream();
  out.stats = co_await serving;
  co_return out;
}

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

struct BurstOutcome {
  int served = 0;
  int rejected = 0;
  EchoStats stats;
};

Task<BurstOutcome> max_connections_burst() {
  BurstOutcome out;
  EchoOptions opt;
  opt.max_connections = 2;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::vector<JoinHandle<std::string>> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(burst_client(addr), "burst"));
  for (auto& h : hs) {
    const std::string s = co_await h;
    if (s == "served") ++out.served;
    if (s == "rejected") ++out.rejected;
  }
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

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

struct IdleOutcome {
  std::string idle_end;
  std::uint64_t idle_ms = 0;
  bool chatty_ok = false;
  std::uint64_t timeouts_while_chatty = 0;
  std::uint64_t active_while_chatty = 0;
  std::string chatty_end;
  std::uint64_t nonreader_cut_ms = 0;
  bool nonreader_cut = false;
  EchoStats stats;
};

Task<IdleOutcome> idle_timeout(Duration timeout) {
  IdleOutcome out;
  EchoOptions opt;
  opt.idle_timeout = timeout;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), opt);
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  Connected idle = co_await net::connect(addr, 5s);
  Connected chatty = co_await net::connect(addr, 5s);
  if (!idle || !chatty) co_return out;
  const TimePoint t0 = Clock::now();
  JoinHandle<bool> talker =
      coring::spawn(chatty_client(&chatty.stream, timeout / 6, timeout * 3), "chatty");
  out.idle_end = co_await wait_end(&idle.stream, timeout * 10);
  out.idle_ms = ms_since(t0);
  out.chatty_ok = co_await talker;
  out.timeouts_while_chatty = server.stats().timeouts;
  out.active_while_chatty = server.stats().active;
  (void)chatty.stream.shutdown(SHUT_WR);
  out.chatty_end = co_await wait_end(&chatty.stream, 2s);

  // A client that sends but never reads what comes back is cut off too: the
  // server's send makes no progress for idle_timeout.
  const int fd = raw_connect(addr);
  if (fd >= 0) {
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
    out.nonreader_cut =
        co_await eventually([&server] { return server.stats().timeouts == 2; }, timeout * 20);
    out.nonreader_cut_ms = ms_since(t2);
    ::close(fd);
  }
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

struct CallbackOutcome {
  std::vector<std::string> connected;
  std::vector<std::string> disconnected;
  std::vector<std::string> clients;
  std::size_t disconnects_before_close = 0;
};

Task<void> callbacks_scenario(CallbackOutcome* out) {
  EchoOptions opt;
  opt.on_connect = [out](const Address& peer) { out->connected.push_back(peer.to_string()); };
  opt.on_disconnect = [out](const Address& peer) { out->disconnected.push_back(peer.to_string()); };
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)), std::move(opt));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::vector<Connected> cs;
  for (int i = 0; i < 3; ++i) {
    Connected c = co_await net::connect(addr, 5s);
    if (!c) co_return;
    out->clients.push_back(c.stream.local_address().to_string());
    const bool ok = co_await round_trip(&c.stream, "hi", 2s);
    if (!ok) co_return;
    cs.push_back(std::move(c));
  }
  out->disconnects_before_close = out->disconnected.size();
  for (auto& c : cs) {
    (void)c.stream.shutdown(SHUT_WR);
    const std::string end = co_await wait_end(&c.stream, 2s);
    CHECK(end == "eof");
  }
  server.stop();
  EchoStats st = co_await serving;
  CHECK(st.accepted == 3);
}

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

struct ResetOutcome {
  std::vector<std::size_t> sizes;
  std::vector<ClientResult> results;
  std::size_t reset_written = 0;
  bool error_counted = false;
  std::uint64_t active_after_reset = 0;
  EchoStats stats;
};

Task<ResetOutcome> peer_reset() {
  ResetOutcome out;
  EchoServer server(TcpListener::bind(Address::loopback_v4(0)));
  const Address addr = server.local_address();
  JoinHandle<EchoStats> serving = coring::spawn(server.serve(), "serve");
  std::vector<JoinHandle<ClientResult>> handles;
  for (std::size_t i = 0; i < 6; ++i) {
    const std::size_t size = (256u << 10) + i * 1000;
    out.sizes.push_back(size);
    handles.push_back(coring::spawn(echo_client(addr, random_bytes(size, 500 + i)), "client"));
  }
  JoinHandle<ClientResult> resetter =
      coring::spawn(resetting_client(addr, &out.reset_written), "resetter");
  ClientResult rr = co_await resetter;
  CHECK(!rr.connect_error);
  out.error_counted = co_await eventually([&server] { return server.stats().errors == 1; }, 5s);
  for (auto& h : handles) {
    ClientResult r = co_await h;
    out.results.push_back(r);
  }
  out.active_after_reset = server.stats().active;
  server.stop();
  out.stats = co_await serving;
  co_return out;
}

struct CancelOutcome {
  bool echoed = false;
  bool join_threw_cancelled = false;
  std::string client_end;
  std::error_code connect_after;
  std::size_t fds_with_clients = 0;
  std::size_t fds_before = 0;
  std::size_t fds_after = 0;
  bool fds_back = false;
};

Task<CancelOutcome> cancel_serve_echo() {
  CancelOutcome out;
  out.fds_before = coring_test::count_open_fds();
  TcpListener listener = TcpListener::bind(Address::loopback_v4(0));
  const Address addr = listener.local_address();
  JoinHandle<EchoStats> serving =
      coring::spawn(net::serve_echo(std::move(listener), EchoOptions{}), "serve_echo");
  std::vector<Connected> cs;
  bool all_ok = true;
  for (int i = 0; i < 4; ++i) {
    Connected c = co_await net::connect(addr, 5s);
    if (!c) co_return out;
    const bool ok = co_await round_trip(&c.stream, "before cancel", 2s);
    all_ok = all_ok && ok;
    cs.push_back(std::move(c));
  }
  out.echoed = all_ok;
  out.fds_with_clients = coring_test::count_open_fds();
  serving.cancel();
  const coring::Outcome<EchoStats> ended = co_await serving.join();
  out.join_threw_cancelled = ended.cancelled();
  // Every connection was shut down by the cancelled server.
  out.client_end = co_await wait_end(&cs[0].stream, 2s);
  for (std::size_t i = 1; i < cs.size(); ++i) {
    const std::string e = co_await wait_end(&cs[i].stream, 2s);
    if (e != out.client_end) out.client_end += " / " + e;
  }
  Connected late = co_await net::connect(addr, 2s);
  out.connect_after = late ? std::error_code() : late.error;
  cs.clear();
  late.stream = TcpStream();
  const std::size_t before = out.fds_before;
  out.fds_back =
      co_await eventually([before] { return coring_test::count_open_fds() == before; }, 3s);
  out.fds_after = coring_test::count_open_fds();
  co_return out;
}

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

TEST_CASE("echo server: 50 concurrent clients, sizes 0 B to 1 MiB+1, every byte checked", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  ManyOutcome out;
  {
    EventLoop loop;
    out = loop.run(many_clients(50));
  }
  REQUIRE(out.results.size() == 50);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < out.results.size(); ++i) {
    CAPTURE(i);
    require_clean_echo(out.results[i], out.sizes[i]);
    total += out.sizes[i];
  }
  CHECK(out.live_stats.active == 0);
  CHECK(out.stats.accepted == 50);
  CHECK(out.stats.bytes == total);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.active == 0);
  CHECK(out.stats.rejected == 0);
  CHECK(out.stats.timeouts == 0);
  CHECK(out.stats.cut_off == 0);
  CHECK(out.serve_ms < 1000);  // nothing to drain: serve() returns at once
  // The listener is gone: connecting now is refused.
  CHECK(out.after_stop == std::errc::connection_refused);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: a client that shuts down its sending side first still gets every byte",
          "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t size = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{40000});
  HalfCloseOutcome out;
  {
    EventLoop loop;
    out = loop.run(half_close(size));
  }
  require_clean_echo(out.r, size);
  CHECK(out.recv_after_eof_is_eof);
  CHECK(out.send_after_shutdown.error == std::errc::broken_pipe);
  CHECK(out.stats.accepted == 1);
  CHECK(out.stats.bytes == size);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: stop() lets a connected client finish within the grace period", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  GracefulOutcome out;
  {
    EventLoop loop;
    out = loop.run(graceful_stop());
  }
  CHECK(out.echoed_after_stop);
  CHECK(out.end == "eof");
  CHECK(out.connect_after_stop == std::errc::connection_refused);
  CHECK(out.stats.accepted == 1);
  CHECK(out.stats.cut_off == 0);
  CHECK(out.stats.errors == 0);
  CHECK(out.stats.active == 0);
  CHECK(out.stats.bytes ==
        std::string("before stop").size() + std::string("after stop: still echoed").size());
  // serve() returned when the client left, not at the end of the 5 s grace.
  CHECK(out.drain_ms < 2000);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: a connect in the same turn as stop() is refused, not accepted then reset",
          "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  AtOnceOutcome out;
  {
    EventLoop loop;
    out = loop.run(connect_right_after_stop());
  }
  CHECK(out.served_before);
  CHECK(out.late == "refused");
  CHECK(out.client_end == "eof");
  CHECK(out.stats.accepted == 1);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: a client still connected when the grace period ends is cut off", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  GraceExpiryOutcome out;
  {
    EventLoop loop;
    out = loop.run(grace_expiry(100ms));
  }
  CHECK(out.end == "eof");
  CHECK(out.end_ms >= 90);
  CHECK(out.end_ms < 2000);
  CHECK(out.serve_ms >= 90);
  CHECK(out.serve_ms < 2000);
  CHECK(out.stats.cut_off == 1);
  CHECK(out.stats.accepted == 1);
  CHECK(out.stats.active == 0);
  CHECK(out.stats.bytes == 5);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: max_connections 2 turns a third client away, the first two go on",
          "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  MaxConnOutcome out;
  {
    EventLoop loop;
    out = loop.run(max_connections_sequential());
  }
  CHECK(out.first_two_echo);
  CAPTURE(out.third_end);
  CHECK((out.third_end == "eof" || out.third_end == "reset"));
  CHECK(out.third_ms < 1000);
  CHECK(out.rejected_after_third == 1);
  CHECK(out.first_two_echo_after);
  CHECK(out.fourth_echo_after_slot_freed);
  CHECK(out.stats.rejected == 1);
  CHECK(out.stats.accepted == 3);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: max_connections holds when three clients arrive at once", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  BurstOutcome out;
  {
    EventLoop loop;
    out = loop.run(max_connections_burst());
  }
  CHECK(out.served == 2);
  CHECK(out.rejected == 1);
  CHECK(out.stats.accepted == 2);
  CHECK(out.stats.rejected == 1);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: idle_timeout closes an idle client, not an active one", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  IdleOutcome out;
  {
    EventLoop loop;
    out = loop.run(idle_timeout(300ms));
  }
  CHECK(out.idle_end == "eof");
  CHECK(out.idle_ms >= 250);
  CHECK(out.idle_ms < 2000);
  CHECK(out.chatty_ok);  // echoed for 3x the timeout without being closed
  CHECK(out.timeouts_while_chatty == 1);
  CHECK(out.active_while_chatty == 1);
  CHECK(out.chatty_end == "eof");
  // A client that never reads the echo is cut off by the same timeout.
  CHECK(out.nonreader_cut);
  CHECK(out.nonreader_cut_ms < 3000);
  CHECK(out.stats.timeouts == 2);
  CHECK(out.stats.accepted == 3);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: on_connect and on_disconnect get each client's address", "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  CallbackOutcome out;
  {
    EventLoop loop;
    loop.run(callbacks_scenario(&out));
  }
  REQUIRE(out.clients.size() == 3);
  CHECK(out.connected == out.clients);  // one call each, in order of arrival
  CHECK(out.disconnects_before_close == 0);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  CHECK(sorted(out.disconnected) == sorted(out.clients));
  for (const auto& a : out.clients) CHECK(a.rfind("127.0.0.1:", 0) == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: a peer that resets mid-stream counts as an error, others carry on",
          "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  ResetOutcome out;
  {
    EventLoop loop;
    out = loop.run(peer_reset());
  }
  CHECK(out.reset_written > 0);
  CHECK(out.error_counted);
  REQUIRE(out.results.size() == out.sizes.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < out.results.size(); ++i) {
    CAPTURE(i);
    require_clean_echo(out.results[i], out.sizes[i]);
    total += out.sizes[i];
  }
  CHECK(out.active_after_reset == 0);
  CHECK(out.stats.errors == 1);
  CHECK(out.stats.accepted == 7);
  CHECK(out.stats.bytes >= total);
  CHECK(out.stats.bytes <= total + out.reset_written);
  CHECK(out.stats.active == 0);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("serve_echo cancelled through its JoinHandle: cancelled, connections closed, no fd left",
          "[net]") {
  const std::size_t fds = coring_test::count_open_fds();
  CancelOutcome out;
  {
    EventLoop loop;
    out = loop.run(cancel_serve_echo());
  }
  CHECK(out.echoed);
  CHECK(out.join_threw_cancelled);
  CHECK(out.client_end == "eof");
  CHECK(out.connect_after == std::errc::connection_refused);
  // 4 clients and 4 server sides were open, plus the listener.
  CHECK(out.fds_with_clients >= out.fds_before + 8);
  CAPTURE(out.fds_before, out.fds_after);
  CHECK(out.fds_back);
  CHECK(coring_test::count_open_fds() == fds);
}

TEST_CASE("echo server: out of fds, accepting pauses; the waiting clients are served after",
          "[net]") {
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

TEST_CASE("echo server: serve()'s totals after stop() keep the fd_pauses count", "[net]") {
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
