// Event: set/clear/is_set, every waiter wakes (FIFO), cancellation, destruction.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <string>
#include <vector>

using coring::Event;
using coring::Task;

TEST_CASE("every waiter wakes on set(), in the order it started waiting", "[sync][event]") {
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Event ev;
    std::vector<coring::JoinHandle<void>> hs;
    for (int i = 0; i < 5; ++i) {
      hs.push_back(coring::spawn([](Event& e, std::vector<int>& out, int id) -> Task<void> {
        co_await e.wait();
        out.push_back(id);
      }(ev, order, i)));
    }
    co_await coring::yield_now();
    CHECK(ev.waiting() == 5);
    CHECK(order.empty());
    ev.set();
    CHECK(order.empty());  // set() schedules, it does not run waiters inline
    for (auto& h : hs) co_await h;
    CHECK(ev.is_set());
    co_await ev.wait();  // already set: no suspension
    ev.clear();
    CHECK_FALSE(ev.is_set());
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("a cancelled waiter unlinks itself and the event stays usable", "[sync][event]") {
  auto body = []() -> Task<int> {
    Event ev;
    auto waiter = [](Event& e) -> Task<int> {
      co_await e.wait();
      co_return 1;
    };
    auto a = coring::spawn(waiter(ev));
    auto b = coring::spawn(waiter(ev));
    co_await coring::yield_now();
    REQUIRE(ev.waiting() == 2);
    a.cancel();
    CHECK(ev.waiting() == 1);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    ev.set();
    co_return co_await b;
  };
  CHECK(coring::run(body()) == 1);
}

TEST_CASE("100,000 waiters all wake", "[sync][event]") {
  const auto before = coring::FrameAllocator::live_frames();
  long woken = 0;
  auto body = [&]() -> Task<void> {
    Event ev;
    for (int i = 0; i < 100'000; ++i) {
      coring::spawn([](Event& e, long& n) -> Task<void> {
        co_await e.wait();
        ++n;
      }(ev, woken))
          .detach();
    }
    co_await coring::yield_now();
    CHECK(ev.waiting() == 100'000);
    ev.set();
    while (woken < 100'000) co_await coring::yield_now();
  };
  coring::run(body());
  CHECK(woken == 100'000);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("destroying an event with waiters is reported, not undefined", "[sync][event]") {
  auto body = []() -> Task<std::string> {
    auto ev = std::make_unique<Event>();
    auto h = coring::spawn([](Event& e) -> Task<void> { co_await e.wait(); }(*ev));
    co_await coring::yield_now();
    ev.reset();  // reported on stderr; the waiter is woken with an error
    try {
      co_await h;
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("Event destroyed while tasks were waiting"));
}

TEST_CASE("with_timeout around an event wait times out, then sees the event", "[sync][event]") {
  auto body = []() -> Task<int> {
    Event ev;
    const bool first = co_await coring::with_timeout(std::chrono::milliseconds(5), ev.wait());
    CHECK_FALSE(first);
    CHECK(ev.waiting() == 0);  // the timed-out waiter unlinked itself
    auto setter = coring::spawn([](Event& e) -> Task<void> {
      co_await coring::sleep_for(std::chrono::milliseconds(1));
      e.set();
    }(ev));
    const bool second = co_await coring::with_timeout(std::chrono::seconds(10), ev.wait());
    co_await setter;
    co_return second ? 1 : 0;
  };
  CHECK(coring::run(body()) == 1);
}
