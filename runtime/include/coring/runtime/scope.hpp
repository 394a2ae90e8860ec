// ScopeAwaiter: awaits a child task in a TaskContext of its own, nested in the
// awaiting task's -- the machinery under with_timeout (of a task), shield and
// try_finally (cancel.hpp).
//
// Implementation notes. The child runs, by symmetric transfer, in the scope's
// inner context; it transfers back when it ends, like any awaited task.
// Depending on the mode:
// - timeout: a timer of the scope cancels the inner context when it fires; a
//   cancellation of the task is forwarded to the inner context too.
// - shield: nothing is forwarded: the child runs to its end whatever happens
//   to the task, whose cancellation then takes effect at its next suspension
//   point.
// - capture: a cancellation of the task is forwarded, and the child's
//   unwinding is reported to the awaiting task as a value (how try_finally
//   gets to run its cleanup) instead of unwinding it.
// When the inner context unwinds, its unwinder (inner_unwound) destroys the
// child's frames, then either resumes the awaiting task (timed out, or captured)
// or schedules the unwinder of the task's own context (the task was cancelled).
// A result the child produced is never dropped: if it ends normally after the
// timer fired, its value is what the scope gives.
#pragma once

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/task.hpp"

namespace coring::detail {

enum class ScopeMode : unsigned char { timeout, shield, capture };

template <class T>
class [[nodiscard]] ScopeAwaiter : private CancelSlot, private TimerNode {
 public:
  ScopeAwaiter(Task<T>&& child, ScopeMode mode, Duration timeout = kNoTimeout) noexcept
      : child_(child.release()), timeout_(timeout), mode_(mode) {
    on_cancel = &ScopeAwaiter::outer_cancelled;
    on_fire = &ScopeAwaiter::timer_fired;
  }
  ScopeAwaiter(const ScopeAwaiter&) = delete;
  ScopeAwaiter& operator=(const ScopeAwaiter&) = delete;
  ~ScopeAwaiter() {
    if (TimerNode::armed()) timers_->remove(this);
    if (outer_ != nullptr) outer_->disarm(this);
    if (child_) child_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) {
    sched_ = &current_scheduler();
    if (timeout_ != kNoTimeout) timers_ = &current_timers();
    parent_ = parent;
    TaskContext* outer = context_of(parent);
    inner_.share_extension_of(outer);  // the child sees the task's TaskLocal values
    inner_.bind(sched_);
    if (mode_ != ScopeMode::shield && outer != nullptr) {
      if (!outer->arm(this)) {
        // Already cancelled: the child never runs.
        if (mode_ == ScopeMode::capture) {
          child_cancelled_ = true;
          return parent;
        }
        sched_->schedule(outer->unwinder());
        return std::noop_coroutine();
      }
      outer_ = outer;
    }
    if (timeout_ != kNoTimeout) {
      deadline = deadline_after(timeout_);
      timers_->add(this);
    }
    child_.promise().attach_parent(parent, &inner_, std::is_base_of_v<PromiseBase, P>);
    if constexpr (std::is_base_of_v<PromiseBase, P>) {
      return transfer_to(child_);
    } else {
      return child_;  // a foreign resumer does not run the trampoline
    }
  }

 protected:
  // Call first in await_resume.
  void finish() noexcept {
    if (TimerNode::armed()) timers_->remove(this);
    if (outer_ != nullptr) std::exchange(outer_, nullptr)->disarm(this);
  }
  [[nodiscard]] bool child_cancelled() const noexcept { return child_cancelled_; }
  // The context the child runs in (cancelling it cancels the child alone).
  [[nodiscard]] TaskContext& inner_context() noexcept { return inner_; }
  [[nodiscard]] bool timed_out() const noexcept { return child_cancelled_ && timed_out_; }
  // The child's value, or its exception rethrown. Requires !child_cancelled().
  T take() { return child_.promise().take_result(); }
  [[nodiscard]] Outcome<T> take_outcome() noexcept {
    if (child_cancelled_) return Outcome<T>::from_cancel();
    TaskPromise<T>& p = child_.promise();
    if (p.failed()) return Outcome<T>::from_error(p.exception());
    if constexpr (std::is_void_v<T>) {
      return Outcome<T>::from_value();
    } else {
      try {
        return Outcome<T>::from_value(p.take_result());
      } catch (...) {
        return Outcome<T>::from_error(std::current_exception());
      }
    }
  }

 private:
  static void outer_cancelled(CancelSlot* s) noexcept {
    auto* self = static_cast<ScopeAwaiter*>(s);
    self->outer_cancelled_ = true;
    self->outer_ = nullptr;  // the context cleared its slot
    self->inner_.request_cancel();
  }
  static void timer_fired(TimerNode* t) noexcept {
    auto* self = static_cast<ScopeAwaiter*>(t);
    self->timed_out_ = true;
    self->inner_.request_cancel();
  }
  static void inner_unwound(void* owner) noexcept {
    auto* self = static_cast<ScopeAwaiter*>(owner);
    std::exchange(self->child_, {}).destroy();
    self->child_cancelled_ = true;
    if (self->TimerNode::armed()) self->timers_->remove(self);
    if (self->outer_cancelled_ && self->mode_ != ScopeMode::capture) {
      // The task itself was cancelled: it unwinds too (this awaiter with it).
      self->sched_->schedule(context_of_parent(self)->unwinder());
    } else {
      self->sched_->schedule(self->parent_);
    }
  }
  static TaskContext* context_of_parent(ScopeAwaiter* self) noexcept {
    return self->inner_.outer_context();
  }

  std::coroutine_handle<TaskPromise<T>> child_;
  TaskContext inner_{&ScopeAwaiter::inner_unwound, this};
  std::coroutine_handle<> parent_;
  TaskContext* outer_ = nullptr;  // whose slot this scope occupies, while it does
  TaskScheduler* sched_ = nullptr;
  TimerQueue* timers_ = nullptr;
  Duration timeout_;
  ScopeMode mode_;
  bool timed_out_ = false;
  bool outer_cancelled_ = false;
  bool child_cancelled_ = false;
};

}  // namespace coring::detail
