// with_timeout(d, awaitable): awaits `awaitable` for at most `d`.
//
// Any awaitable works:
// - an operation of the library (sleep, a JoinHandle -- by reference, so a join
//   that times out leaves the task running and the handle usable --, a
//   primitive's wait, a queue pop or push, a socket's recv/send/accept/close,
//   async_read...) gets the timeout itself: no task frame, no exception, no
//   allocation, and a timed-out wait is simply unparked (queued data stays
//   queued, a half-done send reports what went out);
// - a Task runs in a nested scope whose timer cancels it (its frames are
//   unwound) while the enclosing task carries on;
// - anything else is wrapped in a Task.
// Cancelling the enclosing task cancels the awaitable too, and unwinds the
// task: a timeout is never confused with a cancellation. A result that arrives
// before the timeout is acted on is never dropped.
//
// How a timeout looks depends on what the awaitable gives (`R`), the same shape
// everywhere in coring (Condition::wait_for, Queue::pop(timeout),
// TcpStream::recv(timeout)... follow it):
//   R = void                         -> bool: false when it timed out
//   R reports errors itself          -> R, with its timeout value:
//     (net::Received, SendResult,       R::timed_out() (error == std::errc::timed_out),
//      Accepted, Connected, IoResult,   IoResult{-ETIMEDOUT}, or
//      std::error_code)                 std::errc::timed_out
//   R = std::optional<U>             -> std::optional<U>: std::nullopt when it timed
//                                       out (no optional<optional<U>>; for a queue
//                                       pop, closed() tells "closed" from "timed out")
//   any other R                      -> std::optional<R>
// A zero or negative timeout gives up at once unless the result is already
// there. Timeouts need an EventLoop.
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

namespace detail {

template <class R>
inline constexpr bool is_optional_v = false;
template <class U>
inline constexpr bool is_optional_v<std::optional<U>> = true;

template <class R>
concept ReportsTimeout = requires {
  { R::timed_out() } -> std::same_as<R>;
};

// The result with_timeout gives for an awaitable of R (see the table above).
template <class R>
struct timeout_shape {
  using type = std::optional<R>;
  static type timed_out() noexcept { return std::nullopt; }
  template <class V>
  static type wrap(V&& v) {
    return type(std::forward<V>(v));
  }
};
template <>
struct timeout_shape<void> {
  using type = bool;
  static type timed_out() noexcept { return false; }
};
template <class U>
struct timeout_shape<std::optional<U>> {
  using type = std::optional<U>;
  static type timed_out() noexcept { return std::nullopt; }
  static type wrap(type&& v) noexcept { return std::move(v); }
};
template <>
struct timeout_shape<std::error_code> {
  using type = std::error_code;
  static type timed_out() noexcept { return std::make_error_code(std::errc::timed_out); }
  static type wrap(type v) noexcept { return v; }
};
template <ReportsTimeout R>
struct timeout_shape<R> {
  using type = R;
  static type timed_out() { return R::timed_out(); }
  static type wrap(R&& v) noexcept { return std::move(v); }
};

template <class R>
using timeout_result_t = typename timeout_shape<R>::type;

template <class A>
concept HasMemberCoAwait = requires(A&& a) {
  std::forward<A>(a).operator co_await();
};

// Where an operation is kept by what awaits it (TimedOperation, select): the
// operation itself (by value, or by reference for an lvalue), or the awaitable
// plus the awaiter its operator co_await gave (a JoinHandle and its join).
template <class A, bool = HasMemberCoAwait<A>>
class OperationStorage {
 public:
  explicit OperationStorage(A&& a) : op_(std::forward<A>(a)) {}
  std::remove_reference_t<A>& op() noexcept { return op_; }

 private:
  A op_;
};
template <class A>
class OperationStorage<A, true> {
  using Awaiter = std::remove_cvref_t<awaiter_of_t<A>>;

 public:
  explicit OperationStorage(A&& a)
      : source_(std::forward<A>(a)), awaiter_(std::forward<A>(source_).operator co_await()) {}
  Awaiter& op() noexcept { return awaiter_; }

 private:
  A source_;  // an lvalue stays a reference: a JoinHandle is joined by reference
  Awaiter awaiter_;
};

}  // namespace detail

// What with_timeout(d, op) gives for an operation of the library: the
// operation with a timeout, its result in the shape above.
template <class A>
class [[nodiscard]] TimedOperation : private detail::OperationStorage<A> {
  using Awaiter = std::remove_cvref_t<detail::awaiter_of_t<A>>;
  using R = decltype(std::declval<Awaiter&>().await_resume());
  using Shape = detail::timeout_shape<R>;

 public:
  TimedOperation(A&& a, Duration timeout) : detail::OperationStorage<A>(std::forward<A>(a)) {
    this->op().set_timeout(timeout);
  }
  TimedOperation(const TimedOperation&) = delete;
  TimedOperation& operator=(const TimedOperation&) = delete;

  decltype(auto) await_ready() { return this->op().await_ready(); }
  template <class P>
  decltype(auto) await_suspend(std::coroutine_handle<P> h) {
    return this->op().await_suspend(h);
  }
  detail::timeout_result_t<R> await_resume() {
    Awaiter& op = this->op();
    if constexpr (std::is_void_v<R>) {
      if (op.timed_out()) return false;
      op.await_resume();
      return true;
    } else {
      // An operation whose result carries its own timeout (what a send got
      // out, an item that came in meanwhile) says it in its own result.
      if constexpr (!Awaiter::kReportsTimeout) {
        if (op.timed_out()) return Shape::timed_out();
      }
      return Shape::wrap(op.await_resume());
    }
  }
};

// What with_timeout(d, task) gives: the task in a scope whose timer cancels it.
template <class T>
class [[nodiscard]] TimedTask : public detail::ScopeAwaiter<T> {
 public:
  TimedTask(Task<T>&& t, Duration timeout) noexcept
      : detail::ScopeAwaiter<T>(std::move(t), detail::ScopeMode::timeout, timeout) {}
  detail::timeout_result_t<T> await_resume() {
    this->finish();
    if (this->child_cancelled()) return detail::timeout_shape<T>::timed_out();
    if constexpr (std::is_void_v<T>) {
      this->take();
      return true;
    } else {
      return detail::timeout_shape<T>::wrap(this->take());
    }
  }
};

// See the header comment.
template <class A>
auto with_timeout(Duration timeout, A&& awaitable) {
  if constexpr (detail::is_task_v<std::remove_cvref_t<A>>) {
    static_assert(!std::is_lvalue_reference_v<A>,
                  "with_timeout() takes a Task by value (std::move it)");
    using T = typename std::remove_cvref_t<A>::value_type;
    return TimedTask<T>(std::move(awaitable), timeout);
  } else if constexpr (detail::is_operation_v<A>) {
    return TimedOperation<A>(std::forward<A>(awaitable), timeout);
  } else {
    return with_timeout(timeout, detail::as_task(std::forward<A>(awaitable)));
  }
}

}  // namespace coring
