// Seed recipe: a thread-safe priority queue (Python Cookbook 12.3) -- a
// producer puts C, A, B, D with priorities 5, 15, 10, 0 (and a None sentinel
// at -100); the consumer sleeps 5 s, then gets the items highest priority
// first: "Got: A", "Got: B", "Got: C", "Got: D", "Consumer done".
//
// In coring the queue is coring::PriorityQueue<Prioritized<std::string>>
// (q.push(item, priority) is the seed's q.put(item, priority)). Instead of the
// None sentinel the producer closes the queue: pop() drains what is left, then
// returns std::nullopt.
//
// Run: ./priority_queue [--time-scale=0.01]
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>
#include <string>

#include "demo_options.hpp"

namespace {

using Queue = coring::PriorityQueue<coring::Prioritized<std::string>>;

coring::Task<void> producer(Queue& q) {
  fmt::print("Producing items\n");
  std::fflush(stdout);
  co_await q.push("C", 5);
  co_await q.push("A", 15);
  co_await q.push("B", 10);
  co_await q.push("D", 0);
  q.close();
}

coring::Task<void> consumer(Queue& q, double scale) {
  co_await coring::sleep_for(demo::scaled(5, scale));
  fmt::print("Getting items\n");
  while (auto entry = co_await q.pop()) {
    fmt::print("Got: {}\n", entry->item);
  }
  fmt::print("Consumer done\n");
  std::fflush(stdout);
}

coring::Task<void> main_task(double scale) {
  Queue q;
  auto t1 = coring::spawn(producer(q), "producer");
  auto t2 = coring::spawn(consumer(q, scale), "consumer");
  co_await t1;
  co_await t2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(main_task(demo::parse_time_scale(argc, argv)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "priority_queue: {}\n", e.what());
    return 1;
  }
}
