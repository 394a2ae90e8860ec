#include "coring/net/echo_server.hpp"

#include <fmt/core.h>

#include <algorithm>

#include "coring/runtime/join_handle.hpp"

namespace coring::net {

// One per connection, in the connection task's frame: the server shuts these
// sockets down when the grace period runs out or serve() is cancelled.
struct ConnNode {
  ConnNode* prev = nullptr;
  ConnNode* next = nullptr;
  TcpStream* stream = nullptr;
};

struct EchoServer::State {
  TcpListener listener;
  EchoOptions options;
  EchoStats stats;
  ConnNode* conns = nullptr;
  bool stopping = false;
  std::uint32_t buffers_per_conn = 1;

  // serve() parks here while connections drain.
  class DrainAwaiter* drain_waiter = nullptr;

  // `active` counts a connection from its accept (not from when its task first
  // runs), so that a burst of accepts cannot overshoot max_connections.
  void link(ConnNode* n) noexcept {
    n->next = conns;
    if (conns != nullptr) conns->prev = n;
    conns = n;
  }
  void unlink(ConnNode* n) noexcept {
    if (n->prev != nullptr) {
      n->prev->next = n->next;
    } else {
      conns = n->next;
    }
    if (n->next != nullptr) n->next->prev = n->prev;
    --stats.active;
    if (stats.active == 0 && drain_waiter != nullptr) wake_drain();
  }
  inline void wake_drain() noexcept;
  std::uint64_t shut_down_all() noexcept {
    std::uint64_t n = 0;
    for (ConnNode* c = conns; c != nullptr; c = c->next) {
      (void)c->stream->shutdown(SHUT_RDWR);
      ++n;
    }
    return n;
  }
};

using State = EchoServer::State;

// Waits until no connection is left; with a timeout, returns false when it
// passed first.
class [[nodiscard]] DrainAwaiter : public Operation {
 public:
  explicit DrainAwaiter(State* s) noexcept : state_(s) {}
  bool await_ready() const noexcept { return state_->stats.active == 0; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!prepare<&DrainAwaiter::leave>(h, WaitKind::other, state_)) {
      return suspend_cancelled();
    }
    state_->drain_waiter = this;
    start_timeout();
    return true;
  }
  bool await_resume() const noexcept { return !timed_out(); }
  ~DrainAwaiter() {
    if (state_->drain_waiter == this) state_->drain_waiter = nullptr;
  }
  void woken() noexcept {
    state_->drain_waiter = nullptr;
    complete(false);
  }

 private:
  static bool leave(Operation* op) noexcept {
    auto* self = static_cast<DrainAwaiter*>(op);
    self->state_->drain_waiter = nullptr;
    return true;
  }
  State* state_;
};

void EchoServer::State::wake_drain() noexcept {
  drain_waiter->woken();
}

namespace {

Task<void> echo_connection(std::shared_ptr<State> st, TcpStream stream) {
  ConnNode node;
  node.stream = &stream;
  st->link(&node);
  struct Unlink {
    State* s;
    ConnNode* n;
    ~Unlink() { s->unlink(n); }
  } unlink{st.get(), &node};

  const EchoOptions& opt = st->options;
  if (opt.nodelay) (void)stream.set_nodelay(true);
  stream.set_max_buffers(st->buffers_per_conn);
  // Only servers with callbacks pay for the peer's address (128 bytes) per connection.
  std::unique_ptr<Address> peer;
  if (opt.on_connect || opt.on_disconnect) peer = std::make_unique<Address>(stream.peer_address());
  if (opt.on_connect) opt.on_connect(*peer);

  const Duration idle = opt.idle_timeout > Duration::zero() ? opt.idle_timeout : kNoTimeout;
  for (;;) {
    Received r = co_await stream.recv(idle);
    if (!r) {
      if (r.eof()) {
        (void)stream.shutdown(SHUT_WR);  // every byte went back: tell the client we are done
      } else if (r.error == std::errc::timed_out) {
        ++st->stats.timeouts;
      } else {
        ++st->stats.errors;
      }
      break;
    }
    SendResult w = co_await stream.send_all(r.data(), idle);
    st->stats.bytes += w.bytes;
    if (!w) {
      if (w.error == std::errc::timed_out) {
        ++st->stats.timeouts;
      } else {
        ++st->stats.errors;
      }
      break;
    }
  }
  if (opt.on_disconnect) opt.on_disconnect(*peer);
}

}  // namespace

EchoServer::EchoServer(TcpListener listener, EchoOptions options)
    : state_(std::make_shared<State>()) {
  state_->listener = std::move(listener);
  state_->options = std::move(options);
  const std::uint32_t buffer_size =
      detail::NetService::of(EventLoop::current_or_throw()).options().buffers.buffer_size;
  const std::size_t want = (state_->options.max_pending_bytes + buffer_size - 1) /
                           std::max<std::uint32_t>(buffer_size, 1);
  state_->buffers_per_conn = static_cast<std::uint32_t>(std::clamp<std::size_t>(want, 1, 1024));
}

EchoServer::~EchoServer() {
  // Connections still running keep the state alive; make sure they end.
  if (state_) {
    state_->listener.close();
    state_->shut_down_all();
  }
}

Task<EchoStats> EchoServer::serve() {
  std::shared_ptr<State> st = state_;
  // However serve() ends -- cancelled (unwound) included -- the listener is
  // closed and the connections still open are shut down.
  struct ShutDown {
    State* s;
    ~ShutDown() {
      s->listener.close();
      s->shut_down_all();
    }
  } shut_down{st.get()};
  {
    while (!st->stopping) {
      Accepted a = co_await st->listener.accept();
      if (!a) {
        if (a.error == std::errc::operation_canceled) break;  // stop() closed the listener
        ++st->stats.errors;
        continue;
      }
      if (st->stats.active >= st->options.max_connections) {
        ++st->stats.rejected;
        continue;  // `a.stream` closes as it goes out of scope
      }
      ++st->stats.accepted;
      ++st->stats.active;  // given back by the connection task when it ends
      spawn(echo_connection(st, std::move(a.stream)), "echo connection").detach();
    }
    if (st->listener.is_open()) st->stats.fd_pauses = st->listener.stats().fd_pauses;
    st->listener.close();
    DrainAwaiter within_grace(st.get());
    within_grace.set_timeout(st->options.grace);
    if (!co_await within_grace) {
      st->stats.cut_off = st->shut_down_all();
      (void)co_await DrainAwaiter(st.get());
    }
  }
  co_return st->stats;
}

void EchoServer::stop() noexcept {
  if (!state_ || state_->stopping) return;
  state_->stopping = true;
  state_->stats.fd_pauses = state_->listener.stats().fd_pauses;
  state_->listener.close();  // wakes serve() parked in accept()
}

EchoStats EchoServer::stats() const noexcept {
  EchoStats s = state_->stats;
  if (state_->listener.is_open()) s.fd_pauses = state_->listener.stats().fd_pauses;
  return s;
}

Address EchoServer::local_address() const {
  return state_->listener.local_address();
}

Task<EchoStats> serve_echo(TcpListener listener, EchoOptions options) {
  EchoServer server(std::move(listener), std::move(options));
  co_return co_await server.serve();
}

}  // namespace coring::net
