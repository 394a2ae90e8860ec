// Seed recipe: the Worker actor and its Result (Python Cookbook 12.10) --
// submit(pow, 2, 3) returns a Result whose result() waits and gives 8.
//
// coring::Worker is the seed's Worker: an actor on a thread of its own (with an
// EventLoop there) that runs submitted jobs in order. submit() may be called
// from any thread and returns a coring::Result: get() blocks the calling thread,
// as the seed's result() does; a task would `co_await` it instead.
//
// Run: ./worker_actor
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cmath>

#include "demo_options.hpp"

namespace {
long long ipow(long long base, int exp) {
  long long r = 1;
  while (exp-- > 0) r *= base;
  return r;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    demo::parse_time_scale(argc, argv);
    coring::Worker worker("worker");
    coring::Result<long long> r = worker.submit(ipow, 2, 3);
    fmt::print("{}\n", r.get());
    worker.close();
    worker.join();
  } catch (const std::exception& e) {
    fmt::print(stderr, "worker_actor: {}\n", e.what());
    return 1;
  }
}
