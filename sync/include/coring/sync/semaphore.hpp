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
// Cancel-safe: a cancelled waiter unlinks itself and its co_await throws
// Cancelled, having taken nothing. A waiter that was handed a unit and is
// cancelled before it runs keeps the unit (the co_await returns normally; the
// task stops at its next suspension point). A unit handed to a task whose
// frame is then freed by loop shutdown without resuming is lost.
// Destroying a Semaphore that tasks still wait on is reported (see WaitList).
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include "coring/sync/wait_list.hpp"

namespace coring {

class Semaphore;

// One unit of a Semaphore, released when the permit is destroyed.
class SemaphorePermit {
 public:
  SemaphorePermit() noexcept = default;
  explicit SemaphorePermit(Semaphore& s) noexcept : sem_(&s) {}
  SemaphorePermit(SemaphorePermit&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)) {}
  SemaphorePermit& operator=(SemaphorePermit&& o) noexcept {
    if (this != &o) {
      release();
      sem_ = std::exchange(o.sem_, nullptr);
    }
    return *this;
  }
  SemaphorePermit(const SemaphorePermit&) = delete;
  SemaphorePermit& operator=(const SemaphorePermit&) = delete;
  ~SemaphorePermit() { release(); }

  // Gives the unit back now (idempotent).
  inline void release() noexcept;
  [[nodiscard]] bool holds() const noexcept { return sem_ != nullptr; }
  explicit operator bool() const noexcept { return holds(); }

 private:
  Semaphore* sem_ = nullptr;
};

class Semaphore {
  // A waiter that records whether a unit was handed to it.
  struct Slot : Waiter {
    bool granted = false;
  };

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
    for (; k > 0 && !waiters_.empty(); --k) {
      auto* w = static_cast<Slot*>(waiters_.front());
      w->granted = true;  // recorded before the wake: a later cancel cannot lose it
      waiters_.wake(*w);
    }
    available_ += k;
  }

  class [[nodiscard]] AcquireAwaiter {
   public:
    explicit AcquireAwaiter(Semaphore& s) noexcept : sem_(s) {}
    // Movable only before it is awaited (as when passed to with_timeout).
    AcquireAwaiter(AcquireAwaiter&& o) noexcept : sem_(o.sem_) {}
    AcquireAwaiter& operator=(AcquireAwaiter&&) = delete;
    bool await_ready() noexcept {
      if (sem_.try_acquire()) slot_.granted = true;
      return slot_.granted;
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return sem_.waiters_.park(slot_, h);
    }
    void await_resume() const { slot_.check(); }

   protected:
    Semaphore& sem_;
    Slot slot_;
  };

  class [[nodiscard]] PermitAwaiter : public AcquireAwaiter {
   public:
    explicit PermitAwaiter(Semaphore& s) noexcept : AcquireAwaiter(s) {}
    PermitAwaiter(PermitAwaiter&& o) noexcept : AcquireAwaiter(std::move(o)) {}
    SemaphorePermit await_resume() const {
      slot_.check();
      return SemaphorePermit(sem_);
    }
  };

  AcquireAwaiter acquire() noexcept { return AcquireAwaiter{*this}; }
  PermitAwaiter acquire_permit() noexcept { return PermitAwaiter{*this}; }

 private:
  WaitList waiters_{"Semaphore"};
  std::size_t available_;
};

inline void SemaphorePermit::release() noexcept {
  if (Semaphore* s = std::exchange(sem_, nullptr)) s->release();
}

}  // namespace coring
