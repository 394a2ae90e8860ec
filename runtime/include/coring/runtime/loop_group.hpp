// LoopGroup: N EventLoops on N threads, shared nothing, and submit_to(i, fn),
// which runs fn on loop i and gives its result back as a LoopResult<T> -- to
// a task on another loop (`co_await`, it resumes on its own loop) or to a
// plain thread (`get()`, blocking, like a future).
//
// State. The constructor starts every thread; each builds its own EventLoop
// (so an io_uring ring is created and used by one thread) with the same
// LoopOptions -- one backend choice for the whole group -- and runs it until
// stop(). If a loop or a thread cannot be started, the ones started are
// stopped and joined and the constructor throws (std::system_error naming the
// loop). Running -> stopped: stop() (idempotent, any thread but the group's
// own) asks every loop to stop after its current turn and joins the threads;
// the destructor calls it. A loop's thread, once its loop stopped, fails the
// calls still queued for it with LoopGroupStopped and then destroys its loop:
// the tasks still running there are unwound (a task started by submit_to then
// reports TaskCancelled), and awaiters on that loop are freed.
//
// submit_to(i, fn): fn is a callable returning T, or a Task<T> (spawned on
// loop i, which then runs concurrently with the loop's other tasks). The call
// record is one allocation, shared (counted) by the LoopResult and loop i, so
// either side may go first. Queued per loop (a burst costs one post to the
// loop). An exception thrown by fn or its task is delivered to whoever waits.
// submit_to after stop(): LoopGroupStopped.
//
// LoopResult<T>: move-only. `co_await r` (an Operation: cancellable, takes a
// timeout -- with_timeout(d, r.wait()) leaves r usable) resumes the task on its
// own loop with the value or rethrows; `r.get()` blocks the calling thread
// (std::logic_error if called on loop i's own thread: it would never end).
// The value is taken once (a second take throws std::logic_error).
//
// Thread-safety: submit_to, stop, size, thread_id from any thread; loop(i) is
// for use on loop i's thread (or before/after it runs nothing: careful).
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/loop_inbox.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

// submit_to on a stopped group, or a call its loop stopped before running.
class LoopGroupStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// A call queued for a loop of the group.
struct GroupCall {
  GroupCall* next_call = nullptr;
  void (*start)(GroupCall* self) noexcept = nullptr;  // on the loop's thread
  void (*abort)(GroupCall* self) noexcept = nullptr;  // the loop stopped first
};

template <class T>
struct RemoteValue {
  std::optional<T> value;
};
template <>
struct RemoteValue<void> {};

// The shared state of a submit_to: its result, and who waits for it.
// References: the LoopResult's and the executing side's (handed to the
// waiter's inbox when done).
template <class T>
class RemoteState : public InboxNode, public GroupCall, public RemoteValue<T> {
 public:
  explicit RemoteState(EventLoop* target) noexcept : target_(target) {
    release_node = [](InboxNode* n) noexcept { static_cast<RemoteState*>(n)->release(); };
  }
  virtual ~RemoteState() {
    if (inbox_ != nullptr) inbox_->release();
  }
  RemoteState(const RemoteState&) = delete;
  RemoteState& operator=(const RemoteState&) = delete;

  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void set_error(std::exception_ptr e) noexcept { error_ = std::move(e); }
  void fail(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    complete();
  }
  // The executing side is done (value_ or error_ set): wakes the waiter and
  // lets go of its reference.
  void complete() noexcept {
    LoopInbox* box = nullptr;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      box = inbox_;
    }
    cv_.notify_all();
    if (box != nullptr) {
      box->push(this);
    } else {
      release();
    }
  }
  [[nodiscard]] bool ready() const {
    std::lock_guard lock(mutex_);
    return done_;
  }
  void wait() {
    if (EventLoop::current() == target_ && target_ != nullptr) {
      throw std::logic_error("coring: LoopResult::get() on the thread of the loop that runs it");
    }
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }
  // Loop thread of the awaiter: registers it. False if the result is already
  // there. Throws std::logic_error when another loop already waited.
  bool attach(void* awaiter, void (*wake_fn)(void*) noexcept, EventLoop& loop) {
    std::lock_guard lock(mutex_);
    if (done_) return false;
    if (inbox_ == nullptr) {
      inbox_ = &LoopInbox::of(loop);
      inbox_->add_ref();
    } else if (inbox_ != &LoopInbox::of(loop)) {
      throw std::logic_error("coring: a LoopResult awaited from two different loops");
    }
    this->waiter = awaiter;
    wake = wake_fn;
    return true;
  }
  void detach() noexcept { this->waiter = nullptr; }  // the awaiter's loop thread
  auto take() {
    if (taken_) throw std::logic_error("coring: a LoopResult's value was already taken");
    taken_ = true;
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<T>) return std::move(*this->value);
  }

 private:
  std::exception_ptr error_;
  std::atomic<std::uint32_t> refs_{2};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;           // guarded by mutex_
  LoopInbox* inbox_ = nullptr;  // the awaiter's loop (a reference), guarded by mutex_
  EventLoop* target_;
  bool taken_ = false;
};

// Reports a task that did not complete. A by-value parameter of
// run_remote_task, so it lives in the frame from the moment the frame is made:
// a task destroyed before it ever ran (its loop stopped in the turn that
// spawned it) still reports, as cancelled.
template <class T>
class RemoteTaskGuard {
 public:
  explicit RemoteTaskGuard(RemoteState<T>* s) noexcept : state(s) {}
  RemoteTaskGuard(RemoteTaskGuard&& o) noexcept : state(std::exchange(o.state, nullptr)) {}
  RemoteTaskGuard& operator=(RemoteTaskGuard&&) = delete;
  ~RemoteTaskGuard() {
    if (state != nullptr && !done) {
      state->fail(std::make_exception_ptr(
          TaskCancelled("a LoopGroup::submit_to task (its loop stopped or it was cancelled)")));
    }
  }
  RemoteState<T>* state;
  bool done = false;
};

template <class T>
Task<void> run_remote_task(RemoteTaskGuard<T> guard, Task<T> task) {
  RemoteState<T>* const state = guard.state;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
    } else {
      T v = co_await std::move(task);
      state->value.emplace(std::move(v));
    }
  } catch (...) {
    state->set_error(std::current_exception());
  }
  guard.done = true;
  state->complete();
}

template <class F>
struct remote_result {
  using type = std::invoke_result_t<F&>;
};
template <class F>
requires is_task_v<std::invoke_result_t<F&>>
struct remote_result<F> {
  using type = typename std::invoke_result_t<F&>::value_type;
};

template <class F, class T>
class RemoteCall final : public RemoteState<T> {
 public:
  RemoteCall(F&& fn, EventLoop* target) : RemoteState<T>(target), fn_(std::move(fn)) {
    this->start = &RemoteCall::start_call;
    this->abort = &RemoteCall::abort_call;
  }

 private:
  static void start_call(GroupCall* c) noexcept {
    auto* self = static_cast<RemoteCall*>(c);
    try {
      if constexpr (is_task_v<std::invoke_result_t<F&>>) {
        Task<T> task = self->fn_();  // if this throws, it is reported below
        try {
          spawn(run_remote_task<T>(RemoteTaskGuard<T>(self), std::move(task))).detach();
        } catch (...) {
          // Out of memory: the guard (in the frame, or still the argument)
          // has reported the call as cancelled; nothing more to do.
        }
        return;
      } else if constexpr (std::is_void_v<T>) {
        self->fn_();
      } else {
        self->value.emplace(self->fn_());
      }
    } catch (...) {
      self->set_error(std::current_exception());
    }
    self->complete();
  }
  static void abort_call(GroupCall* c) noexcept {
    static_cast<RemoteCall*>(c)->fail(std::make_exception_ptr(
        LoopGroupStopped("coring: the LoopGroup stopped before the submitted call ran")));
  }

  F fn_;
};

}  // namespace detail

template <class T>
class LoopResult;

// What `co_await result` (or result.wait()) gives: see the header comment.
template <class T>
class [[nodiscard]] LoopResultAwaiter : public Operation {
 public:
  explicit LoopResultAwaiter(detail::RemoteState<T>* s) noexcept : state_(s) {}
  LoopResultAwaiter(LoopResultAwaiter&& o) noexcept : Operation(std::move(o)), state_(o.state_) {}
  ~LoopResultAwaiter() {
    if (pending()) state_->detach();
  }

  bool await_ready() const { return state_->ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    EventLoop& loop = EventLoop::current_or_throw();
    if (!prepare<&LoopResultAwaiter::interrupt_wait>(h, WaitKind::other, state_)) {
      return suspend_cancelled();
    }
    if (!state_->attach(this, &LoopResultAwaiter::wake, loop)) {
      complete(false);  // it finished meanwhile: resume on the next turn
      return true;
    }
    start_timeout();
    return true;
  }
  T await_resume() {
    if (timed_out()) {
      throw std::system_error(std::make_error_code(std::errc::timed_out),
                              "coring: waiting for a LoopResult timed out");
    }
    return state_->take();
  }

 private:
  static void wake(void* w) noexcept {
    auto* self = static_cast<LoopResultAwaiter*>(w);
    self->state_->detach();
    self->complete(false);
  }
  static bool interrupt_wait(Operation* op) noexcept {
    static_cast<LoopResultAwaiter*>(op)->state_->detach();
    return true;
  }

  detail::RemoteState<T>* state_;
};

template <class T>
class [[nodiscard]] LoopResult {
 public:
  LoopResult() noexcept = default;
  explicit LoopResult(detail::RemoteState<T>* s) noexcept : state_(s) {}
  LoopResult(LoopResult&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  LoopResult& operator=(LoopResult&& o) noexcept {
    if (this != &o) {
      reset();
      state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
  }
  ~LoopResult() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  [[nodiscard]] bool ready() const { return checked().ready(); }
  // Blocks until the result is there; the value or the exception.
  T get() {
    checked().wait();
    return state_->take();
  }
  // An awaiter that leaves the LoopResult usable (for with_timeout).
  LoopResultAwaiter<T> wait() { return LoopResultAwaiter<T>(&checked()); }
  LoopResultAwaiter<T> operator co_await() & { return wait(); }
  LoopResultAwaiter<T> operator co_await() && { return wait(); }

 private:
  detail::RemoteState<T>& checked() const {
    if (state_ == nullptr) throw std::logic_error("coring: an empty LoopResult");
    return *state_;
  }
  void reset() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release();
  }
  detail::RemoteState<T>* state_ = nullptr;
};

class LoopGroup {
 public:
  // loops: 0 means std::thread::hardware_concurrency() (at least 1).
  explicit LoopGroup(std::size_t loops = 0, LoopOptions options = {});
  ~LoopGroup();
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;

  // See the header comment.
  void stop();

  [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }
  [[nodiscard]] std::thread::id thread_id(std::size_t i) const { return slot(i).id; }
  // Loop i. Use it on loop i's thread (from work submitted to it).
  [[nodiscard]] EventLoop& loop(std::size_t i) const { return *slot(i).loop; }
  // The backend every loop took (EventLoop::describe() of loop 0).
  [[nodiscard]] const std::string& describe() const noexcept { return describe_; }

  // Runs fn on loop i; see the header comment.
  template <class F>
  auto submit_to(std::size_t i, F fn) -> LoopResult<typename detail::remote_result<F>::type>;

 private:
  struct Slot {
    std::thread thread;
    std::thread::id id;
    std::mutex mutex;  // guards everything below
    EventLoop* loop = nullptr;
    detail::GroupCall* head = nullptr;
    detail::GroupCall* tail = nullptr;
    bool drain_posted = false;
    bool stopping = false;  // stop() was called
    bool closed = false;    // the loop stopped: calls are refused
  };
  Slot& slot(std::size_t i) const;
  static void run_slot(Slot& s, EventLoop& loop) noexcept;
  void enqueue(Slot& s, detail::GroupCall* call);
  static void drain(Slot& s) noexcept;

  LoopOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::string describe_;
  std::mutex join_mutex_;
  bool joined_ = false;  // guarded by join_mutex_
};

template <class F>
auto LoopGroup::submit_to(std::size_t i, F fn)
    -> LoopResult<typename detail::remote_result<F>::type> {
  using T = typename detail::remote_result<F>::type;
  Slot& s = slot(i);
  auto* call = new detail::RemoteCall<F, T>(std::move(fn), s.loop);
  LoopResult<T> result(call);  // owns one of its two references
  try {
    enqueue(s, call);
  } catch (...) {
    call->release();  // the executing side's reference
    throw;
  }
  return result;
}

}  // namespace coring
