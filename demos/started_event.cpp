// Seed recipe: using an Event to know that a thread has started (Python
// Cookbook 12.2) -- "Launching countdown", the countdown announces itself and
// sets the event, the launcher waits for it and prints "countdown is running",
// then T-minus 10 .. 1, five seconds apart.
//
// The thread is a spawned task and threading.Event is coring::Event. Tasks do
// not preempt each other, so the lines come in the order the recipe means
// (the seed's threads interleaved "T-minus" and "countdown is running" mid-line):
// the countdown sets the event and yields, the launcher runs and prints, then
// the countdown goes on.
//
// Run: ./started_event [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>

#include "demo_options.hpp"

namespace {

coring::Task<void> countdown(int n, coring::Event& started, double scale) {
  fmt::print("countdown starting\n");
  started.set();
  co_await coring::yield_now();  // let the launcher see the event first
  while (n > 0) {
    fmt::print("T-minus {}\n", n);
    std::fflush(stdout);
    --n;
    co_await coring::sleep_for(demo::scaled(5, scale));
  }
}

coring::Task<void> main_task(double scale) {
  coring::Event started;
  fmt::print("Launching countdown\n");
  coring::JoinHandle<void> t = coring::spawn(countdown(10, started, scale), "countdown");
  co_await started.wait();
  fmt::print("countdown is running\n");
  co_await t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "started_event: {}\n", e.what());
    return 1;
  }
}
