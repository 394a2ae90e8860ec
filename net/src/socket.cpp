// NetService and SocketCore: the parts every socket type shares.
#include <fmt/core.h>
#include <unistd.h>

#include <stdexcept>
#include <utility>

#include "coring/net/detail/service.hpp"
#include "coring/net/detail/stream_core.hpp"

namespace coring::net::detail {

SocketCore::SocketCore(NetService* s, int f) noexcept : svc(s), fd(f) {
  if (svc != nullptr) svc->add(this);
}

SocketCore::~SocketCore() {
  if (svc != nullptr) svc->remove(this);
}

NetService::~NetService() {
  // The ring is gone: nothing is in the kernel any more. Orphans are freed;
  // cores whose owner still exists are cut loose and freed by that owner.
  if (pool_) pool_->forget_backend();
  while (SocketCore* c = head_) {
    remove(c);
    c->svc = nullptr;
    if (c->fd >= 0) {
      ::close(c->fd);
      c->fd = -1;
    }
    if (c->orphaned) delete c;
  }
}

BufferPool& NetService::make_pool() {
  pool_ = backend().make_buffer_pool(options_.buffers);
  return *pool_;
}

void NetService::configure(const NetOptions& options) {
  if (pool_) {
    throw std::logic_error(
        "coring: net::configure must come before the loop's first recv (its buffer pool exists)");
  }
  options_ = options;
}

void NetService::add(SocketCore* c) noexcept {
  c->prev_ = nullptr;
  c->next_ = head_;
  if (head_ != nullptr) head_->prev_ = c;
  head_ = c;
  ++sockets_;
}

void NetService::remove(SocketCore* c) noexcept {
  if (c->prev_ != nullptr) {
    c->prev_->next_ = c->next_;
  } else if (head_ == c) {
    head_ = c->next_;
  } else {
    return;  // not registered
  }
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --sockets_;
}

bool NetService::wait_for_buffers(StreamCore* s) {
  // Buffers may have come back between the kernel's ENOBUFS and this CQE; then
  // there is nothing to wait for (and no recycle might come to wake us).
  if (pool_->in_use() < pool_->entries()) return false;
  if (s->waiting_for_buffers) return true;
  s->waiting_for_buffers = true;
  buffer_waiters_.push_back(s);
  return true;
}

void NetService::stop_waiting(StreamCore* s) noexcept {
  if (!s->waiting_for_buffers) return;
  s->waiting_for_buffers = false;
  for (std::size_t i = buffer_waiters_head_; i < buffer_waiters_.size(); ++i) {
    if (buffer_waiters_[i] == s) buffer_waiters_[i] = nullptr;
  }
}

void NetService::wake_buffer_waiter() noexcept {
  while (buffer_waiters_head_ < buffer_waiters_.size()) {
    StreamCore* s = buffer_waiters_[buffer_waiters_head_++];
    if (buffer_waiters_head_ == buffer_waiters_.size()) {
      buffer_waiters_.clear();
      buffer_waiters_head_ = 0;
    }
    if (s != nullptr) {
      s->waiting_for_buffers = false;
      s->buffers_available();
      return;  // one buffer back: one stream may try again
    }
  }
}

}  // namespace coring::net::detail
