// Seed recipe: a PeriodicTimer built on a Condition (Python Cookbook 12.2) --
// a timer ticks every 5 s, flipping a flag and notifying everyone waiting on
// its Condition; countdown(10) prints "T-minus n" and countup(5) prints
// "Counting n", one line per tick each.
//
// threading.Condition is coring::Condition on a coring::Mutex, the timer thread
// is a spawned task driven by coring::PeriodicTimer (ticks on a fixed grid, no
// drift). Waiters wake in FIFO order, so on each tick countdown (which started
// waiting first) prints before countup: the interleaving the seed shows, minus
// the threads writing into each other's lines.
//
// Run: ./periodic_timer [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>

#include "demo_options.hpp"

namespace {

class TickingTimer {
 public:
  explicit TickingTimer(coring::Duration interval) : interval_(interval) {}

  // The seed's run(): the daemon thread that ticks forever.
  coring::Task<void> run() {
    coring::PeriodicTimer ticks(interval_);
    for (;;) {
      co_await ticks.tick();
      coring::MutexGuard g = co_await mutex_.lock();
      flag_ ^= 1;
      cv_.notify_all();
    }
  }

  coring::Task<void> wait_for_tick() {
    coring::MutexGuard g = co_await mutex_.lock();
    const int last_flag = flag_;
    co_await cv_.wait(g, [&] { return last_flag != flag_; });
  }

 private:
  coring::Duration interval_;
  coring::Mutex mutex_{"PeriodicTimer"};
  coring::Condition cv_{mutex_};
  int flag_ = 0;
};

coring::Task<void> countdown(TickingTimer& timer, int nticks) {
  while (nticks > 0) {
    co_await timer.wait_for_tick();
    fmt::print("T-minus {}\n", nticks);
    std::fflush(stdout);
    --nticks;
  }
}

coring::Task<void> countup(TickingTimer& timer, int last) {
  for (int n = 0; n < last; ++n) {
    co_await timer.wait_for_tick();
    fmt::print("Counting {}\n", n);
    std::fflush(stdout);
  }
}

coring::Task<void> main_task(double scale) {
  TickingTimer timer(demo::scaled(5, scale));
  coring::JoinHandle<void> ticker = coring::spawn(timer.run(), "ptimer");
  coring::JoinHandle<void> down = coring::spawn(countdown(timer, 10), "countdown");
  coring::JoinHandle<void> up = coring::spawn(countup(timer, 5), "countup");
  co_await down;
  co_await up;
  ticker.cancel();  // the seed's daemon thread: stopped when the program ends
  (void)co_await ticker.join();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "periodic_timer: {}\n", e.what());
    return 1;
  }
}
