// http_get against demo::LocalHttpServer (demos/local_http_server.hpp) on
// 127.0.0.1 port 0: bodies with and without Content-Length, statuses, the
// request it sends, a slow server and the timeout, malformed replies, size
// limits, a truncated body, and an address where nothing listens next to
// requests that succeed.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates it
// twice); every awaited value goes to a local first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <system_error>
#include <vector>

#include "demos/local_http_server.hpp"
#include "support/net_support.hpp"

using namespace coring_test;
using coring::net::HttpErrc;
using coring::net::HttpResponse;
using demo::HttpRoute;
using demo::LocalHttpServer;

namespace {

// A loopback address where nothing listens: a port the kernel gave us, then
// closed again.
net::Address closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const net::Address any = net::Address::loopback_v4(0);
  REQUIRE(::bind(fd, any.sockaddr_ptr(), any.sockaddr_len()) == 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  ::close(fd);
  return net::Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

Task<HttpResponse> get(net::Address a, std::string path, Duration timeout) {
  HttpResponse r = co_await net::http_get(a, std::move(path), timeout);
  co_return r;
}

std::map<std::string, HttpRoute> routes() {
  std::map<std::string, HttpRoute> r;
  r["/hello"] = HttpRoute::ok("hello\n");
  r["/big-to-eof"] = HttpRoute::ok(pattern(200 * 1000, 5)).until_eof();
  r["/slow"] = HttpRoute::ok("late\n").after(2s);
  r["/teapot"] = HttpRoute::with_status(418, "short and stout\n");
  r["/no-status"] = HttpRoute::raw_reply("HTTP/1.0 OK\r\n\r\nbody");
  r["/garbage"] = HttpRoute::raw_reply("hello there\r\n\r\n");
  r["/bad-header"] = HttpRoute::raw_reply("HTTP/1.0 200 OK\r\nno colon here\r\n\r\n");
  r["/bad-length"] = HttpRoute::raw_reply("HTTP/1.0 200 OK\r\nContent-Length: 12x\r\n\r\n");
  r["/truncated"] = HttpRoute::raw_reply("HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  r["/huge-header"] =
      HttpRoute::raw_reply("HTTP/1.0 200 OK\r\nX-Big: " + std::string(100000, 'h') + "\r\n\r\n");
  r["/chunked"] = HttpRoute::raw_reply(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  r["/bare-lf"] = HttpRoute::raw_reply("HTTP/1.0 204 No Content\nX-A:  spaced value \n\n");
  return r;
}

}  // namespace

TEST_CASE("http_get: status, headers and body; the request it sends", "[net][http]") {
  auto body = []() -> Task<void> {
    LocalHttpServer server(routes());
    HttpResponse r = co_await net::http_get(server.host_port(), "/hello", 5s);
    CHECK(r);
    CHECK_FALSE(r.error);
    CHECK(r.status == 200);
    CHECK(r.reason == "OK");
    CHECK(r.body == "hello\n");
    CHECK(r.header("content-length") == std::optional<std::string_view>("6"));
    CHECK(r.header("CONTENT-TYPE") == std::optional<std::string_view>("text/plain"));
    CHECK_FALSE(r.header("X-Missing"));
    CHECK(server.last_request().find("GET /hello HTTP/1.0\r\nHost: " + server.host_port()) == 0);

    // No Content-Length: the body ends at EOF (several receive buffers).
    HttpResponse big = co_await net::http_get(server.address(), "/big-to-eof", 5s);
    CHECK(big);
    CHECK(big.body.size() == 200 * 1000);
    CHECK(big.body == pattern(200 * 1000, 5));

    // Any status is a response.
    HttpResponse tea = co_await net::http_get(server.address(), "/teapot", 5s);
    CHECK(tea);
    CHECK(tea.status == 418);
    CHECK(tea.body == "short and stout\n");
    HttpResponse missing = co_await net::http_get(server.address(), "/nowhere", 5s);
    CHECK(missing);
    CHECK(missing.status == 404);

    // Bare LF line ends, blanks around a value, no body for 204.
    HttpResponse lf = co_await net::http_get(server.address(), "/bare-lf", 5s);
    CHECK(lf);
    CHECK(lf.status == 204);
    CHECK(lf.reason == "No Content");
    CHECK(lf.header("x-a") == std::optional<std::string_view>("spaced value"));
    CHECK(lf.body.empty());
    CHECK(server.requests() == 5);
    co_await server.stop();
  };
  coring::run(body());
}

TEST_CASE("http_get: malformed replies, limits and truncation are clear errors", "[net][http]") {
  auto body = []() -> Task<void> {
    LocalHttpServer server(routes());
    const net::Address at = server.address();
    HttpResponse no_status = co_await net::http_get(at, "/no-status", 5s);
    CHECK(no_status.error == HttpErrc::malformed_status_line);
    CHECK(no_status.error.message().find("malformed status line") != std::string::npos);
    HttpResponse garbage = co_await net::http_get(at, "/garbage", 5s);
    CHECK(garbage.error == HttpErrc::malformed_status_line);
    HttpResponse bad_header = co_await net::http_get(at, "/bad-header", 5s);
    CHECK(bad_header.error == HttpErrc::malformed_header);
    CHECK(bad_header.status == 200);  // filled as far as it got
    HttpResponse bad_length = co_await net::http_get(at, "/bad-length", 5s);
    CHECK(bad_length.error == HttpErrc::malformed_header);
    HttpResponse truncated = co_await net::http_get(at, "/truncated", 5s);
    CHECK(truncated.error == HttpErrc::truncated);
    HttpResponse huge = co_await net::http_get(at, "/huge-header", 5s);
    CHECK(huge.error == HttpErrc::headers_too_large);
    HttpResponse chunked = co_await net::http_get(at, "/chunked", 5s);
    CHECK(chunked.error == HttpErrc::unsupported_encoding);

    net::HttpLimits small;
    small.max_body_bytes = 1000;
    HttpResponse too_big = co_await net::http_get(at, "/big-to-eof", 5s, small);
    CHECK(too_big.error == HttpErrc::body_too_large);
    CHECK(too_big.body.size() <= 1000);
    HttpResponse fits = co_await net::http_get(at, "/hello", 5s, small);
    CHECK(fits);

    HttpResponse bad_address = co_await net::http_get("localhost:80", "/", 5s);
    CHECK(bad_address.error == HttpErrc::bad_address);
    HttpResponse bad_path = co_await net::http_get(at, "hello", 5s);
    CHECK(bad_path.error == HttpErrc::bad_path);
    HttpResponse injected = co_await net::http_get(at, "/a HTTP/1.0\r\nX: y", 5s);
    CHECK(injected.error == HttpErrc::bad_path);
    co_await server.stop();
  };
  coring::run(body());
}

TEST_CASE("http_get: a slow server times out; the others are unaffected", "[net][http]") {
  auto body = []() -> Task<void> {
    LocalHttpServer server(routes());
    const net::Address at = server.address();
    const TimePoint t0 = Clock::now();
    auto slow = coring::spawn(get(at, "/slow", 150ms));
    auto fast = coring::spawn(get(at, "/hello", 5s));
    HttpResponse f = co_await fast;
    HttpResponse s = co_await slow;
    CHECK(f);
    CHECK(f.body == "hello\n");
    CHECK(s.error == std::errc::timed_out);
    const auto took = ms_since(t0);
    CHECK(took >= 140);
    CHECK(took < 1500);

    // with_timeout gives the same shape.
    HttpResponse w = co_await coring::with_timeout(50ms, net::http_get(at, "/slow"));
    CHECK(w.error == std::errc::timed_out);
    co_await server.stop();
  };
  coring::run(body());
}

TEST_CASE("http_get: nothing listening is connection_refused, the others succeed", "[net][http]") {
  auto body = []() -> Task<void> {
    LocalHttpServer one({{"/", HttpRoute::ok("one")}});
    LocalHttpServer two({{"/", HttpRoute::ok("two")}});
    const net::Address nobody = closed_port();
    std::vector<JoinHandle<HttpResponse>> gets;
    gets.push_back(coring::spawn(get(one.address(), "/", 5s)));
    gets.push_back(coring::spawn(get(nobody, "/", 5s)));
    gets.push_back(coring::spawn(get(two.address(), "/", 5s)));
    std::vector<HttpResponse> rs;
    for (auto& g : gets) {
      HttpResponse r = co_await g;
      rs.push_back(std::move(r));
    }
    CHECK(rs[0]);
    CHECK(rs[0].body == "one");
    CHECK_FALSE(rs[1]);
    CHECK(rs[1].error == std::errc::connection_refused);
    CHECK(rs[1].status == 0);
    CHECK(rs[2]);
    CHECK(rs[2].body == "two");
    co_await one.stop();
    co_await two.stop();
  };
  run_checking_fds(body);
}

TEST_CASE("http_get: a header block exactly at max_header_bytes passes, one byte more fails",
          "[net][http]") {
  auto body = []() -> Task<void> {
    // 17 + 6 + 2 = 25 bytes from the status line through the blank line.
    LocalHttpServer server(
        {{"/exact", demo::HttpRoute::raw_reply("HTTP/1.0 200 OK\r\nA: b\r\n\r\nhi")}});
    net::HttpLimits exact;
    exact.max_header_bytes = 25;
    HttpResponse fits = co_await net::http_get(server.address(), "/exact", 5s, exact);
    CHECK(fits);
    CHECK(fits.body == "hi");
    net::HttpLimits short_by_one;
    short_by_one.max_header_bytes = 24;
    HttpResponse over = co_await net::http_get(server.address(), "/exact", 5s, short_by_one);
    CHECK(over.error == HttpErrc::headers_too_large);
    co_await server.stop();
  };
  coring::run(body());
}
