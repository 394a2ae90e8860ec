// Seed recipe: a SharedCounter protected by a Lock (Python Cookbook 12.4),
// across real OS threads -- three threading.Threads each add 1 a million times
// and then subtract 1 a million times; the counter must end at 0.
//
// coring's way: the counter belongs to one task on an EventLoop, and nothing
// else touches it, so it needs no lock. The three std::threads send their
// deltas through a PollableQueue<long> (the one thread-safe queue; a push
// costs one uncontended-or-briefly-contended mutex and no system call while
// the loop is busy), and the task applies them in order. SharedCounter keeps
// the seed's interface: incr()/decr() from any thread, value() once the
// updates are in.
//
// Run: ./shared_counter_threads [--time-scale=F]   (no sleeps; the flag is accepted)
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "demo_options.hpp"

namespace {

class SharedCounter {
 public:
  explicit SharedCounter(long initial_value = 0) : value_(initial_value) {}

  // Any thread.
  void incr(long delta = 1) { updates_.push(delta); }
  void decr(long delta = 1) { updates_.push(-delta); }

  // The loop task that owns the value: applies every update until close().
  coring::Task<void> serve() {
    while (auto delta = co_await updates_.pop()) value_ += *delta;
  }
  // Any thread: no more updates; serve() returns once it applied them all.
  void close() { updates_.close(); }
  // After serve() returned.
  [[nodiscard]] long value() const noexcept { return value_; }

 private:
  long value_;
  coring::PollableQueue<long> updates_;
};

void test(SharedCounter& c) {
  for (int n = 0; n < 1'000'000; ++n) c.incr();
  for (int n = 0; n < 1'000'000; ++n) c.decr();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    (void)demo::parse_time_scale(argc, argv);
    SharedCounter c;
    std::thread owner([&c] { coring::run(c.serve()); });
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back(test, std::ref(c));
    fmt::print("Running test\n");
    std::fflush(stdout);
    for (auto& t : ts) t.join();
    c.close();
    owner.join();
    if (c.value() != 0) {
      fmt::print(stderr, "shared_counter_threads: the counter ended at {}, not 0\n", c.value());
      return 1;
    }
    fmt::print("Looks good!\n");
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "shared_counter_threads: {}\n", e.what());
    return 1;
  }
}
