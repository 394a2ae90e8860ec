// Seed recipe: a SharedCounter protected by a Lock (Python Cookbook 12.4) --
// three threads each add 1 a million times and then subtract 1 a million
// times; the counter must end at 0.
//
// threading.Lock is coring::Mutex and `with lock:` is the RAII MutexGuard. An
// uncontended lock does not suspend, so the million round trips are cheap.
// Tasks do not preempt, so each task yields every few thousand steps (now and
// then while holding the lock, which makes the others queue and exercises the
// hand-off): the three interleave the way the seed's threads do.
//
// Run: ./shared_counter [--time-scale=F]   (no sleeps; the flag is accepted)
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>
#include <vector>

#include "demo_options.hpp"

namespace {

class SharedCounter {
 public:
  explicit SharedCounter(long initial_value = 0) : value_(initial_value) {}

  coring::Task<void> incr(long delta = 1) {
    coring::MutexGuard g = co_await value_lock_.lock();
    value_ += delta;
  }
  coring::Task<void> decr(long delta = 1) {
    coring::MutexGuard g = co_await value_lock_.lock();
    value_ -= delta;
  }
  // Adds `delta` with the lock held across a switch to the other tasks.
  coring::Task<void> incr_slowly(long delta) {
    coring::MutexGuard g = co_await value_lock_.lock();
    const long seen = value_;
    co_await coring::yield_now();
    value_ = seen + delta;  // a lost update if the lock did not exclude
  }

  [[nodiscard]] long value() const noexcept { return value_; }

 private:
  long value_;
  coring::Mutex value_lock_{"SharedCounter"};
};

coring::Task<void> test(SharedCounter& c) {
  constexpr int kSteps = 1'000'000;
  constexpr int kYieldEvery = 4096;
  for (int n = 0; n < kSteps; ++n) {
    if (n % kYieldEvery == kYieldEvery - 1) {
      co_await c.incr_slowly(1);
    } else {
      co_await c.incr();
    }
  }
  for (int n = 0; n < kSteps; ++n) {
    if (n % kYieldEvery == kYieldEvery - 1) {
      co_await c.incr_slowly(-1);
    } else {
      co_await c.decr();
    }
  }
}

coring::Task<int> main_task() {
  SharedCounter c;
  std::vector<coring::JoinHandle<void>> ts;
  for (int i = 0; i < 3; ++i) ts.push_back(coring::spawn(test(c)));
  fmt::print("Running test\n");
  std::fflush(stdout);
  for (auto& t : ts) co_await t;
  if (c.value() != 0) {
    fmt::print(stderr, "shared_counter: the counter ended at {}, not 0\n", c.value());
    co_return 1;
  }
  fmt::print("Looks good!\n");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    (void)demo::parse_time_scale(argc, argv);
    return coring::run(main_task());
  } catch (const std::exception& e) {
    fmt::print(stderr, "shared_counter: {}\n", e.what());
    return 1;
  }
}
