// Seed recipe: storing thread-specific state (Python Cookbook 12.6) -- the
// LazyConnection whose socket lives in threading.local(), so that threads
// sharing one LazyConnection each get their own sockets; its second version keeps
// a stack of sockets per thread, so that `with conn as s1, conn as s2` works.
// test() fetches /index.html ("Got N bytes") and then /downloads and /index.html
// over two interleaved connections ("resp1 got N bytes", "resp2 got N bytes"),
// run in 2 threads and then in 3.
//
// In coring threading.local() is coring::TaskLocal<T>: every spawned task sees a
// stack of its own. `with` becomes `co_await conn.enter()` / `co_await conn.exit()`.
// Instead of www.python.org the demo serves both pages itself: a tiny HTTP/1.0
// server on 127.0.0.1 (a free port) in the same loop, so it needs no network.
// The tasks run concurrently; their lines are printed in a fixed order (task by
// task within each step) so that the output is the same on every run.
//
// Run: ./lazy_connection [--time-scale=F]   (accepted for the demo harness; no sleeps here)
#include <fmt/core.h>
#include <sys/socket.h>
#include <coring/coring.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "demo_options.hpp"

namespace {

namespace net = coring::net;
using namespace std::chrono_literals;

// ---- The seed's LazyConnection (second version) -------------------------------

class LazyConnection {
 public:
  explicit LazyConnection(net::Address address) : address_(address) {}

  // __enter__: connects and pushes the socket on this task's stack. The pointer
  // stays valid until the matching exit().
  coring::Task<net::TcpStream*> enter() {
    net::Connected c = co_await net::connect(address_, 5s);
    if (!c) throw std::system_error(c.error, fmt::format("connect to {}", address_));
    // A deque, not a vector: pushing a second socket (`with conn as s1, conn as
    // s2`) must not move the first one away from under s1.
    std::deque<net::TcpStream>& connections = co_await local_.get();
    connections.push_back(std::move(c.stream));
    co_return &connections.back();
  }

  // __exit__: pops this task's most recent socket and closes it.
  coring::Task<void> exit() {
    std::deque<net::TcpStream>& connections = co_await local_.get();
    net::TcpStream sock = std::move(connections.back());
    connections.pop_back();
    (void)co_await sock.close();
  }

 private:
  net::Address address_;
  coring::TaskLocal<std::deque<net::TcpStream>> local_;
};

// ---- A tiny HTTP/1.0 server standing in for www.python.org -------------------

constexpr std::string_view kIndexBody =
    "<html><head><title>coring</title></head>\n"
    "<body><h1>Welcome to coring</h1><p>A C++20 coroutine runtime on io_uring.</p></body>\n"
    "</html>\n";
constexpr std::string_view kDownloadsBody =
    "<html><head><title>Downloads</title></head>\n"
    "<body><h1>Downloads</h1><ul><li>coring-0.1.0.tar.gz</li></ul></body>\n"
    "</html>\n";
constexpr std::string_view kNotFoundBody = "not found\n";

// Reads the request up to its blank line, answers, closes.
coring::Task<void> http_reply(net::TcpStream stream) {
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    net::Received r = co_await stream.recv(5s);
    if (!r || request.size() > 64 * 1024) co_return;  // closed early, or not HTTP
    request.append(r.buffer.as_string_view());
  }
  // "GET /path HTTP/1.0"
  const std::size_t sp1 = request.find(' ');
  const std::size_t sp2 = request.find(' ', sp1 + 1);
  const std::string_view path = sp1 == std::string::npos || sp2 == std::string::npos
                                    ? std::string_view()
                                    : std::string_view(request).substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view status = "200 OK";
  std::string_view body = kNotFoundBody;
  if (path == "/index.html" || path == "/") {
    body = kIndexBody;
  } else if (path == "/downloads") {
    body = kDownloadsBody;
  } else {
    status = "404 Not Found";
  }
  const std::string response =
      fmt::format("HTTP/1.0 {}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{}", status,
                  body.size(), body);
  (void)co_await stream.send_all(response);
  (void)co_await stream.close();
}

coring::Task<void> http_server(net::TcpListener* listener) {
  for (;;) {
    net::Accepted a = co_await listener->accept();
    if (!a) co_return;  // the listener was closed
    coring::spawn(http_reply(std::move(a.stream)), "http reply").detach();
  }
}

// ---- Printing in a fixed order ------------------------------------------------

// Each line has a ticket; a line is printed once every ticket before it has
// been printed or skipped (a task that failed skips its remaining tickets).
class Turns {
 public:
  explicit Turns(std::size_t tickets) : ready_(tickets), state_(tickets, kPending) {
    if (tickets != 0) ready_[0].set();
  }

  coring::Task<void> say(std::size_t ticket, std::string line) {
    co_await ready_[ticket].wait();
    fmt::print("{}\n", line);
    std::fflush(stdout);
    state_[ticket] = kDone;
    advance();
  }
  void skip(std::size_t ticket) {
    if (state_[ticket] != kPending) return;
    state_[ticket] = kSkipped;
    advance();
  }

 private:
  enum State : char { kPending, kDone, kSkipped };
  void advance() {
    while (next_ < state_.size() && state_[next_] != kPending) ++next_;
    if (next_ < state_.size()) ready_[next_].set();
  }

  std::vector<coring::Event> ready_;
  std::vector<State> state_;
  std::size_t next_ = 0;
};

// ---- The seed's test() ----------------------------------------------------------

// s.recv(8192) until b'': the whole response, headers included.
coring::Task<std::size_t> recv_all(net::TcpStream* s) {
  std::size_t total = 0;
  for (;;) {
    net::Received r = co_await s->recv(5s);
    if (r.eof()) co_return total;
    if (!r) throw std::system_error(r.error, "recv");
    total += r.size();
  }
}

// s.send(text), failing loudly.
coring::Task<void> send_text(net::TcpStream* s, std::string_view text) {
  const net::SendResult w = co_await s->send_all(text);
  if (!w) throw std::system_error(w.error, "send");
}

coring::Task<std::size_t> fetch_index(LazyConnection* conn) {
  net::TcpStream* s = co_await conn->enter();  // with conn as s:
  co_await send_text(s, "GET /index.html HTTP/1.0\r\n");
  co_await send_text(s, "Host: www.python.org\r\n");
  co_await send_text(s, "\r\n");
  const std::size_t n = co_await recv_all(s);
  co_await conn->exit();
  co_return n;
}

// The first test(): one connection.
coring::Task<bool> test_one(LazyConnection* conn, Turns* turns, std::size_t me) {
  bool ok = true;
  try {
    const std::size_t n = co_await fetch_index(conn);
    co_await turns->say(me, fmt::format("Got {} bytes", n));
  } catch (const std::exception& e) {
    fmt::print(stderr, "lazy_connection: task {}: {}\n", me, e.what());
    ok = false;
  }
  turns->skip(me);
  co_return ok;
}

// The second test(): then two connections of the same task at once. Line
// `step` of task `me` has ticket step * tasks + me.
coring::Task<bool> test_two(LazyConnection* conn, Turns* turns, std::size_t me, std::size_t tasks) {
  bool ok = true;
  try {
    const std::size_t n = co_await fetch_index(conn);
    co_await turns->say(me, fmt::format("Got {} bytes", n));

    net::TcpStream* s1 = co_await conn->enter();  // with conn as s1, conn as s2:
    net::TcpStream* s2 = co_await conn->enter();
    co_await send_text(s1, "GET /downloads HTTP/1.0\r\n");
    co_await send_text(s2, "GET /index.html HTTP/1.0\r\n");
    co_await send_text(s1, "Host: www.python.org\r\n");
    co_await send_text(s2, "Host: www.python.org\r\n");
    co_await send_text(s1, "\r\n");
    co_await send_text(s2, "\r\n");
    const std::size_t resp1 = co_await recv_all(s1);
    const std::size_t resp2 = co_await recv_all(s2);
    co_await conn->exit();  // s2
    co_await conn->exit();  // s1

    co_await turns->say(tasks + me, fmt::format("resp1 got {} bytes", resp1));
    co_await turns->say(2 * tasks + me, fmt::format("resp2 got {} bytes", resp2));
  } catch (const std::exception& e) {
    fmt::print(stderr, "lazy_connection: task {}: {}\n", me, e.what());
    ok = false;
  }
  for (std::size_t step = 0; step < 3; ++step) turns->skip(step * tasks + me);
  co_return ok;
}

coring::Task<int> main_task() {
  net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  coring::JoinHandle<void> server = coring::spawn(http_server(&listener), "http server");
  LazyConnection conn(listener.local_address());  // ('www.python.org', 80) in the seed
  bool ok = true;

  {  // t1, t2 = Thread(target=test, args=(conn,)); start; join
    constexpr std::size_t kTasks = 2;
    Turns turns(kTasks);
    std::vector<coring::JoinHandle<bool>> tasks;
    for (std::size_t i = 0; i < kTasks; ++i) {
      tasks.push_back(coring::spawn(test_one(&conn, &turns, i), "test"));
    }
    for (coring::JoinHandle<bool>& t : tasks) ok = co_await t && ok;
  }
  {  // the second test() in t1, t2, t3
    constexpr std::size_t kTasks = 3;
    Turns turns(3 * kTasks);
    std::vector<coring::JoinHandle<bool>> tasks;
    for (std::size_t i = 0; i < kTasks; ++i) {
      tasks.push_back(coring::spawn(test_two(&conn, &turns, i, kTasks), "test"));
    }
    for (coring::JoinHandle<bool>& t : tasks) ok = co_await t && ok;
  }

  listener.close();  // the server's accept() ends
  co_await server;
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    (void)demo::parse_time_scale(argc, argv);  // accepted for the harness; nothing sleeps
    return coring::run(main_task());
  } catch (const std::exception& e) {
    fmt::print(stderr, "lazy_connection: {}\n", e.what());
    return 1;
  }
}
