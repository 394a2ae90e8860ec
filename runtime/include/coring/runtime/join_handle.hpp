// JoinHandle<T>: the caller's side of a spawned task.
//
// - `co_await handle` waits for the task and gives its value, or rethrows its
//   exception (Cancelled if it was cancelled). The result can be taken once.
// - `cancel()` asks the task to stop at its next suspension point.
// - `done()` tells whether it has finished.
// - Dropping (or `detach()`ing) the handle lets the task run on; its frame is
//   freed when it ends, and an exception it ends with is reported on stderr.
//   Dropping a handle whose task failed and was never joined reports it too.
// The handle and the task must stay on the scheduler's thread.
#pragma once

#include <coroutine>
#include <string_view>
#include <utility>

#include "coring/runtime/scheduler.hpp"

namespace coring {
namespace detail {

class JoinHandleBase {
 public:
  [[nodiscard]] bool valid() const noexcept { return promise_ != nullptr || abandoned_; }
  [[nodiscard]] bool done() const noexcept {
    return abandoned_ || (promise_ != nullptr && promise_->done());
  }
  void cancel() noexcept {
    if (promise_ != nullptr && !promise_->done()) promise_->root_context().request_cancel();
  }
  void detach() noexcept { release(); }
  [[nodiscard]] std::string_view name() const noexcept {
    return promise_ != nullptr ? promise_->name() : std::string_view();
  }

 protected:
  JoinHandleBase() noexcept = default;
  explicit JoinHandleBase(PromiseBase* p) noexcept : promise_(p) { p->handle_ = this; }
  JoinHandleBase(JoinHandleBase&& o) noexcept { steal(o); }
  JoinHandleBase& operator=(JoinHandleBase&& o) noexcept {
    if (this != &o) {
      release();
      steal(o);
    }
    return *this;
  }
  ~JoinHandleBase() { release(); }

  void release() noexcept;
  void steal(JoinHandleBase& o) noexcept {
    promise_ = std::exchange(o.promise_, nullptr);
    abandoned_ = std::exchange(o.abandoned_, false);
    observed_ = std::exchange(o.observed_, false);
    if (promise_ != nullptr) promise_->handle_ = this;
  }

  friend class coring::TaskScheduler;
  friend class PromiseBase;
  // Called by the scheduler when it frees an unfinished task at shutdown.
  void abandon() noexcept {
    promise_ = nullptr;
    abandoned_ = true;
  }
  void set_joiner(std::coroutine_handle<> h) noexcept { promise_->continuation_ = h; }
  void clear_joiner() noexcept {
    if (promise_ != nullptr) promise_->continuation_ = {};
  }
  TaskScheduler* scheduler() const noexcept {
    return promise_ != nullptr ? promise_->scheduler_ : nullptr;
  }

  PromiseBase* promise_ = nullptr;  // the root's promise; its frame is promise_->frame_
  bool abandoned_ = false;          // freed by scheduler shutdown before it finished
  bool observed_ = false;           // the result was taken
};

}  // namespace detail

template <class T>
class [[nodiscard]] JoinHandle : public detail::JoinHandleBase {
 public:
  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&&) noexcept = default;
  JoinHandle& operator=(JoinHandle&&) noexcept = default;

  // The finished task's value, or its exception rethrown. Requires done().
  T result() {
    observed_ = true;
    if (abandoned_ || promise_ == nullptr) throw Cancelled{};
    assert(promise_->done() && "JoinHandle::result() before the task finished");
    return typed().promise().take_result();
  }

  class [[nodiscard]] Awaiter : private CancelSlot {
   public:
    explicit Awaiter(JoinHandle& h) noexcept : handle_(h) { on_cancel = &Awaiter::cancel_wait; }
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (waiting_) handle_.clear_joiner();
    }
    bool await_ready() const noexcept { return handle_.done(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> joiner) {
      ctx_ = context_of(joiner);
      if (ctx_ != nullptr && !ctx_->arm(this)) {
        cancelled_ = true;
        return false;
      }
      joiner_ = joiner;
      waiting_ = true;
      handle_.set_joiner(joiner);
      return true;
    }
    T await_resume() {
      waiting_ = false;
      if (ctx_ != nullptr) ctx_->disarm(this);
      if (cancelled_) throw Cancelled{};
      return handle_.result();
    }

   private:
    static void cancel_wait(CancelSlot* s) noexcept {
      auto* self = static_cast<Awaiter*>(s);
      TaskScheduler* sched = self->handle_.scheduler();
      self->handle_.clear_joiner();
      self->waiting_ = false;
      self->cancelled_ = true;
      (sched != nullptr ? *sched : current_scheduler()).schedule(self->joiner_);
    }
    JoinHandle& handle_;
    TaskContext* ctx_ = nullptr;
    std::coroutine_handle<> joiner_;
    bool waiting_ = false;
    bool cancelled_ = false;
  };

  // Joining is itself cancellable: a joiner that is cancelled stops waiting
  // (the joined task runs on).
  Awaiter operator co_await() & noexcept { return Awaiter{*this}; }
  Awaiter operator co_await() && noexcept { return Awaiter{*this}; }

 private:
  friend class TaskScheduler;
  JoinHandle(std::coroutine_handle<detail::TaskPromise<T>> h) noexcept
      : JoinHandleBase(&h.promise()) {}
  std::coroutine_handle<detail::TaskPromise<T>> typed() const noexcept {
    return std::coroutine_handle<detail::TaskPromise<T>>::from_promise(
        static_cast<detail::TaskPromise<T>&>(*promise_));
  }
};

// Two words: arrays and vectors of handles (a fan-out) stay compact.
static_assert(sizeof(JoinHandle<int>) == 2 * sizeof(void*));

template <class T>
JoinHandle<T> TaskScheduler::spawn(Task<T> task, std::string_view name) {
  auto h = task.release();
  adopt(h.promise(), h.address(), name);
  schedule(h);
  return JoinHandle<T>(h);
}

// Spawns on the current thread's scheduler (see TaskScheduler::spawn).
template <class T>
JoinHandle<T> spawn(Task<T> task, std::string_view name = {}) {
  return current_scheduler().spawn(std::move(task), name);
}

}  // namespace coring
