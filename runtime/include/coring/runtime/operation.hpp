// Operation: the one base under every awaitable that suspends a task -- sleep,
// join, I/O, the sync primitives' waits, net's recv/send/accept/connect/close.
// It is the single place that arms cancellation and an optional timeout,
// parks the task, and resumes it with a result.
//
// State (op_state_.end): idle (not awaited yet) -> pending (suspended) -> done,
// timed_out or cancelled. An operation that completes without suspending (its await_ready
// or await_suspend found the result at once) never becomes pending, never arms
// anything and never times out.
//
// Contract for a derived awaiter:
// - await_suspend(h): call `prepare<interrupt>(h, kind, object)` before
//   changing anything; when it returns false the task was cancelled before the
//   operation started (its unwinder is scheduled): return `suspend_cancelled()`
//   at once. Otherwise park or start the operation, then `start_timeout()` (or
//   `start_timer()`), and return true.
// - When the operation ends with its result, call `complete(false)`.
// - `interrupt` (given to prepare) is called, at most once, when the
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
// What it waits on (target()) is recorded for task dumps: a kind and the
// object (primitive, socket core, task, IoRequest -- the fd is in the last two).
//
// Cost: an operation that completes without suspending (a pop of a queued
// item, a lock of a free mutex) sets one word of the base; everything a
// suspended operation needs is set up by prepare().
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
  mailbox_receive,  // an actor waiting for its next message (actor/)
  mailbox_send,     // a sender waiting for room in a bounded mailbox
  reply,            // an ask() waiting for its reply
  other,
};

namespace detail {
// Now + d, saturated.
inline TimePoint deadline_after(Duration d) noexcept {
  const TimePoint now = coring::now();
  return d >= TimePoint::max() - now ? TimePoint::max() : now + d;
}
}  // namespace detail

// What a pending operation waits on. The object is the primitive (Event,
// Mutex, Queue...), the task's promise for a join, the IoRequest of an
// async_read/write (its fd inside), the socket core for net (its fd inside).
struct WaitTarget {
  WaitKind kind = WaitKind::none;
  const void* object = nullptr;
};

class Operation : private CancelSlot, private TimerNode {
 public:
  // True for an operation whose await_resume reports a timeout in its own
  // result, with details (what a send got out); with_timeout then asks it.
  static constexpr bool kReportsTimeout = false;
  // False for an operation whose completion hands over something it could not
  // give back if it lost a select() (a lock, a permit, an item it pushed,
  // bytes it sent or read, a message): select() refuses it at compile time.
  static constexpr bool kSelectable = true;

  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;
  Operation& operator=(Operation&&) = delete;

  // Before the operation is awaited: give up after `d` (see above).
  void set_timeout(Duration d) noexcept {
    assert(op_state_.end == End::idle && "set_timeout() on an operation already awaited");
    op_state_.has_timeout = d != kNoTimeout;
    op_state_.special = op_state_.has_timeout || op_state_.shielded;
    TimerNode::pending_timeout = d;
  }
  // The timeout set (kNoTimeout if none); valid until the operation is awaited.
  [[nodiscard]] Duration timeout() const noexcept {
    return op_state_.has_timeout ? TimerNode::pending_timeout : kNoTimeout;
  }
  // Before the operation is awaited: it will not be interrupted by a
  // cancellation of the task (see shield()).
  void shield() noexcept { op_state_.shielded = op_state_.special = true; }
  [[nodiscard]] bool timed_out() const noexcept { return op_state_.end == End::timed_out; }
  [[nodiscard]] bool pending() const noexcept { return op_state_.end == End::pending; }
  // What a pending operation waits on (unspecified while it is not pending).
  [[nodiscard]] WaitTarget target() const noexcept { return {op_state_.kind, object_}; }

 protected:
  using InterruptFn = bool (*)(Operation* self) noexcept;

  // Only what an operation that completes without suspending (and the
  // destructor) reads is set here: one word. prepare() sets up the rest.
  Operation() noexcept : TimerNode(TimerNode::Deferred{}) {}
  // Awaitables may be moved until they are awaited (into with_timeout, say):
  // what they were set up with is copied, nothing else.
  Operation(Operation&& o) noexcept : TimerNode(TimerNode::Deferred{}) {
    assert(o.op_state_.end == End::idle && "an operation cannot move once awaited");
    op_state_.special = o.op_state_.special;
    op_state_.shielded = o.op_state_.shielded;
    op_state_.has_timeout = o.op_state_.has_timeout;
    if (op_state_.has_timeout) TimerNode::pending_timeout = o.TimerNode::pending_timeout;
  }
  ~Operation() {
    if (op_state_.end == End::pending) {
      if (op_state_.has_timer && TimerNode::armed()) sched_->timers()->remove(this);
      if (ctx_ != nullptr) ctx_->disarm(this);
    }
  }

  // See the contract above; `Interrupt` is the operation's interrupt, `kind`
  // and `object` say what it waits on. Throws (before anything changed) when
  // the operation needs an EventLoop or a scheduler and there is none.
  template <InterruptFn Interrupt, class P>
  [[nodiscard]] [[gnu::always_inline]] inline bool prepare(std::coroutine_handle<P> h,
                                                           WaitKind kind, const void* object,
                                                           bool needs_timers = false) {
    sched_ = &current_scheduler();
    ctx_ = context_of(h);
    if (needs_timers || op_state_.special) [[unlikely]] {
      if (needs_timers || op_state_.has_timeout) {
        if (sched_->timers() == nullptr) detail::throw_no_event_loop();
        on_fire = &Operation::timer_fired<Interrupt>;
        heap_index = kNotArmed;
      }
      if (op_state_.shielded) ctx_ = nullptr;
    }
    on_cancel = &Operation::cancel_requested<Interrupt>;
    object_ = object;
    handle_ = h;
    // Contiguous bytes, stored together (never the whole word: a wide load
    // after narrow stores would stall store forwarding).
    op_state_.end = End::pending;
    op_state_.why = Why::none;
    op_state_.has_timer = false;
    op_state_.timer_completes = false;
    op_state_.kind = kind;
    if (ctx_ != nullptr && !ctx_->arm(this)) [[unlikely]] {
      op_state_.end = End::cancelled;
      sched_->schedule(ctx_->unwinder());
      return false;
    }
    return true;
  }
  // What await_suspend returns when prepare() failed: stay suspended until
  // the unwinder destroys the frame.
  [[nodiscard]] static bool suspend_cancelled() noexcept { return true; }

  void start_timeout() {
    if (op_state_.has_timeout)
      start_timer(detail::deadline_after(TimerNode::pending_timeout), false);
  }
  // Arms the timer for `at`: when it fires the operation completes (completes)
  // or is interrupted as timed out (!completes). Needs prepare(h, ..., true) or
  // a timeout.
  void start_timer(TimePoint at, bool completes) {
    deadline = at;
    op_state_.has_timer = true;
    op_state_.timer_completes = completes;
    sched_->timers()->add(this);
  }

  // The operation ended (see the contract): resumes the task, or unwinds it
  // when a cancellation interrupted the operation.
  [[gnu::always_inline]] inline void complete(bool interrupted) noexcept {
    if (!interrupted) {
      finish(false);
      sched_->schedule(handle_);
    } else {
      finish(true);
      sched_->schedule(op_state_.end == End::cancelled ? ctx_->unwinder() : handle_);
    }
  }
  // Like complete(false), for a completion that transfers to the task itself
  // (symmetric transfer) instead of scheduling it: returns its handle.
  [[nodiscard]] std::coroutine_handle<> complete_by_transfer() noexcept {
    finish(false);
    return handle_;
  }

  // An interrupt was asked for (a timeout or a cancellation).
  [[nodiscard]] bool interrupting() const noexcept { return op_state_.why != Why::none; }
  [[nodiscard]] TaskScheduler& scheduler() const noexcept { return *sched_; }
  [[nodiscard]] std::coroutine_handle<> handle() const noexcept { return handle_; }

 private:
  enum class Why : std::uint8_t { none, timeout, cancel };
  enum class End : std::uint8_t { idle, pending, done, timed_out, cancelled };
  // One word: an operation that never suspends sets it once.
  struct OpState {
    // Set by prepare().
    End end = End::idle;
    Why why = Why::none;
    bool has_timer = false;  // a timer was armed (it may have fired since)
    bool timer_completes = false;
    WaitKind kind = WaitKind::none;
    // Set before the operation is awaited.
    bool special = false;  // has_timeout || shielded: prepare()'s cold path
    bool shielded = false;
    bool has_timeout = false;
  };
  static_assert(sizeof(OpState) == 8);

  void finish(bool interrupted) noexcept {
    if (op_state_.has_timer && TimerNode::armed()) sched_->timers()->remove(this);
    if (ctx_ != nullptr) ctx_->disarm(this);
    if (!interrupted) {
      op_state_.end = End::done;
    } else {
      op_state_.end = op_state_.why == Why::cancel ? End::cancelled : End::timed_out;
    }
  }
  void begin_interrupt(Why why, InterruptFn interrupt) noexcept {
    const bool first = op_state_.why == Why::none;
    op_state_.why = why;  // a cancellation overrides a timeout still being interrupted
    if (first && interrupt(this)) complete(true);
  }
  template <InterruptFn Interrupt>
  static void cancel_requested(CancelSlot* s) noexcept {
    auto* self = static_cast<Operation*>(s);
    if (self->op_state_.has_timer && self->TimerNode::armed()) {
      self->sched_->timers()->remove(self);
    }
    self->begin_interrupt(Why::cancel, Interrupt);
  }
  template <InterruptFn Interrupt>
  static void timer_fired(TimerNode* t) noexcept {
    auto* self = static_cast<Operation*>(t);
    if (self->op_state_.timer_completes) {
      self->complete(false);
    } else {
      self->begin_interrupt(Why::timeout, Interrupt);
    }
  }

  OpState op_state_;
  // Set by prepare(): valid once the operation was awaited and suspended.
  union {
    std::coroutine_handle<> handle_;  // in a union: not set up front
  };
  TaskContext* ctx_;
  TaskScheduler* sched_;  // its timers() hold the operation's timer, if any
  const void* object_;
  // The timeout (op_state_.has_timeout) waits in TimerNode::pending_timeout until
  // start_timeout() turns it into the node's deadline.
};

}  // namespace coring
