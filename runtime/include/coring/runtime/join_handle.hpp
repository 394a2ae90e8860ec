// JoinHandle<T>: the caller's side of a spawned task.
//
// State: running (the task has not ended), then returned / failed / cancelled
// (how it ended, with its value or exception kept here: the task's frame is
// already freed), then taken once the result has been consumed. An empty handle
// (default-constructed, moved-from, detached) refers to no task.
//
// - `co_await handle` waits for the task and gives its value, or rethrows its
//   exception (TaskCancelled if it was cancelled). The result can be taken once.
// - `co_await handle.join()` waits the same way and never throws for the task:
//   it gives an Outcome<T> (returned / failed / cancelled).
// - `cancel()` asks the task to stop at its next suspension point.
// - `done()` tells whether it has ended.
// - Dropping (or `detach()`ing) the handle of a running task lets it run on; its
//   frame is freed when it ends, and an exception it ends with is reported on
//   stderr. Dropping a handle whose task failed and was never joined reports it
//   too.
// Joining is itself cancellable: a joiner that is cancelled is unwound (the
// joined task runs on) -- so `join()` and `co_await handle` only ever report on
// the joined task, never on the joiner's own cancellation. A join with a
// timeout (with_timeout(d, handle)) leaves the task running and the handle
// usable. The handle and the task must stay on the scheduler's thread.
#pragma once

#include <coroutine>
#include <string_view>
#include <utility>

#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

template <class T>
class [[nodiscard]] JoinHandle : public detail::JoinStorage<T> {
  using Base = detail::JoinStorage<T>;
  using State = typename Base::State;

 public:
  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&&) noexcept = default;
  JoinHandle& operator=(JoinHandle&&) noexcept = default;
  ~JoinHandle() = default;

  // The ended task's value, or its exception rethrown (TaskCancelled if it was
  // cancelled). Requires done().
  T result() {
    this->check_result();
    if constexpr (std::is_void_v<T>) {
      this->set_state(State::taken);
    } else {
      return this->take_value();
    }
  }

  // The ended task's outcome. Requires done() (std::logic_error otherwise, or
  // when the result was already taken).
  Outcome<T> outcome() {
    this->check_ended();
    this->observe();
    switch (this->state()) {
      case State::returned:
        if constexpr (std::is_void_v<T>) {
          this->set_state(State::taken);
          return Outcome<T>::from_value();
        } else {
          return Outcome<T>::from_value(this->take_value());
        }
      case State::failed:
        return Outcome<T>::from_error(this->error());
      default:
        return Outcome<T>::from_cancel();
    }
  }

  // Waits for the task (see JoinOp); gives its value, or with `Outcomes` its Outcome.
  template <bool Outcomes>
  class [[nodiscard]] Awaiter : public detail::JoinOp {
   public:
    explicit Awaiter(JoinHandle& h) noexcept : JoinOp(h) {}
    Awaiter(Awaiter&&) noexcept = default;
    auto await_resume() {
      auto& h = static_cast<JoinHandle&>(*handle_);
      if constexpr (Outcomes) {
        return h.outcome();
      } else {
        return h.result();
      }
    }
  };

  Awaiter<false> operator co_await() & noexcept { return Awaiter<false>{*this}; }
  Awaiter<false> operator co_await() && noexcept { return Awaiter<false>{*this}; }
  // Waits for the task and gives how it ended, never throwing for the task.
  Awaiter<true> join() noexcept { return Awaiter<true>{*this}; }

 private:
  friend class TaskScheduler;
  explicit JoinHandle(std::coroutine_handle<detail::TaskPromise<T>> h) noexcept
      : Base(&h.promise()) {}
};

// Arrays and vectors of handles (a fan-out) stay compact.
static_assert(sizeof(JoinHandle<void>) == sizeof(void*));
static_assert(sizeof(JoinHandle<int>) == 2 * sizeof(void*));

template <class T>
JoinHandle<T> TaskScheduler::spawn(Task<T> task, std::string_view name) {
  auto h = task.release();
  adopt(h.promise(), h.address(), name);
  h.promise().root_context().note_queued(schedule_numbered(h));  // see cancel_root
  return JoinHandle<T>(h);
}

// Spawns on the current thread's scheduler (see TaskScheduler::spawn).
template <class T>
JoinHandle<T> spawn(Task<T> task, std::string_view name = {}) {
  return current_scheduler().spawn(std::move(task), name);
}

}  // namespace coring
