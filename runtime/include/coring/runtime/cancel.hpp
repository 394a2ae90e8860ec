// Cancellation, as a task sees it.
//
// JoinHandle::cancel() (or a scope's timeout, or the loop shutting down) asks a
// task to stop. Cancellation is not an exception: the operation the task is
// suspended on is interrupted, and instead of resuming the task the runtime
// unwinds it -- its frames are destroyed, so destructors (RAII) run and no code
// after the suspension point does (task_context.hpp has the mechanism). A task
// that is running when the request comes is unwound at its next suspension
// point. Its JoinHandle then reports it cancelled (`join()` gives
// Outcome::cancelled(), `co_await handle` throws TaskCancelled). A result the
// operation already had is never dropped: the task gets it, and is unwound at
// its next suspension point instead.
//
// What a task can do about it:
// - co_await cancellation_point(): unwinds here if the task was cancelled;
//   otherwise continues at once, without suspending.
// - co_await shield(awaitable): runs the awaitable to its end, not interrupted
//   by a cancellation of the task (nor by the loop's); the cancellation then
//   takes effect at the next suspension point after it. For work that must not
//   be torn in half. The awaitable should bound itself (with_timeout).
// - co_await try_finally(body, cleanup): runs `body`; then, however it ended --
//   with a value, an exception, or cancelled -- runs `cleanup` to its end,
//   shielded, and only then gives body's value, rethrows its exception, or goes
//   on unwinding. This is how a cancelled task awaits its own cleanup: send a
//   goodbye, join its children, close a stream gracefully. An exception thrown
//   by the cleanup replaces body's outcome (as in Python's `finally`).
#pragma once

#include <coroutine>
#include <type_traits>
#include <utility>

#include "coring/runtime/operation.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/task_context.hpp"

namespace coring {

class [[nodiscard]] CancellationPoint {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    TaskContext* ctx = context_of(h);
    if (ctx == nullptr || !ctx->cancel_requested()) return false;
    current_scheduler().schedule(ctx->unwinder());
    return true;
  }
  void await_resume() const noexcept {}
};

inline CancellationPoint cancellation_point() noexcept {
  return {};
}

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
using awaiter_of_t = typename awaiter_of<A>::type;

template <class A>
using await_result_t =
    decltype(std::declval<std::remove_reference_t<awaiter_of_t<A>>&>().await_resume());

// The awaiter `co_await a` would use.
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else {
    return std::forward<A>(a);
  }
}

template <class A>
Task<await_result_t<A>> as_task(A awaitable) {
  co_return co_await std::move(awaitable);
}

template <class A>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<Task<T>> = true;

template <class A>
inline constexpr bool is_operation_v =
    std::is_base_of_v<Operation, std::remove_cvref_t<awaiter_of_t<A>>>;

template <class T>
class [[nodiscard]] CaptureAwaiter : public ScopeAwaiter<T> {
 public:
  explicit CaptureAwaiter(Task<T>&& t) noexcept
      : ScopeAwaiter<T>(std::move(t), ScopeMode::capture) {}
  Outcome<T> await_resume() noexcept {
    this->finish();
    return this->take_outcome();
  }
};

}  // namespace detail

// What shield(task) gives: the task in a scope that no cancellation reaches.
template <class T>
class [[nodiscard]] ShieldedTask : public detail::ScopeAwaiter<T> {
 public:
  explicit ShieldedTask(Task<T>&& t) noexcept
      : detail::ScopeAwaiter<T>(std::move(t), detail::ScopeMode::shield) {}
  T await_resume() {
    this->finish();
    return this->take();
  }
};

// See the header comment. A Task is run in a shielded scope; an operation of
// the library (a recv, a pop, a sleep...) is simply not registered for
// cancellation; anything else is wrapped in a Task.
template <class A>
auto shield(A&& awaitable) {
  if constexpr (detail::is_task_v<std::remove_cvref_t<A>>) {
    static_assert(!std::is_lvalue_reference_v<A>, "shield() takes a Task by value (std::move it)");
    return ShieldedTask<typename std::remove_cvref_t<A>::value_type>(std::move(awaitable));
  } else if constexpr (detail::is_operation_v<A>) {
    std::remove_cvref_t<detail::awaiter_of_t<A>> op =
        detail::get_awaiter(std::forward<A>(awaitable));
    op.shield();
    return op;
  } else {
    return shield(detail::as_task(std::forward<A>(awaitable)));
  }
}

template <class T>
Task<T> try_finally(Task<T> body, Task<void> cleanup) {
  Outcome<T> outcome = co_await detail::CaptureAwaiter<T>(std::move(body));
  co_await shield(std::move(cleanup));
  if (outcome.cancelled()) co_await cancellation_point();  // the task was cancelled: unwind
  co_return std::move(outcome).value();
}

}  // namespace coring
