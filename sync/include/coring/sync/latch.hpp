// Latch: a loop-local form of std::latch (Barrier, the reusable rendezvous,
// is in barrier.hpp).
//
// Latch(count): a single-use countdown.
// - count_down(n = 1): subtracts n; when the count reaches 0 every waiter is
//   woken (FIFO, scheduled, never resumed inline). Counting down below zero is
//   a bug: it throws std::logic_error and leaves the count unchanged.
// - co_await wait(): returns at once if the count is 0, otherwise suspends
//   until it is. try_wait(): whether the count is 0.
// - co_await arrive_and_wait(n = 1): count_down(n), then wait().
// Cancel-safe: a cancelled (or timed-out) waiter unlinks itself, the task is
// unwound (a timeout: with_timeout gives false); a count it already gave
// (arrive_and_wait) stays given.
// Destroying a Latch while tasks wait on it is reported (see WaitList).
#pragma once

#include <cstddef>
#include <stdexcept>

#include "coring/sync/wait_list.hpp"

namespace coring {

class Latch {
 public:
  explicit Latch(std::size_t count) noexcept : count_(count) {}
  Latch(const Latch&) = delete;
  Latch& operator=(const Latch&) = delete;

  void count_down(std::size_t n = 1) {
    if (n > count_) throw std::logic_error("coring: Latch::count_down below zero");
    count_ -= n;
    if (count_ == 0) waiters_.wake_all();
  }
  [[nodiscard]] bool try_wait() const noexcept { return count_ == 0; }
  [[nodiscard]] std::size_t count() const noexcept { return count_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  class [[nodiscard]] WaitAwaiter : public WaitOp {
   public:
    WaitAwaiter(Latch& l, std::size_t arrive) noexcept : latch_(l), arrive_(arrive) {}
    WaitAwaiter(WaitAwaiter&& o) noexcept
        : WaitOp(std::move(o)), latch_(o.latch_), arrive_(o.arrive_) {}
    bool await_ready() {
      if (arrive_ != 0) latch_.count_down(arrive_);
      return latch_.count_ == 0;
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park(latch_.waiters_, h, WaitKind::latch, &latch_);
    }
    void await_resume() const { check(); }

   private:
    Latch& latch_;
    std::size_t arrive_;
  };

  WaitAwaiter wait() noexcept { return WaitAwaiter{*this, 0}; }
  WaitAwaiter arrive_and_wait(std::size_t n = 1) noexcept { return WaitAwaiter{*this, n}; }

 private:
  WaitList waiters_{"Latch"};
  std::size_t count_;
};

}  // namespace coring
