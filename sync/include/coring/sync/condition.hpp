// Condition: the seed's threading.Condition, bound to one Mutex.
//
// - co_await wait(guard): `guard` must own the condition's mutex. Parks the task,
//   then releases the mutex (handing it to its oldest waiter), and once notified
//   takes the mutex again (FIFO among the mutex's waiters) before returning.
//   Parking and releasing happen in one step: no notify can slip in between.
// - co_await wait(guard, pred): waits until pred() is true (checked with the
//   mutex held, first before waiting at all).
// - co_await wait_for(guard, d): like wait(); true if notified, false if `d`
//   passed first (needs an EventLoop: the timeout is a timer of the loop).
// - notify_one() / notify_all(): wake the oldest waiter / every waiter, in the
//   order they started waiting. Waking only schedules them; they then queue for
//   the mutex. The notifier need not hold the mutex.
// Cancel-safe, with RAII kept correct: a task cancelled (or timed out by
// with_timeout) while waiting unlinks itself, takes the mutex back (that step
// cannot be cancelled), and only then does Cancelled propagate, so the guard
// owns the lock again while the exception unwinds. A cancelled task that never
// got to wait throws Cancelled without having released the mutex.
// wait() and wait_for() run as child Tasks (one pooled frame per wait) in the
// caller's context. Destroying a Condition with waiters is reported (WaitList):
// their wait re-takes the mutex and throws std::logic_error.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>

#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/sync/mutex.hpp"
#include "coring/sync/wait_list.hpp"

namespace coring {

class Condition {
 public:
  explicit Condition(Mutex& m) noexcept : mutex_(m) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  [[nodiscard]] Mutex& mutex() const noexcept { return mutex_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  void notify_one() noexcept { waiters_.wake_front(); }
  void notify_all() noexcept { waiters_.wake_all(); }

  Task<void> wait(MutexGuard& guard) { co_await wait_impl(guard, std::nullopt); }

  template <class Pred>
  Task<void> wait(MutexGuard& guard, Pred pred) {
    while (!pred()) co_await wait_impl(guard, std::nullopt);
  }

  Task<bool> wait_for(MutexGuard& guard, Duration timeout) { return wait_impl(guard, timeout); }

 private:
  // Parks on the condition and releases the mutex; resumes when notified
  // (returns true), timed out (false), cancelled or broken (throws).
  class [[nodiscard]] ParkAwaiter : private TimerNode {
   public:
    ParkAwaiter(Condition& c, std::optional<Duration> timeout) noexcept
        : cond_(c), timeout_(timeout) {
      on_fire = &ParkAwaiter::fired;
    }
    ParkAwaiter(const ParkAwaiter&) = delete;
    ParkAwaiter& operator=(const ParkAwaiter&) = delete;
    ~ParkAwaiter() {
      if (armed()) loop_->timers().remove(this);
    }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      if (timeout_) loop_ = &EventLoop::current_or_throw();  // before anything changes
      if (!cond_.waiters_.park(waiter_, h)) return false;    // cancelled: keep the mutex
      if (timeout_) {
        deadline = Clock::now() + *timeout_;
        loop_->timers().add(this);
      }
      released_ = true;
      cond_.mutex_.unlock_unchecked();
      return true;
    }
    bool await_resume() {
      waiter_.check();
      if (armed()) loop_->timers().remove(this);
      return !timed_out_;
    }
    [[nodiscard]] bool released() const noexcept { return released_; }

   private:
    static void fired(TimerNode* n) noexcept {
      auto* self = static_cast<ParkAwaiter*>(n);
      if (!self->waiter_.parked()) return;  // already notified
      self->timed_out_ = true;
      self->cond_.waiters_.wake(self->waiter_);
    }

    Condition& cond_;
    std::optional<Duration> timeout_;
    EventLoop* loop_ = nullptr;
    Waiter waiter_;
    bool released_ = false;
    bool timed_out_ = false;
  };

  void check_guard(const MutexGuard& guard) const {
    if (guard.mutex_ != &mutex_) {
      throw std::logic_error("coring: Condition::wait() needs a guard that owns the condition's " +
                             mutex_.describe());
    }
  }

  Task<bool> wait_impl(MutexGuard& guard, std::optional<Duration> timeout) {
    check_guard(guard);
    Mutex& mutex = mutex_;  // `this` may be gone when the wait ends (reported destruction)
    ParkAwaiter park(*this, timeout);
    std::exception_ptr error;
    bool notified = false;
    try {
      notified = co_await park;
    } catch (...) {
      error = std::current_exception();
    }
    if (park.released()) {
      bool relocked = false;
      try {
        co_await mutex.relock();
        relocked = true;
      } catch (...) {
        if (!error) error = std::current_exception();
      }
      if (!relocked) (void)guard.release();  // the mutex is gone: own nothing
    }
    if (error) std::rethrow_exception(error);
    co_return notified;
  }

  Mutex& mutex_;
  WaitList waiters_{"Condition"};
};

}  // namespace coring
