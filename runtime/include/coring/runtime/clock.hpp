// Time as the loop sees it.
//
// coring's clock is std::chrono::steady_clock unless a loop is given another
// ClockSource (LoopOptions::clock): coring::testing::VirtualClock makes timers
// run in virtual time, so a test of timing logic does not sleep. Every
// deadline coring computes (sleep_for, timeouts, PeriodicTimer) reads the
// running loop's clock through coring::now() (timer_queue.hpp, included by
// every awaitable's header); compute your own deadlines with
// it too (sleep_until(coring::now() + d)), not with Clock::now().
#pragma once

#include <chrono>

namespace coring {
using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

class ClockSource {
 public:
  virtual ~ClockSource() = default;
  [[nodiscard]] virtual TimePoint now() const noexcept = 0;
  // The loop is idle (nothing ready, no completion waiting) and its next timer
  // is due at `deadline`: a virtual clock jumps there and returns true (the
  // loop then does not block); a real clock returns false (the loop waits).
  virtual bool idle_until(TimePoint deadline) noexcept {
    (void)deadline;
    return false;
  }
};
}  // namespace coring
