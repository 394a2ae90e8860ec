// TimedOp: one io_uring operation with an optional timeout, for the net layer's
// single-shot operations (connect, close). Like IoAwaiter it lives in the
// awaiting frame and its address is the user_data; on timeout or cancellation it
// sends IORING_OP_ASYNC_CANCEL and stays suspended until the CQE comes back.
//
// await_resume returns the kernel's result, -ETIMEDOUT when the timeout cut the
// operation short, and throws Cancelled when the task was cancelled and the
// operation did not finish first.
#pragma once

#include <cerrno>
#include <coroutine>

#include "coring/runtime/event_loop.hpp"

namespace coring::net::detail {

class [[nodiscard]] TimedOp : private Completion, private CancelSlot, private TimerNode {
 public:
  TimedOp(const IoRequest& req, Duration timeout) noexcept : req_(req), timeout_(timeout) {
    on_complete = &TimedOp::completed;
    on_cancel = &TimedOp::cancel_requested;
    on_fire = &TimedOp::timer_fired;
  }
  TimedOp(const TimedOp&) = delete;
  TimedOp& operator=(const TimedOp&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return suspend(h, context_of(h));
  }
  int await_resume() const {
    if (cancelled_ && res_ == -ECANCELED) throw Cancelled{};
    if (timed_out_ && res_ == -ECANCELED) return -ETIMEDOUT;
    return res_;
  }

 private:
  bool suspend(std::coroutine_handle<> h, TaskContext* ctx);
  static void completed(Completion* c, int res, std::uint32_t flags) noexcept;
  static void cancel_requested(CancelSlot* s) noexcept;
  static void timer_fired(TimerNode* t) noexcept;

  IoRequest req_;
  Duration timeout_;
  EventLoop* loop_ = nullptr;
  TaskContext* ctx_ = nullptr;
  std::coroutine_handle<> handle_;
  int res_ = 0;
  bool cancelled_ = false;
  bool timed_out_ = false;
};

}  // namespace coring::net::detail
