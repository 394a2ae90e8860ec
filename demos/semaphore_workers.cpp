// Seed recipe: a Semaphore(0) that releases waiting workers one at a time
// (Python Cookbook 12.2) -- ten workers block on acquire(); the main thread
// releases one, then another, five seconds apart, and says goodbye.
//
// The workers are spawned tasks parked on coring::Semaphore; release() hands
// the unit straight to the oldest waiter, so worker 0 runs first, then worker 1.
// The seed's daemon threads die with the program; here the eight workers still
// waiting are cancelled, which unlinks them from the semaphore.
//
// Run: ./semaphore_workers [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>
#include <vector>

#include "demo_options.hpp"

namespace {

coring::Task<void> worker(int n, coring::Semaphore& sema) {
  co_await sema.acquire();
  fmt::print("Working {}\n", n);
  std::fflush(stdout);
}

coring::Task<void> main_task(double scale) {
  coring::Semaphore sema(0);
  constexpr int kWorkers = 10;
  std::vector<coring::JoinHandle<void>> workers;
  for (int n = 0; n < kWorkers; ++n) workers.push_back(coring::spawn(worker(n, sema)));

  fmt::print("About to release first worker\n");
  std::fflush(stdout);
  co_await coring::sleep_for(demo::scaled(5, scale));
  sema.release();
  co_await coring::sleep_for(demo::scaled(1, scale));
  fmt::print("About to release second worker\n");
  std::fflush(stdout);
  co_await coring::sleep_for(demo::scaled(5, scale));
  sema.release();
  co_await coring::sleep_for(demo::scaled(1, scale));
  fmt::print("Goodbye\n");

  for (auto& w : workers) w.cancel();
  for (auto& w : workers) (void)co_await w.join();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "semaphore_workers: {}\n", e.what());
    return 1;
  }
}
