// LocalHttpServer: a tiny HTTP/1.0 server for demos and tests, on the current
// loop, at 127.0.0.1 on a port the kernel picks. It answers GET requests from
// a fixed table of routes: a status and a body, optionally after a delay (a
// slow server), with or without Content-Length, or a raw reply sent verbatim (a
// malformed server). Unknown paths get 404. One request per connection; the
// connection is closed after the reply, as HTTP/1.0 does.
//
//   demo::LocalHttpServer server({{"/hello", demo::HttpRoute::ok("hi")},
//                                 {"/slow", demo::HttpRoute::ok("zzz").after(2s)}});
//   auto r = co_await coring::net::http_get(server.address(), "/hello", 1s);
//   co_await server.stop();
//
// State: a listener and the tasks serving it, in one shared state that the
// tasks keep alive. stop() closes the listener, cancels the connections still
// being served and waits until every task has ended; the destructor does the
// same without waiting (the tasks then unwind on the loop's next turn). Loop
// thread only. Not a general server: no keep-alive, no request bodies.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <coring/coring.hpp>

namespace demo {

struct HttpRoute {
  int status = 200;
  std::string body;
  coring::Duration delay{};    // wait this long before replying
  bool content_length = true;  // false: the body ends at EOF
  std::string raw;             // not empty: sent as the whole reply instead

  static HttpRoute ok(std::string body) { return with_status(200, std::move(body)); }
  static HttpRoute with_status(int status, std::string body) {
    HttpRoute r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static HttpRoute raw_reply(std::string text) {
    HttpRoute r;
    r.raw = std::move(text);
    return r;
  }
  [[nodiscard]] HttpRoute after(coring::Duration d) const {
    HttpRoute r = *this;
    r.delay = d;
    return r;
  }
  [[nodiscard]] HttpRoute until_eof() const {
    HttpRoute r = *this;
    r.content_length = false;
    return r;
  }
};

class LocalHttpServer {
 public:
  explicit LocalHttpServer(std::map<std::string, HttpRoute> routes)
      : state_(std::make_shared<State>()) {
    state_->routes = std::move(routes);
    state_->listener = coring::net::TcpListener::bind(coring::net::Address::loopback_v4(0));
    state_->address = state_->listener.local_address();
    accepting_ = coring::spawn(accept_loop(state_));
  }
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;
  ~LocalHttpServer() {
    if (accepting_.valid()) accepting_.cancel();
    for (auto& c : state_->connections) c.cancel();
  }

  [[nodiscard]] const coring::net::Address& address() const noexcept { return state_->address; }
  [[nodiscard]] std::string host_port() const { return state_->address.to_string(); }
  // Requests whose request line was read.
  [[nodiscard]] std::size_t requests() const noexcept { return state_->requests; }
  // The request line and headers of the last request, "\r\n" between lines.
  [[nodiscard]] const std::string& last_request() const noexcept { return state_->last_request; }

  // Stops accepting, cancels the connections in progress and waits for them.
  coring::Task<void> stop() {
    state_->listener.close();
    if (accepting_.valid()) {
      accepting_.cancel();
      (void)co_await accepting_.join();
    }
    std::vector<coring::JoinHandle<void>> conns = std::move(state_->connections);
    for (auto& c : conns) c.cancel();
    for (auto& c : conns) (void)co_await c.join();
  }

 private:
  struct State {
    std::map<std::string, HttpRoute> routes;
    coring::net::TcpListener listener;
    coring::net::Address address;
    std::vector<coring::JoinHandle<void>> connections;
    std::size_t requests = 0;
    std::string last_request;
  };

  static std::string reply_for(const HttpRoute& route) {
    if (!route.raw.empty()) return route.raw;
    std::string head = fmt::format("HTTP/1.0 {} {}\r\nContent-Type: text/plain\r\n", route.status,
                                   route.status == 200   ? "OK"
                                   : route.status == 404 ? "Not Found"
                                                         : "Other");
    if (route.content_length) head += fmt::format("Content-Length: {}\r\n", route.body.size());
    return head + "\r\n" + route.body;
  }

  static coring::Task<void> serve_one(std::shared_ptr<State> st, coring::net::TcpStream s) {
    using namespace std::chrono_literals;
    coring::net::BufferedReader in(s);
    coring::net::ReadResult request_line = co_await in.read_line(8192, 5s);
    if (!request_line) co_return;
    ++st->requests;
    std::string head(request_line.data);
    // "GET /path HTTP/1.0": the path is the second word.
    const std::size_t sp1 = head.find(' ');
    const std::size_t sp2 = sp1 == std::string::npos ? sp1 : head.find(' ', sp1 + 1);
    const std::string path =
        sp2 == std::string::npos ? std::string() : head.substr(sp1 + 1, sp2 - sp1 - 1);
    for (;;) {  // the headers, up to the blank line
      coring::net::ReadResult line = co_await in.read_line(8192, 5s);
      if (!line) co_return;
      if (line.data.empty()) break;
      head.append("\r\n").append(line.data);
    }
    st->last_request = head;

    auto it = st->routes.find(path);
    const HttpRoute not_found = HttpRoute::with_status(404, "not found\n");
    const HttpRoute& route = it != st->routes.end() ? it->second : not_found;
    if (route.delay > coring::Duration::zero()) co_await coring::sleep_for(route.delay);
    const std::string reply = reply_for(route);
    coring::net::SendResult w = co_await s.send_all(reply, 5s);
    (void)w;
    (void)s.shutdown(SHUT_WR);
    // Wait for the client to close first (an EOF), so the server side does not
    // linger in TIME_WAIT; give up after a while.
    for (;;) {
      coring::net::ReadResult rest =
          co_await in.read_some(coring::net::BufferedReader::kNoLimit, 5s);
      if (!rest) break;
    }
  }

  static coring::Task<void> accept_loop(std::shared_ptr<State> st) {
    for (;;) {
      coring::net::Accepted a = co_await st->listener.accept();
      if (!a) co_return;
      // Forget the connections that ended, so a long run does not grow the list.
      std::erase_if(st->connections, [](const coring::JoinHandle<void>& h) { return h.done(); });
      st->connections.push_back(coring::spawn(serve_one(st, std::move(a.stream))));
    }
  }

  std::shared_ptr<State> state_;
  coring::JoinHandle<void> accepting_;
};

}  // namespace demo
