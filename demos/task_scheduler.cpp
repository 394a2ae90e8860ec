// Seed recipe: the generator TaskScheduler (Python Cookbook 12.12) -- countdown(10),
// countdown(5) and countup(15) interleaved round-robin, one step each turn.
//
// Generators become coroutines and `yield` becomes `co_await yield_now()`: the
// task goes to the back of the ready line. The scheduler runs standalone, with no
// event loop and no io_uring, and prints exactly what the Python version prints.
//
// Run: ./task_scheduler
#include <fmt/core.h>
#include <coring/coring.hpp>

namespace {

coring::Task<void> countdown(int n) {
  while (n > 0) {
    fmt::print("T-minus {}\n", n);
    co_await coring::yield_now();
    --n;
  }
  fmt::print("Blastoff!\n");
}

coring::Task<void> countup(int n) {
  for (int x = 0; x < n; ++x) {
    fmt::print("Counting up {}\n", x);
    co_await coring::yield_now();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Accepts (and ignores) --time-scale so every demo takes the same flags.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).rfind("--time-scale=", 0) != 0) {
      fmt::print(stderr, "usage: {} [--time-scale=F]\n", argv[0]);
      return 2;
    }
  }
  coring::TaskScheduler sched;
  sched.spawn(countdown(10)).detach();
  sched.spawn(countdown(5)).detach();
  sched.spawn(countup(15)).detach();
  sched.run();
}
