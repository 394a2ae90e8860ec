// Cancellation on a real EventLoop: JoinHandle::cancel on sleeps, pipe reads
// (IORING_OP_ASYNC_CANCEL), joins and await chains -- a cancelled task is
// unwound (its frames destroyed, destructors run, nothing after the suspension
// point), never thrown into; shield, try_finally and cancellation_point; and
// loop destruction with tasks still suspended. with_timeout: timeout_test.cpp.
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
#include "support/uring_only.hpp"

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

// Counts the destructors that ran.
struct Unwound {
  int* count;
  ~Unwound() { ++*count; }
};

Task<int> deep_chain(int depth, int* unwound, bool* leaf_after) {
  Unwound guard{unwound};
  if (depth == 0) {
    co_await coring::sleep_for(1h);
    *leaf_after = true;
    co_return 0;
  }
  const int v = co_await deep_chain(depth - 1, unwound, leaf_after);
  co_return v + 1;
}

Task<int> quick_value(int v) {
  co_await coring::async_nop();
  co_return v;
}

}  // namespace

TEST_CASE("cancel a task suspended in sleep_for: it is unwound, nothing after the sleep runs",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool after = false;
  bool cancelled = false;
  bool done_after = false;
  int destructors = 0;
  std::size_t timers_armed = 0;
  std::size_t timers_after_cancel = 1;
  Duration elapsed{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      const TimePoint t0 = Clock::now();
      auto h = coring::spawn([](bool* aft, int* dtors) -> Task<void> {
        Unwound guard{dtors};  // a local of the cancelled frame: its destructor runs
        co_await coring::sleep_for(1h);
        *aft = true;
      }(&after, &destructors));
      co_await coring::yield_now();  // let it arm its timer
      timers_armed = EventLoop::current()->timers().size();
      h.cancel();
      timers_after_cancel = EventLoop::current()->timers().size();
      h.cancel();  // idempotent
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
      done_after = h.done();
      elapsed = Clock::now() - t0;
    }());
  }
  CHECK(timers_armed == 1);
  CHECK(timers_after_cancel == 0);
  CHECK(cancelled);
  CHECK(done_after);
  CHECK_FALSE(after);
  CHECK(destructors == 1);
  CHECK(elapsed < 60s);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("co_await on a cancelled task's handle throws TaskCancelled naming it",
          "[runtime][cancel]") {
  std::string what;
  coring::run([&]() -> Task<void> {
    bool after = false;
    auto h = coring::spawn(sleep_then_flag(1h, &after), "sleeper");
    co_await coring::yield_now();
    h.cancel();
    try {
      co_await h;
    } catch (const coring::TaskCancelled& e) {
      what = e.what();
    }
  }());
  CHECK_THAT(what, Catch::Contains("'sleeper' was cancelled"));
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
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
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

TEST_CASE("a task cancelled while running is unwound at its next suspension point",
          "[runtime][cancel]") {
  int steps = 0;
  bool cancelled = false;
  coring::run([&]() -> Task<void> {
    coring::JoinHandle<void> self_cancelling;
    auto body = [](int* n, JoinHandle<void>* me) -> Task<void> {
      ++*n;
      me->cancel();  // while running: nothing to interrupt yet
      ++*n;          // still runs: no suspension point in between
      co_await coring::async_nop();
      ++*n;  // never: unwound at the nop
    };
    self_cancelling = coring::spawn(body(&steps, &self_cancelling));
    const coring::Outcome<void> o = co_await self_cancelling.join();
    cancelled = o.cancelled();
  }());
  CHECK(cancelled);
  CHECK(steps == 2);
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
        const coring::Outcome<int> o = co_await h.join();
        cancelled = o.cancelled();
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
  if (mode != coring::RingMode::automatic) CORING_IO_URING_ONLY();  // a forced ring mode
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
        const coring::Outcome<void> o = co_await h.join();
        cancelled = o.cancelled();
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
  CORING_IO_URING_ONLY();
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
    opts.uring.ring_mode = mode;
    opts.backend = coring::BackendKind::io_uring;
    EventLoop loop(opts);
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn(read_then_suspend(p.r, &got, &past_next_suspension), "reader");
      co_await coring::sleep_for(2ms);
      CHECK(write_str(p.w, "data!"));
      co_await coring::async_nop();
      was_done = h.done();
      h.cancel();
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
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

TEST_CASE("join tells 'it was cancelled' from 'I was cancelled'", "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  bool a_after = false;
  bool joiner_after = false;
  bool joiner_cancelled = false;
  bool a_done_after_joiner_cancel = true;
  int a_value = 0;
  std::string a_got;
  bool batch_saw_cancelled_child = false;
  bool batch_went_on = false;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      // The joiner is cancelled: it is unwound (nothing after its join runs),
      // and the task it joined runs on, still joinable.
      auto a = coring::spawn(read_once(p.r, &a_after, &a_got), "joined");
      auto b = coring::spawn(join_other(&a, &joiner_after), "joiner");
      co_await coring::sleep_for(2ms);  // b is now waiting on a
      b.cancel();
      const coring::Outcome<int> ob = co_await b.join();
      joiner_cancelled = ob.cancelled();
      a_done_after_joiner_cancel = a.done();
      CHECK(write_str(p.w, "abc"));
      a_value = co_await a;  // still joinable, with its real value

      // The joined task is cancelled: a batch joiner sees it as a value and
      // goes on (it does not swallow a cancellation of its own).
      auto batch = coring::spawn([](bool* saw, bool* went_on) -> Task<void> {
        bool dummy = false;
        auto child = coring::spawn(sleep_then_flag(1h, &dummy));
        co_await coring::yield_now();
        child.cancel();
        const coring::Outcome<void> oc = co_await child.join();
        *saw = oc.cancelled();
        co_await coring::yield_now();  // not cancelled itself: goes on
        *went_on = true;
      }(&batch_saw_cancelled_child, &batch_went_on));
      co_await batch;
    }());
  }
  CHECK(joiner_cancelled);
  CHECK_FALSE(joiner_after);
  CHECK_FALSE(a_done_after_joiner_cancel);
  CHECK(a_after);
  CHECK(a_value == 3);
  CHECK(a_got == "abc");
  CHECK(batch_saw_cancelled_child);
  CHECK(batch_went_on);
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
      const coring::Outcome<int> ob = co_await b.join();
      joiner_cancelled = ob.cancelled();
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

TEST_CASE("try_finally: a cancelled task awaits its cleanup, then ends cancelled",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::vector<std::string> log;
  bool cancelled = false;
  Duration cleanup_took{};
  {
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](std::vector<std::string>* out, Duration* took) -> Task<int> {
        auto body = [](std::vector<std::string>* o) -> Task<int> {
          o->push_back("body");
          co_await coring::sleep_for(1h);
          o->push_back("body after sleep");  // never
          co_return 1;
        };
        auto cleanup = [](std::vector<std::string>* o, Duration* t) -> Task<void> {
          const TimePoint t0 = Clock::now();
          o->push_back("cleanup");
          co_await coring::sleep_for(20ms);  // awaited cleanup: a goodbye, a join...
          co_await coring::yield_now();
          o->push_back("cleanup done");
          *t = Clock::now() - t0;
        };
        const int v = co_await coring::try_finally(body(out), cleanup(out, took));
        out->push_back("after try_finally");  // never: the task was cancelled
        co_return v;
      }(&log, &cleanup_took));
      co_await coring::sleep_for(2ms);
      h.cancel();
      const coring::Outcome<int> o = co_await h.join();
      cancelled = o.cancelled();
    }());
  }
  CHECK(cancelled);
  CHECK(log == std::vector<std::string>{"body", "cleanup", "cleanup done"});
  CHECK(cleanup_took >= 20ms);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("try_finally: cleanup runs after a value and after an exception too",
          "[runtime][cancel]") {
  int cleanups = 0;
  int value = 0;
  std::string error;
  std::string replaced;
  coring::run([&]() -> Task<void> {
    auto count = [](int* n) -> Task<void> {
      co_await coring::yield_now();
      ++*n;
    };
    value = co_await coring::try_finally(quick_value(5), count(&cleanups));
    try {
      co_await coring::try_finally(
          []() -> Task<void> {
            co_await coring::yield_now();
            throw std::runtime_error("body failed");
          }(),
          count(&cleanups));
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    // An exception from the cleanup replaces the body's outcome.
    try {
      (void)co_await coring::try_finally(quick_value(6), []() -> Task<void> {
        co_await coring::yield_now();
        throw std::logic_error("cleanup failed");
      }());
    } catch (const std::logic_error& e) {
      replaced = e.what();
    }
  }());
  CHECK(value == 5);
  CHECK(error == "body failed");
  CHECK(replaced == "cleanup failed");
  CHECK(cleanups == 2);
}

TEST_CASE("try_finally in a task already cancelled: the body never runs, the cleanup does",
          "[runtime][cancel]") {
  bool body_ran = false;
  bool cleaned = false;
  bool cancelled = false;
  coring::run([&]() -> Task<void> {
    coring::JoinHandle<void> h;
    auto task = [](bool* ran, bool* clean, JoinHandle<void>* me) -> Task<void> {
      me->cancel();
      co_await coring::try_finally(
          [](bool* r) -> Task<void> {
            *r = true;
            co_return;
          }(ran),
          [](bool* c) -> Task<void> {
            co_await coring::async_nop();
            *c = true;
          }(clean));
    };
    h = coring::spawn(task(&body_ran, &cleaned, &h));
    const coring::Outcome<void> o = co_await h.join();
    cancelled = o.cancelled();
  }());
  CHECK_FALSE(body_ran);
  CHECK(cleaned);
  CHECK(cancelled);
}

TEST_CASE("shield: the shielded work runs to its end; the cancel takes effect right after",
          "[runtime][cancel]") {
  const auto frames_before = FrameAllocator::live_frames();
  int shielded_steps = 0;
  bool read_done = false;
  bool after_shield = false;
  bool cancelled = false;
  {
    Pipe p;
    EventLoop loop;
    loop.run([&]() -> Task<void> {
      auto h = coring::spawn([](int fd, int* steps, bool* read, bool* after) -> Task<void> {
        co_await coring::shield([](int* n) -> Task<void> {
          for (int i = 0; i < 3; ++i) {
            co_await coring::sleep_for(5ms);
            ++*n;
          }
        }(steps));
        // An operation of the library can be shielded on its own.
        std::array<char, 8> buf{};
        const coring::IoResult r =
            co_await coring::shield(coring::async_read(fd, std::as_writable_bytes(std::span(buf))));
        *read = r.res == 2;
        co_await coring::yield_now();  // unwound here
        *after = true;
      }(p.r, &shielded_steps, &read_done, &after_shield));
      co_await coring::sleep_for(2ms);
      h.cancel();  // during the first shielded sleep
      co_await coring::sleep_for(30ms);
      CHECK_FALSE(h.done());  // still in the shielded read
      CHECK(write_str(p.w, "ok"));
      const coring::Outcome<void> o = co_await h.join();
      cancelled = o.cancelled();
    }());
  }
  CHECK(shielded_steps == 3);
  CHECK(read_done);
  CHECK_FALSE(after_shield);
  CHECK(cancelled);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("cancellation_point: unwinds a cancelled task, costs nothing otherwise",
          "[runtime][cancel]") {
  int iterations = 0;
  bool cancelled = false;
  coring::run([&]() -> Task<void> {
    // Not cancelled: it does not suspend (other tasks do not get to run).
    bool other_ran = false;
    auto other = coring::spawn([](bool* r) -> Task<void> {
      *r = true;
      co_return;
    }(&other_ran));
    co_await coring::cancellation_point();
    CHECK_FALSE(other_ran);
    co_await other;

    JoinHandle<void> h;
    h = coring::spawn([](int* n, JoinHandle<void>* me) -> Task<void> {
      for (;;) {
        if (++*n == 3) me->cancel();
        co_await coring::cancellation_point();
      }
    }(&iterations, &h));
    const coring::Outcome<void> o = co_await h.join();
    cancelled = o.cancelled();
  }());
  CHECK(iterations == 3);
  CHECK(cancelled);
}

TEST_CASE("cancellation reaches the leaf of a deep await chain; every frame is unwound",
          "[runtime][cancel]") {
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
      const coring::Outcome<int> o = co_await h.join();
      cancelled = o.cancelled();
    }());
  }
  CHECK(cancelled);
  CHECK_FALSE(leaf_after);
  CHECK(unwound == kDepth + 1);  // every frame's destructors ran
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
      CHECK_THROWS_AS(h.result(), coring::TaskCancelled);
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
