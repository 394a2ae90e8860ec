// Semaphore: the seed's threading.Semaphore as a loop-local awaitable.
//
// State: `available_` units that nobody holds, and a FIFO line of waiting
// tasks. Invariant: if anybody waits, `available_` is 0 (release() hands units
// to waiters before it adds to the count).
//
// - co_await acquire(): takes a unit at once if one is available and nobody is
//   waiting; otherwise suspends at the back of the line.
// - try_acquire(): takes a unit only if it could do so without waiting. It fails
//   while others wait, even just after a release(): those units already went to
//   the waiters, so nobody barges in.
// - release(k): hands each unit straight to the oldest waiter (recorded in its
//   awaiter, then the waiter is scheduled, never resumed inline); what is left
//   over is added to available().
// - co_await acquire_permit(): like acquire(), and returns a move-only
//   SemaphorePermit that releases the unit when destroyed.
// Cancel-safe: a cancelled (or timed-out) waiter unlinks itself, having taken
// nothing, and the task is unwound (a timeout: with_timeout gives false). A
// waiter that was handed a unit and is cancelled before it runs keeps the unit
// (the co_await returns normally; the task stops at its next suspension point). A unit handed to a
// task whose frame is then freed by loop shutdown without resuming is lost. Destroying a Semaphore
// that tasks still wait on is reported (see WaitList).
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include "coring/sync/wait_list.hpp"

namespace coring {

class Semaphore;

// One unit of a Semaphore, given back when the permit is destroyed. As on every
// owning handle of coring (MutexGuard, net::BufferLease), reset() gives back
// now and release() stops owning without giving back.
class SemaphorePermit {
 public:
  SemaphorePermit() noexcept = default;
  explicit SemaphorePermit(Semaphore& s) noexcept : sem_(&s) {}
  SemaphorePermit(SemaphorePermit&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)) {}
  SemaphorePermit& operator=(SemaphorePermit&& o) noexcept {
    if (this != &o) {
      reset();
      sem_ = std::exchange(o.sem_, nullptr);
    }
    return *this;
  }
  SemaphorePermit(const SemaphorePermit&) = delete;
  SemaphorePermit& operator=(const SemaphorePermit&) = delete;
  ~SemaphorePermit() { reset(); }

  // Gives the unit back now (idempotent).
  inline void reset() noexcept;
  // Stops owning the unit without giving it back (call Semaphore::release()
  // later); returns the semaphore, or null if the permit held nothing.
  [[nodiscard]] Semaphore* release() noexcept { return std::exchange(sem_, nullptr); }
  [[nodiscard]] bool holds() const noexcept { return sem_ != nullptr; }
  explicit operator bool() const noexcept { return holds(); }

 private:
  Semaphore* sem_ = nullptr;
};

class Semaphore {
 public:
  explicit Semaphore(std::size_t initial = 0) noexcept : available_(initial) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  [[nodiscard]] std::size_t available() const noexcept { return available_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  [[nodiscard]] bool try_acquire() noexcept {
    if (available_ == 0 || !waiters_.empty()) return false;
    --available_;
    return true;
  }
  [[nodiscard]] std::optional<SemaphorePermit> try_acquire_permit() noexcept {
    if (!try_acquire()) return std::nullopt;
    return SemaphorePermit(*this);
  }

  void release(std::size_t k = 1) noexcept {
    // Each unit goes straight to the oldest waiter (its awaiter records it).
    for (; k > 0 && !waiters_.empty(); --k) waiters_.wake_front();
    available_ += k;
  }

  class [[nodiscard]] AcquireAwaiter : public WaitOp {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    explicit AcquireAwaiter(Semaphore& s) noexcept : sem_(s) {}
    AcquireAwaiter(AcquireAwaiter&& o) noexcept : WaitOp(std::move(o)), sem_(o.sem_) {}
    bool await_ready() noexcept { return sem_.try_acquire(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park(sem_.waiters_, h, WaitKind::semaphore, &sem_);
    }
    void await_resume() const { check(); }

   protected:
    Semaphore& sem_;
  };

  class [[nodiscard]] PermitAwaiter : public AcquireAwaiter {
   public:
    explicit PermitAwaiter(Semaphore& s) noexcept : AcquireAwaiter(s) {}
    PermitAwaiter(PermitAwaiter&& o) noexcept : AcquireAwaiter(std::move(o)) {}
    SemaphorePermit await_resume() const {
      check();
      return SemaphorePermit(sem_);
    }
  };

  AcquireAwaiter acquire() noexcept { return AcquireAwaiter{*this}; }
  PermitAwaiter acquire_permit() noexcept { return PermitAwaiter{*this}; }

 private:
  WaitList waiters_{"Semaphore"};
  std::size_t available_;
};

inline void SemaphorePermit::reset() noexcept {
  if (Semaphore* s = std::exchange(sem_, nullptr)) s->release();
}

}  // namespace coring
