// when_all, when_any and as_completed: running tasks side by side and
// collecting how each one ended (the seed's concurrent.futures: submit, result,
// as_completed).
//
// Every task's ending comes back as an Outcome<T> (outcome.hpp): its value, its
// exception (rethrown by value()), or that it was cancelled. One task failing
// never hides another's value.
//
// - co_await when_all(std::move(tasks))   (a std::vector<Task<T>>)
//     -> std::vector<Outcome<T>>, in the tasks' order, once all have ended.
//   co_await when_all(task_a(), task_b(), ...)
//     -> std::tuple<Outcome<A>, Outcome<B>, ...>.
// - co_await when_any(std::move(tasks))
//     -> Finished<T>{index, outcome} of the first task to end (with a value or
//     an exception); the others are cancelled, and when_any returns once they
//     have stopped. std::invalid_argument for an empty vector.
// - AsCompleted<T> done = as_completed(std::move(tasks));
//   while (std::optional<Finished<T>> f = co_await done.next()) { ... }
//     gives each task's Finished as it ends, in the order they end; nullopt once
//     every one was given. `co_await done.cancel_rest()` cancels those still
//     running and waits until they stopped (their Finished are dropped).
//
// Structure. when_all and when_any run the tasks in a TaskGroup (task_group.hpp):
// cancelling the awaiting task cancels them all, and it is unwound only once
// they stopped. as_completed hands the tasks to the scheduler at once (spawned
// like spawn(), each in a small wrapper frame); an AsCompleted destroyed with
// tasks still running cancels them but cannot wait for them: they finish
// unwinding on later turns, so what they use must not live in the frame that
// held the AsCompleted -- give them what they use by value, or
// `co_await cancel_rest()` before leaving (as the seed leaves a `with
// ThreadPoolExecutor` block).
// All of it is loop-local: the tasks run on the awaiting task's scheduler.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/task_group.hpp"

namespace coring {

// How one of several tasks ended, and which one (its index in the input).
template <class T>
struct Finished {
  std::size_t index;
  Outcome<T> outcome;
};

namespace detail {

template <class T>
Task<void> outcome_into(std::optional<Outcome<T>>& slot, Task<T> task) {
  slot.emplace(co_await CaptureAwaiter<T>(std::move(task)));
}

template <class T>
Task<void> race_into(std::optional<Finished<T>>& first, std::size_t index, TaskGroup& group,
                     Task<T> task) {
  Outcome<T> out = co_await CaptureAwaiter<T>(std::move(task));
  if (!first.has_value() && !out.cancelled()) {
    first.emplace(Finished<T>{index, std::move(out)});
    group.cancel();  // the others (the body has ended already)
  }
}

template <class T>
Outcome<T> take_or_cancelled(std::optional<Outcome<T>>& slot) {
  if (slot.has_value()) return std::move(*slot);
  return Outcome<T>::from_cancel();
}

}  // namespace detail

template <class T>
Task<std::vector<Outcome<T>>> when_all(std::vector<Task<T>> tasks) {
  std::vector<std::optional<Outcome<T>>> slots(tasks.size());
  auto body = [&tasks, &slots](TaskGroup& g) -> Task<void> {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      g.spawn(detail::outcome_into(slots[i], std::move(tasks[i])));
    }
    co_return;
  };
  co_await task_group(body);
  std::vector<Outcome<T>> out;
  out.reserve(slots.size());
  for (auto& s : slots) out.push_back(detail::take_or_cancelled(s));
  co_return out;
}

namespace detail {
template <class... T, std::size_t... I>
Task<std::tuple<Outcome<T>...>> when_all_of(std::index_sequence<I...>, Task<T>... tasks) {
  std::tuple<std::optional<Outcome<T>>...> slots;
  std::tuple<Task<T>...> owned(std::move(tasks)...);
  auto body = [&slots, &owned](TaskGroup& g) -> Task<void> {
    (g.spawn(outcome_into(std::get<I>(slots), std::move(std::get<I>(owned)))), ...);
    co_return;
  };
  co_await task_group(body);
  co_return std::tuple<Outcome<T>...>(take_or_cancelled(std::get<I>(slots))...);
}
}  // namespace detail

template <class... T>
requires(sizeof...(T) >= 1) Task<std::tuple<Outcome<T>...>> when_all(Task<T>... tasks) {
  return detail::when_all_of(std::index_sequence_for<T...>{}, std::move(tasks)...);
}

template <class T>
Task<Finished<T>> when_any(std::vector<Task<T>> tasks) {
  if (tasks.empty()) throw std::invalid_argument("coring: when_any() of no tasks");
  std::optional<Finished<T>> first;
  auto body = [&tasks, &first](TaskGroup& g) -> Task<void> {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      g.spawn(detail::race_into(first, i, g, std::move(tasks[i])));
    }
    co_return;
  };
  co_await task_group(body);
  // Every task was cancelled from elsewhere: the first one stands for them.
  if (!first.has_value()) co_return Finished<T>{0, Outcome<T>::from_cancel()};
  co_return std::move(*first);
}

// ---- as_completed ----

namespace detail {

template <class T>
class AsCompletedNext;

// What the tasks report into: kept alive by the AsCompleted and by every task.
template <class T>
struct AsCompletedState {
  explicit AsCompletedState(std::size_t n) { done.reserve(n); }
  std::vector<Finished<T>> done;  // ended, not given yet (reserved: reporting never allocates)
  std::size_t given = 0;          // how many of `done` were given out
  std::size_t total = 0;
  std::size_t reported = 0;
  AsCompletedNext<T>* waiter = nullptr;

  inline void report(std::size_t index, Outcome<T>&& out) noexcept;
};

// A task's reporter: a by-value parameter of its wrapper, so a task cancelled
// before it started (its frame destroyed unrun) still reports, as cancelled.
template <class T>
class Reporter {
 public:
  Reporter(std::shared_ptr<AsCompletedState<T>> s, std::size_t i) noexcept
      : state_(std::move(s)), index_(i) {}
  Reporter(Reporter&& o) noexcept : state_(std::move(o.state_)), index_(o.index_) {}
  Reporter& operator=(Reporter&&) = delete;
  ~Reporter() {
    if (state_) state_->report(index_, Outcome<T>::from_cancel());
  }
  void report(Outcome<T>&& out) noexcept {
    std::exchange(state_, {})->report(index_, std::move(out));
  }

 private:
  std::shared_ptr<AsCompletedState<T>> state_;
  std::size_t index_;
};

template <class T>
Task<void> report_to(Reporter<T> reporter, Task<T> task) {
  reporter.report(co_await CaptureAwaiter<T>(std::move(task)));
}

// next(): parks until a task reports.
template <class T>
class [[nodiscard]] AsCompletedNext : public Operation {
 public:
  explicit AsCompletedNext(AsCompletedState<T>& s) noexcept : state_(&s) {}
  AsCompletedNext(AsCompletedNext&& o) noexcept : Operation(std::move(o)), state_(o.state_) {}
  ~AsCompletedNext() {
    if (state_->waiter == this) state_->waiter = nullptr;
  }
  bool await_ready() const noexcept {
    return state_->given < state_->done.size() || state_->given == state_->total;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (state_->waiter != nullptr) {
      throw std::logic_error("coring: two tasks wait in the same AsCompleted::next() at once");
    }
    if (!prepare<&AsCompletedNext::interrupt>(h, WaitKind::join, state_)) {
      return suspend_cancelled();
    }
    state_->waiter = this;
    start_timeout();
    return true;
  }
  std::optional<Finished<T>> await_resume() {
    if (state_->given == state_->done.size()) return std::nullopt;  // all given, or timed out
    return std::move(state_->done[state_->given++]);
  }

 private:
  friend struct AsCompletedState<T>;
  void woken() noexcept {
    state_->waiter = nullptr;
    complete(false);
  }
  static bool interrupt(Operation* op) noexcept {
    auto* self = static_cast<AsCompletedNext*>(op);
    self->state_->waiter = nullptr;
    return true;
  }
  AsCompletedState<T>* state_;
};

template <class T>
void AsCompletedState<T>::report(std::size_t index, Outcome<T>&& out) noexcept {
  ++reported;
  done.push_back(Finished<T>{index, std::move(out)});  // reserved: cannot throw
  if (waiter != nullptr) waiter->woken();
}

}  // namespace detail

template <class T>
class [[nodiscard]] AsCompleted {
 public:
  explicit AsCompleted(std::vector<Task<T>> tasks)
      : state_(std::make_shared<detail::AsCompletedState<T>>(tasks.size())) {
    state_->total = tasks.size();
    handles_.reserve(tasks.size());
    TaskScheduler& sched = current_scheduler();
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      handles_.push_back(
          sched.spawn(detail::report_to(detail::Reporter<T>(state_, i), std::move(tasks[i]))));
    }
  }
  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) = delete;
  // Cancels the tasks still running (see the header comment).
  ~AsCompleted() {
    for (auto& h : handles_) h.cancel();
  }

  // The next task to end, or std::nullopt once all were given (see the header
  // comment). A timeout (with_timeout, or next(d)) gives std::nullopt too:
  // remaining() tells the two apart.
  detail::AsCompletedNext<T> next() noexcept { return detail::AsCompletedNext<T>(*state_); }
  detail::AsCompletedNext<T> next(Duration timeout) noexcept {
    detail::AsCompletedNext<T> n(*state_);
    n.set_timeout(timeout);
    return n;
  }
  // Tasks whose ending was not given yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return state_->total - state_->given; }

  // Cancels the tasks still running and waits until every one has stopped.
  Task<void> cancel_rest() {
    for (auto& h : handles_) h.cancel();
    for (auto& h : handles_) (void)co_await h.join();
    state_->given = state_->done.size();
  }

 private:
  std::shared_ptr<detail::AsCompletedState<T>> state_;
  std::vector<JoinHandle<void>> handles_;
};

template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks) {
  return AsCompleted<T>(std::move(tasks));
}

}  // namespace coring
