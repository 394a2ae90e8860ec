// Operation: the one base under every awaitable that suspends a task -- sleep,
// join, I/O, the sync primitives' waits, net's recv/send/accept/connect/close.
// It is the single place that arms cancellation and an optional timeout,
// parks the task, and resumes it with a result.
//
// State (end_): idle (not awaited yet) -> pending (suspended) -> done, timed_out
// or cancelled. An operation that completes without suspending (its await_ready
// or await_suspend found the result at once) never becomes pending, never arms
// anything and never times out.
//
// Contract for a derived awaiter:
// - await_suspend(h): call `prepare(h)` before changing anything; when it
//   returns false the task was cancelled before the operation started (its
//   unwinder is scheduled): return `suspend_cancelled()` at once. Otherwise
//   park or start the operation, then `start_timeout()` (or `start_timer()`),
//   and return true.
// - When the operation ends with its result, call `complete(false)`.
// - `interrupt` (given to the constructor) is called, at most once, when the
//   timeout passes or the task is cancelled while pending. It stops the wait
//   and returns true if it stopped at once (the base then completes the
//   operation as interrupted), or false if the operation will report later
//   with `complete(interrupted)` -- true when what ended it was the interrupt,
//   false when its real result raced ahead (a result is never dropped: the
//   task gets it, and a cancellation then takes effect at the task's next
//   suspension point).
// - A cancelled operation never resumes its task: the base schedules the
//   unwinder of the task's context instead (task_context.hpp), which destroys
//   the frame the operation lives in.
// - await_resume builds the result; `timed_out()` tells a timeout.
// - A frame destroyed while the operation is pending (loop shutdown) runs the
//   derived destructor, which must unpark; the base then removes its timer and
//   its cancel registration.
// Waking is always by scheduling (never inline), so a wake-up returns before
// the woken task runs.
//
// Timeouts: `set_timeout(d)` before the operation is awaited; d counts from
// the moment it suspends. A zero or negative d times out at once (on the next
// loop turn) unless the result is already there. Timeouts need an EventLoop
// (the timer heap); an operation without one runs on a bare TaskScheduler too.
//
// What it waits on (target()) is recorded for task dumps: a kind, an fd, and
// the object (primitive, socket, task).
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>

#include "coring/runtime/clock.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/task_context.hpp"
#include "coring/runtime/timer_queue.hpp"

namespace coring {

// "No timeout" for every operation that takes one.
inline constexpr Duration kNoTimeout = Duration::max();

enum class WaitKind : std::uint8_t {
  none,
  sleep,
  io,
  join,
  event,
  semaphore,
  mutex,
  condition,
  queue_pop,
  queue_push,
  latch,
  barrier,
  recv,
  send,
  accept,
  connect,
  close,
  other,
};

namespace detail {
// Now + d, saturated.
inline TimePoint deadline_after(Duration d) noexcept {
  const TimePoint now = Clock::now();
  return d >= TimePoint::max() - now ? TimePoint::max() : now + d;
}
}  // namespace detail

// What a pending operation waits on.
struct WaitTarget {
  WaitKind kind = WaitKind::none;
  int fd = -1;                   // the file descriptor, for I/O
  const void* object = nullptr;  // the primitive, socket or task waited on
};

class Operation : private CancelSlot, private TimerNode {
 public:
  // True for an operation whose await_resume reports a timeout in its own
  // result, with details (what a send got out); with_timeout then asks it.
  static constexpr bool kReportsTimeout = false;

  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;
  Operation& operator=(Operation&&) = delete;

  // Before the operation is awaited: give up after `d` (see above).
  void set_timeout(Duration d) noexcept {
    assert(end_ == End::idle && "set_timeout() on an operation already awaited");
    timeout_ = d;
  }
  [[nodiscard]] Duration timeout() const noexcept { return timeout_; }
  // Before the operation is awaited: it will not be interrupted by a
  // cancellation of the task (see shield()).
  void shield() noexcept { shielded_ = true; }
  [[nodiscard]] bool timed_out() const noexcept { return end_ == End::timed_out; }
  [[nodiscard]] bool pending() const noexcept { return end_ == End::pending; }
  [[nodiscard]] const WaitTarget& target() const noexcept { return target_; }

 protected:
  using InterruptFn = bool (*)(Operation* self) noexcept;

  Operation(InterruptFn on_interrupt, WaitTarget target) noexcept
      : target_(target), interrupt_(on_interrupt) {
    on_cancel = &Operation::cancel_requested;
    on_fire = &Operation::timer_fired;
  }
  // Awaitables may be moved until they are awaited (into with_timeout, say):
  // what they were set up with is copied, nothing else.
  Operation(Operation&& o) noexcept : Operation(o.interrupt_, o.target_) {
    assert(o.end_ == End::idle && "an operation cannot move once awaited");
    timeout_ = o.timeout_;
    shielded_ = o.shielded_;
  }
  ~Operation() {
    if (end_ == End::pending) {
      if (TimerNode::armed()) timers_->remove(this);
      if (ctx_ != nullptr) ctx_->disarm(this);
    }
  }

  // See the contract above. Throws (before anything changed) when the
  // operation needs an EventLoop or a scheduler and there is none.
  template <class P>
  [[nodiscard]] bool prepare(std::coroutine_handle<P> h, bool needs_timers = false) {
    sched_ = &current_scheduler();
    if (needs_timers || timeout_ != kNoTimeout) timers_ = &detail::current_timers();
    handle_ = h;
    ctx_ = shielded_ ? nullptr : context_of(h);
    if (ctx_ != nullptr && !ctx_->arm(this)) {
      end_ = End::cancelled;
      sched_->schedule(ctx_->unwinder());
      return false;
    }
    end_ = End::pending;
    return true;
  }
  // What await_suspend returns when prepare() failed: stay suspended until
  // the unwinder destroys the frame.
  [[nodiscard]] static bool suspend_cancelled() noexcept { return true; }

  void start_timeout() {
    if (timeout_ != kNoTimeout) start_timer(detail::deadline_after(timeout_), false);
  }
  // Arms the timer for `at`: when it fires the operation completes (completes)
  // or is interrupted as timed out (!completes). Needs prepare(h, true) or a timeout.
  void start_timer(TimePoint at, bool completes) {
    deadline = at;
    timer_completes_ = completes;
    timers_->add(this);
  }

  // The operation ended (see the contract): resumes the task, or unwinds it
  // when a cancellation interrupted the operation.
  void complete(bool interrupted) noexcept {
    finish(interrupted);
    sched_->schedule(end_ == End::cancelled ? ctx_->unwinder() : handle_);
  }
  // Like complete(false), for a completion that transfers to the task itself
  // (symmetric transfer) instead of scheduling it: returns its handle.
  [[nodiscard]] std::coroutine_handle<> complete_by_transfer() noexcept {
    finish(false);
    return handle_;
  }

  // An interrupt was asked for (a timeout or a cancellation).
  [[nodiscard]] bool interrupting() const noexcept { return why_ != Why::none; }
  [[nodiscard]] TaskScheduler& scheduler() const noexcept { return *sched_; }
  [[nodiscard]] std::coroutine_handle<> handle() const noexcept { return handle_; }

  WaitTarget target_;

 private:
  enum class Why : std::uint8_t { none, timeout, cancel };
  enum class End : std::uint8_t { idle, pending, done, timed_out, cancelled };

  void finish(bool interrupted) noexcept {
    if (TimerNode::armed()) timers_->remove(this);
    if (ctx_ != nullptr) ctx_->disarm(this);
    if (!interrupted) {
      end_ = End::done;
    } else {
      end_ = why_ == Why::cancel ? End::cancelled : End::timed_out;
    }
  }
  void begin_interrupt(Why why) noexcept {
    const bool first = why_ == Why::none;
    why_ = why;  // a cancellation overrides a timeout still being interrupted
    if (first && interrupt_(this)) complete(true);
  }
  static void cancel_requested(CancelSlot* s) noexcept {
    auto* self = static_cast<Operation*>(s);
    if (self->TimerNode::armed()) self->timers_->remove(self);
    self->begin_interrupt(Why::cancel);
  }
  static void timer_fired(TimerNode* t) noexcept {
    auto* self = static_cast<Operation*>(t);
    if (self->timer_completes_) {
      self->complete(false);
    } else {
      self->begin_interrupt(Why::timeout);
    }
  }

  TaskContext* ctx_ = nullptr;
  std::coroutine_handle<> handle_;
  TaskScheduler* sched_ = nullptr;
  TimerQueue* timers_ = nullptr;
  InterruptFn interrupt_;
  Duration timeout_ = kNoTimeout;
  Why why_ = Why::none;
  End end_ = End::idle;
  bool timer_completes_ = false;
  bool shielded_ = false;
};

}  // namespace coring
