// with_timeout: every kind of awaitable, the one timeout shape per result kind,
// timeouts against cancellation, joins by reference, nesting, and what a
// timeout costs (no frame for an operation of the library).
#include <catch2/catch.hpp>
#include <coring/coring.hpp>
#include <coring/testing/virtual_clock.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::Clock;
using coring::Duration;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::JoinHandle;
using coring::Task;
using coring::TimePoint;
using coring::with_timeout;

using namespace coring_test;

namespace {

Task<int> quick_value(int v) {
  co_await coring::async_nop();
  co_return v;
}

Task<std::optional<int>> maybe_value(int v) {
  co_await coring::async_nop();
  co_return v;
}

std::span<std::byte> bytes_of(std::array<char, 32>& buf) {
  return std::as_writable_bytes(std::span(buf));
}

}  // namespace

TEST_CASE("with_timeout gives one shape per result kind", "[runtime][timeout]") {
  // Compile-time: what with_timeout(d, x) gives for each kind of x.
  using coring::IoResult;
  static_assert(
      std::is_same_v<decltype(with_timeout(1s, coring::sleep_for(1s)).await_resume()), bool>);
  static_assert(
      std::is_same_v<decltype(with_timeout(1s, coring::async_nop()).await_resume()), IoResult>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, quick_value(1)).await_resume()),
                               std::optional<int>>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, maybe_value(1)).await_resume()),
                               std::optional<int>>);  // flattened: no optional<optional<int>>
  coring::Queue<int> q;
  static_assert(
      std::is_same_v<decltype(with_timeout(1s, q.pop()).await_resume()), std::optional<int>>);
  static_assert(std::is_same_v<decltype(q.pop(1s).await_resume()), std::optional<int>>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, q.push(1)).await_resume()), bool>);
  coring::Event e;
  static_assert(std::is_same_v<decltype(with_timeout(1s, e.wait()).await_resume()), bool>);
  coring::Mutex m;
  static_assert(std::is_same_v<decltype(with_timeout(1s, m.lock()).await_resume()),
                               std::optional<coring::MutexGuard>>);
  coring::Condition cv(m);
  coring::MutexGuard* g = nullptr;
  static_assert(std::is_same_v<decltype(cv.wait_for(*g, 1s).await_resume()), bool>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, cv.wait(*g)).await_resume()), bool>);
  JoinHandle<int>* h = nullptr;
  static_assert(std::is_same_v<decltype(with_timeout(1s, *h).await_resume()), std::optional<int>>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, h->join()).await_resume()),
                               std::optional<coring::Outcome<int>>>);
  coring::net::TcpStream s;
  static_assert(
      std::is_same_v<decltype(with_timeout(1s, s.recv()).await_resume()), coring::net::Received>);
  static_assert(std::is_same_v<decltype(with_timeout(1s, s.send_all("x")).await_resume()),
                               coring::net::SendResult>);
  static_assert(
      std::is_same_v<decltype(with_timeout(1s, s.close()).await_resume()), std::error_code>);
  static_assert(
      std::is_same_v<
          decltype(with_timeout(1s, coring::net::connect(coring::net::Address())).await_resume()),
          coring::net::Connected>);
  SUCCEED();
}

// Virtual time (coring::testing::VirtualClock) where a test is about the logic
// of timeouts: exact, and no real waiting. The pipe-read tests below stay on
// the real clock (the kernel's side of a cancelled read).
namespace {
coring::LoopOptions virtual_time() {
  coring::LoopOptions o;
  o.clock = std::make_shared<coring::testing::VirtualClock>();
  return o;
}
}  // namespace

TEST_CASE("with_timeout on sleep_for(1h) gives up after the timeout", "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool completed = true;
  Duration elapsed{};
  std::size_t timers_after = 99;
  {
    EventLoop loop(virtual_time());
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = coring::now();
      completed = co_await with_timeout(20ms, coring::sleep_for(1h));
      elapsed = coring::now() - t0;
      timers_after = EventLoop::current()->timers().size();
    }());
  }
  CHECK_FALSE(completed);
  CHECK(elapsed == 20ms);
  CHECK(timers_after == 0);  // neither the sleep nor the timeout left a timer
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout on a fast operation returns its value", "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> v;
  bool slept = false;
  coring::IoResult nop{-1};
  std::size_t timers_after = 99;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      v = co_await with_timeout(10s, quick_value(7));
      slept = co_await with_timeout(10s, coring::sleep_for(1ms));
      nop = co_await with_timeout(10s, coring::async_nop());
      timers_after = EventLoop::current()->timers().size();
    }());
  }
  REQUIRE(v.has_value());
  CHECK(*v == 7);
  CHECK(slept);
  CHECK(nop.res == 0);
  CHECK(timers_after == 0);  // the unused timeouts were disarmed
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout on an operation allocates no frame", "[runtime][timeout]") {
  std::uint64_t frames_for_ops = 99;
  std::uint64_t frames_for_task = 0;
  coring::run([&]() -> Task<void> {
    coring::Queue<int> q;
    coring::Event set(true);
    for (int i = 0; i < 10; ++i) (void)q.try_push(i);
    const auto a0 = FrameAllocator::stats().allocations;
    for (int i = 0; i < 10; ++i) {
      std::optional<int> got = co_await with_timeout(1s, q.pop());
      CHECK(got == i);
      const bool ok = co_await with_timeout(1s, set.wait());
      CHECK(ok);
    }
    std::optional<int> none = co_await with_timeout(1ms, q.pop());  // times out
    CHECK_FALSE(none.has_value());
    frames_for_ops = FrameAllocator::stats().allocations - a0;
    const auto a1 = FrameAllocator::stats().allocations;
    (void)co_await with_timeout(1s, quick_value(1));
    frames_for_task = FrameAllocator::stats().allocations - a1;
  }());
  CHECK(frames_for_ops == 0);
  CHECK(frames_for_task == 1);  // the task's own frame, nothing more
}

TEST_CASE("with_timeout propagates the operation's own exception", "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool caught = false;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      try {
        (void)co_await with_timeout(10s, []() -> Task<int> {
          co_await coring::async_nop();
          throw std::runtime_error("inner failure");
        }());
      } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "inner failure";
      }
    }());
  }
  CHECK(caught);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout on a pending pipe read times out and cancels the read",
          "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  auto counters = std::make_shared<BackendCounters>();
  coring::IoResult r1{0};
  coring::IoResult r2{0};
  std::size_t in_flight_after = 99;
  int available = -1;
  std::string second;
  Duration elapsed{};
  {
    Pipe p;
    EventLoop loop(counting_options(counters));
    loop.run([&]() -> Task<void> {
      std::array<char, 32> buf{};
      const TimePoint t0 = Clock::now();
      r1 = co_await with_timeout(20ms, coring::async_read(p.r, bytes_of(buf)));
      elapsed = Clock::now() - t0;
      in_flight_after = EventLoop::current()->backend().in_flight();
      CHECK(write_str(p.w, "late"));
      co_await coring::sleep_for(5ms);
      available = bytes_available(p.r);  // not swallowed by a stale read
      // With data ready, the same kind of read finishes within its timeout.
      r2 = co_await with_timeout(10s, coring::async_read(p.r, bytes_of(buf)));
      if (r2.ok()) second.assign(buf.data(), r2.bytes());
    }());
  }
  CHECK(r1.res == -ETIMEDOUT);
  CHECK(r1.error() == std::errc::timed_out);
  CHECK(elapsed >= 20ms);
  CHECK(in_flight_after == 1);
  CHECK(counters->cancels.load() >= 1);
  CHECK(available == 4);
  CHECK(r2.res == 4);
  CHECK(second == "late");
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("with_timeout on a task: its frames are unwound, the caller goes on",
          "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> r;
  bool after_read = false;
  int destructors = 0;
  std::size_t in_flight_after = 99;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      struct Count {
        int* n;
        ~Count() { ++*n; }
      };
      r = co_await with_timeout(20ms, [](int fd, bool* aft, int* dtors) -> Task<int> {
        Count c{dtors};
        std::array<char, 32> buf{};
        const coring::IoResult got = co_await coring::async_read(fd, bytes_of(buf));
        *aft = true;
        co_return got.res;
      }(p.r, &after_read, &destructors));
      in_flight_after = EventLoop::current()->backend().in_flight();
    }());
  }
  CHECK_FALSE(r.has_value());
  CHECK_FALSE(after_read);
  CHECK(destructors == 1);
  CHECK(in_flight_after == 1);  // the read was cancelled in the kernel
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a zero timeout gives up at once unless the result is there", "[runtime][timeout]") {
  std::optional<int> ready;
  std::optional<int> empty = 5;
  bool event_ready = false;
  coring::run([&]() -> Task<void> {
    coring::Queue<int> q;
    (void)q.try_push(1);
    ready = co_await with_timeout(0ms, q.pop());
    empty = co_await with_timeout(0ms, q.pop());
    coring::Event e(true);
    event_ready = co_await with_timeout(Duration::zero(), e.wait());
  }());
  CHECK(ready == 1);
  CHECK_FALSE(empty.has_value());
  CHECK(event_ready);
}

TEST_CASE("with_timeout joins a JoinHandle by reference: on timeout the task runs on",
          "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> first;
  std::optional<int> second;
  bool still_running = false;
  bool valid_after = false;
  bool cancelled_later = false;
  TimePoint gave_up{};
  TimePoint joined{};
  TimePoint start{};
  {
    EventLoop loop(virtual_time());
    loop.run([&]() -> Task<void> {
      start = coring::now();
      auto h = coring::spawn([]() -> Task<int> {
        co_await coring::sleep_for(30ms);
        co_return 42;
      }());
      first = co_await with_timeout(5ms, h);
      gave_up = coring::now();
      still_running = !h.done();
      valid_after = h.valid();
      second = co_await with_timeout(5s, h);
      joined = coring::now();

      auto other = coring::spawn(quick_value(1));
      (void)other;
      auto slow = coring::spawn([]() -> Task<int> {
        co_await coring::sleep_for(1h);
        co_return 0;
      }());
      const std::optional<coring::Outcome<int>> o = co_await with_timeout(2ms, slow.join());
      CHECK_FALSE(o.has_value());
      slow.cancel();  // the handle still controls the task
      const coring::Outcome<int> end = co_await slow.join();
      cancelled_later = end.cancelled();
      co_await other;
    }());
  }
  CHECK_FALSE(first.has_value());
  CHECK(gave_up == start + 5ms);
  CHECK(still_running);
  CHECK(valid_after);
  CHECK(second == 42);
  CHECK(joined == start + 30ms);  // the task ran on, on its own schedule
  CHECK(cancelled_later);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancelling a task inside with_timeout cancels it, not a timeout", "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  const int kind = GENERATE(0, 1, 2);
  INFO((kind == 0 ? "sleep" : kind == 1 ? "pending pipe read" : "task"));
  bool cancelled = false;
  bool after = false;
  std::size_t in_flight_after = 99;
  std::size_t timers_after = 99;
  int available = -1;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](int fd, int k, bool* aft) -> Task<void> {
        std::array<char, 32> buf{};
        if (k == 1) {
          (void)co_await with_timeout(1h, coring::async_read(fd, bytes_of(buf)));
        } else if (k == 0) {
          (void)co_await with_timeout(1h, coring::sleep_for(1h));
        } else {
          (void)co_await with_timeout(1h, [](int f) -> Task<int> {
            std::array<char, 32> b{};
            co_return (co_await coring::async_read(f, bytes_of(b))).res;
          }(fd));
        }
        *aft = true;  // never: the task is cancelled, not timed out
      }(p.r, kind, &after));
      co_await coring::sleep_for(5ms);
      h.cancel();
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
      in_flight_after = EventLoop::current()->backend().in_flight();
      timers_after = EventLoop::current()->timers().size();
      CHECK(write_str(p.w, "x"));
      co_await coring::sleep_for(2ms);
      available = bytes_available(p.r);
    }());
  }
  CHECK(cancelled);
  CHECK_FALSE(after);
  CHECK(in_flight_after == 1);
  CHECK(timers_after == 0);
  CHECK(available == 1);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("nested with_timeout: each level reports its own timeout", "[runtime][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> outer_ok;
  bool inner_result_seen = true;
  std::optional<int> outer_expired = 123;
  bool inner_went_on = false;
  Duration elapsed_expired{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      // Inner timeout (20ms) fires inside a generous outer one: the inner level
      // reports the timeout and the outer one gets the inner task's value.
      outer_ok = co_await with_timeout(10s, [](bool* seen) -> Task<int> {
        const bool finished = co_await with_timeout(20ms, coring::sleep_for(1h));
        *seen = finished;
        co_return finished ? 1 : 2;
      }(&inner_result_seen));

      // Outer timeout (20ms) fires first: the inner with_timeout is cancelled
      // from outside (its task is unwound, it reports nothing), and the outer
      // level reports the timeout.
      const TimePoint t0 = Clock::now();
      outer_expired = co_await with_timeout(20ms, [](bool* went_on) -> Task<int> {
        (void)co_await with_timeout(1h, coring::sleep_for(1h));
        *went_on = true;
        co_return 3;
      }(&inner_went_on));
      elapsed_expired = Clock::now() - t0;
    }());
  }
  REQUIRE(outer_ok.has_value());
  CHECK(*outer_ok == 2);
  CHECK_FALSE(inner_result_seen);
  CHECK_FALSE(outer_expired.has_value());
  CHECK_FALSE(inner_went_on);
  CHECK(elapsed_expired >= 20ms);
  CHECK(elapsed_expired < 30s);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout wraps any other awaitable in a task", "[runtime][timeout]") {
  // A user awaitable that is neither a Task nor an operation of the library.
  struct Ready {
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    int await_resume() const noexcept { return 9; }
  };
  std::optional<int> got;
  bool yielded = false;
  coring::run([&]() -> Task<void> {
    got = co_await with_timeout(1s, Ready{});
    yielded = co_await with_timeout(1s, coring::yield_now());
  }());
  CHECK(got == 9);
  CHECK(yielded);
}
