#include "coring/net/tcp_stream.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

namespace coring::net {
namespace detail {

StreamCore::StreamCore(NetService* s, int f) noexcept : SocketCore(s, f) {
  on_complete = &StreamCore::on_recv;
  close_op_.core = this;
  close_op_.on_complete = &StreamCore::on_close;
}

StreamCore::~StreamCore() = default;

void StreamCore::grow() {
  // Power of two, unrolling the ring into the new storage.
  std::vector<Item> bigger(queue_.empty() ? 4 : queue_.size() * 2);
  for (std::uint32_t i = 0; i < queued_; ++i) {
    bigger[i] = queue_[(head_ + i) & (queue_.size() - 1)];
  }
  queue_.swap(bigger);
  head_ = 0;
}

void StreamCore::push(Item it) {
  if (queued_ == queue_.size()) grow();
  queue_[(head_ + queued_) & (queue_.size() - 1)] = it;
  ++queued_;
}

void StreamCore::unpop(std::byte* data, std::uint32_t len, std::uint16_t bid) noexcept {
  if (orphaned || svc == nullptr) {
    give_back(bid, data);  // closed meanwhile: its data is dropped with the rest
    return;
  }
  if (queued_ == queue_.size()) {
    try {
      grow();
    } catch (...) {
      std::terminate();  // out of memory for a few words: nothing sane is left
    }
  }
  head_ = (head_ - 1) & static_cast<std::uint32_t>(queue_.size() - 1);
  queue_[head_] = Item{len, bid, bid == kSpilled ? data : nullptr};
  ++queued_;
  --leased_;
  if (waiter_ != nullptr) wake();  // another recv parked meanwhile
}

int StreamCore::pop(std::byte*& data, std::uint32_t& len, std::uint16_t& bid) noexcept {
  if (queued_ == 0) return end_;  // kEof, -errno, or 0
  const Item it = queue_[head_];
  head_ = (head_ + 1) & static_cast<std::uint32_t>(queue_.size() - 1);
  --queued_;
  ++leased_;
  len = it.len;
  bid = it.bid;
  data = it.heap != nullptr ? it.heap : svc->pool().data(it.bid);
  return kData;
}

void StreamCore::maybe_arm() noexcept {
  if (armed_ || end_ != 0 || waiting_for_buffers || orphaned || svc == nullptr) return;
  if (ring_held_ + spilled_ >= max_buffers) return;
  if (svc->loop().shutting_down()) return;
  BufferPool& pool = svc->pool();
  IoRequest r;
  r.opcode = IoOpcode::recv;
  r.fd = fd;
  // A stream that has hit its cap takes one buffer per recv from then on.
  r.multishot = !throttled_;
  r.buffers = &pool;
  limited_ = r.multishot && svc->recv_limits();
  if (limited_) r.multishot_limit = max_buffers * pool.buffer_size();
  svc->backend().start(r, this);
  armed_ = true;
}

void StreamCore::on_recv(Completion* c, int res, std::uint32_t flags) noexcept {
  auto* self = static_cast<StreamCore*>(c);
  const bool cancel_requested = self->cancel_sent_;
  if (!completion::more(flags)) {
    self->armed_ = false;
    self->cancel_sent_ = false;
    if (res == -EINVAL && self->limited_) {
      // This kernel cannot limit a multishot recv: arm it again without.
      self->limited_ = false;
      if (self->svc != nullptr) self->svc->no_recv_limits();
      if (self->orphaned) {
        self->maybe_free();
      } else {
        self->maybe_arm();
      }
      return;
    }
  }
  if (completion::has_buffer(flags)) {
    const std::uint16_t bid = completion::buffer_id(flags);
    self->svc->pool().take(bid);  // ours from now on, counted as in use
    if (self->orphaned || res <= 0) {
      self->svc->recycle(bid);
    } else if (self->ring_held_ >= self->max_buffers) {
      self->spill(bid, static_cast<std::uint32_t>(res));
    } else if (self->waiter_ != nullptr && self->queued_ == 0) {
      // The common case: a task is waiting and nothing is queued; hand over
      // directly.
      RecvOp* w = std::exchange(self->waiter_, nullptr);
      ++self->leased_;
      ++self->ring_held_;
      w->status = kData;
      w->data = self->svc->pool().data(bid);
      w->len = static_cast<std::uint32_t>(res);
      w->bid = bid;
      w->deliver();
    } else {
      try {
        self->push({static_cast<std::uint32_t>(res), bid, nullptr});
        ++self->ring_held_;
      } catch (...) {
        // Out of memory for the queue: give the data up and end the stream with
        // an error rather than lose bytes silently in the middle of it.
        self->svc->recycle(bid);
        self->end_ = -ENOMEM;
      }
    }
  } else if (res == 0) {
    if (self->end_ == 0) self->end_ = kEof;
  } else if (res == -ENOBUFS) {
    if (!self->orphaned) (void)self->svc->wait_for_buffers(self);
  } else if (res == -ECANCELED) {
    // Not ours (we cancel only to pause at the cap): the loop is shutting down
    // and cancelled everything. Re-arming would only keep it waiting.
    if (!cancel_requested && self->end_ == 0) self->end_ = res;
  } else if (res == -EINTR || res == -EAGAIN) {
    // Interrupted by the kernel, not by us, or nothing to read after all:
    // transient, not an end of the stream (the recv is armed again below, as
    // after any final completion).
  } else if (res < 0) {
    if (self->end_ == 0) self->end_ = res;
  }
  if (self->orphaned) {
    self->maybe_free();
    return;
  }
  const bool at_cap = self->ring_held_ + self->spilled_ >= self->max_buffers;
  if (at_cap) self->throttled_ = true;
  if (self->armed_) {
    if (!self->cancel_sent_ && at_cap) {
      // At the cap: stop the kernel filling more buffers for this connection.
      self->svc->backend().cancel(self);
      self->cancel_sent_ = true;
    }
  } else if (self->started_) {
    self->maybe_arm();
  }
  if (self->waiter_ != nullptr && self->readable()) self->wake();
}

void StreamCore::spill(std::uint16_t bid, std::uint32_t len) noexcept {
  // Over the cap (one multishot run filled more buffers than the connection may
  // hold): keep the bytes on the heap and give the ring buffer back at once, so
  // that a connection never pins more than max_buffers of the shared ring.
  std::byte* copy = new (std::nothrow) std::byte[len];
  if (copy != nullptr) {
    std::memcpy(copy, svc->pool().data(bid), len);
    try {
      push({len, kSpilled, copy});
      ++spilled_;
    } catch (...) {
      delete[] copy;
      copy = nullptr;
    }
  }
  svc->recycle(bid);
  if (copy == nullptr && end_ == 0) end_ = -ENOMEM;  // never lose bytes silently
}

void StreamCore::drop_queued() noexcept {
  while (queued_ != 0) {
    const Item it = queue_[head_];
    head_ = (head_ + 1) & static_cast<std::uint32_t>(queue_.size() - 1);
    --queued_;
    if (it.heap != nullptr) {
      delete[] it.heap;
      --spilled_;
    } else {
      --ring_held_;
      if (svc != nullptr) svc->recycle(it.bid);
    }
  }
}

void StreamCore::buffers_available() noexcept {
  maybe_arm();
}

void StreamCore::check_can_park() {
  if (waiter_ != nullptr) {
    throw std::logic_error("coring: two tasks are in recv() on the same TcpStream at once");
  }
  svc->pool();  // set up on first use; may throw (a kernel without buffer rings)
}

void StreamCore::park(RecvOp* w) noexcept {
  started_ = true;
  maybe_arm();
  waiter_ = w;
}

void StreamCore::wake() noexcept {
  RecvOp* w = std::exchange(waiter_, nullptr);
  w->status = pop(w->data, w->len, w->bid);
  w->deliver();
}

void StreamCore::add_send(SendAllAwaiter* s) noexcept {
  s->prev_ = nullptr;
  s->next_send_ = sends_;
  if (sends_ != nullptr) sends_->prev_ = s;
  sends_ = s;
  s->linked_ = true;
}

void StreamCore::unlink_send(SendAllAwaiter* s) noexcept {
  if (!s->linked_) return;
  if (s->prev_ != nullptr) {
    s->prev_->next_send_ = s->next_send_;
  } else {
    sends_ = s->next_send_;
  }
  if (s->next_send_ != nullptr) s->next_send_->prev_ = s->prev_;
  s->prev_ = s->next_send_ = nullptr;
  s->linked_ = false;
}

void StreamCore::give_back(std::uint16_t bid, std::byte* data) noexcept {
  --leased_;
  if (bid == kSpilled) {
    delete[] data;
    --spilled_;
  } else {
    --ring_held_;
    if (svc != nullptr) svc->recycle(bid);
  }
  if (svc == nullptr || orphaned) {
    if (orphaned) maybe_free();
    return;
  }
  if (ring_held_ + spilled_ == 0) throttled_ = false;  // caught up: multishot again
  if (!armed_ && started_) maybe_arm();
}

void StreamCore::orphan(bool keep_fd) noexcept {
  orphaned = true;
  if (RecvOp* w = std::exchange(waiter_, nullptr)) {
    // A recv parked on a stream being closed ends with an error.
    w->status = -EBADF;
    w->deliver();
  }
  // Sends in flight are cancelled; each wakes its task with EBADF when its CQE
  // is back, and the core stays until the last one has.
  for (SendAllAwaiter* s = sends_; s != nullptr; s = s->next_send_) s->stream_closed();
  drop_queued();
  if (svc == nullptr) {
    if (!keep_fd && fd >= 0) ::close(fd);
    fd = -1;
    maybe_free();
    return;
  }
  svc->stop_waiting(this);
  const bool ring_usable = !svc->loop().shutting_down();
  if (armed_ && ring_usable && !cancel_sent_) {
    svc->backend().cancel(this);
    cancel_sent_ = true;
  }
  if (!keep_fd && fd >= 0) {
    if (ring_usable) {
      IoRequest r;
      r.opcode = IoOpcode::close;
      r.fd = fd;
      svc->backend().start(r, &close_op_);
      close_pending_ = true;
    } else {
      svc->backend().forget_fd(fd);
      ::close(fd);
    }
  }
  fd = -1;
  maybe_free();
}

void StreamCore::on_close(Completion* c, int, std::uint32_t) noexcept {
  StreamCore* self = static_cast<CloseOp*>(c)->core;
  self->close_pending_ = false;
  self->maybe_free();
}

void StreamCore::maybe_free() noexcept {
  // While the loop runs, wait for every kernel operation; once the loop is being
  // torn down the NetService frees what is left after the ring is gone.
  if (!orphaned || leased_ != 0 || sends_ != nullptr) return;
  if (svc != nullptr && (armed_ || close_pending_)) return;
  delete this;
}

}  // namespace detail

// ---- RecvAwaiter ----

Received RecvAwaiter::await_resume() {
  Received r;
  if (core == nullptr) {
    r.error = std::make_error_code(std::errc::bad_file_descriptor);
    return r;
  }
  if (!filled) {
    if (timed_out()) return Received::timed_out();
    status = core->pop(data, len, bid);  // never suspended: the data was there
  }
  if (status == detail::StreamCore::kData) {
    r.buffer = BufferLease(core, data, len, bid);
  } else if (status < 0) {
    r.error = std::error_code(-status, std::system_category());
  }
  return r;
}

// ---- SendAllAwaiter ----

SendAllAwaiter::SendAllAwaiter(detail::StreamCore* core, std::span<const std::byte> bytes) noexcept
    : core_(core), next_(bytes.data()), left_(bytes.size()) {
  on_complete = &SendAllAwaiter::completed;
}

SendAllAwaiter::SendAllAwaiter(SendAllAwaiter&& o) noexcept
    : Operation(std::move(o)), core_(o.core_), next_(o.next_), left_(o.left_) {
  on_complete = &SendAllAwaiter::completed;
}

SendAllAwaiter::~SendAllAwaiter() {
  // A frame freed with the send still in flight (loop shutdown: the ring is
  // being torn down): only leave the core's list; the NetService frees it.
  if (linked_) core_->unlink_send(this);
}

void SendAllAwaiter::start() noexcept {
  core_->add_send(this);
  send_next();
}

void SendAllAwaiter::send_next() noexcept {
  IoRequest r;
  r.opcode = IoOpcode::send;
  r.fd = core_->fd;
  r.addr = const_cast<std::byte*>(next_);
  r.len = left_ > 0x7fffffffU ? 0x7fffffffU : static_cast<std::uint32_t>(left_);
  r.op_flags = MSG_NOSIGNAL;
  core_->svc->backend().start(r, this);
  in_kernel_ = true;
}

void SendAllAwaiter::stream_closed() noexcept {
  closed_ = true;
  if (in_kernel_) core_->svc->backend().cancel(this);
}

bool SendAllAwaiter::interrupt_send(Operation* op) noexcept {
  auto* self = static_cast<SendAllAwaiter*>(op);
  if (self->in_kernel_ && !self->closed_) self->core_->svc->backend().cancel(self);
  return false;  // the send's CQE ends it
}

void SendAllAwaiter::completed(Completion* c, int res, std::uint32_t) noexcept {
  auto* self = static_cast<SendAllAwaiter*>(c);
  self->in_kernel_ = false;
  bool interrupted = false;
  if (res > 0) {
    const auto n = static_cast<std::size_t>(res);
    self->sent_ += n;
    self->next_ += n;
    self->left_ -= n;
    if (self->left_ > 0) {
      if (!self->closed_ && !self->interrupting()) {
        self->send_next();  // a short send: go on with the rest
        return;
      }
      if (self->closed_) {
        self->err_ = EBADF;
      } else {
        interrupted = true;  // stopped short by the timeout or the cancellation
      }
    }
  } else if (res == 0) {
    self->err_ = EPIPE;  // nothing accepted for a non-empty send: the socket is done
  } else if (self->closed_) {
    self->err_ = EBADF;
  } else if ((res == -ECANCELED || res == -EINTR || res == -EAGAIN) && self->interrupting()) {
    interrupted = true;
  } else if (res == -EINTR || res == -EAGAIN) {
    self->send_next();  // interrupted by the kernel, not by us, or no room yet: go on
    return;
  } else {
    self->err_ = -res;
  }
  detail::StreamCore* core = self->core_;
  self->complete(interrupted);
  core->remove_send(self);  // may free an orphaned core: nothing of it is used after
}

SendResult SendAllAwaiter::await_resume() const {
  SendResult r;
  r.bytes = sent_;
  if (timed_out()) {
    r.error = std::make_error_code(std::errc::timed_out);
  } else if (core_ == nullptr && left_ > 0) {
    r.error = std::make_error_code(std::errc::bad_file_descriptor);
  } else if (err_ != 0) {
    r.error = std::error_code(err_, std::system_category());
  }
  return r;
}

// ---- TcpStream ----

TcpStream::TcpStream(int fd)
    : TcpStream(detail::NetService::of(EventLoop::current_or_throw()), fd) {}

TcpStream::TcpStream(detail::NetService& svc, int fd) : core_(new detail::StreamCore(&svc, fd)) {}

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    if (core_ != nullptr) core_->orphan(false);
    core_ = std::exchange(o.core_, nullptr);
  }
  return *this;
}

TcpStream::~TcpStream() {
  if (core_ != nullptr) core_->orphan(false);
}

std::error_code TcpStream::shutdown(int how) noexcept {
  if (core_ == nullptr || core_->fd < 0)
    return std::make_error_code(std::errc::bad_file_descriptor);
  if (::shutdown(core_->fd, how) != 0) return {errno, std::system_category()};
  return {};
}

CloseAwaiter TcpStream::close() noexcept {
  IoRequest r;
  r.opcode = IoOpcode::close;
  r.fd = -1;
  if (core_ != nullptr) {
    r.fd = core_->fd;
    std::exchange(core_, nullptr)->orphan(true);
  }
  return CloseAwaiter(r);
}

void TcpStream::set_max_buffers(std::uint32_t n) noexcept {
  if (core_ != nullptr) core_->max_buffers = n == 0 ? 1 : n;
}

std::error_code TcpStream::set_nodelay(bool on) noexcept {
  if (core_ == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
  const int v = on ? 1 : 0;
  if (::setsockopt(core_->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0) {
    return {errno, std::system_category()};
  }
  return {};
}

namespace {
Address sock_name(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                     : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r != 0) return Address();
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}
}  // namespace

Address TcpStream::local_address() const {
  return core_ != nullptr ? sock_name(core_->fd, false) : Address();
}

Address TcpStream::peer_address() const {
  return core_ != nullptr ? sock_name(core_->fd, true) : Address();
}

Task<Connected> connect(Address address, Duration timeout) {
  Connected out;
  if (address.family() != AF_INET && address.family() != AF_INET6) {
    out.error = std::make_error_code(std::errc::address_family_not_supported);
    co_return out;
  }
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    out.error = std::error_code(errno, std::system_category());
    co_return out;
  }
  TcpStream stream(fd);  // owns the fd from here on, whatever happens
  IoRequest r;
  r.opcode = IoOpcode::connect;
  r.fd = fd;
  r.addr = const_cast<sockaddr*>(address.sockaddr_ptr());
  r.len = address.sockaddr_len();
  IoAwaiter connecting(r, WaitKind::connect);
  if (timeout != kNoTimeout) connecting.set_timeout(timeout);
  const IoResult res = co_await connecting;
  if (!res.ok()) {
    out.error = res.error();
    co_return out;
  }
  out.stream = std::move(stream);
  co_return out;
}

}  // namespace coring::net
