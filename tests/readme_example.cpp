// The program shown in README.md, kept compiling and correct by the test suite.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <string>
#include <system_error>
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
