// Single-shot I/O awaitables on the current EventLoop's backend.
//
// The operation object lives in the awaiting coroutine's frame and its address is
// the SQE's user_data: no allocation per operation. Results are values: `res`
// is the byte count (or 0) on success, -errno on failure; EOF is 0 bytes.
//
// Cancellation and timeouts: interrupting the operation sends
// IORING_OP_ASYNC_CANCEL and the task stays suspended (its frame and buffers
// alive) until the operation's CQE comes back. If the kernel reports the
// operation cancelled, a cancelled task is unwound and a timed-out operation
// gives -ETIMEDOUT; if the operation finished first, its result is returned
// (no data is lost) and a cancellation takes effect at the task's next
// suspension point.
#pragma once

#include <cerrno>
#include <cstddef>
#include <span>
#include <system_error>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

struct IoResult {
  int res = 0;
  // How a timed-out operation reports (see with_timeout).
  static IoResult timed_out() noexcept { return IoResult{-ETIMEDOUT}; }
  [[nodiscard]] bool ok() const noexcept { return res >= 0; }
  [[nodiscard]] std::size_t bytes() const noexcept {
    return res > 0 ? static_cast<std::size_t>(res) : 0;
  }
  [[nodiscard]] std::error_code error() const noexcept {
    return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code();
  }
};

// One single-shot operation on the backend (an Operation, see operation.hpp).
// EINTR is never a result: an operation the kernel interrupted on its own is
// submitted again; one that we asked to cancel (timeout, cancellation) and that
// ends with ECANCELED or EINTR was interrupted. A timed-out operation gives
// -ETIMEDOUT.
class [[nodiscard]] IoAwaiter : public Operation, private Completion {
 public:
  static constexpr bool kSelectable = false;  // see Operation::kSelectable
  explicit IoAwaiter(const IoRequest& req, WaitKind kind = WaitKind::io) noexcept
      : req_(req), kind_(kind) {
    on_complete = &IoAwaiter::completed;
  }
  IoAwaiter(IoAwaiter&& o) noexcept : Operation(std::move(o)), req_(o.req_), kind_(o.kind_) {
    on_complete = &IoAwaiter::completed;
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    loop_ = &EventLoop::current_or_throw();
    if (!prepare<&IoAwaiter::interrupt_io>(h, kind_, &req_)) {
      return suspend_cancelled();
    }
    loop_->backend().start(req_, this);
    start_timeout();
    return true;
  }
  IoResult await_resume() const noexcept { return IoResult{timed_out() ? -ETIMEDOUT : res_}; }

 private:
  static void completed(Completion* c, int res, std::uint32_t) noexcept {
    auto* self = static_cast<IoAwaiter*>(c);
    const bool interrupted = self->interrupting() && (res == -ECANCELED || res == -EINTR);
    if (res == -EINTR && !interrupted) {
      self->loop_->backend().start(self->req_, self);  // not ours: try again
      return;
    }
    self->res_ = res;
    self->complete(interrupted);
  }
  static bool interrupt_io(Operation* op) noexcept {
    auto* self = static_cast<IoAwaiter*>(op);
    self->loop_->backend().cancel(self);
    return false;  // the CQE tells how it ended
  }

  IoRequest req_;
  WaitKind kind_;
  EventLoop* loop_ = nullptr;
  int res_ = 0;
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
