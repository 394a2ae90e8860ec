// asio_echo_server: the Boost.Asio baseline for coring's echo-server benchmark.
//
// What it shows: the mainstream way to write a coroutine echo server in C++20 today, Asio's
// co_spawn / use_awaitable on a single-threaded io_context (epoll underneath; Boost 1.74 has
// no io_uring backend). Each connection is one coroutine: async_read_some into a 16 KiB
// buffer, then async_write of what was read, until end of input or an error. coring's
// demos/echo_server is measured against it (bench/run_net_bench.sh): the issue asks coring
// for at most 0.65x its server CPU per round trip.
//
// Needs Boost.Asio 1.74+ (header-only; Debian: apt-get install libboost-dev) and a compiler
// with C++20 coroutines (g++ 10+ with -std=c++20). Any Linux kernel.
//
// Run:   build/bench/bench/baselines/asio_echo_server [--port 0] [--bind 127.0.0.1]
// It prints "asio_echo_server listening on 127.0.0.1:PORT" (flushed) and serves until
// SIGINT or SIGTERM (asio::signal_set), then exits 0.

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>, which
// g++ 12's headers no longer pull in on the way.
#include <utility>

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t kBufferSize = 16 * 1024;

asio::awaitable<void> session(tcp::socket socket) {
  char data[kBufferSize];
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = co_await socket.async_read_some(asio::buffer(data),
                                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;  // end of input (eof), reset, ...
    co_await asio::async_write(socket, asio::buffer(data, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  socket.close(ec);
}

asio::awaitable<void> listener(tcp::acceptor& acceptor) {
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  for (;;) {
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      std::fprintf(stderr, "asio_echo_server: accept: %s\n", ec.message().c_str());
      asio::steady_timer delay(executor, std::chrono::milliseconds(10));  // EMFILE: do not spin
      co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
  }
}

unsigned parse_port(const char* value) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v > 65535) {
    std::fprintf(stderr, "asio_echo_server: bad value for --port: %s\n", value);
    std::exit(2);
  }
  return static_cast<unsigned>(v);
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: asio_echo_server [--port P] [--bind ADDR]\n"
               "  --port P      TCP port, 0 picks a free one (default 0)\n"
               "  --bind ADDR   address to listen on (default 127.0.0.1)\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string bind = "127.0.0.1";
  unsigned port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    if (std::strcmp(argv[i], "--port") == 0) {
      port = parse_port(argv[++i]);
    } else if (std::strcmp(argv[i], "--bind") == 0) {
      bind = argv[++i];
    } else {
      usage(stderr);
      return 2;
    }
  }

  rlimit rl{};  // many connections: raise the descriptor limit to the hard limit
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  try {
    asio::io_context ctx(1);  // concurrency hint 1: one thread runs it
    boost::system::error_code ec;
    auto address = asio::ip::make_address(bind, ec);
    if (ec) {
      std::fprintf(stderr, "asio_echo_server: bad --bind address %s\n", bind.c_str());
      return 2;
    }
    tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    tcp::acceptor acceptor(ctx);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    tcp::endpoint local = acceptor.local_endpoint();
    std::printf("asio_echo_server listening on %s:%u\n", local.address().to_string().c_str(),
                static_cast<unsigned>(local.port()));
    std::fflush(stdout);

    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) { ctx.stop(); });

    asio::co_spawn(ctx, listener(acceptor), asio::detached);
    ctx.run();
    std::fprintf(stderr, "asio_echo_server: stopping\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
