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
//   `with_timeout(d, cv.wait(guard))` is the same thing.
// - notify_one() / notify_all(): wake the oldest waiter / every waiter, in the
//   order they started waiting. Waking only moves them on to the mutex's line.
//   The notifier need not hold the mutex.
// Cancel-safe, with RAII kept correct: a wait that times out or is cancelled
// leaves the condition, takes the mutex back (that step cannot be
// interrupted), and only then ends, so the guard owns the lock again however
// the wait ended. A notification that came first wins over a later timeout or
// cancellation (the wait returns normally). A cancelled task that never got to
// wait keeps the mutex. Destroying a Condition with waiters is reported: their
// wait re-takes the mutex and throws std::logic_error.
//
// Implementation notes: one WaitAwaiter is one Operation (runtime/operation.hpp)
// with two WaitNodes, one parked in the condition's list, then one in the
// mutex's; it lives in the waiting frame, so a wait allocates nothing.
#pragma once

#include <stdexcept>

#include "coring/runtime/operation.hpp"
#include "coring/runtime/task.hpp"
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

  class [[nodiscard]] WaitAwaiter : public Operation {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    WaitAwaiter(Condition& c, MutexGuard& guard) noexcept
        : cond_(&c),
          mutex_(&c.mutex_),
          guard_(guard),
          cond_node_(this, &WaitAwaiter::notified),
          mutex_node_(this, &WaitAwaiter::relocked_cb) {}
    WaitAwaiter(WaitAwaiter&& o) noexcept : WaitAwaiter(*o.cond_, o.guard_) {
      set_timeout(o.timeout());
    }
    ~WaitAwaiter() {
      // A frame freed while waiting (loop shutdown): the guard does not own the
      // mutex any more, and must not unlock it for somebody else.
      if (released_ && !relocked_) (void)guard_.release();
    }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      cond_->check_guard(guard_);
      if (!prepare<&WaitAwaiter::interrupt_wait>(h, WaitKind::condition, cond_)) {
        return suspend_cancelled();  // cancelled first: keep the mutex
      }
      cond_->waiters_.link_back(cond_node_);
      released_ = true;
      mutex_->unlock_unchecked();
      start_timeout();
      return true;
    }
    // True when notified, false when the timeout passed first.
    bool await_resume() {
      if (mutex_node_.broken() != nullptr) {
        (void)guard_.release();  // the mutex is gone: own nothing
        mutex_node_.check_broken();
      }
      cond_node_.check_broken();
      return !timed_out();
    }

   private:
    struct Node : WaitNode {
      Node(WaitAwaiter* o, WokenFn f) noexcept : WaitNode(f), op(o) {}
      WaitAwaiter* op;
    };
    static void notified(WaitNode* n) noexcept { static_cast<Node*>(n)->op->relock(); }
    static void relocked_cb(WaitNode* n) noexcept { static_cast<Node*>(n)->op->relocked(); }
    // Timeout or cancellation: leave the condition and take the mutex back;
    // the operation ends (interrupted) when that is done. Once notified, the
    // wait runs to its end as notified.
    static bool interrupt_wait(Operation* op) noexcept {
      auto* self = static_cast<WaitAwaiter*>(op);
      if (self->cond_node_.parked()) {
        self->cond_node_.unlink();
        self->interrupted_ = true;
        self->relock();
      }
      return false;
    }
    void relock() noexcept {
      if (!mutex_->locked_) {
        mutex_->locked_ = true;
        relocked();
      } else {
        mutex_->waiters_.link_back(mutex_node_);
      }
    }
    void relocked() noexcept {
      relocked_ = true;
      complete(interrupted_);
    }

    Condition* cond_;
    Mutex* mutex_;
    MutexGuard& guard_;
    Node cond_node_;
    Node mutex_node_;
    bool released_ = false;
    bool relocked_ = false;
    bool interrupted_ = false;
  };

  // Waits until notified (see above).
  class [[nodiscard]] PlainWaitAwaiter : public WaitAwaiter {
   public:
    using WaitAwaiter::WaitAwaiter;
    void await_resume() { (void)WaitAwaiter::await_resume(); }
  };

  PlainWaitAwaiter wait(MutexGuard& guard) noexcept { return PlainWaitAwaiter(*this, guard); }

  template <class Pred>
  Task<void> wait(MutexGuard& guard, Pred pred) {
    while (!pred()) co_await wait(guard);
  }

  WaitAwaiter wait_for(MutexGuard& guard, Duration timeout) noexcept {
    WaitAwaiter w(*this, guard);
    w.set_timeout(timeout);
    return w;
  }

 private:
  void check_guard(const MutexGuard& guard) const {
    if (guard.mutex_ != &mutex_) {
      throw std::logic_error("coring: Condition::wait() needs a guard that owns the condition's " +
                             mutex_.describe());
    }
  }

  Mutex& mutex_;
  WaitList waiters_{"Condition"};
};

}  // namespace coring
