// EventLoop: one thread's scheduler, io_uring ring, timers and wake-up eventfd.
//
// One turn of the loop:
//   1. resume up to `run_budget` ready coroutines;
//   2. fire due timers and run functions posted from other threads;
//   3. submit every queued SQE and reap completions in one io_uring_enter,
//      waiting only when nothing is ready, with the nearest timer deadline as
//      the wait's timeout.
// Completions and timers never resume coroutines inline: they schedule them, so
// the next turn resumes them in FIFO order.
//
// Threading: everything but post() and stop() must be called on the loop's
// thread. post() is thread-safe; a burst of posts costs one eventfd write.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coring/runtime/backend.hpp"
#include "coring/runtime/clock.hpp"
#include "coring/runtime/epoll_backend.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/notifier.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/timer_queue.hpp"
#include "coring/runtime/uring_backend.hpp"

namespace coring {

struct LoopOptions {
  // Which backend serves the loop. `automatic` (the default) takes io_uring,
  // and epoll when io_uring is unavailable to the process (uring_unavailable():
  // ENOSYS, EPERM, EACCES -- a seccomp profile, kernel.io_uring_disabled), never
  // on other set-up errors; it says so once per process on stderr, and
  // EventLoop::describe() says which one it took and why. The environment
  // variable CORING_BACKEND=io_uring|epoll|automatic replaces `automatic`
  // for the whole process (an explicit choice here wins over it).
  BackendKind backend = BackendKind::automatic;
  UringOptions uring;
  EpollOptions epoll;
  // Coroutines resumed per loop turn before I/O is polled again, so a busy ready
  // queue never starves completions and timers.
  std::size_t run_budget = 256;
  // The clock timers run on; null: steady_clock. A coring::testing::VirtualClock
  // runs them in virtual time: when the loop is idle it jumps to the next
  // deadline instead of waiting (see clock.hpp). Shared so it outlives the loop.
  std::shared_ptr<ClockSource> clock;
  // Builds the backend instead (a decorator, a test double); it may call
  // make_backend(options) for the one the options choose.
  std::function<std::unique_ptr<Backend>(const LoopOptions&)> backend_factory;
};

// The backend `options` choose (see LoopOptions::backend), without
// backend_factory. Throws std::system_error naming cause and fix when none can
// be set up, std::invalid_argument for a bad CORING_BACKEND.
std::unique_ptr<Backend> make_backend(const LoopOptions& options);

// BackendKind::automatic's choice when CORING_BACKEND is unset or "automatic";
// else the kind it names. Throws std::invalid_argument for another value.
BackendKind backend_from_environment();

// Per-loop state of a higher layer (net's buffer ring and socket registry): one
// instance per loop and type, created by EventLoop::service<S>() on first use.
// Services are destroyed with the loop after its tasks have ended and after its
// backend (the ring) is gone, so a service may free memory the kernel wrote into.
class LoopService {
 public:
  virtual ~LoopService() = default;
};

struct LoopStats {
  std::uint64_t turns = 0;
  std::uint64_t posted = 0;        // functions posted (from any thread)
  std::uint64_t wakeups_sent = 0;  // eventfd writes done by post()/stop() (a loop that
                                   // is running gets none: see Notifier)
  std::uint64_t post_drains = 0;   // times the loop took the posted functions
};

class EventLoop {
 public:
  explicit EventLoop(LoopOptions options = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop running on this thread, or nullptr / an exception.
  static EventLoop* current() noexcept;
  static EventLoop& current_or_throw();

  // Spawns `task`, runs the loop until it finishes, and returns its value (or
  // rethrows its exception). Other tasks keep their state for the next run.
  template <class T>
  T run(Task<T> task);
  // Runs until stop() is called.
  void run();
  // Thread-safe: makes run() return after the current turn.
  void stop();
  // One turn; waits for I/O or a timer only if `may_block` and nothing is ready.
  void run_once(bool may_block = true);

  // Thread-safe: runs `fn` on the loop's thread during a coming turn.
  void post(std::function<void()> fn);

  [[nodiscard]] TaskScheduler& scheduler() noexcept { return scheduler_; }
  [[nodiscard]] Backend& backend() noexcept { return *backend_; }
  [[nodiscard]] TimerQueue& timers() noexcept { return timers_; }
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] LoopStats stats() const noexcept;
  [[nodiscard]] const LoopOptions& options() const noexcept { return options_; }

  // This loop's instance of `S` (a LoopService constructible from EventLoop&),
  // created on first use. Loop thread only.
  template <class S>
  S& service();
  // True once the loop's destructor has begun: tasks being freed now must not
  // start I/O (it would never be submitted).
  [[nodiscard]] bool shutting_down() const noexcept { return shutting_down_; }

 private:
  class RunGuard;
  void enter();
  void arm_wakeup();
  void drain_posted();
  void drain_for_shutdown();
  static void on_wakeup(Completion* c, int res, std::uint32_t flags) noexcept;

  template <class S>
  static constexpr char service_key = 0;

  LoopOptions options_;
  // Declared before backend_ so that services outlive the ring.
  std::vector<std::pair<const void*, std::unique_ptr<LoopService>>> services_;
  std::unique_ptr<Backend> backend_;
  TimerQueue timers_;
  TaskScheduler scheduler_;

  // Cross-thread wake-ups: the notifier's eventfd, read by an operation that is
  // always in flight while the loop runs.
  Notifier notifier_;
  struct WakeupOp : Completion {
    EventLoop* loop = nullptr;
    std::uint64_t value = 0;
    bool armed = false;
  } wakeup_op_;
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;  // guarded by post_mutex_
  std::vector<std::function<void()>> running_posts_;
  std::atomic<bool> has_posts_{false};  // posted_ is not empty (set under post_mutex_)
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::uint64_t> posted_count_{0};
  std::uint64_t post_drains_ = 0;
  std::uint64_t turns_ = 0;
  TimePoint last_frame_trim_{};
  const detail::JoinHandleBase* run_target_ = nullptr;  // run(task): never block once it is done
  bool entered_ = false;
  std::thread::id owner_;  // the thread that first ran the loop
  bool closed_ = false;    // guarded by post_mutex_
  bool shutting_down_ = false;
};

template <class S>
S& EventLoop::service() {
  const void* key = &service_key<S>;
  for (auto& [k, svc] : services_) {
    if (k == key) return static_cast<S&>(*svc);
  }
  auto created = std::make_unique<S>(*this);
  S& ref = *created;
  services_.emplace_back(key, std::move(created));
  return ref;
}

class EventLoop::RunGuard {
 public:
  explicit RunGuard(EventLoop& loop);
  ~RunGuard();
  RunGuard(const RunGuard&) = delete;
  RunGuard& operator=(const RunGuard&) = delete;

 private:
  EventLoop* prev_loop_;
  TimerQueue* prev_timers_;
  TaskScheduler::CurrentGuard sched_guard_;
};

template <class T>
T EventLoop::run(Task<T> task) {
  RunGuard guard(*this);
  JoinHandle<T> handle = scheduler_.spawn(std::move(task), "main");
  const detail::JoinHandleBase* outer = std::exchange(run_target_, &handle);
  try {
    while (!handle.done()) run_once(true);
  } catch (...) {
    run_target_ = outer;
    throw;
  }
  run_target_ = outer;
  return handle.result();
}

// Runs `task` to completion on a new EventLoop and returns its value.
template <class T>
T run(Task<T> task, LoopOptions options = {}) {
  EventLoop loop(std::move(options));
  return loop.run(std::move(task));
}

}  // namespace coring
