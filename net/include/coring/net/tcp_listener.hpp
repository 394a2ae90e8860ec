// TcpListener: a listening TCP socket whose connections arrive through one
// multishot IORING_OP_ACCEPT.
//
//   TcpListener listener = TcpListener::bind(Address::parse("127.0.0.1:0"));
//   fmt::print("listening on {}\n", listener.local_address());
//   for (;;) {
//     Accepted a = co_await listener.accept();
//     if (!a) break;                        // the listener was closed
//     spawn(serve(std::move(a.stream))).detach();
//   }
//
// Accepted sockets are queued until accept() takes them. The queue holds
// kMaxQueued, plus what one multishot run took before its CQEs were seen (the
// kernel accepts everything in the backlog in one go: at most `backlog`); once
// it is reached the listener accepts one connection per request, only below
// kMaxQueued, until the queue drains, and the kernel's backlog holds the rest. When accepting fails
// for lack of file descriptors (EMFILE, ENFILE) or memory, the listener stops accepting and tries
// again after a back-off (1 ms doubling to 100 ms, reset by the next success): no busy loop, the
// connections already open keep being served, and pending clients wait in the backlog until fds are
// free. Other accept errors (a connection aborted before it was taken) are counted and accepting
// goes on.
//
// Loop thread only; a listener belongs to the loop it was bound on.
#pragma once

#include <sys/socket.h>

#include <coroutine>
#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

#include "coring/net/address.hpp"
#include "coring/net/tcp_stream.hpp"

namespace coring::net {

struct ListenOptions {
  int backlog = 4096;  // capped by net.core.somaxconn
  bool reuse_address = true;
  bool reuse_port = false;  // SO_REUSEPORT: several listeners (loops) share the port
};

struct ListenerStats {
  std::uint64_t accepted = 0;       // connections taken from the kernel
  std::uint64_t fd_pauses = 0;      // times accepting paused for EMFILE/ENFILE/ENOMEM
  std::uint64_t accept_errors = 0;  // failed accepts other than EMFILE-like pauses (e.g. EPROTO);
                                    // EINTR, EAGAIN, ECONNABORTED are retried
};

struct [[nodiscard]] Accepted {
  TcpStream stream;
  std::error_code error;  // operation_canceled once the listener is closed; timed_out
  explicit operator bool() const noexcept { return !error; }
  // How an accept that timed out reports (see with_timeout).
  static Accepted timed_out() {
    Accepted a;
    a.error = std::make_error_code(std::errc::timed_out);
    return a;
  }
};

namespace detail {

class ListenerCore;

// The part of an AcceptAwaiter the core talks to: an Operation parked in the
// core (at most one per listener). A timeout or a cancellation unparks it;
// queued connections stay queued.
class AcceptOp : public Operation {
 public:
  ListenerCore* core;
  NetService* svc = nullptr;  // kept: the core may be gone by the time we resume
  int fd = -1;
  int error = 0;  // errno when woken without a connection
  bool filled = false;

  void deliver() noexcept {
    filled = true;
    complete(false);
  }

 protected:
  explicit AcceptOp(ListenerCore* c) noexcept : core(c) {}
  AcceptOp(AcceptOp&& o) noexcept : Operation(std::move(o)), core(o.core) {}
  ~AcceptOp();
  template <class P>
  bool prepare_accept(std::coroutine_handle<P> h);

 private:
  static bool leave(Operation* op) noexcept;
};

class ListenerCore final : public SocketCore, private Completion, private TimerNode {
 public:
  static constexpr std::size_t kMaxQueued = 128;

  ListenerCore(NetService* svc, int fd) noexcept;
  ~ListenerCore() override;

  [[nodiscard]] bool ready() const noexcept { return !queue_.empty() || orphaned; }
  // Throws std::logic_error if another task is already in accept().
  void check_can_park() const;
  void park(AcceptOp* w) noexcept;
  void unpark(AcceptOp* w) noexcept {
    if (waiter_ == w) waiter_ = nullptr;
  }
  // A queued connection's fd, or -1 (then `error` says why).
  int pop(int& error) noexcept;
  // Undoes a pop whose connection was handed to an accept that lost a select:
  // back to the front of the queue (closed if the listener was closed).
  void unpop(int fd) noexcept;
  // A connection handed to a waiter was taken (or closed) by it.
  void handed_back() noexcept {
    --handed_;
    maybe_free();
  }
  void orphan() noexcept;

  ListenerStats stats;

 private:
  static void on_accept(Completion* c, int res, std::uint32_t flags) noexcept;
  static void on_backoff(TimerNode* t) noexcept;
  void maybe_arm() noexcept;
  void maybe_free() noexcept;

  std::vector<int> queue_;  // accepted fds in arrival order (small: kMaxQueued)
  // Connections handed to a waiter that has not resumed yet: the core stays
  // alive for them (their AcceptOp reports back through it).
  std::uint32_t handed_ = 0;
  std::size_t queue_head_ = 0;
  AcceptOp* waiter_ = nullptr;
  Duration backoff_{0};
  bool armed_ = false;
  bool cancel_sent_ = false;
  bool paused_ = false;
  bool throttled_ = false;  // the queue reached kMaxQueued: single-shot accepts until it drains
  bool stopped_ = false;    // the loop cancelled our accept: it is shutting down
};

template <class P>
bool AcceptOp::prepare_accept(std::coroutine_handle<P> h) {
  return prepare<&AcceptOp::leave>(h, WaitKind::accept, core);
}

}  // namespace detail

// accept(): the next connection (see the header comment).
class [[nodiscard]] AcceptAwaiter : public detail::AcceptOp {
 public:
  AcceptAwaiter(AcceptAwaiter&&) noexcept = default;

  bool await_ready() const noexcept { return core == nullptr || core->ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    core->check_can_park();
    if (!prepare_accept(h)) return suspend_cancelled();
    core->park(this);
    start_timeout();
    return true;
  }
  Accepted await_resume();
  // For select() (runtime/select.hpp): this accept lost after a connection
  // was handed to it; the connection goes back to the front of the backlog.
  void put_back() noexcept {
    if (filled && fd >= 0) {
      filled = false;
      core->unpop(std::exchange(fd, -1));
    }
  }

 private:
  friend class TcpListener;
  explicit AcceptAwaiter(detail::ListenerCore* c) noexcept : AcceptOp(c) {}
};

class TcpListener {
 public:
  TcpListener() noexcept = default;
  // Creates, binds and listens on the current loop. Throws std::system_error
  // naming the address and the cause (address in use, permission denied...).
  static TcpListener bind(const Address& address, const ListenOptions& options = {});
  TcpListener(TcpListener&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  TcpListener& operator=(TcpListener&& o) noexcept;
  ~TcpListener() { close(); }

  // The next connection; std::errc::timed_out after `timeout`.
  AcceptAwaiter accept(Duration timeout = kNoTimeout) noexcept {
    AcceptAwaiter a(core_);
    if (timeout != kNoTimeout) a.set_timeout(timeout);
    return a;
  }
  // Stops accepting at once: a task parked in accept() resumes with
  // std::errc::operation_canceled, connections not yet taken are closed.
  void close() noexcept;

  [[nodiscard]] bool is_open() const noexcept { return core_ != nullptr; }
  [[nodiscard]] Address local_address() const;
  [[nodiscard]] ListenerStats stats() const noexcept {
    return core_ != nullptr ? core_->stats : ListenerStats{};
  }
  [[nodiscard]] int native_handle() const noexcept { return core_ != nullptr ? core_->fd : -1; }

 private:
  explicit TcpListener(detail::ListenerCore* core) noexcept : core_(core) {}
  detail::ListenerCore* core_ = nullptr;
};

}  // namespace coring::net
