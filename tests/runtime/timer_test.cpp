// Timers on a real EventLoop: sleep_for / sleep_until / PeriodicTimer and the
// loop's TimerQueue. Timing assertions are lower bounds and orderings only.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>
#include <coring/testing/virtual_clock.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::Clock;
using coring::Duration;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::JoinHandle;
using coring::Task;
using coring::TimePoint;

using namespace coring_test;

namespace {

Task<void> sleep_until_and_record(TimePoint at, int id, std::vector<int>* order) {
  co_await coring::sleep_until(at);
  order->push_back(id);
}

Task<void> sleep_for_and_record(Duration d, int id, std::vector<int>* order,
                                std::vector<TimePoint>* started, std::vector<Duration>* slept) {
  const TimePoint t0 = coring::now();
  (*started)[static_cast<std::size_t>(id)] = t0;
  co_await coring::sleep_for(d);
  (*slept)[static_cast<std::size_t>(id)] = coring::now() - t0;
  order->push_back(id);
}

// Yields `delay` times before arming, so arm order differs from spawn order.
Task<void> arm_after_yields(TimePoint at, int id, int delay, std::vector<int>* armed,
                            std::vector<int>* fired) {
  for (int i = 0; i < delay; ++i) co_await coring::yield_now();
  armed->push_back(id);
  co_await coring::sleep_until(at);
  fired->push_back(id);
}

Task<void> sleep_until_base_and_count(const TimePoint* base, Duration offset, std::uint64_t* armed,
                                      std::uint64_t* fired) {
  ++*armed;
  co_await coring::sleep_until(*base + offset);
  ++*fired;
}

Task<void> sleep_forever(bool* after) {
  co_await coring::sleep_for(1h);
  *after = true;
}

Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

}  // namespace

TEST_CASE("sleep_until: timers fire in deadline order, whatever the arm order",
          "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kTasks = 300;
  std::vector<int> order;
  {
    // All tasks arm their timers in one turn (timers only expire between turns),
    // so even on a slow machine none fires before all are armed.
    coring::LoopOptions o;
    o.run_budget = 4096;
    EventLoop loop(o);
    loop.run([&]() -> Task<void> {
      std::vector<int> perm(kTasks);
      std::iota(perm.begin(), perm.end(), 0);
      std::mt19937 rng(20240607);
      std::shuffle(perm.begin(), perm.end(), rng);
      // Distinct deadlines 50us apart on a common base: the expected order is exact.
      const TimePoint base = Clock::now() + 5ms;
      std::vector<JoinHandle<void>> hs;
      for (int i = 0; i < kTasks; ++i) {
        const int rank = perm[static_cast<std::size_t>(i)];
        hs.push_back(coring::spawn(sleep_until_and_record(base + rank * 50us, rank, &order)));
      }
      for (auto& h : hs) co_await h;
      CHECK(Clock::now() >= base + (kTasks - 1) * 50us);
    }());
    CHECK(loop.timers().empty());
  }
  REQUIRE(order.size() == static_cast<std::size_t>(kTasks));
  for (int i = 0; i < kTasks; ++i) REQUIRE(order[static_cast<std::size_t>(i)] == i);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

// On virtual time (coring::testing::VirtualClock): this is the heap's logic, so
// it is checked exactly and takes no real time; "a sleep of 20ms does not end
// before 20ms" below waits for the kernel on the real clock.
TEST_CASE("sleep_for: shuffled sleeps wake in order of deadline, each exactly on time",
          "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kTasks = 40;
  constexpr auto kStep = 3ms;
  std::vector<int> order;
  std::vector<TimePoint> started(kTasks);
  std::vector<Duration> slept(kTasks, Duration::zero());
  std::vector<int> perm(kTasks);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(perm.begin(), perm.end(), rng);
  {
    coring::LoopOptions o;
    o.clock = std::make_shared<coring::testing::VirtualClock>();
    EventLoop loop(o);
    loop.run([&]() -> Task<void> {
      std::vector<JoinHandle<void>> hs;
      for (int i = 0; i < kTasks; ++i) {
        const int rank = perm[static_cast<std::size_t>(i)];
        hs.push_back(coring::spawn(
            sleep_for_and_record(kStep * (rank + 1), rank, &order, &started, &slept)));
      }
      for (auto& h : hs) co_await h;
    }());
  }
  REQUIRE(order.size() == static_cast<std::size_t>(kTasks));
  // In virtual time every task armed at the same instant: the order is
  // exactly by duration, and each slept exactly its duration.
  for (std::size_t i = 0; i < order.size(); ++i) {
    INFO("position " << i);
    CHECK(order[i] == static_cast<int>(i));
    CHECK(slept[i] == kStep * static_cast<int>(i + 1));
  }
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("equal deadlines fire in the order they were armed", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kTasks = 1000;
  std::vector<int> armed;
  std::vector<int> fired;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      const TimePoint at = Clock::now() + 10ms;
      std::vector<JoinHandle<void>> hs;
      std::mt19937 rng(99);
      std::uniform_int_distribution<int> delay(0, 5);
      for (int i = 0; i < kTasks; ++i) {
        hs.push_back(coring::spawn(arm_after_yields(at, i, delay(rng), &armed, &fired)));
      }
      for (auto& h : hs) co_await h;
    }());
  }
  REQUIRE(armed.size() == static_cast<std::size_t>(kTasks));
  // The arm order really differs from the spawn order, so this tests the queue's tie-break.
  REQUIRE_FALSE(std::is_sorted(armed.begin(), armed.end()));
  REQUIRE(fired == armed);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a sleep of 20ms does not end before 20ms", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  Duration slept_for{};
  Duration slept_until{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      TimePoint t0 = Clock::now();
      co_await coring::sleep_for(20ms);
      slept_for = Clock::now() - t0;
      t0 = Clock::now();
      co_await coring::sleep_until(t0 + 20ms);
      slept_until = Clock::now() - t0;
    }());
  }
  CHECK(slept_for >= 20ms);
  CHECK(slept_until >= 20ms);
  CHECK(slept_for < 5s);
  CHECK(slept_until < 5s);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a sleep with a past deadline still suspends, then resumes on a later turn",
          "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool other_ran_past = false;
  bool other_ran_zero = false;
  bool other_ran_negative = false;
  bool resumed = false;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      bool flag = false;
      auto h1 = coring::spawn(set_flag(&flag));
      co_await coring::sleep_until(Clock::now() - 1h);
      other_ran_past = flag;  // the sleep suspended, so the queued task ran first
      co_await h1;

      flag = false;
      auto h2 = coring::spawn(set_flag(&flag));
      co_await coring::sleep_for(0ms);
      other_ran_zero = flag;
      co_await h2;

      flag = false;
      auto h3 = coring::spawn(set_flag(&flag));
      co_await coring::sleep_for(-5s);
      other_ran_negative = flag;
      co_await h3;
      resumed = true;
    }());
    CHECK(loop.timers().empty());
  }
  CHECK(resumed);
  CHECK(other_ran_past);
  CHECK(other_ran_zero);
  CHECK(other_ran_negative);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("100,000 pending sleeps all fire, without one SQE per timer", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  constexpr std::uint64_t kTimers = 100'000;
  auto counters = std::make_shared<BackendCounters>();
  std::uint64_t armed = 0;
  std::uint64_t fired = 0;
  std::uint64_t armed_at_probe = 0;
  std::uint64_t fired_at_probe = 0;
  std::size_t pending_at_probe = 0;
  std::size_t queued_at_probe = 0;
  std::uint64_t starts_during_run = 0;
  {
    // Virtual time: the 100 ms window passes without waiting for it.
    coring::LoopOptions o;
    o.clock = std::make_shared<coring::testing::VirtualClock>();
    EventLoop loop(coring::testing::counting_options(counters, o));
    loop.run([&]() -> Task<void> {
      std::mt19937 rng(1);
      std::uniform_int_distribution<int> us(0, 50'000);
      std::vector<JoinHandle<void>> hs;
      hs.reserve(kTimers);
      TimePoint base{};  // set below, before any of the tasks runs
      for (std::uint64_t i = 0; i < kTimers; ++i) {
        hs.push_back(coring::spawn(
            sleep_until_base_and_count(&base, std::chrono::microseconds(us(rng)), &armed, &fired)));
      }
      base = coring::now() + 100ms;
      // Every spawned task runs before this one resumes (FIFO), so all are armed now.
      co_await coring::yield_now();
      pending_at_probe = EventLoop::current()->timers().size();
      // Timers that expired meanwhile (a slow machine) have queued their task behind this one.
      queued_at_probe = EventLoop::current()->scheduler().ready_count();
      armed_at_probe = armed;
      fired_at_probe = fired;
      for (auto& h : hs) co_await h;
      CHECK(coring::now() >= base);
    }());
    starts_during_run = counters->starts.load();
    CHECK(loop.timers().empty());
  }
  REQUIRE(armed_at_probe == kTimers);
  REQUIRE(fired_at_probe == 0);
  // Each timer is pending, or (on a very slow machine) has expired and queued its task.
  REQUIRE(pending_at_probe == kTimers);  // virtual time stands still while tasks run
  REQUIRE(queued_at_probe == 0);
  REQUIRE(fired == kTimers);
  // Only the loop's own wake-up read goes through the ring, not the timers.
  INFO("backend start() calls: " << starts_during_run);
  REQUIRE(starts_during_run < 100);
  REQUIRE(counters->cancels.load() == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("cancelling 100,000 pending sleeps empties the timer queue", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr std::size_t kTimers = 100'000;
  std::size_t pending_before_cancel = 0;
  std::size_t pending_after_cancel = 0;
  std::size_t cancelled = 0;
  std::size_t not_cancelled = 0;
  bool any_after = false;
  Duration elapsed{};
  {
    EventLoop loop;
    auto after = std::make_unique<bool[]>(kTimers);  // value-initialised: all false
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = Clock::now();
      std::vector<JoinHandle<void>> hs;
      hs.reserve(kTimers);
      // sleep_forever sets its flag only if it gets past the sleep.
      for (std::size_t i = 0; i < kTimers; ++i)
        hs.push_back(coring::spawn(sleep_forever(&after[i])));
      co_await coring::yield_now();
      pending_before_cancel = EventLoop::current()->timers().size();
      for (auto& h : hs) h.cancel();
      pending_after_cancel = EventLoop::current()->timers().size();
      for (auto& h : hs) {
        const coring::Outcome<void> o = co_await h.join();
        ++(o.cancelled() ? cancelled : not_cancelled);
      }
      elapsed = Clock::now() - t0;
    }());
    CHECK(loop.timers().size() == 0);
    any_after = std::any_of(after.get(), after.get() + kTimers, [](bool b) { return b; });
  }
  REQUIRE(pending_before_cancel == kTimers);
  REQUIRE(pending_after_cancel == 0);
  REQUIRE(cancelled == kTimers);
  REQUIRE(not_cancelled == 0);
  REQUIRE_FALSE(any_after);
  REQUIRE(elapsed < 60s);  // nobody waited for the hour-long sleeps
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("PeriodicTimer ticks k times on the grid, without drift", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kTicks = 8;
  constexpr auto kInterval = 10ms;
  TimePoint first{};
  std::vector<TimePoint> woke;
  std::vector<std::uint64_t> returned;
  std::vector<TimePoint> next_after;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      first = Clock::now() + kInterval;
      coring::PeriodicTimer timer(kInterval, first);
      CHECK(timer.interval() == kInterval);
      CHECK(timer.next_deadline() == first);
      for (int k = 0; k < kTicks; ++k) {
        returned.push_back(co_await timer.tick());
        woke.push_back(Clock::now());
        next_after.push_back(timer.next_deadline());
        // Some work between ticks must not push the grid back.
        std::this_thread::sleep_for(1ms);
      }
    }());
  }
  REQUIRE(returned.size() == static_cast<std::size_t>(kTicks));
  std::uint64_t intervals = 0;  // ticks elapsed since `first`, counting skipped ones
  for (std::size_t k = 0; k < returned.size(); ++k) {
    INFO("tick " << k);
    REQUIRE(returned[k] >= 1);
    const TimePoint this_tick = first + kInterval * static_cast<int>(intervals);
    intervals += returned[k];
    // The tick does not fire before its slot on the grid...
    CHECK(woke[k] >= this_tick);
    // ...and the next deadline stays exactly on the grid (no drift accumulates).
    CHECK(next_after[k] == first + kInterval * static_cast<int>(intervals));
  }
  // The k-th tick is not before start + k * interval.
  CHECK(woke.back() >= first + kInterval * (kTicks - 1));
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("PeriodicTimer skips the ticks a blocked task missed", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr auto kInterval = 10ms;
  std::uint64_t first_tick = 0;
  std::uint64_t late_tick = 0;
  std::uint64_t next_tick = 0;
  bool next_deadline_in_future = false;
  Duration wait_after_skip{};
  TimePoint grid0{};
  TimePoint next_deadline{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      grid0 = Clock::now() + kInterval;
      coring::PeriodicTimer timer(kInterval, grid0);
      first_tick = co_await timer.tick();
      std::this_thread::sleep_for(4 * kInterval + 5ms);  // block the loop past ~4 ticks
      late_tick = co_await timer.tick();
      const TimePoint now = Clock::now();
      next_deadline = timer.next_deadline();
      next_deadline_in_future = next_deadline > now;
      // No burst: the following tick waits for its slot instead of firing at once.
      next_tick = co_await timer.tick();
      wait_after_skip = Clock::now() - now;
    }());
  }
  CHECK(first_tick >= 1);
  // The tick after the stall reports the missed intervals (4 or more).
  CHECK(late_tick >= 4);
  CHECK(next_deadline_in_future);
  CHECK(next_tick >= 1);
  CHECK(wait_after_skip > 0ms);
  // Still on the original grid.
  CHECK((next_deadline - grid0) % kInterval == Duration::zero());
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("PeriodicTimer rejects a non-positive interval", "[runtime][timer]") {
  REQUIRE_THROWS_AS(coring::PeriodicTimer(0ms), std::invalid_argument);
  REQUIRE_THROWS_AS(coring::PeriodicTimer(-1ms), std::invalid_argument);
}

TEST_CASE("a cancelled PeriodicTimer tick ends the task and leaves no timer", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool cancelled = false;
  int ticks = 0;
  std::size_t timers_after = 1;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](int* n) -> Task<void> {
        coring::PeriodicTimer timer(1h);
        for (;;) {
          co_await timer.tick();
          ++*n;
        }
      }(&ticks));
      co_await coring::sleep_for(5ms);
      h.cancel();
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
      timers_after = EventLoop::current()->timers().size();
    }());
  }
  CHECK(cancelled);
  CHECK(ticks == 0);
  CHECK(timers_after == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("sleeping outside an EventLoop is a logic_error", "[runtime][timer]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool threw_logic_error = false;
  {
    coring::TaskScheduler sched;
    auto h = sched.spawn([](bool* flag) -> Task<void> {
      try {
        co_await coring::sleep_for(1ms);
      } catch (const std::logic_error&) {
        *flag = true;
      }
    }(&threw_logic_error));
    sched.run();
    CHECK(h.done());
  }
  CHECK(threw_logic_error);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}
