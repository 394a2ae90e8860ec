// Barrier: a loop-local form of std::barrier.
//
// Barrier(count): a reusable rendezvous of `count` parties, in phases.
// - co_await arrive_and_wait(): arrives at the current phase and waits until
//   every expected party has arrived; then the phase completes, all of them
//   are woken and the next phase expects `count` parties again. Returns true
//   for exactly one party per phase, the one whose arrival completed it (the
//   "leader"; it does not suspend), false for the others.
// - arrive_and_drop(): arrives at the current phase without waiting, and
//   lowers the expected count of every later phase by one.
// - phase(): the number of completed phases.
// Cancel-safe: a cancelled (or timed-out) waiter unlinks itself and the task is
// unwound (a timeout: with_timeout gives false); its arrival is not withdrawn (the phase completes
// without it, and the next phase expects it again). Arriving at a barrier that expects nobody
// (every party dropped) throws std::logic_error.
// Destroying a Barrier while tasks wait on it is reported (see WaitList).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "coring/sync/wait_list.hpp"

namespace coring {

class Barrier {
 public:
  explicit Barrier(std::size_t count) noexcept : expected_(count), remaining_(count) {}
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  [[nodiscard]] std::uint64_t phase() const noexcept { return phase_; }
  [[nodiscard]] std::size_t expected() const noexcept { return expected_; }
  // Parties still to arrive at the current phase.
  [[nodiscard]] std::size_t remaining() const noexcept { return remaining_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  void arrive_and_drop() {
    check_expects_someone();
    --expected_;
    arrive();
  }

  class [[nodiscard]] ArriveAwaiter : public WaitOp {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    explicit ArriveAwaiter(Barrier& b) noexcept : barrier_(b) {}
    ArriveAwaiter(ArriveAwaiter&& o) noexcept : WaitOp(std::move(o)), barrier_(o.barrier_) {}
    bool await_ready() {
      leader_ = barrier_.arrive();
      return leader_;
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park(barrier_.waiters_, h, WaitKind::barrier, &barrier_);
    }
    bool await_resume() const {
      check();
      return leader_;
    }

   private:
    Barrier& barrier_;
    bool leader_ = false;
  };

  ArriveAwaiter arrive_and_wait() noexcept { return ArriveAwaiter{*this}; }

 private:
  void check_expects_someone() const {
    if (remaining_ == 0)
      throw std::logic_error("coring: Barrier arrival, but no party is expected");
  }
  // Returns true if this arrival completed the phase.
  bool arrive() {
    check_expects_someone();
    if (--remaining_ != 0) return false;
    ++phase_;
    remaining_ = expected_;
    waiters_.wake_all();
    return true;
  }

  WaitList waiters_{"Barrier"};
  std::size_t expected_;
  std::size_t remaining_;
  std::uint64_t phase_ = 0;
};

}  // namespace coring
