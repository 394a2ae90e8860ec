// VirtualClock: timers on an injected clock. Time jumps to the next deadline
// when the loop is idle, so these tests check timing logic exactly (to the
// nanosecond, no tolerance) and take no real time. The loop's backend is
// whatever the environment chooses (io_uring, or epoll under CORING_BACKEND).
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates it
// twice); every awaited value goes to a local first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>
#include <coring/testing/virtual_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using coring::Duration;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::Task;
using coring::TimePoint;
using coring::testing::VirtualClock;

namespace {

struct VirtualLoop {
  std::shared_ptr<VirtualClock> clock = std::make_shared<VirtualClock>();
  EventLoop loop{options(clock)};
  static coring::LoopOptions options(std::shared_ptr<VirtualClock> c) {
    coring::LoopOptions o;
    o.clock = std::move(c);
    return o;
  }
};

}  // namespace

TEST_CASE("VirtualClock: an hour of sleeping takes no real time and ends on the dot",
          "[testing][virtual_clock]") {
  const auto frames_before = FrameAllocator::live_frames();
  VirtualLoop v;
  const TimePoint start = v.clock->now();
  TimePoint woke{};
  bool inner_finished = true;
  TimePoint timed_out_at{};
  const auto real0 = std::chrono::steady_clock::now();
  v.loop.run([&]() -> Task<void> {
    CHECK(coring::now() == start);  // the loop's clock, not steady_clock
    co_await coring::sleep_for(1h);
    woke = coring::now();
    inner_finished = co_await coring::with_timeout(30min, coring::sleep_for(1h));
    timed_out_at = coring::now();
  }());
  const auto real = std::chrono::steady_clock::now() - real0;
  CHECK(woke == start + 1h);
  CHECK_FALSE(inner_finished);
  CHECK(timed_out_at == start + 90min);
  CHECK(v.clock->elapsed() == 90min);
  CHECK(v.clock->jumps() >= 2);
  CHECK(real < 1s);
  CHECK(v.loop.timers().empty());
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("VirtualClock: 1,000 shuffled sleeps wake in deadline order, each exactly on time",
          "[testing][virtual_clock]") {
  VirtualLoop v;
  const TimePoint start = v.clock->now();
  std::vector<Duration> delays;
  for (int i = 0; i < 1000; ++i) delays.push_back(std::chrono::milliseconds(1 + (i * 7919) % 997));
  std::shuffle(delays.begin(), delays.end(), std::mt19937(42));
  std::vector<std::pair<TimePoint, TimePoint>> woke;  // (deadline, now at wake-up)
  v.loop.run([&]() -> Task<void> {
    std::vector<coring::JoinHandle<void>> hs;
    for (Duration d : delays) {
      hs.push_back(coring::spawn([](Duration dd, decltype(woke)* out) -> Task<void> {
        const TimePoint deadline = coring::now() + dd;
        co_await coring::sleep_until(deadline);
        out->emplace_back(deadline, coring::now());
      }(d, &woke)));
    }
    for (auto& h : hs) co_await h;
  }());
  REQUIRE(woke.size() == delays.size());
  for (std::size_t i = 0; i < woke.size(); ++i) {
    INFO("wake-up " << i);
    REQUIRE(woke[i].second == woke[i].first);                // never early, never late
    if (i > 0) REQUIRE(woke[i].first >= woke[i - 1].first);  // in deadline order
  }
  CHECK(woke.back().first == start + *std::max_element(delays.begin(), delays.end()));
}

TEST_CASE("VirtualClock: PeriodicTimer ticks exactly on its grid and skips what a stall missed",
          "[testing][virtual_clock]") {
  VirtualLoop v;
  constexpr auto kInterval = 10ms;
  std::vector<std::uint64_t> returned;
  std::vector<TimePoint> woke;
  TimePoint grid0{};
  std::uint64_t after_stall = 0;
  TimePoint after_stall_at{};
  v.loop.run([&]() -> Task<void> {
    grid0 = coring::now() + kInterval;
    coring::PeriodicTimer timer(kInterval, grid0);
    for (int k = 0; k < 8; ++k) {
      returned.push_back(co_await timer.tick());
      woke.push_back(coring::now());
    }
    // A task that blocks the loop for 45 ms (here: the test moves the clock).
    v.clock->advance(45ms);
    after_stall = co_await timer.tick();
    after_stall_at = coring::now();
  }());
  REQUIRE(returned.size() == 8);
  for (std::size_t k = 0; k < 8; ++k) {
    INFO("tick " << k);
    CHECK(returned[k] == 1);
    CHECK(woke[k] == grid0 + kInterval * static_cast<int>(k));
  }
  // Grid slots 8..11 passed during the stall (the last tick was slot 7 at
  // grid0+70ms; now is grid0+115ms): one tick reports the four it covered.
  CHECK(after_stall == 4);
  CHECK(after_stall_at == grid0 + 115ms);  // fired at once, not waiting for slot 12
}

TEST_CASE("VirtualClock: a timed pop and a delayed producer meet at the exact instants",
          "[testing][virtual_clock]") {
  VirtualLoop v;
  const TimePoint start = v.clock->now();
  std::optional<int> first;
  TimePoint first_at{};
  std::optional<int> second;
  TimePoint second_at{};
  v.loop.run([&]() -> Task<void> {
    coring::Queue<int> q;
    auto producer = coring::spawn([](coring::Queue<int>* qq) -> Task<void> {
      co_await coring::sleep_for(3s);
      co_await qq->push(7);
    }(&q));
    first = co_await q.pop(5s);  // the item comes at +3 s
    first_at = coring::now();
    second = co_await q.pop(5s);  // nothing more: times out at +8 s
    second_at = coring::now();
    co_await producer;
  }());
  CHECK(first == 7);
  CHECK(first_at == start + 3s);
  CHECK_FALSE(second.has_value());
  CHECK(second_at == start + 8s);
}

TEST_CASE("VirtualClock: without auto-advance, time moves only when the test moves it",
          "[testing][virtual_clock]") {
  VirtualLoop v;
  v.clock->set_auto_advance(false);
  const TimePoint start = v.clock->now();
  bool fired = false;
  v.loop.run([&]() -> Task<void> {
    auto sleeper = coring::spawn([](bool* f) -> Task<void> {
      co_await coring::sleep_for(1h);
      *f = true;
    }(&fired));
    for (int i = 0; i < 10; ++i) co_await coring::yield_now();
    CHECK_FALSE(fired);
    CHECK(coring::now() == start);
    v.clock->advance(1h);
    co_await sleeper;
  }());
  CHECK(fired);
  CHECK(v.clock->jumps() == 0);
}
