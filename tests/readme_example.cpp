// The programs shown in README.md, kept compiling and correct by the test suite.
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "demos/local_http_server.hpp"
using namespace std::chrono_literals;

namespace readme {

coring::Task<int> slow_double(int x) {
  co_await coring::sleep_for(10ms);
  co_return 2 * x;
}

coring::Task<int> main_task() {
  auto a = coring::spawn(slow_double(20));
  int b = co_await slow_double(1);
  auto c = co_await coring::with_timeout(1ms, slow_double(5));
  co_return co_await a + b + c.value_or(0);
}

}  // namespace readme

TEST_CASE("the README's first program prints 42", "[runtime][readme]") {
  CHECK(coring::run(readme::main_task()) == 42);
}

namespace readme {

coring::Task<void> echo(coring::net::TcpStream s) {
  for (;;) {
    coring::net::Received r = co_await s.recv();
    if (!r) co_return;
    auto w = co_await s.send_all(r.data());
    if (!w) co_return;
  }
}

coring::Task<void> serve(coring::net::TcpListener listener) {
  for (;;) {
    coring::net::Accepted a = co_await listener.accept();
    if (!a) co_return;
    coring::spawn(echo(std::move(a.stream))).detach();
  }
}

// Drives the README's server: one client sends, half-closes and reads to EOF.
coring::Task<std::string> echo_once(std::string text) {
  auto listener = coring::net::TcpListener::bind(coring::net::Address::loopback_v4());
  const coring::net::Address where = listener.local_address();
  auto server = coring::spawn(serve(std::move(listener)));
  coring::net::Connected c = co_await coring::net::connect(where, 1s);
  if (!c) throw std::system_error(c.error);
  auto w = co_await c.stream.send_all(text);
  if (!w) throw std::system_error(w.error);
  (void)c.stream.shutdown(SHUT_WR);
  std::string back;
  for (;;) {
    coring::net::Received r = co_await c.stream.recv(2s);
    if (!r) break;
    back += r.buffer.as_string_view();
  }
  server.cancel();
  co_return back;
}

}  // namespace readme

TEST_CASE("the README's echo server echoes", "[net][readme]") {
  CHECK(coring::run(readme::echo_once("hello, coring")) == "hello, coring");
}

namespace readme {

// ---- the BufferedReader and http_get example ----

coring::Task<void> greet(coring::net::TcpStream s) {
  coring::net::BufferedReader in(s);
  for (;;) {
    coring::net::ReadResult line = co_await in.read_line(256, 30s);
    if (!line) co_return;
    const std::string reply = fmt::format("hello, {}\n", line.data);
    auto w = co_await s.send_all(reply);
    if (!w) co_return;
  }
}

coring::Task<int> status_of(coring::net::Address server) {
  coring::net::HttpResponse r = co_await coring::net::http_get(server, "/", 2s);
  co_return r ? r.status : -1;
}

// Drives greet(): two lines (LF and CRLF) in one send, then EOF.
coring::Task<std::string> greet_twice() {
  auto listener = coring::net::TcpListener::bind(coring::net::Address::loopback_v4());
  auto connecting = coring::spawn(coring::net::connect(listener.local_address(), 1s));
  coring::net::Accepted a = co_await listener.accept(1s);
  coring::net::Connected c = co_await connecting;
  if (!a || !c) throw std::runtime_error("no connection");
  auto server = coring::spawn(greet(std::move(a.stream)));
  auto w = co_await c.stream.send_all("ada\nbob\r\n");
  if (!w) throw std::system_error(w.error);
  (void)c.stream.shutdown(SHUT_WR);
  std::string back;
  for (;;) {
    coring::net::Received r = co_await c.stream.recv(2s);
    if (!r) break;
    back += r.buffer.as_string_view();
  }
  co_await server;
  co_return back;
}

coring::Task<std::pair<int, int>> statuses() {
  demo::LocalHttpServer server({{"/", demo::HttpRoute::ok("home")}});
  const int up = co_await status_of(server.address());
  co_await server.stop();
  const int down = co_await status_of(server.address());  // nothing listens any more
  co_return std::pair(up, down);
}

}  // namespace readme

TEST_CASE("the README's line protocol and http_get", "[net][readme]") {
  CHECK(coring::run(readme::greet_twice()) == "hello, ada\nhello, bob\n");
  CHECK(coring::run(readme::statuses()) == std::pair(200, -1));
}

namespace readme {

// ---- "Cancellation and timeouts" ----

coring::Task<void> echo_until_eof(coring::net::TcpStream& s) {
  for (;;) {
    coring::net::Received r = co_await s.recv();
    if (!r) co_return;
    auto w = co_await s.send_all(r.data());
    if (!w) co_return;
  }
}

coring::Task<void> say_goodbye(coring::net::TcpStream& s) {
  (void)co_await s.send_all("bye\n", 1s);  // with a timeout: a value, never a hang
}

coring::Task<void> session(coring::net::TcpStream s) {
  // However the echo loop ends -- EOF, an error, or this task cancelled -- the
  // goodbye is awaited (shielded from the cancel) before the task ends.
  co_await coring::try_finally(echo_until_eof(s), say_goodbye(s));
}

coring::Task<bool> serve_briefly(coring::net::TcpStream s) {
  auto h = coring::spawn(session(std::move(s)));
  co_await coring::sleep_for(50ms);
  h.cancel();                                   // unwinds it: no exception anywhere
  coring::Outcome<void> o = co_await h.join();  // never throws for the task
  co_return o.cancelled();                      // true
}

coring::Task<void> waits(coring::net::TcpStream& s, coring::Queue<int>& jobs,
                         coring::Event& ready) {
  coring::net::Received r = co_await s.recv(5s);   // r.error == std::errc::timed_out
  std::optional<int> job = co_await jobs.pop(1s);  // nullopt: timed out (closed() tells)
  bool set = co_await coring::with_timeout(2s, ready.wait());  // false: timed out
  CHECK(r.error == std::errc::timed_out);
  CHECK_FALSE(job.has_value());
  CHECK_FALSE(jobs.closed());
  CHECK_FALSE(set);
}

struct CancelRun {
  bool cancelled = false;
  std::string client_got;
};

coring::Task<CancelRun> cancel_a_session() {
  CancelRun out;
  auto listener = coring::net::TcpListener::bind(coring::net::Address::loopback_v4());
  auto connecting = coring::spawn(coring::net::connect(listener.local_address(), 1s));
  coring::net::Accepted a = co_await listener.accept(1s);
  coring::net::Connected c = co_await connecting;
  if (!a || !c) throw std::runtime_error("no connection");
  auto w = co_await c.stream.send_all("hi\n");
  if (!w) throw std::system_error(w.error);
  auto serving = coring::spawn(serve_briefly(std::move(a.stream)));
  for (;;) {  // the echo, then the goodbye, then EOF
    coring::net::Received r = co_await c.stream.recv(2s);
    if (!r) break;
    out.client_got += r.buffer.as_string_view();
  }
  out.cancelled = co_await serving;
  co_return out;
}

// The timeouts of `waits`, shortened so that the test does not wait 8 s.
coring::Task<void> short_waits() {
  auto listener = coring::net::TcpListener::bind(coring::net::Address::loopback_v4());
  auto connecting = coring::spawn(coring::net::connect(listener.local_address(), 1s));
  coring::net::Accepted a = co_await listener.accept(1s);
  coring::net::Connected c = co_await connecting;
  coring::Queue<int> jobs;
  coring::Event ready;
  coring::net::Received r = co_await a.stream.recv(5ms);
  std::optional<int> job = co_await jobs.pop(5ms);
  bool set = co_await coring::with_timeout(5ms, ready.wait());
  CHECK(r.error == std::errc::timed_out);
  CHECK_FALSE(job.has_value());
  CHECK_FALSE(set);
  (void)waits;  // the README's version, with its longer timeouts, compiles
}

}  // namespace readme

TEST_CASE("the README's cancelled session awaits its goodbye, then ends cancelled",
          "[net][readme]") {
  const readme::CancelRun run = coring::run(readme::cancel_a_session());
  CHECK(run.client_got == "hi\nbye\n");
  CHECK(run.cancelled);
}

TEST_CASE("the README's timeouts come back as values", "[net][readme]") {
  coring::run(readme::short_waits());
}

namespace readme {

struct Deposit {
  int amount;
};
using Balance = coring::Request<std::monostate, int>;  // asked; answered with an int
using Account = std::variant<Deposit, Balance>;        // tagged messages

coring::Task<void> account(coring::Inbox<Account> inbox) {
  int balance = 0;
  while (std::optional<Account> m = co_await inbox.receive()) {  // nullopt: closed, drained
    coring::dispatch(
        std::move(*m),                            // one handler per type, checked
        [&](Deposit d) { balance += d.amount; },  // at compile time
        [&](Balance b) { b.reply.set_value(balance); });
  }
}

coring::Task<int> bank() {
  coring::ActorRef<Account> acct = coring::spawn_actor<Account>({.name = "acct"}, account);
  acct.send(Deposit{30});  // never suspends the sender
  acct.send(Deposit{12});
  int total = co_await acct.ask(std::monostate{});  // 42; ask(req, 1s) gives an optional
  acct.close();                                     // ends it after what is queued
  co_await acct.join();                             // rethrows what the actor threw
  co_return total;
}

}  // namespace readme

TEST_CASE("the README's actor example answers 42 and ends", "[actor][readme]") {
  CHECK(coring::run(readme::bank()) == 42);
}

namespace readme {

coring::Task<int> sum_until_quiet(coring::PollableQueue<int>& q, coring::net::TcpStream& control) {
  int sum = 0;
  for (;;) {
    auto r = co_await coring::select(q.pop(), control.recv(), coring::sleep_for(100ms));
    if (r.index() != 0 || !std::get<0>(r)) co_return sum;  // a control message, quiet, closed
    sum += *std::get<0>(r);  // the losers were cancelled: nothing they held is lost
  }
}

coring::Task<std::size_t> hash_on_pool(std::string s) {
  auto job = [s] { return std::hash<std::string>{}(s); };
  co_return co_await coring::offload(job);  // fn's value, or its exception rethrown
}

coring::Task<std::size_t> hash_all(std::vector<std::string> inputs) {
  std::vector<coring::Task<std::size_t>> jobs;
  for (auto& s : inputs) jobs.push_back(hash_on_pool(s));
  std::vector<coring::Outcome<std::size_t>> done = co_await coring::when_all(std::move(jobs));
  std::size_t total = 0;
  for (auto& o : done) total += o.value();  // each task's own value or exception
  co_return total;
}

coring::Task<void> tick(int* finished) {
  co_await coring::sleep_for(1ms);
  ++*finished;
}

coring::Task<int> count_in_group() {
  int finished = 0;
  auto body = [&finished](coring::TaskGroup& g) -> coring::Task<void> {
    for (int i = 0; i < 3; ++i) g.spawn(tick(&finished));  // tick: sleeps, then ++*finished
    co_return;
  };
  co_await coring::task_group(body);  // waits for all; the first failure cancels the rest
  co_return finished;                 // 3
}

}  // namespace readme

TEST_CASE("the README's threads example: select over a PollableQueue fed by a thread",
          "[runtime][readme]") {
  auto body = []() -> coring::Task<int> {
    coring::PollableQueue<int> q;
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    coring::net::TcpStream control(fds[0]);
    std::thread feeder([&q] {
      for (int i = 1; i <= 10; ++i) q.push(i);
    });
    const int sum = co_await readme::sum_until_quiet(q, control);  // quiet after the last
    feeder.join();
    ::close(fds[1]);
    co_return sum;
  };
  CHECK(coring::run(body()) == 55);
}

TEST_CASE("the README's pool and group examples", "[runtime][readme]") {
  const std::vector<std::string> in = {"a", "bb", "ccc"};
  std::size_t expect = 0;
  for (const auto& s : in) expect += std::hash<std::string>{}(s);
  CHECK(coring::run(readme::hash_all(in)) == expect);
  CHECK(coring::run(readme::count_in_group()) == 3);
}
