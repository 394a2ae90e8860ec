// Task<T>: a lazy, move-only coroutine that produces a T (or throws).
//
// Contract:
// - Calling a Task-returning coroutine allocates its frame (from FrameAllocator)
//   and runs nothing.
// - `co_await task` starts it by symmetric transfer; when it finishes it transfers
//   straight back to the awaiter. Neither step goes through the scheduler, and an
//   await chain of any depth runs in constant stack.
// - The value, or the exception the body let escape, is delivered by the
//   `co_await` expression.
// - Destroying a Task that never started (or that finished) frees its frame.
// - A Task that is awaited runs in its awaiter's TaskContext, so cancelling the
//   spawned task that owns the chain reaches whichever leaf is suspended.
//
// The promise also carries the state of a *root* task (one handed to spawn()):
// its own TaskContext, its place in the scheduler's list of live tasks, and the
// JoinHandle attached to it. That costs a few words per frame and saves a
// separate allocation per spawn. A root's frame is freed as soon as the task
// ends: its value (or exception) moves into the JoinHandle, which keeps it until
// it is taken, so nothing the task's frame holds (its by-value parameters
// included) outlives the task.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "coring/runtime/frame_allocator.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/task_context.hpp"
#include "coring/runtime/transfer.hpp"

namespace coring {

template <class T = void>
class Task;
class TaskScheduler;

namespace detail {

class JoinHandleBase;
class JoinOp;

// What an ended task leaves its JoinHandle besides its value: its name (a
// named task) and its exception (a failed one). Allocated only for those: a
// named task has one from spawn() on (it holds the name), an unnamed one gets
// one when it fails.
struct TaskEndRecord {
  std::string name;
  std::exception_ptr error;
};

class PromiseBase {
 public:
  static void* operator new(std::size_t n) { return FrameAllocator::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { FrameAllocator::deallocate(p, n); }

  PromiseBase() noexcept : root_ctx_(&PromiseBase::unwind_root, this) {}
  PromiseBase(const PromiseBase&) = delete;
  PromiseBase& operator=(const PromiseBase&) = delete;
  ~PromiseBase() { delete record_; }

  [[nodiscard]] TaskContext* context() const noexcept { return ctx_; }

  // Lazy: nothing runs until the task is awaited or spawned.
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      std::coroutine_handle<> next = h.promise().on_final(h);
      return next ? transfer_to(next) : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  // Wiring used by Task's awaiter: run in the awaiter's context, return to it.
  void attach_parent(std::coroutine_handle<> parent, TaskContext* ctx,
                     bool parent_is_task) noexcept {
    continuation_ = parent;
    ctx_ = ctx;
    parent_is_task_ = parent_is_task;
  }

  [[nodiscard]] bool failed() const noexcept { return exception_ != nullptr; }
  [[nodiscard]] const std::exception_ptr& exception() const noexcept { return exception_; }

  // ---- root-task state (only meaningful after TaskScheduler::adopt) ----
  [[nodiscard]] bool is_root() const noexcept { return root_ctx_.scheduler() != nullptr; }
  [[nodiscard]] bool done() const noexcept { return done_; }
  [[nodiscard]] TaskContext& root_context() noexcept { return root_ctx_; }
  [[nodiscard]] std::string_view name() const noexcept {
    return record_ != nullptr ? std::string_view(record_->name) : std::string_view();
  }

  // Ends the task: a child transfers back to its awaiter; a root settles its
  // JoinHandle, frees its frame and transfers to its joiner (if one waits).
  std::coroutine_handle<> on_final(std::coroutine_handle<> self) noexcept;

  // Cancels a root (JoinHandle::cancel, scheduler shutdown). A root cancelled
  // before it started never runs: spawn() noted its entry in the ready line
  // (TaskContext::note_queued), which is replaced by its unwinder.
  void cancel_root() noexcept { root_ctx_.request_cancel(); }
  // What a root's context unwinds with: destroys its frames, records it as
  // cancelled and wakes its joiner.
  static void unwind_root(void* promise) noexcept;

 protected:
  [[nodiscard]] JoinHandleBase* join_handle() const noexcept { return handle_; }

 private:
  friend class coring::TaskScheduler;
  friend class JoinHandleBase;
  friend class JoinOp;

  std::coroutine_handle<> continuation_;  // an awaited child: the awaiting coroutine
  TaskContext* ctx_ = nullptr;            // context this frame runs in
  std::exception_ptr exception_;

  // This task's coroutine frame: every task promise sits at the same place in
  // its frame, whatever its value type (see TaskPromise).
  [[nodiscard]] std::coroutine_handle<> frame() noexcept {
    return std::coroutine_handle<PromiseBase>::from_promise(*this);
  }

  // Root state (the root context's scheduler is set by adopt(); null for
  // awaited children).
  TaskContext root_ctx_;
  PromiseBase* prev_ = nullptr;  // scheduler's intrusive list of live roots
  PromiseBase* next_ = nullptr;
  JoinHandleBase* handle_ = nullptr;  // the attached JoinHandle, or null when detached
  JoinOp* joiner_ = nullptr;          // the join waiting for this root, if any
  TaskEndRecord* record_ = nullptr;   // a named task's name (see TaskEndRecord)
  bool done_ = false;
  bool parent_is_task_ = false;  // an awaited child whose awaiter is a coring task

  void end_cancelled() noexcept;
  friend bool in_await_chain(const void* leaf_frame, const PromiseBase& leaf,
                             const void* address) noexcept;
};

// Whether `address` lies in a frame of the await chain that `leaf` (whose
// frame starts at `leaf_frame`) belongs to: its own frame, its awaiter's, and
// so on up to the spawned task. Tells whether an object (a MutexGuard) still
// lives in the frames of a task. Not cheap: for diagnostics.
bool in_await_chain(const void* leaf_frame, const PromiseBase& leaf, const void* address) noexcept;

// The caller's side of a spawned task, without its value type: the state of the
// task as the handle sees it. The task settles it when it ends (see
// PromiseBase::on_final); JoinHandle<T> (join_handle.hpp) adds the value.
//
// One word: a pointer and, in its low bits, the state -- the running task's
// promise, or the ended task's TaskEndRecord (null when it had neither a name
// nor an exception). A fan-out keeps its handles in its frame (skynet's ten per
// task): JoinHandle<void> is one word, JoinHandle<int> two.
class JoinHandleBase {
 public:
  // False for a default-constructed, moved-from or detached handle.
  [[nodiscard]] bool valid() const noexcept { return word_ != 0; }
  // The task has ended (returned, failed or was cancelled).
  [[nodiscard]] bool done() const noexcept {
    return state() != State::empty && state() != State::running;
  }
  // Asks the task to stop at its next suspension point; no-op once it ended.
  void cancel() noexcept;
  // Lets the task run on alone: it frees itself when it ends, and an exception
  // it ends with is reported on stderr.
  void detach() noexcept { release(); }
  [[nodiscard]] std::string_view name() const noexcept;

  JoinHandleBase(const JoinHandleBase&) = delete;
  JoinHandleBase& operator=(const JoinHandleBase&) = delete;

 protected:
  enum class State : unsigned char { empty, running, returned, failed, cancelled, taken };

  JoinHandleBase() noexcept {}
  inline explicit JoinHandleBase(PromiseBase* p) noexcept;
  JoinHandleBase(JoinHandleBase&& o) noexcept { steal(o); }
  JoinHandleBase& operator=(JoinHandleBase&& o) noexcept {
    if (this != &o) {
      release();
      steal(o);
    }
    return *this;
  }
  ~JoinHandleBase() { release(); }

  [[nodiscard]] State state() const noexcept { return static_cast<State>(word_ & kStateMask); }
  void set_state(State s) noexcept {
    word_ = (word_ & ~kStateMask) | static_cast<std::uintptr_t>(s);
  }
  // Running: the task's promise.
  [[nodiscard]] PromiseBase* task() const noexcept {
    return reinterpret_cast<PromiseBase*>(word_ & ~kStateMask);
  }
  // Ended: its record (null when it had no name and no exception).
  [[nodiscard]] TaskEndRecord* record() const noexcept {
    return reinterpret_cast<TaskEndRecord*>(word_ & ~kLowBits);
  }
  [[nodiscard]] const std::exception_ptr& error() const noexcept;

  // Detaches a running task; drops (and reports, if failed and never looked at)
  // a finished one's result. The value of a returned task is the derived
  // class's to destroy first.
  void release() noexcept {
    if (word_ != 0) release_slow();
  }
  void release_slow() noexcept;
  inline void steal(JoinHandleBase& o) noexcept;
  // Called by the task (or by the scheduler freeing it unfinished); takes `r`.
  void settle(State s, TaskEndRecord* r) noexcept {
    word_ = reinterpret_cast<std::uintptr_t>(r) | static_cast<std::uintptr_t>(s);
  }
  // Marks the result of an ended task observed (a failure dropped unobserved is
  // reported). No-op for an empty or running handle: its word is a pointer.
  void observe() noexcept {
    if (state() > State::running) word_ |= kObserved;
  }
  // The outcome without the value: rethrows a failure, throws TaskCancelled
  // for a cancelled task. Marks the result observed.
  void check_result() {
    observe();
    if (state() != State::returned) [[unlikely]]
      throw_result();
  }
  // Throws std::logic_error unless the task ended and its result is still here.
  void check_ended() const {
    const State s = state();
    if (s == State::running || s == State::empty || s == State::taken) [[unlikely]]
      throw_not_ended();
  }
  [[noreturn]] void throw_result();
  [[noreturn]] void throw_not_ended() const;

  friend class PromiseBase;
  friend class JoinOp;
  friend class coring::TaskScheduler;
  template <class T>
  friend class TaskPromise;

 private:
  // A promise is at least 8-aligned; a record comes from operator new.
  static constexpr std::uintptr_t kStateMask = 7;
  static constexpr std::uintptr_t kObserved = 8;  // with an ended task only
  static constexpr std::uintptr_t kLowBits = 15;
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16);

  std::uintptr_t word_ = 0;  // 0: empty
};

// JoinHandleBase plus room for the value of a task that returned.
template <class T>
class JoinStorage : public JoinHandleBase {
 protected:
  JoinStorage() noexcept {}
  explicit JoinStorage(PromiseBase* p) noexcept : JoinHandleBase(p) {}
  JoinStorage(JoinStorage&& o) noexcept : JoinHandleBase(std::move(o)) { take_value_of(o); }
  JoinStorage& operator=(JoinStorage&& o) noexcept {
    if (this != &o) {
      drop_value();
      JoinHandleBase::operator=(std::move(o));
      take_value_of(o);
    }
    return *this;
  }
  ~JoinStorage() { drop_value(); }
  // After the base state was stolen from `o`: moves its value over too.
  void take_value_of(JoinStorage& o) noexcept {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "a spawned task's value type must be nothrow-movable");
    if (state() == State::returned) {
      ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
      o.value_.~T();
    }
  }
  void drop_value() noexcept {
    if (state() == State::returned) {
      value_.~T();
      set_state(State::taken);
    }
  }
  template <class U>
  void store(U&& v) {
    ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
  }
  T take_value() {
    T v = std::move(value_);
    value_.~T();
    set_state(State::taken);
    return v;
  }

  template <class>
  friend class TaskPromise;
  union {
    T value_;  // returned
  };
};

template <>
class JoinStorage<void> : public JoinHandleBase {
 protected:
  JoinStorage() noexcept = default;
  explicit JoinStorage(PromiseBase* p) noexcept : JoinHandleBase(p) {}
  JoinStorage(JoinStorage&&) noexcept = default;
  JoinStorage& operator=(JoinStorage&&) noexcept = default;
  void drop_value() noexcept {}
};

// A task waiting for a spawned task to end (the body of JoinHandle's
// awaiters). It parks in the root's promise; the root transfers to it when it
// ends. Interrupting it (timeout, cancellation of the joiner) only unparks it:
// the joined task runs on.
class JoinOp : public Operation {
 public:
  explicit JoinOp(JoinHandleBase& h) noexcept : handle_(&h) {}
  JoinOp(JoinOp&& o) noexcept : Operation(std::move(o)), handle_(o.handle_) {}
  ~JoinOp() { unpark(); }

  bool await_ready() const noexcept { return handle_->done(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!handle_->valid()) {
      throw std::logic_error("coring: joining an empty JoinHandle (moved-from or detached)");
    }
    PromiseBase* const task = handle_->task();
    if (!prepare<&JoinOp::unpark_interrupt>(h, WaitKind::join, task)) return suspend_cancelled();
    task_ = task;
    task_->joiner_ = this;
    start_timeout();
    return true;
  }

 protected:
  JoinHandleBase* handle_;  // follows the handle when it is moved (JoinHandleBase::steal)

 private:
  friend class PromiseBase;
  friend class JoinHandleBase;
  friend class coring::TaskScheduler;
  // Called by the ending task: the joiner runs next.
  std::coroutine_handle<> resume_joiner() noexcept {
    task_ = nullptr;
    return complete_by_transfer();
  }
  // Called when the task was unwound: the joiner is scheduled.
  void wake() noexcept {
    task_ = nullptr;
    complete(false);
  }
  void unpark() noexcept {
    if (task_ != nullptr) std::exchange(task_, nullptr)->joiner_ = nullptr;
  }
  static bool unpark_interrupt(Operation* op) noexcept {
    static_cast<JoinOp*>(op)->unpark();
    return true;
  }
  PromiseBase* task_ = nullptr;  // while parked
};

inline JoinHandleBase::JoinHandleBase(PromiseBase* p) noexcept
    : word_(reinterpret_cast<std::uintptr_t>(p) | static_cast<std::uintptr_t>(State::running)) {
  p->handle_ = this;
}

inline void JoinHandleBase::steal(JoinHandleBase& o) noexcept {
  word_ = std::exchange(o.word_, 0);
  if (state() == State::running) {
    PromiseBase* t = task();
    t->handle_ = this;
    if (t->joiner_ != nullptr) t->joiner_->handle_ = this;
  }
}

template <class T>
class TaskPromise final : public PromiseBase {
  static_assert(!std::is_reference_v<T>, "Task<T&> is not supported; return a pointer");
  // Every task promise sits at the same offset in its frame (in_await_chain
  // walks from frame to promise without the value type).
  static_assert(alignof(std::optional<T>) <= 16, "Task<T> of an over-aligned T is not supported");

 public:
  Task<T> get_return_object() noexcept;

  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }

  T take_result() {
    if (exception()) std::rethrow_exception(exception());
    assert(value_.has_value());
    return std::move(*value_);
  }

  std::coroutine_handle<> on_final(std::coroutine_handle<> self) noexcept {
    // A root whose handle waits for the value: move it there before the frame goes.
    if (JoinHandleBase* h = join_handle(); h != nullptr && is_root() && !failed()) {
      try {
        static_cast<JoinStorage<T>*>(h)->store(std::move(*value_));
      } catch (...) {
        unhandled_exception();  // the move threw: the task failed after all
      }
    }
    return PromiseBase::on_final(self);
  }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take_result() {
    if (exception()) std::rethrow_exception(exception());
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }
  // Gives up ownership of the frame (used by spawn).
  handle_type release() noexcept { return std::exchange(h_, {}); }

  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(handle_type h) noexcept : h_(h) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
      h_.promise().attach_parent(parent, context_of(parent),
                                 std::is_base_of_v<detail::PromiseBase, P>);
      if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
        return detail::transfer_to(h_);
      } else {
        return h_;  // a foreign resumer does not run the trampoline
      }
    }
    T await_resume() { return h_.promise().take_result(); }

   private:
    handle_type h_;
  };

  // The Task keeps owning the frame while it runs; the frame is freed when the
  // Task object (usually a temporary of the co_await expression) is destroyed.
  Awaiter operator co_await() & noexcept {
    assert(h_ && "co_await on an empty Task");
    return Awaiter{h_};
  }
  Awaiter operator co_await() && noexcept {
    assert(h_ && "co_await on an empty Task");
    return Awaiter{h_};
  }

 private:
  handle_type h_;
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<TaskPromise<T>>::from_promise(*this)};
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>{std::coroutine_handle<TaskPromise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace coring
