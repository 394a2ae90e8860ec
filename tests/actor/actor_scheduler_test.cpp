// ActorScheduler<Msg>: the seed's printer/counter program (2N + 3 deliveries,
// the printer sees N..1 in order), FIFO delivery, messages to unknown names
// and ended actors counted, a failing actor (failures(), the others go on, an
// unlooked-at failure reported by the destructor), run_for, run_async on an
// EventLoop (same count, the loop's other tasks keep running), duplicate
// names, and the frames freed.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using coring::FrameAllocator;
using coring::Task;
using coring_test::StderrCapture;

namespace {

using Sched = coring::ActorScheduler<std::int64_t>;

Sched::Actor printer(Sched& sched, std::vector<std::int64_t>* seen) {
  for (;;) {
    const std::int64_t msg = co_await sched.receive();
    seen->push_back(msg);
  }
}

Sched::Actor counter(Sched& sched) {
  const Sched::ActorId to_printer = *sched.find("printer");
  const Sched::ActorId self = *sched.find("counter");
  for (;;) {
    const std::int64_t n = co_await sched.receive();
    if (n == 0) break;
    sched.send(to_printer, n);
    sched.send(self, n - 1);
  }
}

// Throws on `bad`; records the others.
Sched::Actor fragile(Sched& sched, std::int64_t bad, std::vector<std::int64_t>* seen) {
  for (;;) {
    const std::int64_t m = co_await sched.receive();
    if (m == bad) throw std::runtime_error("fragile got " + std::to_string(bad));
    seen->push_back(m);
  }
}

std::vector<std::int64_t> countdown(std::int64_t n) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = n; i >= 1; --i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("the seed's printer/counter: 2N + 3 deliveries, the printer sees N..1 in order",
          "[actor][actor_scheduler]") {
  constexpr std::int64_t kCount = 100;
  std::vector<std::int64_t> seen;
  Sched sched;
  const Sched::ActorId p = sched.new_actor("printer", printer(sched, &seen));
  const Sched::ActorId c = sched.new_actor("counter", counter(sched));
  CHECK_FALSE(p == c);
  CHECK(sched.find("printer") == p);
  CHECK(sched.find("counter") == c);
  CHECK_FALSE(sched.find("nobody").has_value());
  CHECK(sched.pending() == 2);  // the two starts
  sched.send("counter", kCount);
  const std::uint64_t delivered = sched.run();
  CHECK(delivered == 2 * kCount + 3);
  CHECK(sched.delivered() == delivered);
  CHECK(seen == countdown(kCount));
  CHECK(sched.idle());
  CHECK(sched.live_actors() == 1);  // the printer waits on; the counter returned
  CHECK(sched.undelivered_count() == 0);
  CHECK(sched.failures().empty());
}

TEST_CASE("deliveries run in FIFO order; sends never run an actor inline",
          "[actor][actor_scheduler]") {
  std::vector<std::int64_t> seen;
  Sched sched;
  sched.new_actor("printer", printer(sched, &seen));
  for (std::int64_t i = 0; i < 10; ++i) sched.send("printer", i);
  CHECK(seen.empty());  // nothing ran yet
  CHECK(sched.pending() == 11);
  const std::uint64_t n = sched.run();
  CHECK(n == 11);
  CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("run_for delivers at most its budget", "[actor][actor_scheduler]") {
  std::vector<std::int64_t> seen;
  Sched sched;
  sched.new_actor("printer", printer(sched, &seen));
  for (std::int64_t i = 0; i < 10; ++i) sched.send("printer", i);
  CHECK(sched.run_for(4) == 4);  // the start and three messages
  CHECK(seen.size() == 3);
  CHECK(sched.pending() == 7);
  CHECK(sched.run_for(100) == 7);
  CHECK(seen.size() == 10);
  CHECK(sched.run_for(5) == 0);
}

TEST_CASE("a message to an unknown name is counted, not dropped silently",
          "[actor][actor_scheduler]") {
  std::vector<std::int64_t> seen;
  Sched sched;
  sched.new_actor("printer", printer(sched, &seen));
  sched.send("nobody", 1);
  sched.send("nobody", 2);
  sched.send("ghost", 3);
  sched.send("printer", 4);
  const std::uint64_t n = sched.run();
  CHECK(n == 2);  // the start and 4
  CHECK(seen == std::vector<std::int64_t>{4});
  CHECK(sched.undelivered_count() == 3);
  std::uint64_t nobody = 0;
  std::uint64_t ghost = 0;
  for (const auto& u : sched.undelivered()) {
    if (u.name == "nobody") nobody = u.count;
    if (u.name == "ghost") ghost = u.count;
  }
  CHECK(nobody == 2);
  CHECK(ghost == 1);
  CHECK(sched.undelivered().size() == 2);
}

TEST_CASE("a message to an actor that has ended is counted", "[actor][actor_scheduler]") {
  std::vector<std::int64_t> seen;
  Sched sched;
  sched.new_actor("printer", printer(sched, &seen));
  const Sched::ActorId c = sched.new_actor("counter", counter(sched));
  sched.send("counter", 3);
  CHECK(sched.run() == 2 * 3 + 3);
  CHECK(sched.live_actors() == 1);
  sched.send("counter", 5);  // by name
  sched.send(c, 6);          // by id
  CHECK(sched.run() == 0);
  CHECK(sched.undelivered_count() == 2);
  const auto u = sched.undelivered();
  REQUIRE(u.size() == 1);
  CHECK(u[0].name == "counter");
  CHECK(u[0].count == 2);
  CHECK(seen == countdown(3));
}

TEST_CASE("an actor that throws ends; failures() lists it; the others keep running",
          "[actor][actor_scheduler][failure]") {
  std::vector<std::int64_t> fragile_seen;
  std::vector<std::int64_t> printer_seen;
  std::string err;
  {
    StderrCapture cap;
    {
      Sched sched;
      sched.new_actor("fragile", fragile(sched, 3, &fragile_seen));
      sched.new_actor("printer", printer(sched, &printer_seen));
      for (std::int64_t i = 1; i <= 5; ++i) {
        sched.send("fragile", i);
        sched.send("printer", i * 10);
      }
      sched.run();
      CHECK(fragile_seen == std::vector<std::int64_t>{1, 2});
      CHECK(printer_seen == std::vector<std::int64_t>{10, 20, 30, 40, 50});
      CHECK(sched.live_actors() == 1);
      CHECK(sched.undelivered_count() == 2);  // 4 and 5, after it ended
      const auto& failures = sched.failures();
      REQUIRE(failures.size() == 1);
      CHECK(failures[0].name == "fragile");
      std::string what;
      try {
        std::rethrow_exception(failures[0].error);
      } catch (const std::runtime_error& e) {
        what = e.what();
      }
      CHECK(what == "fragile got 3");
    }
    err = cap.finish();
  }
  CHECK(err.find("fragile") == std::string::npos);  // looked at: not reported
}

TEST_CASE("a failure nobody looked at is reported on stderr by the destructor",
          "[actor][actor_scheduler][failure]") {
  std::vector<std::int64_t> seen;
  std::string err;
  {
    StderrCapture cap;
    {
      Sched sched;
      sched.new_actor("brittle", fragile(sched, 1, &seen));
      sched.send("brittle", 1);
      sched.run();
    }
    err = cap.finish();
  }
  CHECK_THAT(err, Catch::Contains("brittle") && Catch::Contains("fragile got 1"));
}

TEST_CASE("an actor that returns ends normally and is not a failure", "[actor][actor_scheduler]") {
  Sched sched;
  std::vector<std::int64_t> seen;
  sched.new_actor("printer", printer(sched, &seen));
  sched.new_actor("counter", counter(sched));
  sched.send("counter", 0);  // returns at once
  sched.run();
  CHECK(sched.live_actors() == 1);
  CHECK(sched.failures().empty());
  CHECK(seen.empty());
}

TEST_CASE("run_async on an EventLoop gives the same count; the loop's other tasks run meanwhile",
          "[actor][actor_scheduler]") {
  constexpr std::int64_t kCount = 100;
  std::vector<std::int64_t> seen;
  std::uint64_t delivered = 0;
  int other_turns = 0;
  bool other_done_before = true;
  coring::run([&]() -> Task<void> {
    Sched sched;
    sched.new_actor("printer", printer(sched, &seen));
    sched.new_actor("counter", counter(sched));
    sched.send("counter", kCount);
    bool finished = false;
    auto other = coring::spawn([](int* turns, bool* fin) -> Task<void> {
      while (!*fin && *turns < 1000) {
        ++*turns;
        co_await coring::yield_now();
      }
    }(&other_turns, &finished));
    delivered = co_await sched.run_async(8);  // yields every 8 deliveries
    finished = true;
    other_done_before = other.done();
    co_await other;
  }());
  CHECK(delivered == 2 * kCount + 3);
  CHECK(seen == countdown(kCount));
  CHECK(other_turns > 10);  // it ran between batches
  CHECK_FALSE(other_done_before);
}

TEST_CASE("new_actor with a name already taken is a std::logic_error; its frame is freed",
          "[actor][actor_scheduler]") {
  const auto frames_before = FrameAllocator::live_frames();
  {
    std::vector<std::int64_t> seen;
    std::vector<std::int64_t> other;
    Sched sched;
    sched.new_actor("printer", printer(sched, &seen));
    CHECK_THROWS_AS(sched.new_actor("printer", printer(sched, &other)), std::logic_error);
    sched.send("printer", 1);
    CHECK(sched.run() == 2);
    CHECK(seen == std::vector<std::int64_t>{1});
    CHECK(other.empty());
    CHECK(sched.live_actors() == 1);
  }
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("the destructor frees every actor frame, ended or waiting", "[actor][actor_scheduler]") {
  const auto frames_before = FrameAllocator::live_frames();
  {
    Sched sched;
    std::vector<std::int64_t> seen;
    for (int i = 0; i < 50; ++i) sched.new_actor("p" + std::to_string(i), printer(sched, &seen));
    sched.new_actor("printer", printer(sched, &seen));
    sched.new_actor("counter", counter(sched));
    sched.send("counter", 10);
    sched.run();
    CHECK(sched.live_actors() == 51);
    CHECK(FrameAllocator::live_frames() - frames_before == 51);
    // Some never started at all.
    sched.new_actor("late", printer(sched, &seen));
  }
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("an actor sending to itself by next_id()", "[actor][actor_scheduler]") {
  Sched sched;
  std::vector<std::int64_t> seen;
  auto echo = [](Sched& s, Sched::ActorId self, std::vector<std::int64_t>* out) -> Sched::Actor {
    for (;;) {
      const std::int64_t n = co_await s.receive();
      out->push_back(n);
      if (n > 0) s.send(self, n - 1);
    }
  };
  const Sched::ActorId expected = sched.next_id();
  const Sched::ActorId id = sched.new_actor("echo", echo(sched, sched.next_id(), &seen));
  CHECK(id == expected);
  sched.send(id, 4);
  CHECK(sched.run() == 6);
  CHECK(seen == std::vector<std::int64_t>{4, 3, 2, 1, 0});
}

namespace {
using OwnedSched = coring::ActorScheduler<std::unique_ptr<int>>;
OwnedSched::Actor owned_sink(OwnedSched& sched, std::vector<int>* seen) {
  for (;;) {
    std::unique_ptr<int> m = co_await sched.receive();
    seen->push_back(m ? *m : -1);
  }
}
}  // namespace

TEST_CASE("move-only messages; a backlog that wraps around and outgrows the line's buffer",
          "[actor][actor_scheduler]") {
  std::vector<int> seen;
  OwnedSched sched;
  const OwnedSched::ActorId id = sched.new_actor("sink", owned_sink(sched, &seen));
  int next = 0;
  for (; next < 200; ++next) sched.send(id, std::make_unique<int>(next));
  CHECK(sched.run_for(151) == 151);  // the start and 150 messages: the head moves on
  for (; next < 1200; ++next) sched.send("sink", std::make_unique<int>(next));
  CHECK(sched.pending() == 1050);
  CHECK(sched.run() == 1050);
  REQUIRE(seen.size() == 1200);
  for (int i = 0; i < 1200; ++i) CHECK(seen[static_cast<std::size_t>(i)] == i);
}
