// Seed recipe: concurrent.futures (Python Cookbook 12.7) -- submit fetches to
// a ThreadPoolExecutor, take each result with result(), and print the pages
// of several sites in the order they come back with as_completed(); a site
// that fails prints its exception instead.
//
// In coring a fetch is a task on the loop (http_get, an HTTP/1.0 client on
// net/), not a blocking call on a pool thread: `spawn()` is `submit()`, a
// JoinHandle is the future (`co_await h` is `result()`), and
// `coring::as_completed()` gives each task's Outcome as it ends. The sites are
// local stand-ins this demo starts itself (never the internet): three servers
// answering with the seed's page sizes after different delays, and one address
// where nothing listens -- its fetch fails with a clear connection error and
// the others are unaffected. The seed's made-up domain resolved to a parked
// page; here it is the failing one.
//
// Run: ./futures
#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coring/coring.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "demo_options.hpp"
#include "local_http_server.hpp"

using namespace std::chrono_literals;
using coring::net::Address;
using coring::net::HttpResponse;

namespace {

// An address on loopback where nothing listens: a port the kernel gave us,
// closed again.
Address nowhere() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  ::close(fd);
  return Address::parse(fmt::format("127.0.0.1:{}", ntohs(sa.sin_port)));
}

demo::HttpRoute page(std::size_t bytes, coring::Duration delay) {
  return demo::HttpRoute::ok(std::string(bytes, 'x')).after(delay);
}

coring::Task<int> main_task() {
  demo::LocalHttpServer fox({{"/", page(330194, 50ms)}});
  demo::LocalHttpServer cnn({{"/", page(1130810, 100ms)}});
  demo::LocalHttpServer bbc({{"/", page(278708, 150ms)}});
  const std::vector<std::string> urls = {"http://www.foxnews.com/", "http://www.cnn.com/",
                                         "http://www.bbc.co.uk/",
                                         "http://some-made-up-domain.com/"};
  const std::vector<Address> where = {fox.address(), cnn.address(), bbc.address(), nowhere()};

  // pool.submit(fetch_url, ...) twice, then a.result() and b.result().
  auto a = coring::spawn(coring::net::http_get(where[0], "/", 60s));
  auto b = coring::spawn(coring::net::http_get(where[1], "/", 60s));
  HttpResponse x = co_await a;
  HttpResponse y = co_await b;
  if (!x || !y) {
    std::fprintf(stderr, "futures: the first two fetches failed: %s / %s\n",
                 x.error.message().c_str(), y.error.message().c_str());
    co_return 1;
  }

  // for future in as_completed(future_to_url): ...
  std::vector<coring::Task<HttpResponse>> fetches;
  for (const Address& addr : where) fetches.push_back(coring::net::http_get(addr, "/", 60s));
  auto done = coring::as_completed(std::move(fetches));
  while (std::optional<coring::Finished<HttpResponse>> f = co_await done.next()) {
    const std::string& url = urls[f->index];
    if (f->outcome.failed()) {  // http_get reports network errors as values; this is rarer
      try {
        std::rethrow_exception(f->outcome.error());
      } catch (const std::exception& e) {
        fmt::print("'{}' generated an exception: {}\n", url, e.what());
      }
      continue;
    }
    HttpResponse& r = f->outcome.value();
    if (!r) {
      fmt::print("'{}' generated an exception: {}\n", url, r.error.message());
    } else {
      fmt::print("'{}' page is {} bytes\n", url, r.body.size());
    }
    std::fflush(stdout);
  }
  co_await fox.stop();
  co_await cnn.stop();
  co_await bbc.stop();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    (void)demo::parse_time_scale(argc, argv);  // accepted for the tests: the delays stay as
                                               // they are (they set the order)
    return coring::run(main_task());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "futures: %s\n", e.what());
    return 1;
  }
}
