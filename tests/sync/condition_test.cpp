// Condition: FIFO notify_one/notify_all, the mutex released while waiting and
// held again on return (also on cancel and timeout), predicates, wait_for,
// many waiters, destruction with waiters.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using coring::Condition;
using coring::JoinHandle;
using coring::Mutex;
using coring::MutexGuard;
using coring::Task;
using namespace std::chrono_literals;

namespace {

Task<void> wait_and_record(Mutex& m, Condition& cv, std::vector<int>& out, int id) {
  MutexGuard g = co_await m.lock();
  co_await cv.wait(g);
  CHECK(g.owns_lock());
  CHECK(m.locked());
  out.push_back(id);
}

}  // namespace

TEST_CASE("notify_one wakes the oldest waiter; wait releases the mutex meanwhile",
          "[sync][condition]") {
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Mutex m("m");
    Condition cv(m);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(wait_and_record(m, cv, order, i)));
    co_await coring::yield_now();
    CHECK(cv.waiting() == 3);
    CHECK_FALSE(m.locked());  // every waiter gave the mutex back
    cv.notify_one();
    co_await coring::yield_now();
    co_await coring::yield_now();
    CHECK(order == std::vector<int>{0});
    cv.notify_one();
    cv.notify_one();
    for (auto& h : hs) co_await h;
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2});
}

TEST_CASE("notify_all wakes everyone in order, each re-taking the mutex in turn",
          "[sync][condition]") {
  std::vector<int> order;
  int inside = 0;
  int max_inside = 0;
  auto waiter = [&](Mutex& m, Condition& cv, int id) -> Task<void> {
    MutexGuard g = co_await m.lock();
    co_await cv.wait(g);
    ++inside;
    max_inside = std::max(max_inside, inside);
    order.push_back(id);
    co_await coring::yield_now();  // hold the mutex across a switch
    --inside;
  };
  auto body = [&]() -> Task<void> {
    Mutex m;
    Condition cv(m);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 4; ++i) hs.push_back(coring::spawn(waiter(m, cv, i)));
    co_await coring::yield_now();
    {
      MutexGuard g = co_await m.lock();
      cv.notify_all();
      CHECK(cv.waiting() == 0);
      co_await coring::yield_now();
      CHECK(order.empty());  // they queue for the mutex the notifier holds
      CHECK(m.waiting() == 4);
    }
    for (auto& h : hs) co_await h;
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 3});
  CHECK(max_inside == 1);
}

TEST_CASE("wait with a predicate returns only once it holds", "[sync][condition]") {
  auto body = []() -> Task<int> {
    Mutex m;
    Condition cv(m);
    int value = 0;
    int wakeups = 0;
    auto consumer = coring::spawn([](Mutex& mx, Condition& c, int& v, int& n) -> Task<int> {
      MutexGuard g = co_await mx.lock();
      co_await c.wait(g, [&] {
        ++n;
        return v >= 3;
      });
      CHECK(g.owns_lock());
      co_return v;
    }(m, cv, value, wakeups));
    for (int i = 1; i <= 3; ++i) {
      co_await coring::yield_now();
      MutexGuard g = co_await m.lock();
      value = i;
      cv.notify_all();
    }
    const int seen = co_await consumer;
    CHECK(wakeups == 4);  // checked first, then once per notify
    co_return seen;
  };
  CHECK(coring::run(body()) == 3);
}

TEST_CASE("a predicate already true does not wait", "[sync][condition]") {
  auto body = []() -> Task<bool> {
    Mutex m;
    Condition cv(m);
    MutexGuard g = co_await m.lock();
    co_await cv.wait(g, [] { return true; });  // would hang if it waited
    co_return g.owns_lock() && m.locked();
  };
  CHECK(coring::run(body()));
}

TEST_CASE("wait_for returns false on timeout and true when notified, holding the mutex",
          "[sync][condition]") {
  auto body = []() -> Task<void> {
    Mutex m;
    Condition cv(m);
    MutexGuard g = co_await m.lock();
    const auto t0 = coring::Clock::now();
    const bool notified = co_await cv.wait_for(g, 5ms);
    CHECK_FALSE(notified);
    CHECK(coring::Clock::now() - t0 >= 5ms);
    CHECK(g.owns_lock());
    CHECK(m.locked());
    CHECK(cv.waiting() == 0);

    auto notifier = coring::spawn([](Mutex& mx, Condition& c) -> Task<void> {
      MutexGuard lock = co_await mx.lock();
      c.notify_one();
    }(m, cv));
    const bool in_time = co_await cv.wait_for(g, 10s);
    CHECK(in_time);
    CHECK(g.owns_lock());
    co_await notifier;
  };
  coring::run(body());
}

TEST_CASE("a waiter cancelled while waiting holds the mutex again when its frame unwinds",
          "[sync][condition]") {
  auto body = []() -> Task<void> {
    Mutex m("m");
    Condition cv(m);
    bool owned_on_cancel = false;
    auto h = coring::spawn([](Mutex& mx, Condition& c, bool& owned) -> Task<void> {
      MutexGuard g = co_await mx.lock();
      // Destroyed before `g` as the frame unwinds: sees what g owns then.
      struct Probe {
        MutexGuard& guard;
        Mutex& mutex;
        bool& out;
        ~Probe() { out = guard.owns_lock() && mutex.locked(); }
      } probe{g, mx, owned};
      co_await c.wait(g);
    }(m, cv, owned_on_cancel));
    co_await coring::yield_now();
    REQUIRE(cv.waiting() == 1);
    MutexGuard mine = co_await m.lock();  // free while h waits
    h.cancel();
    CHECK(cv.waiting() == 0);
    co_await coring::yield_now();
    co_await coring::yield_now();
    CHECK_FALSE(h.done());  // it waits for the mutex before it may unwind
    CHECK(m.waiting() == 1);
    mine.unlock();
    {
      const auto ended = co_await h.join();
      CHECK(ended.cancelled());
    }
    CHECK(owned_on_cancel);
    CHECK_FALSE(m.locked());  // and RAII released it while unwinding
    MutexGuard again = co_await m.lock();
    CHECK(again.owns_lock());
  };
  coring::run(body());
}

TEST_CASE("with_timeout around wait: false, the guard holds the mutex, nothing left parked",
          "[sync][condition]") {
  auto body = []() -> Task<void> {
    Mutex m;
    Condition cv(m);
    MutexGuard g = co_await m.lock();
    const bool finished = co_await coring::with_timeout(5ms, cv.wait(g));
    CHECK_FALSE(finished);
    CHECK(g.owns_lock());
    CHECK(m.locked());
    CHECK(cv.waiting() == 0);
    cv.notify_all();  // nobody there
    g.unlock();
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
}

TEST_CASE("a cancel that arrives after the notify does not interrupt the wait",
          "[sync][condition]") {
  auto body = []() -> Task<void> {
    Mutex m;
    Condition cv(m);
    bool returned = false;
    auto h = coring::spawn([](Mutex& mx, Condition& c, bool& ret) -> Task<void> {
      MutexGuard g = co_await mx.lock();
      co_await c.wait(g);
      ret = g.owns_lock();
      co_await coring::yield_now();  // unwound here
    }(m, cv, returned));
    co_await coring::yield_now();
    cv.notify_one();
    h.cancel();
    {
      const auto ended = co_await h.join();
      CHECK(ended.cancelled());
    }
    CHECK(returned);
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
}

TEST_CASE("waiting with a guard of another mutex is an error", "[sync][condition]") {
  auto body = []() -> Task<std::string> {
    Mutex m("bound");
    Mutex other("other");
    Condition cv(m);
    MutexGuard g = co_await other.lock();
    try {
      co_await cv.wait(g);
    } catch (const std::logic_error& e) {
      CHECK(g.owns_lock());
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("'bound'"));
}

TEST_CASE("100,000 waiters all wake on notify_all without leaking frames", "[sync][condition]") {
  const auto before = coring::FrameAllocator::live_frames();
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Mutex m;
    Condition cv(m);
    for (int i = 0; i < 100'000; ++i) coring::spawn(wait_and_record(m, cv, order, i)).detach();
    co_await coring::yield_now();
    CHECK(cv.waiting() == 100'000);
    cv.notify_all();
    while (order.size() < 100'000) co_await coring::yield_now();
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
  REQUIRE(order.size() == 100'000);
  bool in_order = true;
  for (int i = 0; i < 100'000; ++i) in_order = in_order && order[static_cast<std::size_t>(i)] == i;
  CHECK(in_order);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("destroying a condition with waiters is reported; the waiter gets its mutex back",
          "[sync][condition]") {
  auto body = []() -> Task<std::string> {
    Mutex m;
    auto cv = std::make_unique<Condition>(m);
    bool owned = false;
    auto h = coring::spawn([](Mutex& mx, Condition& c, bool& own) -> Task<void> {
      MutexGuard g = co_await mx.lock();
      try {
        co_await c.wait(g);
      } catch (const std::logic_error&) {
        own = g.owns_lock() && mx.locked();
        throw;
      }
    }(m, *cv, owned));
    co_await coring::yield_now();
    cv.reset();
    std::string what;
    try {
      co_await h;
    } catch (const std::logic_error& e) {
      what = e.what();
    }
    CHECK(owned);
    CHECK_FALSE(m.locked());
    co_return what;
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("Condition destroyed while tasks were waiting"));
}
