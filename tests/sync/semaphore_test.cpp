// Semaphore: FIFO hand-off, no barging, permits, cancellation and timeouts,
// many waiters, destruction with waiters.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using coring::JoinHandle;
using coring::Semaphore;
using coring::Task;
using namespace std::chrono_literals;

namespace {

Task<void> take_and_record(Semaphore& s, std::vector<int>& out, int id) {
  co_await s.acquire();
  out.push_back(id);
}

}  // namespace

TEST_CASE("try_acquire and release count units", "[sync][semaphore]") {
  Semaphore s(2);
  CHECK(s.available() == 2);
  CHECK(s.try_acquire());
  CHECK(s.try_acquire());
  CHECK_FALSE(s.try_acquire());
  CHECK(s.available() == 0);
  s.release(3);
  CHECK(s.available() == 3);
  {
    auto p = s.try_acquire_permit();
    REQUIRE(p.has_value());
    CHECK(s.available() == 2);
  }
  CHECK(s.available() == 3);
}

TEST_CASE("acquire does not suspend while units are available", "[sync][semaphore]") {
  auto body = []() -> Task<std::size_t> {
    Semaphore s(1);
    co_await s.acquire();  // would hang the loop if it parked: nobody releases
    co_return s.available();
  };
  CHECK(coring::run(body()) == 0);
}

TEST_CASE("waiters are released one at a time, oldest first", "[sync][semaphore]") {
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Semaphore s(0);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 5; ++i) hs.push_back(coring::spawn(take_and_record(s, order, i)));
    co_await coring::yield_now();
    REQUIRE(s.waiting() == 5);
    s.release();
    CHECK(order.empty());  // release() schedules the waiter, it does not run it inline
    co_await coring::yield_now();
    CHECK(order == std::vector<int>{0});
    s.release(4);
    for (auto& h : hs) co_await h;
    CHECK(s.available() == 0);
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("a released unit goes to the waiter: try_acquire cannot barge in", "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(0);
    bool got = false;
    auto h = coring::spawn([](Semaphore& sem, bool& done) -> Task<void> {
      co_await sem.acquire();
      done = true;
    }(s, got));
    co_await coring::yield_now();
    s.release();
    CHECK(s.available() == 0);
    CHECK_FALSE(s.try_acquire());  // the unit is already the waiter's
    CHECK_FALSE(s.try_acquire_permit().has_value());
    co_await h;
    CHECK(got);
    s.release(2);  // one more than waiters: the rest is counted
    CHECK(s.available() == 2);
  };
  coring::run(body());
}

TEST_CASE("under contention permits go round in FIFO order", "[sync][semaphore]") {
  std::vector<int> order;
  auto worker = [](Semaphore& s, std::vector<int>& out, int id) -> Task<void> {
    for (int round = 0; round < 3; ++round) {
      auto permit = co_await s.acquire_permit();
      out.push_back(id);
      co_await coring::yield_now();  // hold it across a switch: the others queue up
    }
  };
  auto body = [&]() -> Task<void> {
    Semaphore s(1);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(worker(s, order, i)));
    for (auto& h : hs) co_await h;
    CHECK(s.available() == 1);
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2});
}

TEST_CASE("a permit gives its unit back on destruction, on reset() and when moved over",
          "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(2);
    {
      coring::SemaphorePermit p = co_await s.acquire_permit();
      CHECK(p.holds());
      CHECK(s.available() == 1);
      coring::SemaphorePermit q = std::move(p);
      CHECK_FALSE(p.holds());
      CHECK(s.available() == 1);
      q.reset();
      CHECK_FALSE(q.holds());
      CHECK(s.available() == 2);
      q = co_await s.acquire_permit();
      Semaphore* raw = q.release();  // stops owning, gives nothing back
      CHECK(raw == &s);
      CHECK_FALSE(q.holds());
      CHECK(s.available() == 1);
      raw->release();
      CHECK(s.available() == 2);
      q = co_await s.acquire_permit();
      coring::SemaphorePermit r = co_await s.acquire_permit();
      CHECK(s.available() == 0);
      r = std::move(q);  // r's old unit goes back
      CHECK(s.available() == 1);
    }
    CHECK(s.available() == 2);
  };
  coring::run(body());
}

TEST_CASE("a cancelled waiter takes nothing and the next waiter gets the unit",
          "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(0);
    std::vector<int> order;
    auto a = coring::spawn(take_and_record(s, order, 0));
    auto b = coring::spawn(take_and_record(s, order, 1));
    auto c = coring::spawn(take_and_record(s, order, 2));
    co_await coring::yield_now();
    REQUIRE(s.waiting() == 3);
    b.cancel();
    CHECK(s.waiting() == 2);
    {
      const auto ended = co_await b.join();
      CHECK(ended.cancelled());
    }
    s.release(2);
    co_await a;
    co_await c;
    CHECK(order == std::vector<int>{0, 2});
    CHECK(s.available() == 0);
  };
  coring::run(body());
}

TEST_CASE("a timed-out acquire leaves the semaphore as it was", "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(0);
    const bool got = co_await coring::with_timeout(5ms, s.acquire());
    CHECK_FALSE(got);
    CHECK(s.waiting() == 0);
    s.release();
    CHECK(s.available() == 1);  // nobody took it on the timed-out task's behalf
    const bool again = co_await coring::with_timeout(5s, s.acquire());
    CHECK(again);
    CHECK(s.available() == 0);
    auto permit = co_await coring::with_timeout(5ms, s.acquire_permit());
    CHECK_FALSE(permit.has_value());
  };
  coring::run(body());
}

TEST_CASE("a unit handed over before a cancel is kept, and a permit gives it back",
          "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(0);
    bool got_plain = false;
    bool got_permit = false;
    auto plain = coring::spawn([](Semaphore& sem, bool& got) -> Task<void> {
      co_await sem.acquire();
      got = true;
      co_await coring::yield_now();  // unwound here
    }(s, got_plain));
    co_await coring::yield_now();
    s.release();     // handed to `plain`...
    plain.cancel();  // ...which is cancelled before it runs
    {
      const auto ended = co_await plain.join();
      CHECK(ended.cancelled());
    }
    CHECK(got_plain);  // the co_await returned the unit, it was not lost or doubled
    CHECK(s.available() == 0);

    auto raii = coring::spawn([](Semaphore& sem, bool& got) -> Task<void> {
      auto p = co_await sem.acquire_permit();
      got = true;
      co_await coring::yield_now();
    }(s, got_permit));
    co_await coring::yield_now();
    s.release();
    raii.cancel();
    {
      const auto ended = co_await raii.join();
      CHECK(ended.cancelled());
    }
    CHECK(got_permit);
    CHECK(s.available() == 1);  // the permit gave it back as the task unwound
  };
  coring::run(body());
}

TEST_CASE("the outer task's cancel reaches an acquire inside with_timeout", "[sync][semaphore]") {
  auto body = []() -> Task<void> {
    Semaphore s(0);
    auto h = coring::spawn([](Semaphore& sem) -> Task<bool> {
      co_return co_await coring::with_timeout(10s, sem.acquire());
    }(s));
    co_await coring::yield_now();
    REQUIRE(s.waiting() == 1);
    h.cancel();
    {
      const auto ended = co_await h.join();
      CHECK(ended.cancelled());
    }
    CHECK(s.waiting() == 0);
    s.release();
    CHECK(s.available() == 1);
  };
  coring::run(body());
}

TEST_CASE("100,000 waiters are all released, in order, without leaking frames",
          "[sync][semaphore]") {
  const auto before = coring::FrameAllocator::live_frames();
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Semaphore s(0);
    for (int i = 0; i < 100'000; ++i) coring::spawn(take_and_record(s, order, i)).detach();
    co_await coring::yield_now();
    CHECK(s.waiting() == 100'000);
    s.release(100'000);
    while (order.size() < 100'000) co_await coring::yield_now();
    CHECK(s.available() == 0);
  };
  coring::run(body());
  REQUIRE(order.size() == 100'000);
  bool in_order = true;
  for (int i = 0; i < 100'000; ++i) in_order = in_order && order[static_cast<std::size_t>(i)] == i;
  CHECK(in_order);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("destroying a semaphore with waiters is reported, not undefined", "[sync][semaphore]") {
  auto body = []() -> Task<std::string> {
    auto s = std::make_unique<Semaphore>(0);
    auto h = coring::spawn([](Semaphore& sem) -> Task<void> { co_await sem.acquire(); }(*s));
    co_await coring::yield_now();
    s.reset();
    try {
      co_await h;
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("Semaphore destroyed while tasks were waiting"));
}
