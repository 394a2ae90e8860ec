// Cancellation on a real EventLoop: JoinHandle::cancel on sleeps, pipe reads
// (IORING_OP_ASYNC_CANCEL), joins and await chains; with_timeout; and loop
// destruction with tasks still suspended.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::Cancelled;
using coring::Clock;
using coring::Duration;
using coring::EventLoop;
using coring::FrameAllocator;
using coring::JoinHandle;
using coring::Task;
using coring::TimePoint;

using namespace coring_test;

namespace {

// A blocking pipe (io_uring arms a poll for reads on an empty one).
std::size_t in_flight() {
  return EventLoop::current()->backend().in_flight();
}

// ---- task bodies ----

Task<void> sleep_then_flag(Duration d, bool* after) {
  co_await coring::sleep_for(d);
  *after = true;
}

Task<int> read_once(int fd, bool* after, std::string* got) {
  std::array<char, 64> buf{};  // the kernel writes into this frame
  coring::IoResult r = co_await coring::async_read(fd, std::as_writable_bytes(std::span(buf)));
  *after = true;
  if (r.ok()) got->assign(buf.data(), r.bytes());
  co_return r.res;
}

// Reads once, records the data, then suspends again.
Task<void> read_then_suspend(int fd, std::string* got, bool* past_next_suspension) {
  std::array<char, 64> buf{};
  coring::IoResult r = co_await coring::async_read(fd, std::as_writable_bytes(std::span(buf)));
  if (r.ok()) got->assign(buf.data(), r.bytes());
  co_await coring::yield_now();
  *past_next_suspension = true;
}

Task<int> join_other(JoinHandle<int>* other, bool* after) {
  const int v = co_await *other;
  *after = true;
  co_return v;
}

Task<int> deep_chain(int depth, int* unwound, bool* leaf_after) {
  if (depth == 0) {
    co_await coring::sleep_for(1h);
    *leaf_after = true;
    co_return 0;
  }
  try {
    const int v = co_await deep_chain(depth - 1, unwound, leaf_after);
    co_return v + 1;
  } catch (const Cancelled&) {
    ++*unwound;
    throw;
  }
}

Task<int> quick_value(int v) {
  co_await coring::async_nop();
  co_return v;
}

}  // namespace

TEST_CASE("cancel a task suspended in sleep_for: joiner gets Cancelled, the rest never runs",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool after = false;
  bool cancelled = false;
  bool done_after = false;
  std::size_t timers_armed = 0;
  std::size_t timers_after_cancel = 1;
  Duration elapsed{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = Clock::now();
      auto h = coring::spawn(sleep_then_flag(1h, &after));
      co_await coring::yield_now();  // let it arm its timer
      timers_armed = EventLoop::current()->timers().size();
      h.cancel();
      timers_after_cancel = EventLoop::current()->timers().size();
      h.cancel();  // idempotent
      try {
        co_await h;
      } catch (const Cancelled&) {
        cancelled = true;
      }
      done_after = h.done();
      elapsed = Clock::now() - t0;
    }());
  }
  CHECK(timers_armed == 1);
  CHECK(timers_after_cancel == 0);
  CHECK(cancelled);
  CHECK(done_after);
  CHECK_FALSE(after);
  CHECK(elapsed < 60s);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancel a task before it starts: its body never runs", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool body_ran = false;
  bool cancelled = false;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](bool* ran) -> Task<void> {
        *ran = true;
        co_return;
      }(&body_ran));
      h.cancel();  // still queued, not started
      try {
        co_await h;
      } catch (const Cancelled&) {
        cancelled = true;
      }
    }());
  }
  CHECK(cancelled);
  CHECK_FALSE(body_ran);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancelling a finished task changes nothing", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  int v = 0;
  {
    EventLoop loop;
    v = loop.run([&]() -> Task<int> {
      auto h = coring::spawn(quick_value(11));
      while (!h.done()) co_await coring::yield_now();
      h.cancel();
      co_return co_await h;
    }());
  }
  CHECK(v == 11);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancel a task blocked in async_read on an empty pipe", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  auto counters = std::make_shared<BackendCounters>();
  bool after = false;
  bool cancelled = false;
  bool done_right_after_cancel = true;
  std::size_t in_flight_before = 0;
  std::size_t in_flight_after = 99;
  int available_while_loop_alive = -1;
  std::string got;
  {
    Pipe p;
    {
      EventLoop loop(counting_options(counters));
      loop.run([&]() -> Task<void> {
        auto h = coring::spawn(read_once(p.r, &after, &got), "reader");
        co_await coring::yield_now();
        co_await coring::yield_now();
        co_await coring::sleep_for(2ms);
        in_flight_before = in_flight();  // the loop's wake-up read + ours
        h.cancel();
        // The task waits for the cancelled read's CQE: its frame (and buffer) is alive.
        done_right_after_cancel = h.done();
        try {
          co_await h;
        } catch (const Cancelled&) {
          cancelled = true;
        }
        in_flight_after = in_flight();
        // The kernel no longer has a read on this pipe: written data stays there.
        CHECK(write_str(p.w, "hello"));
        co_await coring::sleep_for(5ms);
        co_await coring::async_nop();
        available_while_loop_alive = bytes_available(p.r);
      }());
    }
    CHECK(bytes_available(p.r) == 5);
  }
  CHECK(in_flight_before == 2);
  CHECK_FALSE(done_right_after_cancel);
  CHECK(cancelled);
  CHECK_FALSE(after);
  CHECK(got.empty());
  CHECK(in_flight_after == 1);
  CHECK(available_while_loop_alive == 5);
  CHECK(counters->cancels.load() == 1);  // one IORING_OP_ASYNC_CANCEL
  CHECK(counters->in_flight_at_destruction.load() == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("a read that completed before the cancel is delivered, then the task stops",
          "[runtime][cancel]") {
  // In COOP_TASKRUN and plain rings the kernel completes the read during our own
  // write(2) (task work runs on the way back to user space), so the cancel that
  // follows finds nothing to cancel: the data must be returned. With
  // DEFER_TASKRUN the kernel may honour the cancel instead; then the data must
  // still be in the pipe. Either way nothing is lost.
  const auto mode = GENERATE(coring::RingMode::coop_taskrun, coring::RingMode::plain,
                             coring::RingMode::automatic);
  INFO("ring mode " << static_cast<int>(mode));
  const auto frames_before = FrameAllocator::live_frames();
  auto counters = std::make_shared<BackendCounters>();
  std::string got;
  bool past_next_suspension = false;
  bool cancelled = false;
  int left_in_pipe = -1;
  {
    Pipe p;
    {
      EventLoop loop(counting_options(counters, mode));
      loop.run([&]() -> Task<void> {
        auto h = coring::spawn(read_then_suspend(p.r, &got, &past_next_suspension), "reader");
        co_await coring::yield_now();
        co_await coring::yield_now();
        co_await coring::sleep_for(2ms);  // the read is parked in the kernel
        CHECK(write_str(p.w, "hello"));
        h.cancel();  // same turn as the write
        try {
          co_await h;
        } catch (const Cancelled&) {
          cancelled = true;
        }
      }());
    }
    left_in_pipe = bytes_available(p.r);
  }
  CHECK(cancelled);
  CHECK_FALSE(past_next_suspension);
  // No data lost: either the read returned it, or the pipe still holds it.
  CHECK(((got == "hello" && left_in_pipe == 0) || (got.empty() && left_in_pipe == 5)));
  if (mode != coring::RingMode::automatic) {
    CHECK(got == "hello");  // the completed read's result, despite the cancel
    CHECK(left_in_pipe == 0);
  }
  CHECK(counters->in_flight_at_destruction.load() == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a read completion reaped before the cancel is returned, then the task stops",
          "[runtime][cancel]") {
  // The writer makes the data available, then does one ring round trip (a nop),
  // so the read's CQE is reaped no later than the nop's; only then does it
  // cancel. Whether the reader is still queued to resume (its CQE came after the
  // nop's) or already parked at its next suspension point, the data it read must
  // be returned and the task must stop at that next suspension point.
  const auto mode = GENERATE(coring::RingMode::automatic, coring::RingMode::defer_taskrun,
                             coring::RingMode::coop_taskrun, coring::RingMode::plain);
  INFO("ring mode " << static_cast<int>(mode));
  const auto frames_before = FrameAllocator::live_frames();
  std::string got;
  bool past_next_suspension = false;
  bool cancelled = false;
  bool was_done = true;
  int left_in_pipe = -1;
  {
    Pipe p;
    coring::LoopOptions opts;
    opts.ring_mode = mode;
    EventLoop loop(opts);
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn(read_then_suspend(p.r, &got, &past_next_suspension), "reader");
      co_await coring::sleep_for(2ms);
      CHECK(write_str(p.w, "data!"));
      co_await coring::async_nop();
      was_done = h.done();
      h.cancel();
      try {
        co_await h;
      } catch (const Cancelled&) {
        cancelled = true;
      }
    }());
    left_in_pipe = bytes_available(p.r);
  }
  CHECK_FALSE(was_done);
  CHECK(got == "data!");
  CHECK(left_in_pipe == 0);
  CHECK(cancelled);
  CHECK_FALSE(past_next_suspension);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancel a joiner: it gets Cancelled, the joined task runs on", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool a_after = false;
  bool joiner_after = false;
  bool joiner_cancelled = false;
  bool a_done_after_joiner_cancel = true;
  int a_value = 0;
  std::string a_got;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      // `a` waits for data that only this task will write.
      auto a = coring::spawn(read_once(p.r, &a_after, &a_got), "joined");
      auto b = coring::spawn(join_other(&a, &joiner_after), "joiner");
      co_await coring::sleep_for(2ms);  // b is now waiting on a
      b.cancel();
      try {
        co_await b;
      } catch (const Cancelled&) {
        joiner_cancelled = true;
      }
      a_done_after_joiner_cancel = a.done();
      CHECK(write_str(p.w, "abc"));
      a_value = co_await a;  // still joinable, with its real value
    }());
  }
  CHECK(joiner_cancelled);
  CHECK_FALSE(joiner_after);
  CHECK_FALSE(a_done_after_joiner_cancel);
  CHECK(a_after);
  CHECK(a_value == 3);
  CHECK(a_got == "abc");
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancel a joiner, then detach the joined task: it finishes and frees itself",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool a_after = false;
  bool joiner_after = false;
  bool joiner_cancelled = false;
  std::size_t live_before_wait = 0;
  std::size_t live_after_wait = 99;
  std::string a_got;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto a = coring::spawn(read_once(p.r, &a_after, &a_got), "joined");
      auto b = coring::spawn(join_other(&a, &joiner_after), "joiner");
      co_await coring::sleep_for(2ms);
      b.cancel();
      try {
        co_await b;
      } catch (const Cancelled&) {
        joiner_cancelled = true;
      }
      a.detach();
      live_before_wait = EventLoop::current()->scheduler().live_tasks();
      CHECK(write_str(p.w, "go"));
      const TimePoint limit = Clock::now() + 5s;
      while (EventLoop::current()->scheduler().live_tasks() > 1 && Clock::now() < limit) {
        co_await coring::sleep_for(1ms);
      }
      live_after_wait = EventLoop::current()->scheduler().live_tasks();
    }());
  }
  CHECK(joiner_cancelled);
  CHECK_FALSE(joiner_after);
  CHECK(a_after);
  CHECK(a_got == "go");
  CHECK(live_before_wait == 2);  // this task and the detached one
  CHECK(live_after_wait == 1);   // only this one: the detached task ended
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a task that catches Cancelled can clean up; cancellation stays requested",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool cleaned = false;
  bool rethrown_seen = false;
  bool second_suspension_threw = false;
  int swallowed_value = 0;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      // Rethrowing after clean-up: the task ends as cancelled.
      auto h1 = coring::spawn([](bool* c) -> Task<void> {
        try {
          co_await coring::sleep_for(1h);
        } catch (const Cancelled&) {
          *c = true;
          throw;
        }
      }(&cleaned));
      // Swallowing: the task ends normally with its value; a later suspension
      // point throws Cancelled again (the request is sticky).
      auto h2 = coring::spawn([](bool* again) -> Task<int> {
        try {
          co_await coring::sleep_for(1h);
        } catch (const Cancelled&) {
        }
        try {
          co_await coring::yield_now();
        } catch (const Cancelled&) {
          *again = true;
        }
        co_return -7;
      }(&second_suspension_threw));
      co_await coring::yield_now();
      h1.cancel();
      h2.cancel();
      try {
        co_await h1;
      } catch (const Cancelled&) {
        rethrown_seen = true;
      }
      swallowed_value = co_await h2;
    }());
  }
  CHECK(cleaned);
  CHECK(rethrown_seen);
  CHECK(second_suspension_threw);
  CHECK(swallowed_value == -7);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancellation reaches the leaf of a deep await chain", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  constexpr int kDepth = 200;
  int unwound = 0;
  bool leaf_after = false;
  bool cancelled = false;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn(deep_chain(kDepth, &unwound, &leaf_after));
      co_await coring::sleep_for(2ms);
      h.cancel();
      try {
        (void)co_await h;
      } catch (const Cancelled&) {
        cancelled = true;
      }
    }());
  }
  CHECK(cancelled);
  CHECK_FALSE(leaf_after);
  CHECK(unwound == kDepth);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout on sleep_for(1h) gives up after the timeout", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool completed = true;
  Duration elapsed{};
  std::size_t timers_after = 99;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = Clock::now();
      completed = co_await coring::with_timeout(20ms, coring::sleep_for(1h));
      elapsed = Clock::now() - t0;
      timers_after = EventLoop::current()->timers().size();
    }());
  }
  CHECK_FALSE(completed);
  CHECK(elapsed >= 20ms);
  CHECK(elapsed < 30s);
  CHECK(timers_after == 0);  // neither the sleep nor the timeout left a timer
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout on a fast operation returns its value", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> v;
  bool slept = false;
  std::optional<coring::IoResult> nop;
  std::size_t timers_after = 99;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      v = co_await coring::with_timeout(10s, quick_value(7));
      slept = co_await coring::with_timeout(10s, coring::sleep_for(1ms));
      nop = co_await coring::with_timeout(10s, coring::async_nop());
      timers_after = EventLoop::current()->timers().size();
    }());
  }
  REQUIRE(v.has_value());
  CHECK(*v == 7);
  CHECK(slept);
  REQUIRE(nop.has_value());
  CHECK(nop->res == 0);
  CHECK(timers_after == 0);  // the unused timeouts were disarmed
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("with_timeout propagates the operation's own exception", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool caught = false;
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      try {
        (void)co_await coring::with_timeout(10s, []() -> Task<int> {
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
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  auto counters = std::make_shared<BackendCounters>();
  std::optional<coring::IoResult> r1;
  std::optional<coring::IoResult> r2;
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
      r1 = co_await coring::with_timeout(
          20ms, coring::async_read(p.r, std::as_writable_bytes(std::span(buf))));
      elapsed = Clock::now() - t0;
      in_flight_after = in_flight();
      CHECK(write_str(p.w, "late"));
      co_await coring::sleep_for(5ms);
      available = bytes_available(p.r);  // not swallowed by a stale read
      // With data ready, the same kind of read finishes within its timeout.
      r2 = co_await coring::with_timeout(
          10s, coring::async_read(p.r, std::as_writable_bytes(std::span(buf))));
      if (r2 && r2->ok()) second.assign(buf.data(), r2->bytes());
    }());
  }
  CHECK_FALSE(r1.has_value());
  CHECK(elapsed >= 20ms);
  CHECK(in_flight_after == 1);
  CHECK(counters->cancels.load() >= 1);
  CHECK(available == 4);
  REQUIRE(r2.has_value());
  CHECK(r2->res == 4);
  CHECK(second == "late");
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

TEST_CASE("cancelling a task inside with_timeout throws Cancelled, not a timeout",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  const bool on_read = GENERATE(false, true);
  INFO((on_read ? "pending pipe read" : "sleep"));
  bool cancelled = false;
  bool reported_timeout = false;
  bool after = false;
  std::size_t in_flight_after = 99;
  std::size_t timers_after = 99;
  int available = -1;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](int fd, bool read, bool* timeout, bool* aft) -> Task<void> {
        std::array<char, 16> buf{};
        if (read) {
          auto r = co_await coring::with_timeout(
              1h, coring::async_read(fd, std::as_writable_bytes(std::span(buf))));
          *timeout = !r.has_value();
        } else {
          *timeout = !co_await coring::with_timeout(1h, coring::sleep_for(1h));
        }
        *aft = true;
      }(p.r, on_read, &reported_timeout, &after));
      co_await coring::sleep_for(5ms);
      h.cancel();
      try {
        co_await h;
      } catch (const Cancelled&) {
        cancelled = true;
      }
      in_flight_after = in_flight();
      timers_after = EventLoop::current()->timers().size();
      CHECK(write_str(p.w, "x"));
      co_await coring::sleep_for(2ms);
      available = bytes_available(p.r);
    }());
  }
  CHECK(cancelled);
  CHECK_FALSE(reported_timeout);
  CHECK_FALSE(after);
  CHECK(in_flight_after == 1);
  CHECK(timers_after == 0);
  CHECK(available == 1);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("nested with_timeout: each level reports its own timeout", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> outer_ok;
  bool inner_result_seen = true;
  std::optional<int> outer_expired = 123;
  bool inner_saw_cancelled = false;
  Duration elapsed_expired{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      // Inner timeout (20ms) fires inside a generous outer one: the inner level
      // reports the timeout and the outer one gets the inner task's value.
      outer_ok = co_await coring::with_timeout(10s, [](bool* seen) -> Task<int> {
        const bool finished = co_await coring::with_timeout(20ms, coring::sleep_for(1h));
        *seen = finished;
        co_return finished ? 1 : 2;
      }(&inner_result_seen));

      // Outer timeout (20ms) fires first: the inner with_timeout is cancelled
      // from outside, so it throws Cancelled (not a timeout of its own), and the
      // outer level reports the timeout.
      const TimePoint t0 = Clock::now();
      outer_expired = co_await coring::with_timeout(20ms, [](bool* saw) -> Task<int> {
        try {
          (void)co_await coring::with_timeout(1h, coring::sleep_for(1h));
        } catch (const Cancelled&) {
          *saw = true;
          throw;
        }
        co_return 3;
      }(&inner_saw_cancelled));
      elapsed_expired = Clock::now() - t0;
    }());
  }
  REQUIRE(outer_ok.has_value());
  CHECK(*outer_ok == 2);
  CHECK_FALSE(inner_result_seen);
  CHECK_FALSE(outer_expired.has_value());
  CHECK(inner_saw_cancelled);
  CHECK(elapsed_expired >= 20ms);
  CHECK(elapsed_expired < 30s);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("destroying a loop with suspended tasks frees every frame and leaves no I/O in flight",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  auto counters = std::make_shared<BackendCounters>();
  constexpr int kReaders = 8;
  std::string shutdown_stderr;
  std::size_t in_flight_before_shutdown = 0;
  int readers_after = 0;
  int sleepers_after = 0;
  {
    std::vector<std::unique_ptr<Pipe>> pipes;
    for (int i = 0; i < kReaders + 1; ++i) pipes.push_back(std::make_unique<Pipe>());
    std::vector<JoinHandle<int>> kept;  // outlive the loop
    std::vector<std::string> got(kReaders);
    bool reader_flags[kReaders] = {};
    bool sleeper_flags[8] = {};
    bool joiner_after = false;
    {
      StderrCapture capture;
      {
        EventLoop loop(counting_options(counters));
        loop.run([&]() -> Task<void> {
          for (int i = 0; i < kReaders; ++i) {
            kept.push_back(
                coring::spawn(read_once(pipes[static_cast<std::size_t>(i)]->r, &reader_flags[i],
                                        &got[static_cast<std::size_t>(i)])));
          }
          for (bool& f : sleeper_flags) coring::spawn(sleep_then_flag(1h, &f)).detach();
          static bool chain_leaf_after = false;
          static int chain_unwound = 0;
          coring::spawn(deep_chain(50, &chain_unwound, &chain_leaf_after)).detach();
          coring::spawn(join_other(&kept[0], &joiner_after)).detach();
          coring::spawn([](int fd) -> Task<void> {
            std::array<char, 8> buf{};
            (void)co_await coring::with_timeout(
                1h, coring::async_read(fd, std::as_writable_bytes(std::span(buf))));
          }(pipes[kReaders]->r))
              .detach();
          co_await coring::sleep_for(5ms);
          in_flight_before_shutdown = in_flight();
        }());
      }  // ~EventLoop with 8 + 1 reads in flight and many sleepers
      shutdown_stderr = capture.finish();
    }
    for (int i = 0; i < kReaders; ++i) {
      auto& h = kept[static_cast<std::size_t>(i)];
      CHECK(h.done());
      CHECK_THROWS_AS(h.result(), Cancelled);
      if (reader_flags[i]) ++readers_after;
    }
    for (bool f : sleeper_flags) sleepers_after += f ? 1 : 0;
    CHECK_FALSE(joiner_after);
    // No read survived in the kernel: written data stays in every pipe.
    for (auto& p : pipes) {
      CHECK(write_str(p->w, "zz"));
      CHECK(bytes_available(p->r) == 2);
    }
  }
  CHECK(in_flight_before_shutdown == 1 + kReaders + 1);
  CHECK(readers_after == 0);
  CHECK(sleepers_after == 0);
  CHECK(counters->in_flight_at_destruction.load() == 0);
  CHECK(shutdown_stderr.find("still in flight") == std::string::npos);
  CHECK(shutdown_stderr.empty());  // cancelled tasks are not reported as failures
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}
