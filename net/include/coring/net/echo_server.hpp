// The echo server of the seed's "thread pool echo server" recipe, as a library
// function: one event loop serves every client with a coroutine each, instead of
// a pool of 128 threads.
//
//   EchoServer server(TcpListener::bind(Address::parse("127.0.0.1:15000")));
//   spawn(stop_on_signal(server)).detach();        // calls server.stop()
//   EchoStats totals = co_await server.serve();
//
// Per connection: recv a buffer, send it back (send_all), repeat. Bounded:
//  - a connection holds at most max_pending_bytes of received-but-not-echoed
//    data (rounded up to whole ring buffers, at least one): when its peer stops
//    reading, its send stalls and its recv pauses, and nothing else waits on it;
//  - at most max_connections at once: beyond that a new connection is accepted
//    and closed at once (counted as rejected), so clients are not left hanging
//    in the backlog;
//  - idle_timeout (when not zero) closes a connection that sends nothing, or
//    does not read what it is sent, for that long.
// Half-close: when a client shuts down its sending side, everything it sent is
// echoed, then the server shuts down its side and closes.
//
// stop(): stops accepting at once, lets connected clients finish for `grace`,
// then shuts their sockets down; serve() returns the totals when the last
// connection has ended. Cancelling the task in serve() shuts every connection
// down at once (the task is then cancelled).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "coring/net/tcp_listener.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

struct EchoOptions {
  std::size_t max_connections = 10000;
  Duration idle_timeout{0};  // zero: none
  std::size_t max_pending_bytes = 64 * 1024;
  Duration grace = std::chrono::seconds(5);
  bool nodelay = true;  // TCP_NODELAY on accepted sockets
  // Called on connect / disconnect (the seed prints "Got connection from ...").
  std::function<void(const Address& peer)> on_connect;
  std::function<void(const Address& peer)> on_disconnect;
};

struct EchoStats {
  std::uint64_t accepted = 0;   // connections served
  std::uint64_t rejected = 0;   // over max_connections
  std::uint64_t active = 0;     // open now
  std::uint64_t bytes = 0;      // echoed back
  std::uint64_t errors = 0;     // connections ended by an error (reset, broken pipe)
  std::uint64_t timeouts = 0;   // connections closed by idle_timeout
  std::uint64_t cut_off = 0;    // still open when the grace period ran out
  std::uint64_t fd_pauses = 0;  // times accepting paused for lack of fds
};

class EchoServer {
 public:
  explicit EchoServer(TcpListener listener, EchoOptions options = {});
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  // Serves until stop() (or the listener fails), then drains; returns the totals.
  Task<EchoStats> serve();
  // Loop thread only; idempotent.
  void stop() noexcept;

  [[nodiscard]] EchoStats stats() const noexcept;
  [[nodiscard]] Address local_address() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// Serves until the task is cancelled (or the listener fails).
Task<EchoStats> serve_echo(TcpListener listener, EchoOptions options = {});

}  // namespace coring::net
