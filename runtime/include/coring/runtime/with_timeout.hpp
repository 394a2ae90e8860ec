// with_timeout(duration, awaitable): runs the awaitable, cancelling it if it has
// not finished when the duration has passed.
//
// Returns std::optional<T> (std::nullopt on timeout) for an awaitable of T, and
// bool (false on timeout) for one of void. The awaitable runs in a nested
// cancellation context: on timeout only that context is cancelled, so the
// awaitable's operation is interrupted (an io_uring operation with
// IORING_OP_ASYNC_CANCEL, its frame kept until its CQE) while the enclosing task
// carries on. Cancelling the enclosing task cancels the awaitable too, and then
// the co_await throws Cancelled rather than reporting a timeout.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>

#include "coring/runtime/time.hpp"

namespace coring {
namespace detail {

template <class A>
struct awaiter_of {
  using type = A;
};
template <class A>
requires requires(A&& a) {
  std::forward<A>(a).operator co_await();
}
struct awaiter_of<A> {
  using type = decltype(std::declval<A>().operator co_await());
};

template <class A>
using awaitable_result_t = decltype(std::declval<typename awaiter_of<A>::type&>().await_resume());

template <class A>
Task<awaitable_result_t<A>> as_task(A awaitable) {
  co_return co_await std::move(awaitable);
}

// Awaits a child task inside its own TaskContext, armed with a timer.
template <class T>
class [[nodiscard]] ScopedAwaiter : private CancelSlot, private TimerNode {
 public:
  ScopedAwaiter(Task<T>& child, Duration timeout) noexcept
      : child_(child.release()), timeout_(timeout) {
    on_cancel = &ScopedAwaiter::outer_cancelled;
    on_fire = &ScopedAwaiter::timed_out;
  }
  ScopedAwaiter(const ScopedAwaiter&) = delete;
  ScopedAwaiter& operator=(const ScopedAwaiter&) = delete;
  ~ScopedAwaiter() {
    if (armed()) loop_->timers().remove(this);
    if (child_) child_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) {
    loop_ = &EventLoop::current_or_throw();
    outer_ = context_of(parent);
    if (outer_ != nullptr && !outer_->arm(this)) {
      outer_cancelled_ = true;
      return parent;  // resume at once; await_resume throws
    }
    inner_.share_extension_of(outer_);  // the awaitable sees the task's TaskLocal values
    deadline = Clock::now() + timeout_;
    loop_->timers().add(this);
    child_.promise().attach_parent(parent, &inner_);
    if constexpr (std::is_base_of_v<PromiseBase, P>) {
      return transfer_to(child_);
    } else {
      return child_;
    }
  }

  // Returns true with the child's result, or false on timeout.
  bool finish() {
    if (armed()) loop_->timers().remove(this);
    if (outer_ != nullptr) outer_->disarm(this);
    if (outer_cancelled_ || (outer_ != nullptr && outer_->cancel_requested())) {
      throw Cancelled{};
    }
    if (timed_out_ && child_.promise().failed() && child_.promise().has_exception_of_cancel()) {
      return false;
    }
    return true;
  }
  T take() { return child_.promise().take_result(); }

 private:
  static void outer_cancelled(CancelSlot* s) noexcept {
    auto* self = static_cast<ScopedAwaiter*>(s);
    self->outer_cancelled_ = true;
    self->inner_.request_cancel();
  }
  static void timed_out(TimerNode* n) noexcept {
    auto* self = static_cast<ScopedAwaiter*>(n);
    self->timed_out_ = true;
    self->inner_.request_cancel();
  }

  std::coroutine_handle<TaskPromise<T>> child_;
  Duration timeout_;
  EventLoop* loop_ = nullptr;
  TaskContext* outer_ = nullptr;
  TaskContext inner_;
  bool timed_out_ = false;
  bool outer_cancelled_ = false;
};

template <class T>
class [[nodiscard]] TimeoutAwaiter : public ScopedAwaiter<T> {
 public:
  using ScopedAwaiter<T>::ScopedAwaiter;
  std::optional<T> await_resume() {
    if (!this->finish()) return std::nullopt;
    return std::optional<T>(this->take());
  }
};

template <>
class [[nodiscard]] TimeoutAwaiter<void> : public ScopedAwaiter<void> {
 public:
  using ScopedAwaiter<void>::ScopedAwaiter;
  bool await_resume() {
    if (!this->finish()) return false;
    this->take();
    return true;
  }
};

}  // namespace detail

// Awaits `awaitable` for at most `timeout`. Any awaitable works; a Task is run
// directly, anything else is wrapped in one.
template <class A>
auto with_timeout(Duration timeout, A&& awaitable) {
  using R = detail::awaitable_result_t<A>;
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, Task<R>>) {
    return detail::TimeoutAwaiter<R>(awaitable, timeout);
  } else {
    Task<R> t = detail::as_task(std::forward<A>(awaitable));
    return detail::TimeoutAwaiter<R>(t, timeout);
  }
}

}  // namespace coring
