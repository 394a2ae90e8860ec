// Worker and Result<T>: the seed's Worker actor with submit() returning a Result.
//
//   coring::Worker worker;                        // its own thread, running an EventLoop
//   coring::Result<double> r = worker.submit([] { return std::pow(2, 3); });
//   fmt::print("{}\n", r.get());                  // blocks this thread: 8
//   double v = co_await worker.submit(f, x);      // or, from a task on any loop
//
// Worker: an actor whose messages are jobs, on a thread of its own (the seed's
// Actor.start() thread), running one job at a time in the order submitted.
// - submit(fn, args...) (any thread): copies fn and args into a job and queues
//   it; returns its Result. fn may return a value, void, or a Task<R> (the job
//   then awaits it on the worker's loop, and the worker runs the next job once
//   it has finished). After close() it throws ActorClosed.
// - close(): no more jobs; those queued still run. join(): close(), then waits
//   until they have run and the thread has ended (from several threads at
//   once: each returns once it has; from one of the worker's own jobs it only
//   closes, since waiting would never end). The destructor joins.
//   A Worker is used from any thread, destroyed from one that is not its own.
// Result<T> (copyable, shared): the job's value or exception, set once; get()
// and co_await give a copy of the value (T must be copyable), any number of times.
// - ready(); get(): blocks the calling thread until the job has run, then gives
//   the value or rethrows (get() on the worker's own thread would wait forever:
//   std::logic_error instead); wait_for(d): false if not ready within d.
// - co_await result: from a task on an EventLoop (any thread), without
//   blocking the loop; the worker wakes it through that loop's post(). Cancel-
//   safe: a cancelled or timed-out wait (with_timeout) unlinks itself and the
//   value stays in the Result. One task awaits a Result at a time.
// Thread-safety: everything here is; the state is guarded by one mutex.
#pragma once

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "coring/actor/actor_ref.hpp"
#include "coring/actor/errors.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

template <class T>
class Result;

namespace detail {

class ResultWaiter;
[[noreturn]] void throw_empty_result();

// The non-template part of a Result's state.
class ResultStateBase : public std::enable_shared_from_this<ResultStateBase> {
 public:
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  ResultWaiter* waiter = nullptr;  // a task awaiting it (guarded by mutex)
  EventLoop* waiter_loop = nullptr;
  std::thread::id worker_thread;

  // Called by the worker, holding `lock` on mutex, once value or error is set:
  // marks it done, wakes get() and the awaiting task.
  void finish(std::unique_lock<std::mutex>& lock) noexcept;
  void wait_ready();
};

template <class T>
class ResultState : public ResultStateBase {
 public:
  std::optional<T> value;
};
template <>
class ResultState<void> : public ResultStateBase {};

// co_await result.
class ResultWaiter : public Operation {
 public:
  explicit ResultWaiter(std::shared_ptr<ResultStateBase> s) noexcept : state_(std::move(s)) {}
  ResultWaiter(ResultWaiter&& o) noexcept : Operation(std::move(o)), state_(std::move(o.state_)) {}
  ~ResultWaiter() {
    if (state_ != nullptr) {
      std::lock_guard lock(state_->mutex);
      if (state_->waiter == this) state_->waiter = nullptr;
    }
  }
  bool await_ready() {
    std::lock_guard lock(state_->mutex);
    return state_->done;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    EventLoop* loop = EventLoop::current();
    if (loop == nullptr) throw_needs_loop();
    if (!prepare<&ResultWaiter::interrupt>(h, WaitKind::join, state_.get())) {
      return std::noop_coroutine();  // the unwinder is scheduled
    }
    std::unique_lock lock(state_->mutex);
    if (state_->done) {
      lock.unlock();
      return complete_by_transfer();  // finished meanwhile
    }
    if (state_->waiter != nullptr) {
      lock.unlock();
      throw_two_waiters();  // (after prepare: rare misuse, reported as an error)
    }
    state_->waiter = this;
    state_->waiter_loop = loop;
    lock.unlock();
    start_timeout();
    return std::noop_coroutine();
  }
  // Called on the waiter's loop thread once the result is there.
  void woken() noexcept { complete(false); }

 protected:
  [[noreturn]] static void throw_needs_loop();
  [[noreturn]] static void throw_two_waiters();
  static bool interrupt(Operation* op) noexcept {
    auto* self = static_cast<ResultWaiter*>(op);
    std::lock_guard lock(self->state_->mutex);
    if (self->state_->waiter != self) return false;  // a wake-up is on its way
    self->state_->waiter = nullptr;
    return true;
  }
  std::shared_ptr<ResultStateBase> state_;
};

class WorkerJob {
 public:
  virtual ~WorkerJob() = default;
  virtual Task<void> run() = 0;
  // The job will never run (the worker closed first).
  virtual void abandon(std::exception_ptr why) noexcept = 0;
};

template <class T>
inline constexpr bool is_task_result_v = false;
template <class T>
inline constexpr bool is_task_result_v<Task<T>> = true;

template <class R, class F, class... A>
class BoundJob final : public WorkerJob {
 public:
  BoundJob(std::shared_ptr<ResultState<R>> s, F f, A... args)
      : state_(std::move(s)), fn_(std::move(f)), args_(std::move(args)...) {}

  Task<void> run() override {
    std::exception_ptr error;
    try {
      if constexpr (is_task_result_v<std::invoke_result_t<F&, A&...>>) {
        if constexpr (std::is_void_v<R>) {
          co_await std::apply(fn_, args_);
        } else {
          set(co_await std::apply(fn_, args_));
        }
      } else if constexpr (std::is_void_v<R>) {
        std::apply(fn_, args_);
      } else {
        set(std::apply(fn_, args_));
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock lock(state_->mutex);
    state_->error = std::move(error);
    state_->finish(lock);
  }
  void abandon(std::exception_ptr why) noexcept override {
    std::unique_lock lock(state_->mutex);
    state_->error = std::move(why);
    state_->finish(lock);
  }

 private:
  template <class V>
  void set(V&& v) {
    std::lock_guard lock(state_->mutex);
    state_->value.emplace(std::forward<V>(v));
  }
  std::shared_ptr<ResultState<R>> state_;
  F fn_;
  std::tuple<A...> args_;
};

template <class F, class... A>
struct job_result {
  using raw = std::invoke_result_t<F&, A&...>;
  template <class X>
  struct unwrap {
    using type = X;
  };
  template <class X>
  struct unwrap<Task<X>> {
    using type = X;
  };
  using type = typename unwrap<raw>::type;
};

}  // namespace detail

template <class T>
class [[nodiscard]] Result {
 public:
  Result() = default;

  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  [[nodiscard]] bool ready() const {
    std::lock_guard lock(state().mutex);
    return state_->done;
  }
  // Blocks the calling thread until the job ran; its value, or its exception.
  T get() {
    state().wait_ready();
    std::lock_guard lock(state_->mutex);
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (!std::is_void_v<T>) return *state_->value;
  }
  // Blocks at most `d`; true once the job has run.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    std::unique_lock lock(state().mutex);
    return state_->cv.wait_for(lock, d, [&] { return state_->done; });
  }

  class [[nodiscard]] Awaiter : public detail::ResultWaiter {
   public:
    using ResultWaiter::ResultWaiter;
    T await_resume() {
      auto* s = static_cast<detail::ResultState<T>*>(state_.get());
      std::lock_guard lock(s->mutex);
      if (s->error) std::rethrow_exception(s->error);
      if constexpr (!std::is_void_v<T>) return *s->value;
    }
  };
  Awaiter operator co_await() const {
    state();
    return Awaiter(state_);
  }

 private:
  // Throws std::logic_error for a Result that came from no submit().
  detail::ResultState<T>& state() const {
    if (state_ == nullptr) [[unlikely]]
      detail::throw_empty_result();
    return *state_;
  }
  friend class Worker;
  explicit Result(std::shared_ptr<detail::ResultState<T>> s) noexcept : state_(std::move(s)) {}
  std::shared_ptr<detail::ResultState<T>> state_;
};

class Worker {
 public:
  // Starts the worker's thread and its loop; `name` names its actor and thread.
  explicit Worker(std::string_view name = "worker");
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  template <class F, class... A>
  auto submit(F&& fn, A&&... args) {
    using R = typename detail::job_result<std::decay_t<F>, std::decay_t<A>...>::type;
    auto state = std::make_shared<detail::ResultState<R>>();
    state->worker_thread = thread_id_;
    auto job = std::make_unique<detail::BoundJob<R, std::decay_t<F>, std::decay_t<A>...>>(
        state, std::forward<F>(fn), std::forward<A>(args)...);
    enqueue(std::move(job));
    return Result<R>(std::move(state));
  }

  void close();
  void join();
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

 private:
  void enqueue(std::unique_ptr<detail::WorkerJob> job);

  std::string name_;
  std::mutex mutex_;
  bool closed_ = false;    // guarded by mutex_
  std::mutex join_mutex_;  // join() from several threads: one joins, the others wait
  EventLoop* loop_ = nullptr;
  ActorRef<std::unique_ptr<detail::WorkerJob>> actor_;  // used on the worker's thread only
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace coring
