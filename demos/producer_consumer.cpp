// Seed recipe: communicating between threads with a Queue (Python Cookbook
// 12.3) -- a producer puts 10..1 with a 2 s sleep after each, then a sentinel;
// the consumer prints "Got: n" until it sees the sentinel, puts it back for any
// other consumer, and prints "Consumer shutting down".
//
// In coring the threads are spawned tasks and queue.Queue is coring::Queue<T>
// (co_await push/pop). The sentinel is kept to follow the recipe; without it,
// the producer would call q.close() and the consumer would stop when pop()
// returns std::nullopt.
//
// Run: ./producer_consumer [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>

#include "demo_options.hpp"

namespace {

constexpr int kSentinel = 0;  // the values produced are 10..1

coring::Task<void> producer(coring::Queue<int>& out_q, double scale) {
  for (int n = 10; n > 0; --n) {
    co_await out_q.push(n);
    co_await coring::sleep_for(demo::scaled(2, scale));
  }
  co_await out_q.push(kSentinel);
}

coring::Task<void> consumer(coring::Queue<int>& in_q) {
  while (true) {
    const int data = *co_await in_q.pop();  // never closed here: always a value
    if (data == kSentinel) {
      co_await in_q.push(kSentinel);
      break;
    }
    fmt::print("Got: {}\n", data);
    std::fflush(stdout);
  }
  fmt::print("Consumer shutting down\n");
}

coring::Task<void> main_task(double scale) {
  coring::Queue<int> q;
  auto t1 = coring::spawn(consumer(q), "consumer");
  auto t2 = coring::spawn(producer(q, scale), "producer");
  co_await t1;
  co_await t2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "producer_consumer: {}\n", e.what());
    return 1;
  }
}
