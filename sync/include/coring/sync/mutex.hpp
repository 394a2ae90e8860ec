// Mutex: the seed's threading.Lock as a loop-local awaitable, with RAII guards
// and a lock-order checker.
//
// State: `locked_`, and a FIFO line of waiting tasks. Invariant: if anybody
// waits, the mutex is locked (unlock() hands it over rather than freeing it).
//
// - co_await lock(): returns a MutexGuard. Takes the mutex at once (without
//   suspending) if it is free; otherwise suspends at the back of the line.
// - try_lock(): a guard if the mutex is free, std::nullopt otherwise. Never
//   waits, so it never barges past a waiter either.
// - unlock() (or the guard's destructor / MutexGuard::unlock()): hands the
//   mutex straight to the oldest waiter (recorded in its awaiter, then the
//   waiter is scheduled), or frees it if nobody waits.
// Cancel-safe: a waiter cancelled (or timed out by with_timeout, which then
// gives std::nullopt) unlinks itself, owning nothing; the others carry on. A
// waiter that was handed the mutex and is cancelled before it runs still gets
// its guard (and releases it when the task is unwound at its next suspension
// point).
// Destroying a Mutex that tasks still wait on is reported (see WaitList).
//
// Lock-order checking (the seed's acquire() with "Lock Order Violation").
// All mutexes of a thread have one global order: their address. A task that
// holds some mutexes may only lock one that comes after all of them; locking one
// that comes earlier (or one it already holds) is the nesting that can deadlock
// with a task nesting the other way, and the co_await throws LockOrderViolation
// naming both mutexes, before waiting. lock_all() (lock_all.hpp) takes a set in
// this order. Checking is on by default when the sync library is built without
// NDEBUG, and set_lock_order_checking() switches it for the whole process.
//
// What "holds" means. A task holds the mutexes of the guards it locked through
// with co_await lock() (or lock_all()) as long as those guards live in its own
// frames (the frames of its chain of awaited tasks). A guard returned to the
// caller's frame still counts; one moved into another task (passed to spawn,
// pushed through a queue) or to the heap no longer counts for anybody: the
// checker never reports a lock a task does not hold, and a guard that changed
// hands is not checked. try_lock() never waits, so it cannot be the waiting side
// of a deadlock cycle; its guards are not tracked.
//
// Implementation notes for the checker. The record of a held lock lives with
// its guard: a tracked guard is registered, by address, in its task's sync state
// (detail/task_state.hpp, kept in the spawned task's TaskContext) and tells that
// state when it moves or unlocks. When the task ends, its state goes and every
// guard still registered forgets it: a finished task leaves nothing behind
// (frame addresses are recycled). A lock() walks its task's guards (a few);
// only for one that would conflict does it check that the guard still lives in
// the task's frames (runtime's in_await_chain, one malloc_usable_size per
// frame), and unregisters it if not. Switched off, a lock costs one relaxed
// atomic load more.
#pragma once

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "coring/runtime/task.hpp"
#include "coring/sync/detail/task_state.hpp"
#include "coring/sync/wait_list.hpp"

namespace coring {

class Mutex;
class Condition;

// A nested acquisition that breaks the global lock order (see above).
class LockOrderViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
extern std::atomic<bool> lock_order_checking_enabled;
// The highest-ordered mutex the task of `ctx` holds that `m` does not come
// after, or null; `leaf_frame`/`leaf` are the frame and promise of the
// coroutine that locks (see "What holds means").
const Mutex* lock_order_conflict(TaskContext& ctx, const Mutex* m, const void* leaf_frame,
                                 const PromiseBase& leaf) noexcept;
[[noreturn]] void throw_lock_order_violation(const Mutex& held, const Mutex& wanted);
}  // namespace detail

inline void set_lock_order_checking(bool on) noexcept {
  detail::lock_order_checking_enabled.store(on, std::memory_order_relaxed);
}
[[nodiscard]] inline bool lock_order_checking() noexcept {
  return detail::lock_order_checking_enabled.load(std::memory_order_relaxed);
}

// Owns a locked Mutex; unlocks it when destroyed. Move-only. As on every
// owning handle of coring, unlock() gives the mutex back now and release()
// stops owning it without unlocking.
class MutexGuard : private detail::HeldLock {
 public:
  MutexGuard() noexcept = default;
  MutexGuard(MutexGuard&& o) noexcept : mutex_(std::exchange(o.mutex_, nullptr)) { follow(o); }
  MutexGuard& operator=(MutexGuard&& o) noexcept {
    if (this != &o) {
      unlock();
      mutex_ = std::exchange(o.mutex_, nullptr);
      follow(o);
    }
    return *this;
  }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;
  ~MutexGuard() { unlock(); }

  // Unlocks now; idempotent.
  inline void unlock() noexcept;
  // Stops owning the mutex without unlocking it (call Mutex::unlock() later).
  inline Mutex* release() noexcept;
  [[nodiscard]] bool owns_lock() const noexcept { return mutex_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }
  [[nodiscard]] Mutex* mutex() const noexcept { return mutex_; }

 private:
  friend class Mutex;
  friend class Condition;
  friend const Mutex* detail::lock_order_conflict(TaskContext&, const Mutex*, const void*,
                                                  const detail::PromiseBase&) noexcept;
  explicit MutexGuard(Mutex& m) noexcept : mutex_(&m) {}
  // The lock-order record moves with the guard.
  void follow(MutexGuard& o) noexcept {
    tracker = std::exchange(o.tracker, nullptr);
    if (tracker != nullptr) tracker->moved(&o, this);
  }
  void stop_tracking() noexcept {
    if (tracker != nullptr) tracker->untrack(this);
  }

  Mutex* mutex_ = nullptr;
};

class Mutex {
 public:
  // `name` (a string that outlives the mutex) appears in error messages.
  explicit Mutex(const char* name = nullptr) noexcept : name_(name) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  [[nodiscard]] bool locked() const noexcept { return locked_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }
  [[nodiscard]] const char* name() const noexcept { return name_; }
  // The name, or "Mutex@<address>" when unnamed.
  [[nodiscard]] std::string describe() const;

  [[nodiscard]] std::optional<MutexGuard> try_lock() noexcept {
    if (locked_) return std::nullopt;
    locked_ = true;
    return MutexGuard(*this);
  }

  // Unlocks a mutex locked through a released guard. Throws std::logic_error if
  // the mutex is not locked.
  void unlock() {
    if (!locked_) throw_not_locked();
    unlock_unchecked();
  }

  class [[nodiscard]] LockAwaiter : public WaitOp {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    explicit LockAwaiter(Mutex& m) noexcept : mutex_(m) {}
    LockAwaiter(LockAwaiter&& o) noexcept : WaitOp(std::move(o)), mutex_(o.mutex_) {}
    // The check needs the task's context, so the fast path is in await_suspend
    // (returning false resumes at once, without the scheduler).
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
        TaskContext* ctx = context_of(h);
        if (ctx != nullptr && lock_order_checking()) {
          conflict_ = detail::lock_order_conflict(*ctx, &mutex_, h.address(), h.promise());
          if (conflict_ != nullptr) return false;
          ctx_ = ctx;
        }
      }
      if (!mutex_.locked_) {
        mutex_.locked_ = true;
        return false;
      }
      // Woken: unlock() handed the mutex over.
      return park(mutex_.waiters_, h, WaitKind::mutex, &mutex_);
    }
    MutexGuard await_resume() {
      check();
      if (conflict_ != nullptr) detail::throw_lock_order_violation(*conflict_, mutex_);
      MutexGuard g(mutex_);
      // May throw (no memory for the record): g then unlocks.
      if (ctx_ != nullptr) detail::SyncTaskState::of(*ctx_).track(&g);
      return g;
    }

   private:
    Mutex& mutex_;
    TaskContext* ctx_ = nullptr;  // the task's, when the checker tracks the guard
    const Mutex* conflict_ = nullptr;
  };

  LockAwaiter lock() noexcept { return LockAwaiter{*this}; }

 private:
  friend class MutexGuard;
  friend class Condition;

  // Hands the mutex to the oldest waiter (it stays locked), or frees it.
  void unlock_unchecked() noexcept {
    if (waiters_.wake_front() == nullptr) locked_ = false;
  }
  [[noreturn]] void throw_not_locked() const;

  WaitList waiters_{"Mutex"};
  const char* name_;
  bool locked_ = false;
};

inline void MutexGuard::unlock() noexcept {
  if (Mutex* m = std::exchange(mutex_, nullptr)) {
    stop_tracking();
    m->unlock_unchecked();
  }
}

inline Mutex* MutexGuard::release() noexcept {
  stop_tracking();
  return std::exchange(mutex_, nullptr);
}

}  // namespace coring
