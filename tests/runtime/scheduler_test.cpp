// TaskScheduler: round-robin order, FIFO, standalone running, shutdown.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <string>
#include <vector>

using coring::Task;
using coring::TaskScheduler;

namespace {

Task<void> stepper(std::string name, int steps, std::vector<std::string>& log) {
  for (int i = 0; i < steps; ++i) {
    log.push_back(name + std::to_string(i));
    co_await coring::yield_now();
  }
}

}  // namespace

TEST_CASE("tasks interleave round-robin, one step per turn", "[runtime][scheduler]") {
  std::vector<std::string> log;
  TaskScheduler sched;
  sched.spawn(stepper("a", 3, log)).detach();
  sched.spawn(stepper("b", 1, log)).detach();
  sched.spawn(stepper("c", 2, log)).detach();
  sched.run();
  const std::vector<std::string> expected{"a0", "b0", "c0", "a1", "c1", "a2"};
  CHECK(log == expected);
  CHECK(sched.live_tasks() == 0);
}

TEST_CASE("a yield goes to the back of the line, behind tasks spawned meanwhile",
          "[runtime][scheduler]") {
  std::vector<std::string> log;
  TaskScheduler sched;
  auto spawner = [&]() -> Task<void> {
    log.push_back("s0");
    coring::spawn(stepper("x", 1, log)).detach();
    co_await coring::yield_now();
    log.push_back("s1");
  };
  sched.spawn(spawner()).detach();
  sched.run();
  CHECK(log == std::vector<std::string>{"s0", "x0", "s1"});
}

TEST_CASE("1,000 tasks each yielding 100 times keep strict rotation", "[runtime][scheduler]") {
  constexpr int kTasks = 1000;
  constexpr int kSteps = 100;
  std::vector<int> order;
  order.reserve(kTasks * kSteps);
  TaskScheduler sched;
  auto body = [&](int id) -> Task<void> {
    for (int i = 0; i < kSteps; ++i) {
      order.push_back(id);
      co_await coring::yield_now();
    }
  };
  for (int i = 0; i < kTasks; ++i) sched.spawn(body(i)).detach();
  sched.run();
  REQUIRE(order.size() == static_cast<std::size_t>(kTasks * kSteps));
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (order[i] != static_cast<int>(i % kTasks)) FAIL("rotation broken at step " << i);
  }
}

TEST_CASE("run_ready honours its budget", "[runtime][scheduler]") {
  int steps = 0;
  TaskScheduler sched;
  auto spin = [&]() -> Task<void> {
    for (int i = 0; i < 100; ++i) {
      ++steps;
      co_await coring::yield_now();
    }
  };
  sched.spawn(spin()).detach();
  CHECK(sched.run_ready(10) == 10);
  CHECK(steps == 10);
  sched.run();
  CHECK(steps == 100);
}

TEST_CASE("spawn and yield_now outside a scheduler fail clearly", "[runtime][scheduler]") {
  auto t = []() -> Task<void> { co_return; };
  CHECK_THROWS_WITH(coring::spawn(t()), Catch::Contains("no scheduler is running"));
}

TEST_CASE("destroying a scheduler cancels and frees tasks that never finished",
          "[runtime][scheduler]") {
  const auto before = coring::FrameAllocator::live_frames();
  bool cleaned_up = false;
  int shielded_steps = 0;
  {
    TaskScheduler sched;
    auto forever = [&]() -> Task<void> {
      struct Guard {
        bool& flag;
        ~Guard() { flag = true; }
      } guard{cleaned_up};
      for (;;) {
        co_await coring::yield_now();
      }
    };
    auto steps = [&]() -> Task<void> {
      for (int i = 0; i < 5; ++i) {
        ++shielded_steps;
        co_await coring::yield_now();
      }
    };
    auto stubborn = [&]() -> Task<void> {
      co_await coring::shield(steps());  // runs its five steps whatever happens
      for (;;) co_await coring::yield_now();
    };
    sched.spawn(forever()).detach();
    auto h = sched.spawn(stubborn());
    sched.run_ready(3);
    CHECK(sched.live_tasks() == 2);
    CHECK(shielded_steps < 5);
  }
  CHECK(cleaned_up);           // RAII in the cancelled frame ran
  CHECK(shielded_steps == 5);  // the shielded part ran to its end during the shutdown
  CHECK(coring::FrameAllocator::live_frames() == before);
}
