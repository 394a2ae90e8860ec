// PriorityQueue: highest priority first, FIFO among equals, custom comparators,
// the seed's put(item, priority) style, bounded admission, close, cancellation.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

using coring::Prioritized;
using coring::PriorityQueue;
using coring::Task;

TEST_CASE("highest priority first, FIFO among equal priorities", "[sync][priority_queue]") {
  auto body = []() -> Task<std::vector<std::string>> {
    PriorityQueue<Prioritized<std::string>> q;
    co_await q.push("low-1", 1);
    co_await q.push("high-1", 9);
    co_await q.push("mid-1", 5);
    co_await q.push("high-2", 9);
    co_await q.push("low-2", 1);
    co_await q.push("mid-2", 5);
    co_await q.push("high-3", 9);
    std::vector<std::string> out;
    while (auto e = q.try_pop()) out.push_back(e->item);
    co_return out;
  };
  CHECK(coring::run(body()) ==
        std::vector<std::string>{"high-1", "high-2", "high-3", "mid-1", "mid-2", "low-1", "low-2"});
}

TEST_CASE("FIFO among equals holds over many interleaved pushes and pops",
          "[sync][priority_queue]") {
  // Priority = i % 3; within one priority the sequence numbers must come out increasing.
  auto body = []() -> Task<void> {
    PriorityQueue<Prioritized<int>> q;
    std::vector<int> last_seq(3, -1);
    int pushed = 0;
    for (int round = 0; round < 200; ++round) {
      for (int k = 0; k < 7; ++k, ++pushed) co_await q.push(pushed, pushed % 3);
      for (int k = 0; k < 5; ++k) {
        auto e = co_await q.pop();
        REQUIRE(e.has_value());
        REQUIRE(e->item > last_seq[static_cast<std::size_t>(e->priority)]);
        last_seq[static_cast<std::size_t>(e->priority)] = e->item;
      }
    }
    int prev_priority = 3;
    while (auto e = q.try_pop()) {
      REQUIRE(e->priority <= prev_priority);
      if (e->priority == prev_priority) {
        REQUIRE(e->item > last_seq[static_cast<std::size_t>(e->priority)]);
      }
      prev_priority = e->priority;
      last_seq[static_cast<std::size_t>(e->priority)] = e->item;
    }
  };
  coring::run(body());
}

TEST_CASE("a custom comparator: std::greater pops the smallest first", "[sync][priority_queue]") {
  auto body = []() -> Task<std::vector<int>> {
    PriorityQueue<int, std::greater<int>> q;
    for (int v : {5, 1, 4, 2, 3}) co_await q.push(v);
    std::vector<int> out;
    while (auto v = q.try_pop()) out.push_back(*v);
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("a stateful comparator; equal keys keep push order", "[sync][priority_queue]") {
  // Stateful: the instance given to the constructor must be the one used.
  struct ByLength {
    bool shortest_first = false;
    bool operator()(const std::string& a, const std::string& b) const {
      return shortest_first ? a.size() > b.size() : a.size() < b.size();
    }
  };
  auto body = []() -> Task<std::vector<std::string>> {
    PriorityQueue<std::string, ByLength> q(0, ByLength{true});
    for (const char* s : {"bb", "a", "ccc", "dd", "e", "fff"}) co_await q.push(s);
    std::vector<std::string> out;
    while (auto v = q.try_pop()) out.push_back(*v);
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<std::string>{"a", "e", "bb", "dd", "ccc", "fff"});
}

TEST_CASE("a waiting popper gets the first push; pops drain by priority after close",
          "[sync][priority_queue]") {
  auto body = []() -> Task<void> {
    PriorityQueue<int> q;
    auto h = coring::spawn(
        [](PriorityQueue<int>& in) -> Task<std::optional<int>> { co_return co_await in.pop(); }(q));
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == 1);
    co_await q.push(1);
    co_await q.push(3);
    co_await q.push(2);
    auto r1 = co_await h;
    CHECK(r1 == 1);  // handed to the waiter: nothing else was there
    q.close();
    CHECK_THROWS_AS(co_await q.push(4), coring::QueueClosed);
    auto r2 = co_await q.pop();
    CHECK(r2 == 3);
    auto r3 = co_await q.pop();
    CHECK(r3 == 2);
    auto r4 = co_await q.pop();
    CHECK_FALSE(r4.has_value());
  };
  coring::run(body());
}

TEST_CASE("bounded: a pop takes the highest stored item, then admits the oldest pusher",
          "[sync][priority_queue]") {
  auto body = []() -> Task<std::vector<int>> {
    PriorityQueue<int> q(2);
    co_await q.push(5);
    co_await q.push(1);
    auto pusher = [](PriorityQueue<int>& out, int v) -> Task<void> { co_await out.push(v); };
    auto a = coring::spawn(pusher(q, 9));
    auto b = coring::spawn(pusher(q, 7));
    co_await coring::yield_now();
    REQUIRE(q.waiting_pushers() == 2);
    std::vector<int> out;
    out.push_back(*co_await q.pop());  // 5; admits 9
    CHECK(q.size() == 2);
    CHECK(q.waiting_pushers() == 1);
    out.push_back(*co_await q.pop());  // 9; admits 7
    CHECK(q.waiting_pushers() == 0);
    co_await a;
    co_await b;
    while (auto v = q.try_pop()) out.push_back(*v);
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<int>{5, 9, 7, 1});
}

TEST_CASE("a cancelled pusher's item never reaches the priority queue", "[sync][priority_queue]") {
  auto body = []() -> Task<void> {
    PriorityQueue<int> q(1);
    co_await q.push(1);
    auto a =
        coring::spawn([](PriorityQueue<int>& out) -> Task<void> { co_await out.push(100); }(q));
    co_await coring::yield_now();
    a.cancel();
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    CHECK(q.try_pop() == 1);
    CHECK_FALSE(q.try_pop().has_value());
  };
  coring::run(body());
}
