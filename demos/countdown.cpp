// Seed recipe: starting and stopping a thread (Python Cookbook 12.1) -- the
// CountdownTask that prints "T-minus n" every 5 s, terminated after 20 s.
//
// In coring the thread is a spawned task, terminate() is JoinHandle::cancel()
// (the task stops at its next suspension point, here its sleep), and join() is
// co_await on the handle.
//
// Run: ./countdown [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>

#include "demo_options.hpp"

namespace {

coring::Task<void> countdown(int n, double scale) {
  while (n > 0) {
    // The seed's `while self._running`: a cancel() that comes while the sleep
    // below has already ended (both timers due in one tick) takes effect here,
    // before the next line is printed, as the Python flag check does.
    co_await coring::cancellation_point();
    fmt::print("T-minus {}\n", n);
    std::fflush(stdout);
    --n;
    co_await coring::sleep_for(demo::scaled(5, scale));
  }
}

coring::Task<void> main_task(double scale) {
  coring::JoinHandle<void> t = coring::spawn(countdown(10, scale), "countdown");
  co_await coring::sleep_for(demo::scaled(20, scale));
  fmt::print("About to terminate\n");
  t.cancel();
  const coring::Outcome<void> ended = co_await t.join();  // waits until it has stopped
  if (!ended.cancelled()) fmt::print("(the countdown had already finished)\n");
  fmt::print("Terminated\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "countdown: {}\n", e.what());
    return 1;
  }
}
