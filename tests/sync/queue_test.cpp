// Queue: FIFO order of items and waiters, backpressure, close semantics,
// cancellation and timeouts (no item lost or duplicated), many waiters, leaks.
//
// Note: never write co_await inside a Catch assertion macro. Catch repeats the
// expression in an unevaluated-at-run-time `while (false && (expr))`, and GCC 12
// still evaluates a co_await placed there (the co_await runs twice).
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using coring::Queue;
using coring::Task;
using namespace std::chrono_literals;

namespace {

Task<std::optional<int>> pop_one(Queue<int>& q) {
  co_return co_await q.pop();
}

Task<void> push_one(Queue<int>& q, int v) {
  co_await q.push(v);
}

// Everything left in the queue, without waiting.
std::vector<int> drain(Queue<int>& q) {
  std::vector<int> out;
  while (auto v = q.try_pop()) out.push_back(*v);
  return out;
}

constexpr int kSentinel = -1;

}  // namespace

TEST_CASE("items come out in the order they were pushed", "[sync][queue]") {
  auto body = []() -> Task<std::vector<int>> {
    Queue<int> q;
    for (int i = 0; i < 5; ++i) co_await q.push(i);
    CHECK(q.size() == 5);
    CHECK(q.try_push(5));
    std::vector<int> out;
    for (int i = 0; i < 6; ++i) out.push_back(*co_await q.pop());
    CHECK(q.empty());
    CHECK_FALSE(q.try_pop().has_value());
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<int>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("waiting poppers are served oldest first, by direct hand-off", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    std::vector<coring::JoinHandle<std::optional<int>>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(pop_one(q)));
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == 3);
    co_await q.push(10);
    CHECK(q.try_push(11));
    co_await q.push(12);
    CHECK(q.size() == 0);  // handed over, never stored: nobody can barge in
    CHECK(q.waiting_poppers() == 0);
    CHECK_FALSE(q.try_pop().has_value());
    auto r1 = co_await hs[0];
    CHECK(r1 == 10);
    auto r2 = co_await hs[1];
    CHECK(r2 == 11);
    auto r3 = co_await hs[2];
    CHECK(r3 == 12);
  };
  coring::run(body());
}

TEST_CASE("waiting pushers are admitted oldest first as room appears", "[sync][queue]") {
  auto body = []() -> Task<std::vector<int>> {
    Queue<int> q(1);
    co_await q.push(0);
    CHECK(q.full());
    std::vector<coring::JoinHandle<void>> hs;
    for (int i = 1; i <= 3; ++i) hs.push_back(coring::spawn(push_one(q, i)));
    co_await coring::yield_now();
    REQUIRE(q.waiting_pushers() == 3);
    CHECK_FALSE(q.try_push(99));
    std::vector<int> out;
    for (int i = 0; i < 4; ++i) {
      out.push_back(*co_await q.pop());
      CHECK(q.size() == (i < 3 ? 1u : 0u));  // the next pusher's item took the place
    }
    for (auto& h : hs) co_await h;
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("a bounded queue never holds more than its capacity", "[sync][queue]") {
  constexpr int kItems = 2000;
  constexpr std::size_t kCapacity = 4;
  std::size_t max_seen = 0;
  std::vector<int> got;
  auto body = [&]() -> Task<void> {
    Queue<int> q(kCapacity);
    auto producer = coring::spawn([](Queue<int>& out, std::size_t& seen) -> Task<void> {
      for (int i = 0; i < kItems; ++i) {
        co_await out.push(i);
        seen = std::max(seen, out.size());
      }
      out.close();
    }(q, max_seen));
    // A consumer slower than the producer: it yields between pops.
    while (auto v = co_await q.pop()) {
      got.push_back(*v);
      max_seen = std::max(max_seen, q.size());
      co_await coring::yield_now();
    }
    co_await producer;
  };
  coring::run(body());
  CHECK(max_seen == kCapacity);  // reached, never exceeded
  REQUIRE(got.size() == kItems);
  for (int i = 0; i < kItems; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("close: pops drain what is left, then report closed", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    co_await q.push(1);
    co_await q.push(2);
    q.close();
    q.close();  // idempotent
    CHECK(q.closed());
    auto r4 = co_await q.pop();
    CHECK(r4 == 1);
    CHECK(q.try_pop() == 2);
    auto r5 = co_await q.pop();
    CHECK_FALSE(r5.has_value());
    auto r6 = co_await q.pop();
    CHECK_FALSE(r6.has_value());  // stays closed
  };
  coring::run(body());
}

TEST_CASE("push after close throws QueueClosed", "[sync][queue]") {
  auto body = []() -> Task<std::string> {
    Queue<std::string> q;
    q.close();
    CHECK_THROWS_AS(q.try_push("x"), coring::QueueClosed);
    CHECK(q.empty());
    try {
      co_await q.push("y");
    } catch (const coring::QueueClosed& e) {
      CHECK(q.empty());
      co_return e.what();
    }
    co_return "no error";
  };
  CHECK(coring::run(body()) == "coring: push to a closed Queue");
}

TEST_CASE("close wakes every waiter: poppers get closed, pushers the error", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> empty_q;
    auto p1 = coring::spawn(pop_one(empty_q));
    auto p2 = coring::spawn(pop_one(empty_q));
    Queue<int> full_q(1);
    co_await full_q.push(7);
    auto s1 = coring::spawn(push_one(full_q, 8));
    auto s2 = coring::spawn(push_one(full_q, 9));
    co_await coring::yield_now();
    REQUIRE(empty_q.waiting_poppers() == 2);
    REQUIRE(full_q.waiting_pushers() == 2);
    empty_q.close();
    full_q.close();
    CHECK(empty_q.waiting_poppers() == 0);
    CHECK(full_q.waiting_pushers() == 0);
    auto r7 = co_await p1;
    CHECK_FALSE(r7.has_value());
    auto r8 = co_await p2;
    CHECK_FALSE(r8.has_value());
    CHECK_THROWS_AS(co_await s1, coring::QueueClosed);
    CHECK_THROWS_AS(co_await s2, coring::QueueClosed);
    CHECK(drain(full_q) == std::vector<int>{7});  // the refused items were not enqueued
  };
  coring::run(body());
}

TEST_CASE("a cancelled popper takes nothing and the queue stays usable", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    auto a = coring::spawn(pop_one(q));
    auto b = coring::spawn(pop_one(q));
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == 2);
    a.cancel();
    CHECK(q.waiting_poppers() == 1);
    co_await q.push(5);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    auto r9 = co_await b;
    CHECK(r9 == 5);
    CHECK(q.empty());
  };
  coring::run(body());
}

TEST_CASE("a popper cancelled after an item was handed to it still gets the item",
          "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    auto a = coring::spawn(pop_one(q));
    co_await coring::yield_now();
    co_await q.push(42);  // handed to `a`, which is scheduled but has not run
    a.cancel();
    auto r10 = co_await a;
    CHECK(r10 == 42);  // not lost...
    CHECK(q.empty());  // ...and not still queued either
  };
  coring::run(body());
}

TEST_CASE("a cancelled pusher's item is not enqueued", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q(1);
    co_await q.push(1);
    auto a = coring::spawn(push_one(q, 2));
    auto b = coring::spawn(push_one(q, 3));
    co_await coring::yield_now();
    REQUIRE(q.waiting_pushers() == 2);
    a.cancel();
    CHECK(q.waiting_pushers() == 1);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    auto r11 = co_await q.pop();
    CHECK(r11 == 1);
    auto r12 = co_await q.pop();
    CHECK(r12 == 3);
    co_await b;
    CHECK(q.empty());
  };
  coring::run(body());
}

TEST_CASE("with_timeout on pop and push: timeouts lose nothing", "[sync][queue]") {
  const auto before = coring::FrameAllocator::live_frames();
  auto body = []() -> Task<void> {
    Queue<int> q(1);
    // Pop on an empty queue times out; the queue is left without a waiter.
    std::optional<int> r = co_await coring::with_timeout(5ms, q.pop());
    CHECK_FALSE(r.has_value());
    CHECK_FALSE(q.closed());  // nullopt and not closed: it timed out
    CHECK(q.waiting_poppers() == 0);
    // pop(timeout) is the same thing.
    r = co_await q.pop(5ms);
    CHECK_FALSE(r.has_value());
    CHECK(q.waiting_poppers() == 0);
    // An item that arrives in time is returned.
    auto late = coring::spawn([](Queue<int>& out) -> Task<void> {
      co_await coring::sleep_for(1ms);
      co_await out.push(1);
    }(q));
    r = co_await coring::with_timeout(10s, q.pop());
    CHECK(r == 1);
    co_await late;
    // Push on a full queue times out; its item is not enqueued.
    co_await q.push(2);
    auto r13 = co_await coring::with_timeout(5ms, q.push(3));
    CHECK_FALSE(r13);
    CHECK(q.waiting_pushers() == 0);
    CHECK(drain(q) == std::vector<int>{2});
  };
  coring::run(body());
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("an item handed over just as the timeout fires is returned, not lost", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<int> q(1);
    auto popper = coring::spawn(
        [](Queue<int>& in) -> Task<std::optional<int>> { co_return co_await in.pop(1ms); }(q));
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == 1);
    std::this_thread::sleep_for(5ms);  // the deadline passes while the loop is busy here
    co_await q.push(7);                // handed over before the timer is processed
    auto r = co_await popper;
    REQUIRE(r.has_value());
    CHECK(*r == 7);
    CHECK(q.empty());

    // The same race for a pusher: admitted just as its timeout fires.
    co_await q.push(1);
    auto pusher = coring::spawn([](Queue<int>& out) -> Task<bool> {
      co_return co_await coring::with_timeout(1ms, out.push(2));
    }(q));
    co_await coring::yield_now();
    REQUIRE(q.waiting_pushers() == 1);
    std::this_thread::sleep_for(5ms);
    CHECK(q.try_pop() == 1);  // admits the pusher's item
    auto r14 = co_await pusher;
    CHECK(r14);  // so its push succeeded
    CHECK(drain(q) == std::vector<int>{2});
  };
  coring::run(body());
}

TEST_CASE("the seed's sentinel pattern: each consumer re-pushes it and stops", "[sync][queue]") {
  std::vector<int> got;
  auto body = [&]() -> Task<void> {
    Queue<int> q;
    auto consumer = [](Queue<int>& in, std::vector<int>& out) -> Task<void> {
      while (true) {
        int v = *co_await in.pop();
        if (v == kSentinel) {
          co_await in.push(kSentinel);
          break;
        }
        out.push_back(v);
      }
    };
    auto c1 = coring::spawn(consumer(q, got));
    auto c2 = coring::spawn(consumer(q, got));
    for (int i = 10; i > 0; --i) {
      co_await q.push(i);
      co_await coring::yield_now();
    }
    co_await q.push(kSentinel);
    co_await c1;
    co_await c2;
    CHECK(drain(q) == std::vector<int>{kSentinel});
  };
  coring::run(body());
  CHECK(got == std::vector<int>{10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
}

TEST_CASE("move-only items; a failed try_push leaves the item with the caller", "[sync][queue]") {
  auto body = []() -> Task<void> {
    Queue<std::unique_ptr<int>> q(1);
    co_await q.push(std::make_unique<int>(1));
    auto p = std::make_unique<int>(2);
    CHECK_FALSE(q.try_push(std::move(p)));
    REQUIRE(p != nullptr);
    CHECK(*p == 2);
    auto v = co_await q.pop();
    REQUIRE(v.has_value());
    CHECK(**v == 1);
    CHECK(q.try_push(std::move(p)));
    CHECK(p == nullptr);
    CHECK(**q.try_pop() == 2);
  };
  coring::run(body());
}

TEST_CASE("100,000 waiting poppers and 100,000 waiting pushers, in FIFO order",
          "[sync][queue][stress]") {
  constexpr int kN = 100'000;
  const auto before = coring::FrameAllocator::live_frames();
  std::vector<int> got(kN, -1);
  auto body = [&]() -> Task<void> {
    Queue<int> q;
    for (int i = 0; i < kN; ++i) {
      coring::spawn([](Queue<int>& in, int& slot) -> Task<void> { slot = *co_await in.pop(); }(
                                                      q, got[static_cast<std::size_t>(i)]))
          .detach();
    }
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == kN);
    for (int i = 0; i < kN; ++i) co_await q.push(i);
    while (q.waiting_poppers() != 0 || got.back() < 0) co_await coring::yield_now();

    Queue<int> bounded(1);
    co_await bounded.push(-1);
    for (int i = 0; i < kN; ++i) coring::spawn(push_one(bounded, i)).detach();
    co_await coring::yield_now();
    REQUIRE(bounded.waiting_pushers() == kN);
    auto r15 = co_await bounded.pop();
    CHECK(r15 == -1);
    for (int i = 0; i < kN; ++i) {
      auto r16 = co_await bounded.pop();
      REQUIRE(r16 == i);
    }
  };
  coring::run(body());
  for (int i = 0; i < kN; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("destroying a queue with waiters is reported, not undefined", "[sync][queue]") {
  auto body = []() -> Task<std::string> {
    auto q = std::make_unique<Queue<int>>();
    auto h = coring::spawn(pop_one(*q));
    co_await coring::yield_now();
    q.reset();
    try {
      (void)co_await h;
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("Queue destroyed while tasks were waiting"));
}
