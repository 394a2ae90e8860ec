// Single-shot I/O awaitables on the current EventLoop's backend.
//
// The operation object lives in the awaiting coroutine's frame and its address is
// the SQE's user_data: no allocation per operation. Results are values: `res`
// is the byte count (or 0) on success, -errno on failure; EOF is 0 bytes.
//
// Cancellation: cancelling the task sends IORING_OP_ASYNC_CANCEL and the task
// stays suspended (its frame and buffers alive) until the operation's CQE comes
// back. If the kernel reports the operation cancelled, the co_await throws
// Cancelled; if the operation finished first, its result is returned (no data is
// lost) and the task stops at its next suspension point.
#pragma once

#include <cerrno>
#include <cstddef>
#include <span>
#include <system_error>

#include "coring/runtime/event_loop.hpp"

namespace coring {

struct IoResult {
  int res = 0;
  [[nodiscard]] bool ok() const noexcept { return res >= 0; }
  [[nodiscard]] std::size_t bytes() const noexcept {
    return res > 0 ? static_cast<std::size_t>(res) : 0;
  }
  [[nodiscard]] std::error_code error() const noexcept {
    return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code();
  }
};

class [[nodiscard]] IoAwaiter : private Completion, private CancelSlot {
 public:
  explicit IoAwaiter(const IoRequest& req) noexcept : req_(req) {
    on_complete = &IoAwaiter::completed;
    on_cancel = &IoAwaiter::cancel_requested;
  }
  // Movable only before it is awaited (as when passed to with_timeout).
  IoAwaiter(IoAwaiter&& o) noexcept : IoAwaiter(o.req_) {}
  IoAwaiter& operator=(IoAwaiter&&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    loop_ = &EventLoop::current_or_throw();
    ctx_ = context_of(h);
    if (ctx_ != nullptr && !ctx_->arm(this)) {
      cancelled_ = true;
      res_ = -ECANCELED;
      return false;
    }
    handle_ = h;
    loop_->backend().start(req_, this);
    return true;
  }
  IoResult await_resume() const {
    if (cancelled_ && (res_ == -ECANCELED || res_ == -EINTR)) throw Cancelled{};
    return IoResult{res_};
  }

 private:
  static void completed(Completion* c, int res, std::uint32_t) noexcept {
    auto* self = static_cast<IoAwaiter*>(c);
    self->res_ = res;
    if (self->ctx_ != nullptr) self->ctx_->disarm(self);
    self->loop_->scheduler().schedule(self->handle_);
  }
  static void cancel_requested(CancelSlot* s) noexcept {
    auto* self = static_cast<IoAwaiter*>(s);
    self->cancelled_ = true;
    self->loop_->backend().cancel(self);
  }

  IoRequest req_;
  EventLoop* loop_ = nullptr;
  TaskContext* ctx_ = nullptr;
  std::coroutine_handle<> handle_;
  int res_ = 0;
  bool cancelled_ = false;
};

inline IoAwaiter async_read(int fd, std::span<std::byte> buf,
                            std::uint64_t offset = ~0ULL) noexcept {
  IoRequest r;
  r.opcode = IoOpcode::read;
  r.fd = fd;
  r.addr = buf.data();
  r.len = static_cast<std::uint32_t>(buf.size());
  r.offset = offset;
  return IoAwaiter{r};
}

inline IoAwaiter async_write(int fd, std::span<const std::byte> buf,
                             std::uint64_t offset = ~0ULL) noexcept {
  IoRequest r;
  r.opcode = IoOpcode::write;
  r.fd = fd;
  r.addr = const_cast<std::byte*>(buf.data());
  r.len = static_cast<std::uint32_t>(buf.size());
  r.offset = offset;
  return IoAwaiter{r};
}

// Waits until `fd` is ready for `events` (POLLIN, POLLOUT...); res is the revents mask.
inline IoAwaiter async_poll(int fd, unsigned events) noexcept {
  IoRequest r;
  r.opcode = IoOpcode::poll_add;
  r.fd = fd;
  r.len = events;
  return IoAwaiter{r};
}

// A no-op round trip through the ring (useful to measure the loop).
inline IoAwaiter async_nop() noexcept {
  return IoAwaiter{IoRequest{}};
}

}  // namespace coring
