// The net layer's per-loop state: the loop's receive-buffer pool, the streams
// waiting for free buffers, and a registry of every socket core so that nothing
// outlives the loop unclosed.
//
// Implementation notes.
// - A socket core (StreamCore, ListenerCore) is the heap-stable part of a socket:
//   its address is the user_data of the socket's multishot operation, so it must
//   live until that operation's final CQE, even after the TcpStream/TcpListener
//   that owned it is gone ("orphaned"). It frees itself once nothing refers to
//   it: no operation in the kernel, no BufferLease out, no owner.
// - When the loop is destroyed its ring is gone before its services: the
//   service's destructor closes the fds of cores still registered and frees the
//   orphans; a core whose owner still exists is cut loose (svc == nullptr) and
//   freed by that owner.
#pragma once

#include <cstdint>
#include <vector>

#include "coring/runtime/buffer_pool.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::net {

struct NetOptions {
  // The loop's receive buffers (see BufferPool): 1024 x 16 KiB by default.
  BufferPoolOptions buffers;
};

namespace detail {

class NetService;

class SocketCore {
 public:
  SocketCore(NetService* svc, int fd) noexcept;
  virtual ~SocketCore();
  SocketCore(const SocketCore&) = delete;
  SocketCore& operator=(const SocketCore&) = delete;

  NetService* svc = nullptr;  // null once the loop is gone
  int fd = -1;
  bool orphaned = false;  // the owning TcpStream/TcpListener is gone

 private:
  friend class NetService;
  SocketCore* prev_ = nullptr;
  SocketCore* next_ = nullptr;
};

class StreamCore;

class NetService final : public LoopService {
 public:
  explicit NetService(EventLoop& loop) noexcept : loop_(&loop) {}
  ~NetService() override;

  static NetService& of(EventLoop& loop) { return loop.service<NetService>(); }

  [[nodiscard]] EventLoop& loop() noexcept { return *loop_; }
  [[nodiscard]] Backend& backend() noexcept { return loop_->backend(); }
  // The loop's receive-buffer pool, made by the backend on first use with the
  // options given to configure().
  BufferPool& pool() {
    if (pool_) [[likely]]
      return *pool_;
    return make_pool();
  }
  [[nodiscard]] bool has_pool() const noexcept { return pool_ != nullptr; }
  // Whether a multishot recv can be given a byte limit (see StreamCore); found
  // out by the first recv that tries (the kernel refuses it with EINVAL).
  [[nodiscard]] bool recv_limits() const noexcept { return recv_limits_; }
  void no_recv_limits() noexcept { recv_limits_ = false; }
  void configure(const NetOptions& options);
  [[nodiscard]] const NetOptions& options() const noexcept { return options_; }

  void add(SocketCore* c) noexcept;
  void remove(SocketCore* c) noexcept;
  [[nodiscard]] std::size_t sockets() const noexcept { return sockets_; }

  // A stream whose multishot recv ended with ENOBUFS waits here; a recycled
  // buffer re-arms the longest waiting one. Returns false (nothing to wait
  // for) when the ring has free buffers again.
  bool wait_for_buffers(StreamCore* s);
  void stop_waiting(StreamCore* s) noexcept;
  void recycle(std::uint16_t bid) noexcept {
    pool_->recycle(bid);
    if (buffer_waiters_head_ != buffer_waiters_.size()) wake_buffer_waiter();
  }

 private:
  BufferPool& make_pool();
  void wake_buffer_waiter() noexcept;

  EventLoop* loop_;
  NetOptions options_;
  std::unique_ptr<BufferPool> pool_;
  bool recv_limits_ = true;
  SocketCore* head_ = nullptr;
  std::size_t sockets_ = 0;
  std::vector<StreamCore*> buffer_waiters_;
  std::size_t buffer_waiters_head_ = 0;
};

}  // namespace detail

// Sets how `loop`'s sockets receive (its buffer pool). Call before the loop's
// first recv; throws std::logic_error once the pool exists.
inline void configure(EventLoop& loop, const NetOptions& options) {
  detail::NetService::of(loop).configure(options);
}

}  // namespace coring::net
