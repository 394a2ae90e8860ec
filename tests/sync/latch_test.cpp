// Latch and Barrier: counting down, waking every waiter, phases, drop, cancellation.
// (co_await is kept out of Catch macros: see the note in queue_test.cpp.)
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <vector>

using coring::Barrier;
using coring::Latch;
using coring::Task;

TEST_CASE("a latch wakes every waiter when the count reaches zero", "[sync][latch]") {
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Latch latch(3);
    std::vector<coring::JoinHandle<void>> hs;
    for (int i = 0; i < 4; ++i) {
      hs.push_back(coring::spawn([](Latch& l, std::vector<int>& out, int id) -> Task<void> {
        co_await l.wait();
        out.push_back(id);
      }(latch, order, i)));
    }
    co_await coring::yield_now();
    CHECK(latch.waiting() == 4);
    latch.count_down();
    latch.count_down();
    co_await coring::yield_now();
    CHECK(order.empty());
    CHECK_FALSE(latch.try_wait());
    latch.count_down();
    CHECK(latch.try_wait());
    for (auto& h : hs) co_await h;
    co_await latch.wait();  // already open: no suspension
    CHECK_THROWS_AS(latch.count_down(), std::logic_error);
    CHECK(latch.count() == 0);
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("latch arrive_and_wait: the last arrival releases everyone", "[sync][latch]") {
  int released = 0;
  auto body = [&]() -> Task<void> {
    Latch latch(3);
    auto worker = [](Latch& l, int& n) -> Task<void> {
      co_await l.arrive_and_wait();
      ++n;
    };
    auto a = coring::spawn(worker(latch, released));
    auto b = coring::spawn(worker(latch, released));
    co_await coring::yield_now();
    CHECK(released == 0);
    CHECK(latch.count() == 1);
    co_await latch.arrive_and_wait();  // the last: does not suspend
    CHECK(released == 0);              // woken by scheduling, not inline
    co_await a;
    co_await b;
    CHECK_THROWS_AS(Latch(1).count_down(2), std::logic_error);
  };
  coring::run(body());
  CHECK(released == 2);
}

TEST_CASE("a cancelled latch waiter unlinks itself; its arrival stays counted", "[sync][latch]") {
  auto body = []() -> Task<void> {
    Latch latch(2);
    auto a = coring::spawn([](Latch& l) -> Task<void> { co_await l.arrive_and_wait(); }(latch));
    auto b = coring::spawn([](Latch& l) -> Task<void> { co_await l.wait(); }(latch));
    co_await coring::yield_now();
    REQUIRE(latch.waiting() == 2);
    a.cancel();
    CHECK(latch.waiting() == 1);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    CHECK(latch.count() == 1);
    latch.count_down();
    co_await b;
  };
  coring::run(body());
}

TEST_CASE("a barrier runs its parties in lock-step phases", "[sync][barrier]") {
  constexpr int kParties = 4;
  constexpr int kPhases = 50;
  std::vector<int> progress(kParties, 0);
  int leaders = 0;
  bool in_step = true;
  auto body = [&]() -> Task<void> {
    Barrier barrier(kParties);
    std::vector<coring::JoinHandle<void>> hs;
    for (int p = 0; p < kParties; ++p) {
      hs.push_back(coring::spawn(
          [](Barrier& b, std::vector<int>& prog, int me, int& lead, bool& ok) -> Task<void> {
            for (int phase = 0; phase < kPhases; ++phase) {
              // Uneven work per party before arriving.
              for (int k = 0; k < (me + phase) % 3; ++k) co_await coring::yield_now();
              ++prog[static_cast<std::size_t>(me)];
              bool leader = co_await b.arrive_and_wait();
              if (leader) ++lead;
              // Everybody arrived before anybody got through; the leader, which
              // does not suspend, may already have started the next phase.
              for (int v : prog) ok = ok && v >= phase + 1 && v <= phase + 2;
              if (b.phase() < static_cast<std::uint64_t>(phase + 1)) ok = false;
            }
          }(barrier, progress, p, leaders, in_step)));
    }
    for (auto& h : hs) co_await h;
    CHECK(barrier.phase() == kPhases);
  };
  coring::run(body());
  CHECK(in_step);
  CHECK(leaders == kPhases);  // exactly one leader per phase
}

TEST_CASE("barrier arrive_and_drop lowers the count of later phases", "[sync][barrier]") {
  auto body = []() -> Task<void> {
    Barrier barrier(3);
    auto a = coring::spawn([](Barrier& b) -> Task<void> {
      co_await b.arrive_and_wait();
      co_await b.arrive_and_wait();
    }(barrier));
    co_await coring::yield_now();
    barrier.arrive_and_drop();  // arrives at phase 0, then 2 parties are expected
    CHECK(barrier.expected() == 2);
    CHECK(barrier.remaining() == 1);
    bool leader = co_await barrier.arrive_and_wait();  // completes phase 0
    CHECK(leader);
    CHECK(barrier.phase() == 1);
    CHECK(barrier.remaining() == 2);
    leader = co_await barrier.arrive_and_wait();  // phase 1 needs `a` too
    CHECK_FALSE(leader);
    co_await a;
    CHECK(barrier.phase() == 2);
    barrier.arrive_and_drop();
    barrier.arrive_and_drop();
    CHECK(barrier.expected() == 0);
    CHECK_THROWS_AS(barrier.arrive_and_drop(), std::logic_error);
  };
  coring::run(body());
}

TEST_CASE("a cancelled barrier waiter leaves the barrier usable", "[sync][barrier]") {
  const auto before = coring::FrameAllocator::live_frames();
  auto body = []() -> Task<void> {
    Barrier barrier(2);
    auto a = coring::spawn(
        [](Barrier& b) -> Task<void> { (void)co_await b.arrive_and_wait(); }(barrier));
    co_await coring::yield_now();
    REQUIRE(barrier.waiting() == 1);
    a.cancel();
    CHECK(barrier.waiting() == 0);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    // Its arrival counted: one more completes phase 0.
    bool leader = co_await barrier.arrive_and_wait();
    CHECK(leader);
    CHECK(barrier.phase() == 1);
    auto b = coring::spawn(
        [](Barrier& bar) -> Task<void> { (void)co_await bar.arrive_and_wait(); }(barrier));
    leader = co_await barrier.arrive_and_wait();
    co_await b;
    CHECK(barrier.phase() == 2);
  };
  coring::run(body());
  CHECK(coring::FrameAllocator::live_frames() == before);
}
