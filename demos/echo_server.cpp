// Seed recipe: the thread pool echo server (Python Cookbook 12.7) -- echo_server
// (('', 15000)) prints "Echo server running at ...", accepts clients and hands
// each to a pool of 128 threads that recv()s and sendall()s until the client
// closes ("Got connection from ..." / "Client closed connection").
//
// In coring the pool is gone: coring::net::EchoServer serves every client with a
// coroutine of its own on one event loop, bounded per connection (pending bytes,
// idle timeout) and in total (max connections). SIGINT/SIGTERM are read from a
// signalfd on the ring and stop the server gracefully: no new connections, the
// connected ones get --grace seconds to finish (a second signal cuts them off at
// once), then one summary line.
//
// --threads N serves on N loops (a coring::LoopGroup, one thread each), each
// with its own SO_REUSEPORT listener on the same port: the kernel spreads the
// connections over them, and the loops share nothing. The main thread keeps
// the signalfd and stops every loop's server; the summary adds them up
// (--max-connections applies per loop).
//
// Run: ./echo_server [--bind 127.0.0.1] [--port 15000] [--max-connections 10000]
//        [--idle-timeout SECONDS] [--max-pending-bytes 65536] [--grace 5]
//        [--backend automatic|io_uring|epoll] [--threads N] [--verbose]
//      --port 0 picks a free port; the first line shows it.
#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <coring/coring.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "net_flags.hpp"

namespace {

namespace net = coring::net;

constexpr std::string_view kUsage =
    "usage: echo_server [--bind ADDR] [--port N] [--max-connections N]\n"
    "                   [--idle-timeout SECONDS] [--max-pending-bytes N] [--grace SECONDS]\n"
    "                   [--backend automatic|io_uring|epoll] [--threads N] [--verbose]\n"
    "                   [--help]\n"
    "  --bind ADDR              numeric IPv4/IPv6 address to listen on (default 127.0.0.1)\n"
    "  --port N                 TCP port, 0 picks a free one (default 15000)\n"
    "  --max-connections N      connections beyond N are accepted and closed (default 10000)\n"
    "  --idle-timeout SECONDS   close a connection idle that long, 0 = never (default 0)\n"
    "  --max-pending-bytes N    received-but-not-echoed bytes per connection (default 65536)\n"
    "  --grace SECONDS          on SIGINT/SIGTERM, time connections get to finish (default 5)\n"
    "  --backend NAME           the loop's backend (default automatic: io_uring, or epoll\n"
    "                           where io_uring is unavailable; CORING_BACKEND sets it too)\n"
    "  --threads N              N loops on N threads, one SO_REUSEPORT listener each\n"
    "                           (default 1: one loop on the main thread)\n"
    "  --verbose                print the backend, each connection and disconnection\n"
    "SIGINT/SIGTERM stop accepting and drain; a second signal closes every connection now.\n";

struct Options {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 15000;
  std::size_t max_connections = 10000;
  double idle_timeout = 0;
  std::size_t max_pending_bytes = 64 * 1024;
  double grace = 5;
  coring::BackendKind backend = coring::BackendKind::automatic;
  std::size_t threads = 0;  // 0: no LoopGroup, one loop on the main thread
  bool verbose = false;
  bool help = false;
};

// Accepts "--flag value" and "--flag=value".
Options parse_options(int argc, char** argv) {
  Options o;
  demo::Flags f(argc, argv);
  while (f.next()) {
    const std::string& arg = f.name();
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--verbose") {
      f.no_value();
      o.verbose = true;
    } else if (arg == "--bind") {
      o.bind = f.value();
    } else if (arg == "--port") {
      o.port = static_cast<std::uint16_t>(demo::parse_uint(arg, f.value(), 0, 65535));
    } else if (arg == "--max-connections") {
      o.max_connections = demo::parse_uint(arg, f.value(), 1, 10'000'000);
    } else if (arg == "--idle-timeout") {
      o.idle_timeout = demo::parse_seconds(arg, f.value());
    } else if (arg == "--max-pending-bytes") {
      o.max_pending_bytes = demo::parse_uint(arg, f.value(), 1, std::uint64_t{1} << 30);
    } else if (arg == "--grace") {
      o.grace = demo::parse_seconds(arg, f.value());
    } else if (arg == "--threads") {
      o.threads = demo::parse_uint(arg, f.value(), 1, 1024);
    } else if (arg == "--backend") {
      const std::string v = f.value();
      if (v == "automatic") {
        o.backend = coring::BackendKind::automatic;
      } else if (v == "io_uring") {
        o.backend = coring::BackendKind::io_uring;
      } else if (v == "epoll") {
        o.backend = coring::BackendKind::epoll;
      } else {
        throw demo::UsageError(
            fmt::format("bad --backend value '{}': expected automatic, io_uring or epoll", v));
      }
    } else {
      f.unknown();
    }
  }
  return o;
}

// Waits for SIGINT/SIGTERM on the signalfd: the first stops the server (no new
// connections, a grace period for the others), the second cancels serve(),
// which shuts every connection down at once.
coring::Task<void> watch_signals(int sfd, net::EchoServer* server,
                                 coring::JoinHandle<net::EchoStats>* serving, double grace) {
  signalfd_siginfo info{};
  const std::span<std::byte> buf = std::as_writable_bytes(std::span<signalfd_siginfo>(&info, 1));
  int received = 0;
  for (;;) {
    const coring::IoResult r = co_await coring::async_read(sfd, buf);
    if (!r.ok()) {
      fmt::print(stderr, "echo_server: reading the signalfd failed: {}\n", r.error().message());
      co_return;
    }
    if (++received == 1) {
      fmt::print(stderr, "shutting down: {} connections, grace {}s\n", server->stats().active,
                 grace);
      server->stop();
    } else {
      fmt::print(stderr, "second signal: closing {} connections now\n", server->stats().active);
      serving->cancel();
      co_return;
    }
  }
}

net::EchoOptions echo_options(const Options& opt) {
  net::EchoOptions eo;
  eo.max_connections = opt.max_connections;
  eo.idle_timeout = demo::to_duration(opt.idle_timeout);
  eo.max_pending_bytes = opt.max_pending_bytes;
  eo.grace = demo::to_duration(opt.grace);
  if (opt.verbose) {
    // The seed prints the peer as Python's address tuple.
    eo.on_connect = [](const net::Address& peer) {
      fmt::print("Got connection from ('{}', {})\n", peer.host(), peer.port());
      std::fflush(stdout);
    };
    eo.on_disconnect = [](const net::Address&) {
      fmt::print("Client closed connection\n");
      std::fflush(stdout);
    };
  }
  return eo;
}

void print_summary(const net::EchoStats& stats) {
  fmt::print(
      "echo_server: connections={} rejected={} bytes={} errors={} timeouts={} cut_off={} "
      "fd_pauses={}\n",
      stats.accepted, stats.rejected, stats.bytes, stats.errors, stats.timeouts, stats.cut_off,
      stats.fd_pauses);
  std::fflush(stdout);
}

// ---- --threads N: one server per loop of a LoopGroup ----

// One loop's server. Touched only on its loop's thread (through submit_to).
struct Shard {
  std::unique_ptr<net::EchoServer> server;
  coring::JoinHandle<net::EchoStats> serving;
};

// On loop i: binds an SO_REUSEPORT listener and starts serving; the port bound.
std::uint16_t start_shard(Shard* shard, const Options* opt, net::Address address) {
  net::ListenOptions lo;
  lo.reuse_port = true;
  net::TcpListener listener = net::TcpListener::bind(address, lo);
  shard->server = std::make_unique<net::EchoServer>(std::move(listener), echo_options(*opt));
  shard->serving = coring::spawn(shard->server->serve(), "echo server");
  return shard->server->local_address().port();
}

// On loop i: waits for the server to end (after stop() or a cancel).
coring::Task<net::EchoStats> finish_shard(Shard* shard) {
  coring::Outcome<net::EchoStats> served = co_await shard->serving.join();
  net::EchoStats stats;
  if (served.cancelled()) {  // second signal
    stats = shard->server->stats();
    stats.cut_off = stats.active;  // before they end: these were cut off
    // Give the connections a moment to report, so that their totals are in.
    for (int i = 0; i < 100 && shard->server->stats().active != 0; ++i) {
      co_await coring::sleep_for(std::chrono::milliseconds(10));
    }
    const net::EchoStats now = shard->server->stats();
    stats.bytes = now.bytes;
    stats.errors = now.errors;
    stats.timeouts = now.timeouts;
  } else {
    stats = std::move(served).value();
  }
  shard->server.reset();  // on its own loop
  co_return stats;
}

// On the main thread's loop: the first signal stops every server, the second
// cancels them.
coring::Task<void> watch_signals_group(int sfd, coring::LoopGroup* group,
                                       std::vector<Shard>* shards, double grace) {
  signalfd_siginfo info{};
  const std::span<std::byte> buf = std::as_writable_bytes(std::span<signalfd_siginfo>(&info, 1));
  for (int received = 1;; ++received) {
    const coring::IoResult r = co_await coring::async_read(sfd, buf);
    if (!r.ok()) {
      fmt::print(stderr, "echo_server: reading the signalfd failed: {}\n", r.error().message());
      co_return;
    }
    std::uint64_t active = 0;
    for (std::size_t i = 0; i < shards->size(); ++i) {
      Shard* shard = &(*shards)[i];
      coring::LoopResult<std::uint64_t> step = group->submit_to(i, [shard, received] {
        if (!shard->server) return std::uint64_t{0};
        const std::uint64_t n = shard->server->stats().active;
        if (received == 1) {
          shard->server->stop();
        } else {
          shard->serving.cancel();
        }
        return n;
      });
      // Shielded: once the call is queued on loop i it runs there whatever
      // happens to this task, and it uses `shards`, which serve_threads keeps
      // alive only until this task has ended -- so it must not end before.
      const std::uint64_t n = co_await coring::shield(step);
      active += n;
    }
    if (received == 1) {
      fmt::print(stderr, "shutting down: {} connections, grace {}s\n", active, grace);
    } else {
      fmt::print(stderr, "second signal: closing {} connections now\n", active);
      co_return;
    }
  }
}

coring::Task<int> serve_threads(Options opt, net::Address address, int sfd,
                                coring::LoopGroup* group) {
  std::vector<Shard> shards(group->size());
  std::size_t started = 0;
  try {
    for (; started < shards.size(); ++started) {
      Shard* shard = &shards[started];
      const Options* o = &opt;
      coring::LoopResult<std::uint16_t> bound =
          group->submit_to(started, [shard, o, address] { return start_shard(shard, o, address); });
      const std::uint16_t port = co_await bound;
      address = net::Address::parse(opt.bind, port);  // the others share the port
    }
  } catch (const std::system_error& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
  }
  if (started == shards.size()) {
    fmt::print("Echo server running at {}\n", address);
    std::fflush(stdout);
  }
  coring::JoinHandle<void> watcher =
      coring::spawn(watch_signals_group(sfd, group, &shards, opt.grace), "signal watcher");
  if (started < shards.size()) {
    for (std::size_t i = 0; i < started; ++i) {
      Shard* shard = &shards[i];
      auto stopped = group->submit_to(i, [shard] { shard->serving.cancel(); });
      co_await stopped;
    }
  }
  net::EchoStats total;
  for (std::size_t i = 0; i < started; ++i) {
    Shard* shard = &shards[i];
    coring::LoopResult<net::EchoStats> finished =
        group->submit_to(i, [shard] { return finish_shard(shard); });
    const net::EchoStats s = co_await finished;
    total.accepted += s.accepted;
    total.rejected += s.rejected;
    total.bytes += s.bytes;
    total.errors += s.errors;
    total.timeouts += s.timeouts;
    total.cut_off += s.cut_off;
    total.fd_pauses += s.fd_pauses;
  }
  watcher.cancel();
  (void)co_await watcher.join();
  if (started < shards.size()) co_return 1;
  print_summary(total);
  co_return 0;
}

coring::Task<int> serve(Options opt, net::Address address, int sfd) {
  net::TcpListener listener;
  try {
    listener = net::TcpListener::bind(address);
  } catch (const std::system_error& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    co_return 1;
  }

  net::EchoOptions eo = echo_options(opt);
  net::EchoServer server(std::move(listener), std::move(eo));

  fmt::print("Echo server running at {}\n", server.local_address());
  std::fflush(stdout);

  coring::JoinHandle<net::EchoStats> serving = coring::spawn(server.serve(), "echo server");
  coring::JoinHandle<void> watcher =
      coring::spawn(watch_signals(sfd, &server, &serving, opt.grace), "signal watcher");

  net::EchoStats stats;
  coring::Outcome<net::EchoStats> served = co_await serving.join();
  const bool cut_short = served.cancelled();          // second signal: serve() shut everything down
  if (!cut_short) stats = std::move(served).value();  // rethrows if serve() failed
  if (cut_short) {
    stats = server.stats();
    stats.cut_off = stats.active;
    // The connections' tasks end as their shut-down sockets report it; give them
    // a moment so that their totals are in.
    for (int i = 0; i < 100 && server.stats().active != 0; ++i) {
      co_await coring::sleep_for(std::chrono::milliseconds(10));
    }
    const net::EchoStats now = server.stats();
    stats.bytes = now.bytes;
    stats.errors = now.errors;
    stats.timeouts = now.timeouts;
  }

  watcher.cancel();  // it was waiting for a signal that never came (or a second one)
  (void)co_await watcher.join();

  print_summary(stats);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  net::Address address;
  try {
    opt = parse_options(argc, argv);
    if (opt.help) {
      fmt::print("{}", kUsage);
      return 0;
    }
    address = net::Address::parse(opt.bind, opt.port);
  } catch (const std::invalid_argument& e) {  // AddressError is one
    fmt::print(stderr, "echo_server: {}\n", e.what());
    return 2;
  } catch (const demo::UsageError& e) {
    fmt::print(stderr, "echo_server: {} (see --help)\n", e.what());
    return 2;
  }

  demo::raise_fd_limit(opt.max_connections + 64);

  // The signals are read from a signalfd on the ring, so they must not be
  // delivered the usual way: block them before anything else starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) {
    fmt::print(stderr, "echo_server: sigprocmask: {}\n", std::strerror(errno));
    return 1;
  }
  // Blocking: io_uring waits for a blocking fd to become readable (it would
  // return -EAGAIN at once for an O_NONBLOCK one); epoll makes it non-blocking
  // and waits for readiness.
  const int sfd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (sfd < 0) {
    fmt::print(stderr, "echo_server: signalfd: {}\n", std::strerror(errno));
    return 1;
  }

  int rc = 1;
  try {
    coring::LoopOptions lo;
    lo.backend = opt.backend;
    // Throws std::system_error naming the fix when no backend can be set up
    // (or, with --backend io_uring, when io_uring is unavailable).
    if (opt.threads > 0) {
      coring::LoopGroup group(opt.threads, lo);
      if (opt.verbose) {
        fmt::print(stderr, "echo_server: {} loops, backend {}\n", group.size(), group.describe());
      }
      coring::EventLoop control(lo);  // the signalfd and the summary
      rc = control.run(serve_threads(opt, address, sfd, &group));
    } else {
      coring::EventLoop loop(lo);
      if (opt.verbose) fmt::print(stderr, "echo_server: backend {}\n", loop.describe());
      rc = loop.run(serve(opt, address, sfd));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    rc = 1;
  }
  ::close(sfd);
  return rc;
}
