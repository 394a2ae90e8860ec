// Timers on the current EventLoop: sleep_for, sleep_until, PeriodicTimer.
//
// A sleep is an Operation (operation.hpp) whose timer lives in the awaiter, so a
// pending sleep allocates nothing and costs no SQE: the loop waits on the
// nearest deadline. A sleep always suspends (a past deadline resumes on the
// next turn). Cancelling the task removes the timer and unwinds the task.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

// The operation behind sleep_for/sleep_until: its timer is its completion.
// With a timeout shorter than the sleep (with_timeout), the timeout wins and
// timed_out() tells it.
class [[nodiscard]] SleepAwaiter : public Operation {
 public:
  explicit SleepAwaiter(TimePoint at) noexcept : at_(at) {}
  SleepAwaiter(SleepAwaiter&& o) noexcept : Operation(std::move(o)), at_(o.at_) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!prepare<&SleepAwaiter::interrupt_sleep>(h, WaitKind::sleep, nullptr, true)) {
      return suspend_cancelled();
    }
    const TimePoint limit =
        timeout() == kNoTimeout ? TimePoint::max() : detail::deadline_after(timeout());
    if (limit < at_) {
      start_timer(limit, false);  // the timeout comes first
    } else {
      start_timer(at_, true);
    }
    return true;
  }
  void await_resume() const noexcept {}
  [[nodiscard]] TimePoint deadline() const noexcept { return at_; }

 private:
  static bool interrupt_sleep(Operation*) noexcept { return true; }  // the base removed the timer
  TimePoint at_;
};

inline SleepAwaiter sleep_until(TimePoint deadline) noexcept {
  return SleepAwaiter{deadline};
}
inline SleepAwaiter sleep_for(Duration d) noexcept {
  return SleepAwaiter{detail::deadline_after(d)};
}

// The seed's PeriodicTimer: `co_await timer.tick()` resumes at start + k * interval.
// Ticks are kept on the grid, so there is no drift; a task that falls behind
// skips the ticks it missed instead of running them in a burst, and tick()
// returns how many intervals passed since the previous tick (1 when on time).
class PeriodicTimer {
 public:
  explicit PeriodicTimer(Duration interval) : PeriodicTimer(interval, coring::now() + interval) {}
  PeriodicTimer(Duration interval, TimePoint first_tick) : interval_(interval), next_(first_tick) {
    if (interval_ <= Duration::zero())
      throw std::invalid_argument("coring: PeriodicTimer interval must be > 0");
  }

  class [[nodiscard]] TickAwaiter : public SleepAwaiter {
   public:
    explicit TickAwaiter(PeriodicTimer& t) noexcept : SleepAwaiter(t.next_), timer_(t) {}
    TickAwaiter(TickAwaiter&& o) noexcept : SleepAwaiter(std::move(o)), timer_(o.timer_) {}
    std::uint64_t await_resume() noexcept { return timer_.advance(); }

   private:
    PeriodicTimer& timer_;
  };

  TickAwaiter tick() noexcept { return TickAwaiter{*this}; }
  [[nodiscard]] Duration interval() const noexcept { return interval_; }
  [[nodiscard]] TimePoint next_deadline() const noexcept { return next_; }

 private:
  std::uint64_t advance() noexcept {
    const TimePoint now = coring::now();
    const auto passed = static_cast<std::uint64_t>((now - next_) / interval_) + 1;
    next_ += interval_ * static_cast<Duration::rep>(passed);
    return passed;
  }

  Duration interval_;
  TimePoint next_;
};

}  // namespace coring
