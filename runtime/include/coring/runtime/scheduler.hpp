// TaskScheduler: the round-robin ready queue, and yield_now().
//
// The seed's generator TaskScheduler, with coroutines instead of generators:
// `schedule(h)` puts a coroutine at the back of the line, `run()` resumes from
// the front until the line is empty. The line is a power-of-two ring of
// coroutine handles that only grows, so a switch allocates nothing.
//
// It runs standalone (no io_uring needed) or inside an EventLoop, which owns one.
// A scheduler, and every task on it, belongs to one thread.
#pragma once

#include <coroutine>
#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>

#include "coring/runtime/task_context.hpp"

namespace coring {

template <class T>
class Task;
template <class T>
class JoinHandle;
class EventLoop;
class TaskScheduler;
class TimerQueue;

namespace detail {

class PromiseBase;
inline thread_local TaskScheduler* tls_current_scheduler = nullptr;
[[noreturn]] void throw_no_scheduler();

// FIFO ring of coroutine handles; grows by doubling, never shrinks. Entries
// are numbered by a running sequence (head_/tail_ never wrap back), and an
// entry's place is always seq & mask_, so a queued entry can be replaced by
// its number (how yield_now() makes a queued task unwind instead).
class ReadyQueue {
 public:
  ReadyQueue() : buf_(new void*[kInitial]), mask_(kInitial - 1) {}
  [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
  [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }
  // Returns the entry's sequence number.
  std::size_t push(std::coroutine_handle<> h) {
    if (tail_ - head_ > mask_) grow();
    buf_[tail_ & mask_] = h.address();
    return tail_++;
  }
  // Replaces the entry `seq` if it is still queued; returns whether it was.
  bool replace(std::size_t seq, std::coroutine_handle<> h) noexcept {
    if (seq < head_ || seq >= tail_) return false;
    buf_[seq & mask_] = h.address();
    return true;
  }
  std::coroutine_handle<> pop() noexcept {
    return std::coroutine_handle<>::from_address(buf_[head_++ & mask_]);
  }
  void clear() noexcept { head_ = tail_; }  // numbers keep running

 private:
  static constexpr std::size_t kInitial = 256;
  void grow();
  std::unique_ptr<void*[]> buf_;
  std::size_t mask_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace detail

class TaskScheduler {
 public:
  TaskScheduler() = default;
  TaskScheduler(const TaskScheduler&) = delete;
  TaskScheduler& operator=(const TaskScheduler&) = delete;
  // Cancels every task still alive, lets them unwind, and frees them (see shutdown()).
  ~TaskScheduler();

  // Puts `h` at the back of the ready line. Never resumes it inline.
  void schedule(std::coroutine_handle<> h) { ready_.push(h); }
  // The same; returns the entry's number, for replace_scheduled().
  std::size_t schedule_numbered(std::coroutine_handle<> h) { return ready_.push(h); }
  // Makes the entry `seq`, if it is still queued, resume `h` instead.
  bool replace_scheduled(std::size_t seq, std::coroutine_handle<> h) noexcept {
    return ready_.replace(seq, h);
  }

  // Starts `task` as a root task of this scheduler: it is queued to run, and
  // the returned handle joins, cancels or detaches it. `name` appears in reports.
  // Defined in join_handle.hpp.
  template <class T>
  JoinHandle<T> spawn(Task<T> task, std::string_view name = {});

  // Runs until the ready line is empty (standalone mode, like the seed's run()).
  void run();
  // Resumes at most `budget` queued coroutines; returns how many it resumed.
  std::size_t run_ready(std::size_t budget);

  // The timer heap of the EventLoop that owns this scheduler (null for a bare
  // TaskScheduler: timeouts and sleeps need an EventLoop).
  [[nodiscard]] TimerQueue* timers() const noexcept { return timers_; }

  [[nodiscard]] bool has_ready() const noexcept { return !ready_.empty(); }
  [[nodiscard]] std::size_t ready_count() const noexcept { return ready_.size(); }
  // Root tasks spawned here that have not finished.
  [[nodiscard]] std::size_t live_tasks() const noexcept { return live_; }

  // Cancels every live root task and runs the ready line so they can unwind,
  // resuming at most `max_resumes` coroutines (0: 16 per live task, plus 1024,
  // which bounds the time given to tasks that keep running, shielded).
  // Returns the number of tasks still alive afterwards (suspended on
  // something that could not be interrupted, or shielded).
  std::size_t cancel_all(std::size_t max_resumes = 0);
  // cancel_all(), then frees the frames of tasks that are still alive; a
  // JoinHandle attached to one of them reports it as cancelled.
  void shutdown();

  // The scheduler running on this thread (inside run(), run_ready() or an
  // EventLoop), or nullptr.
  static TaskScheduler* current() noexcept { return detail::tls_current_scheduler; }

  // Makes `s` the current scheduler of this thread for the guard's lifetime.
  class CurrentGuard {
   public:
    explicit CurrentGuard(TaskScheduler* s) noexcept : prev_(detail::tls_current_scheduler) {
      detail::tls_current_scheduler = s;
    }
    ~CurrentGuard() { detail::tls_current_scheduler = prev_; }
    CurrentGuard(const CurrentGuard&) = delete;
    CurrentGuard& operator=(const CurrentGuard&) = delete;

   private:
    TaskScheduler* prev_;
  };

 private:
  friend class detail::PromiseBase;
  friend class EventLoop;
  void adopt(detail::PromiseBase& p, void* frame, std::string_view name);
  void forget(detail::PromiseBase& p) noexcept;

  detail::ReadyQueue ready_;
  detail::PromiseBase* roots_ = nullptr;  // intrusive list of live root tasks
  std::size_t live_ = 0;
  TimerQueue* timers_ = nullptr;
};

// The current thread's scheduler; throws std::logic_error outside one.
inline TaskScheduler& current_scheduler() {
  TaskScheduler* s = detail::tls_current_scheduler;
  if (s == nullptr) [[unlikely]]
    detail::throw_no_scheduler();
  return *s;
}

// `co_await yield_now()`: go to the back of the ready line and let the others run.
// It always suspends. It is a cancellation point: a cancelled task is unwound
// there -- also when the cancellation comes while it waits in the line (see
// TaskContext::note_queued).
class [[nodiscard]] YieldAwaiter {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    TaskScheduler& sched = current_scheduler();
    TaskContext* ctx = context_of(h);
    if (ctx == nullptr) {
      sched.schedule(h);
    } else if (ctx->cancel_requested()) {
      sched.schedule(ctx->unwinder());
    } else {
      ctx->note_queued(sched.schedule_numbered(h));
    }
  }
  void await_resume() const noexcept {}
};

inline YieldAwaiter yield_now() noexcept {
  return {};
}

}  // namespace coring
