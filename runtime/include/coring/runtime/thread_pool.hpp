// ThreadPool: a fixed set of OS threads for blocking or CPU-heavy work, and
// `co_await offload(pool, fn)`, which runs fn() there and resumes the awaiting
// task on its own loop with fn's value (or fn's exception rethrown).
//
// State. A pool is open (takes work) until shutdown(); then closed for good.
// Jobs wait in one FIFO (intrusive: the job record is the queue node) and are
// taken by the first idle worker; a pool of one thread runs them in order.
// `max_queued` bounds the jobs waiting (not running); 0 means unbounded.
// Full pool: submit() from a plain thread blocks until there is room;
// try_submit() gives std::nullopt; offload() fails at once with ThreadPoolFull
// (a loop thread must never block, and a task waiting for room would only move
// the queue somewhere else: the bound is the caller's back-pressure signal).
// Closed pool: submit/try_submit/offload throw ThreadPoolClosed.
//
// Shutdown. shutdown() (or shutdown(PendingWork::run), and the destructor)
// stops taking work, lets the workers run every job already queued, then joins
// them. shutdown(PendingWork::drop) runs only the jobs already running; each
// queued job is dropped: its future gets ThreadPoolClosed, its offload rethrows
// ThreadPoolClosed in the awaiting task. Both are idempotent; a second call
// waits for the first one's join. Calling shutdown (or destroying the pool) from
// one of its own jobs is a usage error (std::logic_error; the destructor
// terminates).
//
// offload(pool, fn) is an Operation (operation.hpp): it takes a timeout
// (set_timeout, with_timeout) and is cancelled with its task.
// - The job record (fn, its result, two counts) is one allocation, shared by
//   the awaiter and the pool and freed by whichever lets go of it last, so a
//   cancelled or timed-out awaiter never leaves a worker writing into a freed
//   frame. A job still queued when its awaiter gives up is dropped (never run);
//   a job already running cannot be interrupted: it runs to its end and its
//   result is discarded. fn (and its captures) is destroyed on the thread that
//   lets go of the job last -- usually the worker, right after it ran.
// - The result comes back through a per-loop inbox: the worker appends the job
//   and, when the inbox was empty, posts one drain to the loop (EventLoop::post,
//   whose Notifier writes the eventfd only if the loop sleeps), so a burst of
//   completions costs one post. The drain resumes each task still waiting, on
//   its loop.
// - Loop shutdown with offloads in flight: the tasks' frames are destroyed (the
//   awaiters let go of their jobs); jobs finishing later find the inbox closed
//   and free themselves. Nothing leaks, nothing touches a freed loop.
// - A timeout: `co_await offload(...)` with set_timeout throws
//   std::system_error(errc::timed_out); with_timeout(d, offload(...)) gives
//   std::optional<T> (bool for void), the coring shape.
// - The awaiting task needs an EventLoop on its thread (std::logic_error
//   otherwise).
//
// offload(fn) uses default_thread_pool(): hardware_concurrency threads,
// unbounded, created on first use, shut down (PendingWork::run) and joined at
// exit.
//
// Thread-safety: every member of ThreadPool may be called from any thread.
// An offload awaiter belongs to its task's loop thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/loop_inbox.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

// Work handed to a pool that is shut down (or dropped from its queue by
// shutdown(PendingWork::drop)).
class ThreadPoolClosed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// offload()/try_submit() on a bounded pool whose queue is full.
class ThreadPoolFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What shutdown does with jobs still queued (not yet running).
enum class PendingWork : std::uint8_t { run, drop };

struct ThreadPoolStats {
  std::size_t threads = 0;
  std::size_t queued = 0;       // waiting for a worker
  std::size_t running = 0;      // being run now
  std::uint64_t completed = 0;  // ran to their end (value or exception)
  std::uint64_t dropped = 0;    // never ran: cancelled while queued, or shutdown(drop)
};

namespace detail {

// A job in the pool's queue. The record is the node; `run` runs it on a
// worker and disposes of it, `drop` reports that it will never run and
// disposes of it.
struct PoolJob {
  PoolJob* next = nullptr;
  void (*run)(PoolJob* self) noexcept = nullptr;
  void (*drop)(PoolJob* self) noexcept = nullptr;
};

// Set by ThreadPool::count_dropped() on the worker that skipped its job.
inline thread_local bool tls_job_skipped = false;

}  // namespace detail

class ThreadPool {
 public:
  // threads: 0 means std::thread::hardware_concurrency() (at least 1).
  // max_queued: 0 means unbounded. Throws std::system_error if a worker thread
  // cannot be started (the ones started are joined first).
  explicit ThreadPool(std::size_t threads = 0, std::size_t max_queued = 0);
  // shutdown(PendingWork::run).
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // See the header comment. Idempotent; any thread but the pool's own.
  void shutdown(PendingWork pending = PendingWork::run);

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }
  [[nodiscard]] std::size_t max_queued() const noexcept { return max_queued_; }
  [[nodiscard]] bool closed() const noexcept;
  [[nodiscard]] ThreadPoolStats stats() const noexcept;
  // True on one of this pool's worker threads.
  [[nodiscard]] bool on_worker_thread() const noexcept;

  // Runs fn() on a worker; the future gives its value or exception. Blocks
  // while the queue is full. Throws ThreadPoolClosed after shutdown.
  template <class F>
  auto submit(F fn) -> std::future<std::invoke_result_t<F&>>;
  // The same, but std::nullopt instead of blocking when the queue is full.
  template <class F>
  auto try_submit(F fn) -> std::optional<std::future<std::invoke_result_t<F&>>>;

  // Low level (offload, submit): queues `job`, which the pool then owns.
  // Throws ThreadPoolClosed, or ThreadPoolFull when full and !wait_for_room,
  // leaving `job` to the caller.
  void enqueue(detail::PoolJob* job, bool wait_for_room);
  // A job that was cancelled while queued and that a worker then skipped
  // (counted as dropped, not as completed).
  void count_dropped() noexcept {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    detail::tls_job_skipped = true;
  }

 private:
  void work() noexcept;

  std::vector<std::thread> workers_;
  std::size_t max_queued_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;  // a job was queued, or the pool closed
  std::condition_variable room_cv_;  // a job left a full queue, or the pool closed
  detail::PoolJob* head_ = nullptr;  // the FIFO, guarded by mutex_
  detail::PoolJob* tail_ = nullptr;
  std::size_t queued_ = 0;        // guarded by mutex_
  std::size_t idle_ = 0;          // workers waiting on work_cv_, guarded by mutex_
  std::size_t room_waiters_ = 0;  // submit() calls waiting on room_cv_, guarded by mutex_
  bool closed_ = false;           // guarded by mutex_

  std::mutex join_mutex_;  // the join of shutdown(); held while joining
  bool joined_ = false;    // guarded by join_mutex_

  std::atomic<std::size_t> running_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

// The process-wide pool offload(fn) uses (see the header comment).
ThreadPool& default_thread_pool();

namespace detail {

template <class F, class R>
struct FutureJob final : PoolJob {
  explicit FutureJob(F&& f) : fn(std::move(f)) {
    run = &FutureJob::run_job;
    drop = &FutureJob::drop_job;
  }
  static void run_job(PoolJob* p) noexcept {
    auto* self = static_cast<FutureJob*>(p);
    try {
      if constexpr (std::is_void_v<R>) {
        self->fn();
        self->promise.set_value();
      } else {
        self->promise.set_value(self->fn());
      }
    } catch (...) {
      self->promise.set_exception(std::current_exception());
    }
    delete self;
  }
  static void drop_job(PoolJob* p) noexcept {
    auto* self = static_cast<FutureJob*>(p);
    self->promise.set_exception(std::make_exception_ptr(
        ThreadPoolClosed("coring: the job was dropped by ThreadPool::shutdown(drop)")));
    delete self;
  }
  F fn;
  std::promise<R> promise;
};

}  // namespace detail

template <class F>
auto ThreadPool::submit(F fn) -> std::future<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  auto* job = new detail::FutureJob<F, R>(std::move(fn));
  std::future<R> f = job->promise.get_future();
  try {
    enqueue(job, true);
  } catch (...) {
    delete job;
    throw;
  }
  return f;
}

template <class F>
auto ThreadPool::try_submit(F fn) -> std::optional<std::future<std::invoke_result_t<F&>>> {
  using R = std::invoke_result_t<F&>;
  auto* job = new detail::FutureJob<F, R>(std::move(fn));
  std::future<R> f = job->promise.get_future();
  try {
    enqueue(job, false);
  } catch (const ThreadPoolFull&) {
    delete job;
    return std::nullopt;
  } catch (...) {
    delete job;
    throw;
  }
  return f;
}

namespace detail {

// The shared part of an offload's job record. Two references: the awaiter's
// and the pool's (handed to the inbox when the job is done).
struct OffloadJobBase : PoolJob, InboxNode {
  enum : std::uint8_t { kQueued, kRunning, kDropped };

  explicit OffloadJobBase(LoopInbox* box) noexcept;
  ~OffloadJobBase();
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }
  // Worker: the job ran, or was dropped by shutdown: hand it to the loop.
  void finish() noexcept;
  // Loop thread: the awaiter gives up; a job still queued will not run.
  void abandon() noexcept {
    waiter = nullptr;
    std::uint8_t expected = kQueued;
    state.compare_exchange_strong(expected, kDropped, std::memory_order_acq_rel);
  }
  // Worker: claims the job for running; false if it was abandoned meanwhile.
  bool claim() noexcept {
    std::uint8_t expected = kQueued;
    return state.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel);
  }

  std::atomic<std::uint32_t> refs{2};
  std::atomic<std::uint8_t> state{kQueued};
  LoopInbox* inbox;  // holds a reference on it
  ThreadPool* pool = nullptr;
  void (*destroy)(OffloadJobBase* self) noexcept = nullptr;
  std::exception_ptr error;
};

template <class R>
struct OffloadValue {
  std::optional<R> value;
};
template <>
struct OffloadValue<void> {};

template <class F, class R>
struct OffloadJob final : OffloadJobBase, OffloadValue<R> {
  OffloadJob(F&& f, LoopInbox* box) : OffloadJobBase(box), fn(std::move(f)) {
    run = &OffloadJob::run_job;
    drop = &OffloadJob::drop_job;
    destroy = &OffloadJob::destroy_job;
  }
  static void run_job(PoolJob* p) noexcept {
    auto* self = static_cast<OffloadJob*>(p);
    if (!self->claim()) {  // its awaiter gave up while it was queued
      self->pool->count_dropped();
      self->release();
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        (*self->fn)();
      } else {
        self->value.emplace((*self->fn)());
      }
    } catch (...) {
      self->error = std::current_exception();
    }
    self->fn.reset();  // its captures go now, on the worker
    self->finish();
  }
  static void drop_job(PoolJob* p) noexcept {
    auto* self = static_cast<OffloadJob*>(p);
    if (self->claim()) {
      self->error = std::make_exception_ptr(
          ThreadPoolClosed("coring: the offloaded job was dropped by ThreadPool::shutdown(drop)"));
      self->finish();
    } else {
      self->release();
    }
  }
  static void destroy_job(OffloadJobBase* b) noexcept { delete static_cast<OffloadJob*>(b); }

  std::optional<F> fn;
};

}  // namespace detail

// What offload() returns: see the header comment. Movable until awaited.
template <class F>
class [[nodiscard]] OffloadAwaiter : public Operation {
 public:
  using value_type = std::invoke_result_t<F&>;

  OffloadAwaiter(ThreadPool& pool, F fn) : pool_(&pool), fn_(std::move(fn)) {}
  OffloadAwaiter(OffloadAwaiter&& o) noexcept
      : Operation(std::move(o)), pool_(o.pool_), fn_(std::move(o.fn_)) {}
  ~OffloadAwaiter() {
    if (job_ != nullptr) {
      job_->abandon();
      job_->release();
    }
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    EventLoop& loop = EventLoop::current_or_throw();
    auto* job = new Job(std::move(fn_), &detail::LoopInbox::of(loop));
    job->pool = pool_;
    job->waiter = this;
    job->wake = &OffloadAwaiter::wake;
    if (!prepare<&OffloadAwaiter::interrupt_offload>(h, WaitKind::other, pool_)) {
      Job::destroy_job(job);  // cancelled before it began: never queued
      return suspend_cancelled();
    }
    try {
      pool_->enqueue(job, false);
    } catch (...) {
      // Closed or full: the exception reaches the task; ~Operation disarms.
      Job::destroy_job(job);
      throw;
    }
    job_ = job;
    start_timeout();
    return true;
  }
  value_type await_resume() {
    if (timed_out()) {
      throw std::system_error(std::make_error_code(std::errc::timed_out),
                              "coring: offload timed out");
    }
    if (job_->error) std::rethrow_exception(job_->error);
    if constexpr (!std::is_void_v<value_type>) return std::move(*job_->value);
  }

 private:
  using Job = detail::OffloadJob<F, value_type>;

  static void wake(void* w) noexcept { static_cast<OffloadAwaiter*>(w)->complete(false); }
  static bool interrupt_offload(Operation* op) noexcept {
    static_cast<OffloadAwaiter*>(op)->job_->abandon();
    return true;
  }

  ThreadPool* pool_;
  F fn_;
  Job* job_ = nullptr;
};

// Runs fn() on `pool`; see the header comment.
template <class F>
OffloadAwaiter<std::decay_t<F>> offload(ThreadPool& pool, F&& fn) {
  return OffloadAwaiter<std::decay_t<F>>(pool, std::forward<F>(fn));
}
// The same on default_thread_pool().
template <class F>
OffloadAwaiter<std::decay_t<F>> offload(F&& fn) {
  return OffloadAwaiter<std::decay_t<F>>(default_thread_pool(), std::forward<F>(fn));
}

}  // namespace coring
