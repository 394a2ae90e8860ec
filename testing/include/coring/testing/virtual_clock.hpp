// VirtualClock: a ClockSource for tests whose time moves only when the loop
// is idle (it jumps to the next timer's deadline) or when the test moves it.
//
//   auto clock = std::make_shared<coring::testing::VirtualClock>();
//   coring::LoopOptions o;
//   o.clock = clock;
//   coring::EventLoop loop(o);
//   loop.run(body());   // sleep_for(1h) inside returns at once; coring::now() says 1h later
//
// Idle means: no task ready and no I/O completion waiting at the moment the
// loop would block. I/O still runs for real: a timeout racing real I/O (a
// recv(5s) on a socket whose peer is another thread) may fire before the data
// comes, as with any paused clock -- use it for the logic of timers and
// timeouts, and the real clock where the kernel's timing is the point.
// Loop thread only (advance() too, or while the loop is not running).
#pragma once

#include "coring/runtime/clock.hpp"

namespace coring::testing {

class VirtualClock final : public ClockSource {
 public:
  // Starts at `start` (default: a fixed point well away from zero, so that
  // `now() - d` never underflows in tests).
  explicit VirtualClock(TimePoint start = TimePoint{} + std::chrono::hours(24)) noexcept
      : now_(start) {}

  [[nodiscard]] TimePoint now() const noexcept override { return now_; }
  bool idle_until(TimePoint deadline) noexcept override {
    if (!auto_advance_) return false;
    if (deadline > now_) {
      elapsed_ += deadline - now_;
      now_ = deadline;
    }
    ++jumps_;
    return true;
  }

  // Moves time forward by `d` (timers due by then fire on the loop's next turn).
  void advance(Duration d) noexcept {
    now_ += d;
    elapsed_ += d;
  }
  // Whether the loop may jump to the next deadline when idle (default true);
  // when false, time moves only with advance() and an idle loop waits on real
  // time for the virtual difference.
  void set_auto_advance(bool on) noexcept { auto_advance_ = on; }

  // Virtual time that passed, and how many times the idle loop jumped.
  [[nodiscard]] Duration elapsed() const noexcept { return elapsed_; }
  [[nodiscard]] unsigned long jumps() const noexcept { return jumps_; }

 private:
  TimePoint now_;
  Duration elapsed_{0};
  unsigned long jumps_ = 0;
  bool auto_advance_ = true;
};

}  // namespace coring::testing
