// Seed recipe: avoiding deadlock with ordered locking (Python Cookbook 12.5) --
// the acquire(*locks) context manager that takes locks in one global order,
// five dining philosophers that each need both neighbouring chopsticks, and
// the crash case in which nesting two acquire()s the wrong way round is
// stopped with "Lock Order Violation".
//
// acquire(left, right) is `co_await coring::lock_all(left, right)`: the
// chopsticks are taken in address order whatever the argument order, so the
// philosophers cannot deadlock. Each eats a bounded number of meals (the seed
// loops forever); eating and thinking are yields, so under the round-robin
// scheduler the output is the same on every run.
//
// With --crash it runs the seed's thread_1/thread_2 pair instead: thread_1
// nests x_lock then y_lock (in order), thread_2 nests y_lock then x_lock, and
// the lock-order checker (switched on here even in release builds) throws
// LockOrderViolation naming both locks. The program then exits with status 1.
//
// Run: ./dining_philosophers [--crash] [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "demo_options.hpp"

namespace {

constexpr int kSticks = 5;
constexpr int kMeals = 3;

coring::Task<int> philosopher(int n, coring::Mutex& left, coring::Mutex& right) {
  int meals = 0;
  while (meals < kMeals) {
    {
      auto both = co_await coring::lock_all(left, right);
      fmt::print("Philosopher {} eating\n", n);
      ++meals;
      co_await coring::yield_now();  // eating, chopsticks in hand
    }
    co_await coring::yield_now();  // thinking
  }
  co_return meals;
}

coring::Task<int> dine() {
  std::array<coring::Mutex, kSticks> chopsticks{
      coring::Mutex("chopstick 0"), coring::Mutex("chopstick 1"), coring::Mutex("chopstick 2"),
      coring::Mutex("chopstick 3"), coring::Mutex("chopstick 4")};
  std::vector<coring::JoinHandle<int>> ps;
  for (int n = 0; n < kSticks; ++n) {
    ps.push_back(
        coring::spawn(philosopher(n, chopsticks[static_cast<std::size_t>(n)],
                                  chopsticks[static_cast<std::size_t>((n + 1) % kSticks)])));
  }
  int meals = 0;
  for (auto& p : ps) meals += co_await p;
  fmt::print("All {} philosophers ate {} meals each ({} in all), no deadlock\n", kSticks, kMeals,
             meals);
  co_return 0;
}

// The seed's crash case.
coring::Task<void> nesting_thread(const char* name, coring::Mutex& first, coring::Mutex& second,
                                  double scale) {
  for (;;) {
    auto a = co_await coring::lock_all(first);
    auto b = co_await coring::lock_all(second);
    fmt::print("{}\n", name);
    std::fflush(stdout);
    co_await coring::sleep_for(demo::scaled(1, scale));
  }
}

coring::Task<int> crash(double scale) {
  coring::set_lock_order_checking(true);
  std::array<coring::Mutex, 2> locks{coring::Mutex("x_lock"), coring::Mutex("y_lock")};
  coring::Mutex& x_lock = locks[0];
  coring::Mutex& y_lock = locks[1];
  auto t1 = coring::spawn(nesting_thread("Thread-1", x_lock, y_lock, scale), "thread_1");
  auto t2 = coring::spawn(nesting_thread("Thread-2", y_lock, x_lock, scale), "thread_2");
  int status = 0;
  try {
    co_await t2;
  } catch (const coring::LockOrderViolation& e) {
    fmt::print(stderr, "thread_2: {}\n", e.what());
    status = 1;
  }
  co_await coring::sleep_for(demo::scaled(5, scale));
  t1.cancel();
  (void)co_await t1.join();
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bool crash_mode = false;
    std::vector<char*> args{argv[0]};
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--crash") == 0) {
        crash_mode = true;
      } else {
        args.push_back(argv[i]);
      }
    }
    const double scale = demo::parse_time_scale(static_cast<int>(args.size()), args.data());
    return crash_mode ? coring::run(crash(scale)) : coring::run(dine());
  } catch (const std::exception& e) {
    fmt::print(stderr, "dining_philosophers: {}\n", e.what());
    return 1;
  }
}
