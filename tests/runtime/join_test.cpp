// spawn / JoinHandle: join values and exceptions, detach, cancel, abandonment.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <stdexcept>
#include <vector>

using coring::JoinHandle;
using coring::Task;
using coring::TaskScheduler;

namespace {

Task<int> value_after_yields(int v, int yields) {
  for (int i = 0; i < yields; ++i) co_await coring::yield_now();
  co_return v;
}

Task<int> throw_after_yield() {
  co_await coring::yield_now();
  throw std::runtime_error("task failed");
}

template <class T>
T run_standalone(Task<T> t) {
  TaskScheduler sched;
  auto h = sched.spawn(std::move(t));
  sched.run();
  REQUIRE(h.done());
  return h.result();
}

}  // namespace

TEST_CASE("joining gives the value, whether the task finished first or not", "[runtime][join]") {
  auto parent = []() -> Task<int> {
    auto slow = coring::spawn(value_after_yields(1, 5));
    auto fast = coring::spawn(value_after_yields(2, 0));
    co_await coring::yield_now();
    CHECK(fast.done());
    CHECK_FALSE(slow.done());
    const int a = co_await slow;  // suspends until it finishes
    const int b = co_await fast;  // already done: no suspension
    co_return a * 10 + b;
  };
  CHECK(run_standalone(parent()) == 12);
}

TEST_CASE("joining rethrows the task's exception", "[runtime][join]") {
  auto parent = []() -> Task<std::string> {
    auto h = coring::spawn(throw_after_yield(), "thrower");
    try {
      co_await h;
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK(run_standalone(parent()) == "task failed");
}

TEST_CASE("a spawned tree of tasks sums up (skynet, small)", "[runtime][join]") {
  struct Skynet {
    static Task<long> node(long num, long size) {
      if (size == 1) co_return num;
      JoinHandle<long> kids[10];
      for (long i = 0; i < 10; ++i) kids[i] = coring::spawn(node(num + i * (size / 10), size / 10));
      long sum = 0;
      for (auto& k : kids) sum += co_await k;
      co_return sum;
    }
  };
  const auto before = coring::FrameAllocator::live_frames();
  CHECK(run_standalone(Skynet::node(0, 10'000)) == 49'995'000);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("a detached task runs to completion and frees itself", "[runtime][join]") {
  const auto before = coring::FrameAllocator::live_frames();
  int finished = 0;
  {
    TaskScheduler sched;
    auto body = [&]() -> Task<void> {
      co_await coring::yield_now();
      ++finished;
    };
    for (int i = 0; i < 100; ++i) sched.spawn(body()).detach();
    {
      auto h = sched.spawn(body());  // dropped before it ends: detaches
    }
    sched.run();
    CHECK(sched.live_tasks() == 0);
  }
  CHECK(finished == 101);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("cancel stops a task at its next suspension point", "[runtime][join]") {
  int steps = 0;
  TaskScheduler sched;
  auto counter = [&]() -> Task<void> {
    for (;;) {
      ++steps;
      co_await coring::yield_now();
    }
  };
  auto h = sched.spawn(counter());
  sched.run_ready(3);
  CHECK(steps == 3);
  h.cancel();
  CHECK_FALSE(h.done());
  sched.run();
  CHECK(h.done());
  CHECK(steps == 3);  // resumed only to throw Cancelled at its yield
  CHECK_THROWS_AS(h.result(), coring::Cancelled);
}

TEST_CASE("a task cancelled before it starts never runs its body", "[runtime][join]") {
  bool ran = false;
  TaskScheduler sched;
  auto body = [&]() -> Task<void> {
    ran = true;
    co_return;
  };
  auto h = sched.spawn(body());
  h.cancel();
  sched.run();
  CHECK_FALSE(ran);
  CHECK(h.done());
  CHECK_THROWS_AS(h.result(), coring::Cancelled);
}

TEST_CASE("cancel after completion is a no-op and keeps the value", "[runtime][join]") {
  TaskScheduler sched;
  auto h = sched.spawn(value_after_yields(9, 1));
  sched.run();
  h.cancel();
  CHECK(h.result() == 9);
}

TEST_CASE("a moved handle still joins the task", "[runtime][join]") {
  auto parent = []() -> Task<int> {
    std::vector<JoinHandle<int>> hs;
    for (int i = 0; i < 50; ++i) hs.push_back(coring::spawn(value_after_yields(i, i % 3)));
    int sum = 0;
    for (auto& h : hs) sum += co_await h;
    co_return sum;
  };
  CHECK(run_standalone(parent()) == 49 * 50 / 2);
}

TEST_CASE("a handle to a task freed at scheduler shutdown reports it cancelled",
          "[runtime][join]") {
  JoinHandle<int> h;
  {
    TaskScheduler sched;
    auto stuck = []() -> Task<int> {
      for (;;) {
        try {
          co_await coring::yield_now();
        } catch (const coring::Cancelled&) {
          // ignores cancellation forever; shutdown must free it anyway
        }
      }
    };
    h = sched.spawn(stuck());
    sched.run_ready(5);
  }
  CHECK(h.done());
  CHECK_THROWS_AS(h.result(), coring::Cancelled);
}
