// spawn / JoinHandle: join values and exceptions, detach, cancel, abandonment.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <memory>
#include <stdexcept>
#include <string>
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
  CHECK(steps == 3);  // unwound at its yield: nothing after it ran
  CHECK_THROWS_AS(h.result(), coring::TaskCancelled);
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
  CHECK_THROWS_AS(h.result(), coring::TaskCancelled);
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
    auto forever = []() -> Task<void> {
      for (;;) co_await coring::yield_now();
    };
    auto stuck = [&forever]() -> Task<int> {
      co_await coring::shield(forever());  // ignores cancellation; shutdown must free it anyway
      co_return 0;
    };
    h = sched.spawn(stuck());
    sched.run_ready(5);
  }
  CHECK(h.done());
  CHECK_THROWS_AS(h.result(), coring::TaskCancelled);
}

namespace {
// The ownership shape of issue 8's bug 3: a client owns the handle of its writer
// task, and the writer holds the client (by value, in its frame) while it runs.
struct Client {
  JoinHandle<void> writer;
  std::vector<std::string> queued{"a", "b", "c"};
};

Task<void> write_lines(std::shared_ptr<Client> client, int* written) {
  for (const std::string& line : client->queued) {
    *written += static_cast<int>(line.size());
    co_await coring::yield_now();
  }
}
}  // namespace

TEST_CASE(
    "regression: a finished task's frame (and what it holds by value) is freed before "
    "its handle is dropped",
    "[runtime][join]") {
  TaskScheduler sched;
  int written = 0;
  std::weak_ptr<Client> watch;
  {
    auto client = std::make_shared<Client>();
    watch = client;
    client->writer = sched.spawn(write_lines(client, &written), "writer");
  }  // only the writer's frame keeps the client alive now
  CHECK_FALSE(watch.expired());
  sched.run();
  CHECK(written == 3);
  // The writer ended: its frame, with its shared_ptr<Client>, is gone, although
  // the client held the writer's handle (a cycle while the task ran).
  CHECK(watch.expired());
  CHECK(sched.live_tasks() == 0);
}

TEST_CASE("a finished task's frame is freed at once; its value waits in the handle",
          "[runtime][join]") {
  TaskScheduler sched;
  const auto before = coring::FrameAllocator::live_frames();
  auto make = [](std::string s) -> Task<std::string> {
    co_await coring::yield_now();
    co_return s + "!";
  };
  auto h = sched.spawn(make(std::string(100, 'x')), "maker");
  CHECK(coring::FrameAllocator::live_frames() == before + 1);
  sched.run();
  CHECK(h.done());
  CHECK(coring::FrameAllocator::live_frames() == before);  // handle still held
  CHECK(h.name() == "maker");                              // the name stays with the handle
  CHECK(h.result() == std::string(100, 'x') + "!");
  CHECK_THROWS_AS(h.result(), std::logic_error);  // taken once
}

TEST_CASE("join() gives how the task ended without throwing for it", "[runtime][join]") {
  auto parent = []() -> Task<int> {
    auto ok = coring::spawn(value_after_yields(7, 2));
    auto bad = coring::spawn(throw_after_yield(), "thrower");
    auto stopped = coring::spawn(value_after_yields(1, 100));
    co_await coring::yield_now();
    stopped.cancel();

    coring::Outcome<int> a = co_await ok.join();
    coring::Outcome<int> b = co_await bad.join();
    coring::Outcome<int> c = co_await stopped.join();
    CHECK(a.has_value());
    CHECK(a.value() == 7);
    CHECK(b.failed());
    CHECK_FALSE(b.cancelled());
    CHECK(b.error() != nullptr);
    CHECK_THROWS_AS(b.value(), std::runtime_error);
    CHECK(c.cancelled());
    CHECK_FALSE(c.has_value());
    CHECK_THROWS_AS(c.value(), coring::TaskCancelled);
    co_return a.value();
  };
  CHECK(run_standalone(parent()) == 7);
}

TEST_CASE("a handle moved after its task ended keeps the value", "[runtime][join]") {
  TaskScheduler sched;
  auto h = sched.spawn(value_after_yields(5, 0));
  sched.run();
  JoinHandle<int> moved = std::move(h);
  CHECK_FALSE(h.valid());
  CHECK(moved.done());
  JoinHandle<int> assigned;
  assigned = std::move(moved);
  CHECK(assigned.result() == 5);
}

TEST_CASE("asking a running or empty handle for its result throws and leaves it usable",
          "[runtime][join]") {
  TaskScheduler sched;
  auto h = sched.spawn(value_after_yields(9, 3), "slow");
  // The handle is one word: a failed early look must not disturb the pointer in it.
  CHECK_THROWS_AS(h.result(), std::logic_error);
  CHECK_THROWS_AS(h.outcome(), std::logic_error);
  CHECK(h.valid());
  CHECK_FALSE(h.done());
  CHECK(h.name() == "slow");
  sched.run();
  REQUIRE(h.done());
  CHECK(h.name() == "slow");
  CHECK(h.result() == 9);
  CHECK_THROWS_AS(h.result(), std::logic_error);  // taken

  JoinHandle<int> empty;
  CHECK_THROWS_AS(empty.result(), std::logic_error);
  CHECK_FALSE(empty.valid());
}

TEST_CASE("a failed task's exception and name outlive its frame, in the handle",
          "[runtime][join]") {
  TaskScheduler sched;
  auto named = sched.spawn(throw_after_yield(), "named");
  auto unnamed = sched.spawn(throw_after_yield());
  sched.run();
  REQUIRE(named.done());
  REQUIRE(unnamed.done());
  CHECK(named.name() == "named");
  CHECK(unnamed.name().empty());
  coring::Outcome<int> a = named.outcome();
  CHECK(a.failed());
  CHECK_THROWS_WITH(a.value(), "task failed");
  CHECK_THROWS_WITH(unnamed.result(), "task failed");
}
