#include "coring/net/tcp_listener.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <utility>

namespace coring::net {
namespace detail {
namespace {
constexpr Duration kFirstBackoff = std::chrono::milliseconds(1);
constexpr Duration kMaxBackoff = std::chrono::milliseconds(100);
}  // namespace

ListenerCore::ListenerCore(NetService* s, int f) noexcept : SocketCore(s, f) {
  Completion::on_complete = &ListenerCore::on_accept;
  TimerNode::on_fire = &ListenerCore::on_backoff;
}

ListenerCore::~ListenerCore() {
  for (std::size_t i = queue_head_; i < queue_.size(); ++i) ::close(queue_[i]);
}

void ListenerCore::maybe_arm() noexcept {
  if (armed_ || paused_ || stopped_ || orphaned || svc == nullptr || svc->loop().shutting_down()) {
    return;
  }
  if (queue_.size() - queue_head_ >= kMaxQueued) return;
  IoRequest r;
  r.opcode = IoOpcode::accept;
  r.fd = fd;
  r.multishot = !throttled_;
  r.op_flags = SOCK_CLOEXEC;
  svc->backend().start(r, static_cast<Completion*>(this));
  armed_ = true;
}

void ListenerCore::on_accept(Completion* c, int res, std::uint32_t flags) noexcept {
  auto* self = static_cast<ListenerCore*>(c);
  const bool cancel_requested = self->cancel_sent_;
  if (!completion::more(flags)) {
    self->armed_ = false;
    self->cancel_sent_ = false;
  }
  if (res >= 0) {
    if (self->orphaned) {
      ::close(res);
    } else {
      ++self->stats.accepted;
      self->backoff_ = Duration::zero();
      try {
        self->queue_.push_back(res);
      } catch (...) {
        ::close(res);  // no memory to remember it: the client sees a reset, we go on
        ++self->stats.accept_errors;
      }
    }
  } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    if (!self->orphaned && !self->paused_) {
      ++self->stats.fd_pauses;
      self->paused_ = true;
      self->backoff_ = self->backoff_ == Duration::zero()
                           ? kFirstBackoff
                           : std::min(self->backoff_ * 2, kMaxBackoff);
      if (self->armed_ && !self->cancel_sent_) {
        self->svc->backend().cancel(static_cast<Completion*>(self));
        self->cancel_sent_ = true;
      }
      self->deadline = coring::now() + self->backoff_;
      self->svc->loop().timers().add(self);
    }
  } else if (res == -ECANCELED) {
    if (!cancel_requested) self->stopped_ = true;  // the loop cancelled everything: shutting down
  } else if (res == -EINTR || res == -EAGAIN || res == -ECONNABORTED) {
    // Transient (interrupted, nothing to accept after all, a client that gave
    // up before we took it): not an accept error; armed again below.
  } else {
    ++self->stats.accept_errors;
  }
  if (self->orphaned) {
    self->maybe_free();
    return;
  }
  const std::size_t queued = self->queue_.size() - self->queue_head_;
  if (queued >= kMaxQueued) self->throttled_ = true;  // one connection per accept from now on
  if (self->armed_ && !self->cancel_sent_ && queued >= kMaxQueued) {
    self->svc->backend().cancel(static_cast<Completion*>(self));
    self->cancel_sent_ = true;
  }
  self->maybe_arm();
  if (self->waiter_ != nullptr && queued > 0) {
    AcceptOp* w = std::exchange(self->waiter_, nullptr);
    w->fd = self->pop(w->error);
    w->svc = self->svc;
    if (w->fd >= 0) ++self->handed_;
    w->deliver();
  }
}

void ListenerCore::on_backoff(TimerNode* t) noexcept {
  auto* self = static_cast<ListenerCore*>(t);
  self->paused_ = false;
  self->maybe_arm();
}

int ListenerCore::pop(int& error) noexcept {
  if (queue_head_ == queue_.size()) {
    error = orphaned ? ECANCELED : EAGAIN;
    return -1;
  }
  const int fd_out = queue_[queue_head_++];
  if (queue_head_ == queue_.size()) {
    queue_.clear();
    queue_head_ = 0;
    throttled_ = false;  // caught up: multishot again
  }
  maybe_arm();  // below the cap again
  return fd_out;
}

void ListenerCore::check_can_park() const {
  if (waiter_ != nullptr) {
    throw std::logic_error("coring: two tasks are in accept() on the same TcpListener at once");
  }
}

void ListenerCore::park(AcceptOp* w) noexcept {
  maybe_arm();
  waiter_ = w;
  w->svc = svc;
}

AcceptOp::~AcceptOp() {
  if (pending()) {
    core->unpark(this);
  } else if (filled && fd >= 0) {
    // Handed a connection, destroyed before it resumed (loop shutdown).
    ::close(fd);
    core->handed_back();
  }
}

void ListenerCore::unpop(int fd_in) noexcept {
  --handed_;
  if (orphaned) {
    ::close(fd_in);
    maybe_free();
    return;
  }
  if (queue_head_ > 0) {
    queue_[--queue_head_] = fd_in;
  } else {
    try {
      queue_.insert(queue_.begin(), fd_in);
    } catch (...) {
      std::terminate();  // out of memory for one int: nothing sane is left
    }
  }
  if (waiter_ != nullptr) {  // another accept parked meanwhile
    AcceptOp* w = std::exchange(waiter_, nullptr);
    w->fd = pop(w->error);
    w->svc = svc;
    if (w->fd >= 0) ++handed_;
    w->deliver();
  }
}

bool AcceptOp::leave(Operation* op) noexcept {
  auto* self = static_cast<AcceptOp*>(op);
  self->core->unpark(self);
  return true;
}

void ListenerCore::orphan() noexcept {
  orphaned = true;
  if (AcceptOp* w = std::exchange(waiter_, nullptr)) {
    w->fd = -1;
    w->error = ECANCELED;
    w->deliver();
  }
  for (std::size_t i = queue_head_; i < queue_.size(); ++i) ::close(queue_[i]);
  queue_.clear();
  queue_head_ = 0;
  if (svc != nullptr) {
    if (TimerNode::armed()) svc->loop().timers().remove(this);
    if (armed_ && !cancel_sent_ && !svc->loop().shutting_down()) {
      svc->backend().cancel(static_cast<Completion*>(this));
      cancel_sent_ = true;
    }
  }
  // The listening socket stops at once: no new connection may complete its
  // handshake against a listener that is going away. close() alone would not do
  // it while the multishot accept still holds a reference to the socket.
  if (fd >= 0) {
    if (svc != nullptr) svc->backend().forget_fd(fd);
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
  fd = -1;
  maybe_free();
}

void ListenerCore::maybe_free() noexcept {
  if (!orphaned || handed_ != 0) return;
  if (svc != nullptr && armed_) return;  // the accept's final CQE still names us
  delete this;
}

}  // namespace detail

Accepted AcceptAwaiter::await_resume() {
  Accepted a;
  if (core == nullptr) {
    a.error = std::make_error_code(std::errc::operation_canceled);
    return a;
  }
  if (!filled) {
    if (timed_out()) return Accepted::timed_out();
    fd = core->pop(error);
    svc = core->svc;
  } else if (fd >= 0) {
    // Handed over while parked: the core stayed alive for us (even if the
    // listener was closed since); the fd is ours now.
    filled = false;
    core->handed_back();
  }
  if (fd < 0) {
    a.error = std::error_code(error, std::system_category());
    return a;
  }
  a.stream = TcpStream(*svc, std::exchange(fd, -1));
  return a;
}

TcpListener TcpListener::bind(const Address& address, const ListenOptions& options) {
  detail::NetService& svc = detail::NetService::of(EventLoop::current_or_throw());
  if (address.family() != AF_INET && address.family() != AF_INET6) {
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            fmt::format("coring: cannot listen on {}", address));
  }
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::system_error(errno, std::system_category(),
                            fmt::format("coring: socket() for a listener on {}", address));
  }
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::system_category(),
                            fmt::format("coring: {} failed for a listener on {}", what, address));
  };
  const int one = 1;
  if (options.reuse_address && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    fail("setsockopt(SO_REUSEADDR)");
  }
  if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    fail("setsockopt(SO_REUSEPORT)");
  }
  if (::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()) != 0) fail("bind");
  if (::listen(fd, options.backlog) != 0) fail("listen");
  return TcpListener(new detail::ListenerCore(&svc, fd));
}

TcpListener& TcpListener::operator=(TcpListener&& o) noexcept {
  if (this != &o) {
    close();
    core_ = std::exchange(o.core_, nullptr);
  }
  return *this;
}

void TcpListener::close() noexcept {
  if (core_ != nullptr) std::exchange(core_, nullptr)->orphan();
}

Address TcpListener::local_address() const {
  if (core_ == nullptr) return Address();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(core_->fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return Address();
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

}  // namespace coring::net
