// PollableQueue: threads push, a task on a loop pops. Nothing lost or
// duplicated under many producers, close and timeouts, cancellation racing
// deliveries, put_back (select's losers), bounded queues from threads and
// tasks, fd() with poll(2), destruction with a waiter parked, loop shutdown
// with an item on its way. Both backends run every test (the suite's epoll
// pass); "both backends, explicitly" builds one loop of each kind.
//
// Never co_await inside a Catch macro (GCC 12 evaluates it twice).
#include <poll.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using coring::PollableQueue;
using coring::Task;
using namespace std::chrono_literals;

namespace {

// Item i of producer p.
std::uint64_t item(std::uint64_t p, std::uint64_t i) {
  return (p << 32) | i;
}

struct Tally {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t xor_mix = 0;
  std::vector<std::int64_t> last;  // per producer: the last index seen (FIFO check)
  bool in_order = true;
  explicit Tally(std::size_t producers) : last(producers, -1) {}
  void add(std::uint64_t v) {
    ++count;
    sum += v;
    xor_mix ^= v * 0x9E3779B97F4A7C15ull;
    const auto p = static_cast<std::size_t>(v >> 32);
    const auto i = static_cast<std::int64_t>(v & 0xffffffffu);
    if (p >= last.size() || i != last[p] + 1) in_order = false;
    if (p < last.size()) last[p] = i;
  }
};

Tally expected_tally(std::size_t producers, std::uint64_t per_producer) {
  Tally t(producers);
  for (std::uint64_t p = 0; p < producers; ++p) {
    for (std::uint64_t i = 0; i < per_producer; ++i) t.add(item(p, i));
  }
  return t;
}

Task<void> consume_all(PollableQueue<std::uint64_t>& q, Tally& t) {
  while (auto v = co_await q.pop()) t.add(*v);
}

void produce(PollableQueue<std::uint64_t>& q, std::uint64_t p, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) q.push(item(p, i));
}

bool readable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN) != 0;
}

// Awaits a pop, then gives the item back instead of taking it, as select()
// does for a loser; returns whether the awaiter held one.
template <class T = int>
struct PutBackInstead {
  typename PollableQueue<T>::PopAwaiter a;
  bool await_ready() { return a.await_ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return a.await_suspend(h);
  }
  bool await_resume() {
    const bool held = a.holds_item();
    a.put_back();
    return held;
  }
};

Task<void> pop_into(PollableQueue<int>& q, std::optional<int>& got) {
  got = co_await q.pop();
}

Task<std::optional<int>> pop_one(PollableQueue<int>& q) {
  co_return co_await q.pop();
}

Task<void> pop_and_put_back(PollableQueue<int>& q, bool& held) {
  held = co_await PutBackInstead<>{q.pop()};
}

// Pops strings until closed; every other one is first taken and put back.
Task<void> pop_strings(PollableQueue<std::string>& q, std::vector<std::string>& got) {
  for (int n = 0;; ++n) {
    if (n % 2 == 0) {
      const bool held = co_await PutBackInstead<std::string>{q.pop()};
      if (!held && q.closed() && q.empty()) co_return;
    }
    auto v = co_await q.pop();
    if (!v) co_return;
    got.push_back(std::move(*v));
  }
}

Task<void> pop_all(PollableQueue<int>& q, std::vector<int>& got) {
  while (auto v = co_await q.pop()) got.push_back(*v);
}

// Takes the item into `a` by hand, as select() would, without resuming with it.
struct TakeInto {
  PollableQueue<int>::PopAwaiter& a;
  bool await_ready() { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return a.await_suspend(h);
  }
  void await_resume() {}
};

Task<void> consume_with_cancels(PollableQueue<std::uint64_t>& q, Tally& got,
                                std::atomic<bool>& producing, int& cancelled) {
  // Consumers are cancelled one after the other while items arrive; the last
  // one runs until the queue is closed and drained.
  for (int round = 0;; ++round) {
    auto h = coring::spawn(consume_all(q, got));
    if (!producing.load()) {
      co_await h;
      co_return;
    }
    co_await coring::sleep_for(std::chrono::microseconds(200 + 150 * (round % 5)));
    h.cancel();
    auto outcome = co_await h.join();
    if (outcome.cancelled()) ++cancelled;
  }
}

Task<void> consume_slowly(PollableQueue<int>& q, std::vector<int>& got, std::size_t& max_seen) {
  while (auto v = co_await q.pop()) {
    max_seen = std::max(max_seen, q.size());
    got.push_back(*v);
    if (got.size() % 100 == 0) co_await coring::sleep_for(1ms);  // let it fill up
  }
}

std::vector<int> drain(PollableQueue<int>& q) {
  std::vector<int> out;
  while (auto v = q.try_pop()) out.push_back(*v);
  return out;
}

}  // namespace

TEST_CASE("PollableQueue keeps FIFO order without a loop", "[sync][pollable_queue]") {
  PollableQueue<int> q;
  for (int i = 0; i < 5; ++i) q.push(i);
  CHECK(q.try_push(5));
  q.emplace(6);
  CHECK(q.size() == 7);
  CHECK(drain(q) == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
  CHECK(q.empty());
  CHECK(q.stats().pushed == 7);
  q.close();
  CHECK(q.closed());
  CHECK_THROWS_AS(q.push(1), coring::QueueClosed);
  CHECK_THROWS_AS((void)q.try_push(1), coring::QueueClosed);
}

TEST_CASE("8 producer threads x 20k items into one PollableQueue: nothing lost or duplicated",
          "[sync][pollable_queue]") {
  constexpr std::size_t kProducers = 8;
  constexpr std::uint64_t kPerProducer = 20'000;
  PollableQueue<std::uint64_t> q;
  Tally got(kProducers);
  std::thread consumer([&] { coring::run(consume_all(q, got)); });
  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&q, p] { produce(q, p, kPerProducer); });
  }
  for (auto& t : producers) t.join();
  q.close();
  consumer.join();
  const Tally want = expected_tally(kProducers, kPerProducer);
  CHECK(got.count == want.count);
  CHECK(got.sum == want.sum);
  CHECK(got.xor_mix == want.xor_mix);
  CHECK(got.in_order);  // each producer's items in the order it pushed them
  CHECK(q.stats().pushed == want.count);
}

TEST_CASE("PollableQueue works on both backends, explicitly", "[sync][pollable_queue]") {
  std::vector<coring::BackendKind> kinds{coring::BackendKind::epoll};
  try {
    (void)coring::make_uring_backend(coring::UringOptions{});
    kinds.push_back(coring::BackendKind::io_uring);
  } catch (const std::system_error&) {
    WARN("io_uring unavailable here: epoll only");
  }
  for (auto kind : kinds) {
    PollableQueue<std::uint64_t> q;
    Tally got(2);
    std::thread consumer([&] {
      coring::LoopOptions o;
      o.backend = kind;
      coring::run(consume_all(q, got), std::move(o));
    });
    std::thread a([&] { produce(q, 0, 5000); });
    std::thread b([&] {
      for (std::uint64_t i = 0; i < 50; ++i) {
        q.push(item(1, i));
        std::this_thread::sleep_for(100us);  // the consumer sleeps in between
      }
    });
    a.join();
    b.join();
    q.close();
    consumer.join();
    CHECK(got.count == 5050);
    CHECK(got.in_order);
    CHECK(got.sum == expected_tally(1, 5000).sum + [] {
      std::uint64_t s = 0;
      for (std::uint64_t i = 0; i < 50; ++i) s += item(1, i);
      return s;
    }());
  }
}

TEST_CASE("close() from another thread wakes a parked pop with nullopt", "[sync][pollable_queue]") {
  PollableQueue<int> q;
  std::optional<int> got = 42;
  std::thread consumer([&] { coring::run(pop_into(q, got)); });
  while (q.waiting_poppers() == 0) std::this_thread::sleep_for(1ms);
  q.close();
  consumer.join();
  CHECK_FALSE(got.has_value());
  CHECK(q.closed());
  CHECK(q.stats().remote_wakeups == 1);
  CHECK_THROWS_AS(q.push(1), coring::QueueClosed);
}

TEST_CASE("after close() pops still drain what was stored", "[sync][pollable_queue]") {
  auto body = []() -> Task<std::vector<int>> {
    PollableQueue<int> q;
    q.push(1);
    q.push(2);
    q.close();
    std::vector<int> out;
    while (auto v = co_await q.pop()) out.push_back(*v);
    co_return out;
  };
  CHECK(coring::run(body()) == std::vector<int>{1, 2});
}

TEST_CASE("pop(timeout) gives nullopt when nothing comes, and the queue stays usable",
          "[sync][pollable_queue]") {
  auto body = []() -> Task<void> {
    PollableQueue<int> q;
    const auto t0 = std::chrono::steady_clock::now();
    auto none = co_await q.pop(20ms);
    CHECK_FALSE(none.has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    CHECK_FALSE(q.closed());  // a timeout, not the end
    CHECK(q.waiting_poppers() == 0);
    std::thread producer([&q] {
      std::this_thread::sleep_for(5ms);
      q.push(7);
    });
    auto v = co_await q.pop(5s);
    producer.join();
    CHECK(v == 7);
    auto w = co_await coring::with_timeout(1ms, q.pop());
    CHECK_FALSE(w.has_value());
  };
  coring::run(body());
}

TEST_CASE("a cancelled pop takes nothing; the item goes to the next pop",
          "[sync][pollable_queue]") {
  auto body = []() -> Task<void> {
    PollableQueue<int> q;
    auto h = coring::spawn(pop_one(q));
    co_await coring::yield_now();
    REQUIRE(q.waiting_poppers() == 1);
    h.cancel();
    auto outcome = co_await h.join();
    CHECK(outcome.cancelled());
    CHECK(q.waiting_poppers() == 0);
    std::thread([&q] { q.push(5); }).join();
    CHECK(q.try_pop() == 5);
  };
  coring::run(body());
}

TEST_CASE("a consumer cancelled while threads push loses nothing", "[sync][pollable_queue]") {
  constexpr std::size_t kProducers = 3;
  constexpr std::uint64_t kPerProducer = 20'000;
  PollableQueue<std::uint64_t> q;
  Tally got(kProducers);
  std::atomic<bool> producing{true};
  int cancelled_consumers = 0;
  std::thread loop_thread(
      [&] { coring::run(consume_with_cancels(q, got, producing, cancelled_consumers)); });
  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&q, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        q.push(item(p, i));
        if (i % 100 == 99) std::this_thread::sleep_for(100us);  // bursts: the consumer parks
      }
    });
  }
  for (auto& t : producers) t.join();
  producing = false;
  q.close();
  loop_thread.join();
  const Tally want = expected_tally(kProducers, kPerProducer);
  CHECK(cancelled_consumers > 0);
  CHECK(got.count == want.count);
  CHECK(got.sum == want.sum);
  CHECK(got.xor_mix == want.xor_mix);
  CHECK(got.in_order);
}

TEST_CASE("put_back returns a handed-over item to the front of the queue",
          "[sync][pollable_queue]") {
  SECTION("an item handed to a parked pop, with another stored behind it") {
    PollableQueue<int> q;
    bool held = false;
    std::thread consumer([&] { coring::run(pop_and_put_back(q, held)); });
    while (q.waiting_poppers() == 0) std::this_thread::sleep_for(1ms);
    q.push(7);  // handed to the parked awaiter
    q.push(8);  // stored
    consumer.join();
    CHECK(held);
    CHECK(drain(q) == std::vector<int>{7, 8});
  }
  SECTION("an item the awaiter took at once from a stored batch") {
    auto body = []() -> Task<void> {
      PollableQueue<int> q;
      for (int i = 1; i <= 3; ++i) q.push(i);
      bool held = co_await PutBackInstead<>{q.pop()};
      CHECK(held);
      auto first = co_await q.pop();  // takes 1 from the batch, then gives it back
      CHECK(first == 1);
      held = co_await PutBackInstead<>{q.pop()};
      CHECK(held);
      CHECK(drain(q) == std::vector<int>{2, 3});
    };
    coring::run(body());
  }
  SECTION("to a pop task parked meanwhile") {
    auto body = []() -> Task<void> {
      PollableQueue<int> q;
      q.push(9);
      PollableQueue<int>::PopAwaiter loser = q.pop();
      co_await TakeInto{loser};  // finds 9, does not suspend
      REQUIRE(loser.holds_item());
      auto h = coring::spawn(pop_one(q));
      co_await coring::yield_now();
      REQUIRE(q.waiting_poppers() == 1);
      loser.put_back();
      CHECK_FALSE(loser.holds_item());
      loser.put_back();  // no-op: holds nothing
      auto got = co_await h;
      CHECK(got == 9);
      CHECK(q.empty());
    };
    coring::run(body());
  }
}

TEST_CASE("a bounded PollableQueue gives producer threads backpressure", "[sync][pollable_queue]") {
  constexpr int kItems = 2000;
  constexpr std::size_t kCapacity = 4;
  PollableQueue<int> q(kCapacity);
  CHECK(q.capacity() == kCapacity);
  std::size_t max_seen = 0;
  std::vector<int> got;
  std::thread consumer([&] { coring::run(consume_slowly(q, got, max_seen)); });
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) q.push(i);
  });
  producer.join();
  q.close();
  consumer.join();
  REQUIRE(got.size() == kItems);
  for (int i = 0; i < kItems; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
  CHECK(max_seen <= kCapacity);
  CHECK(q.stats().blocked_pushes > 0);
}

TEST_CASE("try_push on a full bounded queue returns false and leaves the item",
          "[sync][pollable_queue]") {
  PollableQueue<std::string> q(2);
  CHECK(q.try_push(std::string("a")));
  CHECK(q.try_push(std::string("b")));
  std::string c = "c";
  CHECK_FALSE(q.try_push(std::move(c)));
  CHECK(c == "c");  // NOLINT(bugprone-use-after-move): untouched on failure
  CHECK(q.try_pop() == "a");
  CHECK(q.try_push(std::move(c)));
  CHECK(q.size() == 2);
}

TEST_CASE("push() on a full queue from a loop thread throws instead of blocking the loop",
          "[sync][pollable_queue]") {
  auto body = []() -> Task<void> {
    PollableQueue<int> q(1);
    q.push(1);
    CHECK_THROWS_AS(q.push(2), std::logic_error);
    CHECK(q.size() == 1);
    co_return;
  };
  coring::run(body());
}

TEST_CASE("push_async waits for room as a task, on the same loop and across loops",
          "[sync][pollable_queue]") {
  SECTION("same loop") {
    auto body = []() -> Task<std::vector<int>> {
      PollableQueue<int> q(2);
      auto producer = [](PollableQueue<int>& queue) -> Task<void> {
        for (int i = 0; i < 50; ++i) co_await queue.push_async(i);
        queue.close();
      };
      auto h = coring::spawn(producer(q));
      std::vector<int> out;
      while (auto v = co_await q.pop()) {
        CHECK(q.size() <= 2);
        out.push_back(*v);
        co_await coring::yield_now();
      }
      co_await h;
      co_return out;
    };
    const std::vector<int> got = coring::run(body());
    REQUIRE(got.size() == 50);
    for (int i = 0; i < 50; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
  }
  SECTION("a producer task on another loop, a consumer thread polling fd()") {
    PollableQueue<int> q(3);
    std::thread producer([&] {
      auto body = [](PollableQueue<int>& queue) -> Task<void> {
        for (int i = 0; i < 300; ++i) co_await queue.push_async(i);
        queue.close();
      };
      coring::run(body(q));
    });
    std::vector<int> got;
    const int fd = q.fd();
    for (;;) {
      while (auto v = q.try_pop()) got.push_back(*v);
      if (q.closed() && q.empty()) break;
      (void)readable(fd, 1000);
    }
    producer.join();
    REQUIRE(got.size() == 300);
    for (int i = 0; i < 300; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
  }
  SECTION("a push_async cancelled while waiting enqueues nothing") {
    auto body = []() -> Task<void> {
      PollableQueue<int> q(1);
      q.push(1);
      auto pusher = [](PollableQueue<int>& queue) -> Task<void> { co_await queue.push_async(2); };
      auto h = coring::spawn(pusher(q));
      co_await coring::yield_now();
      h.cancel();
      auto outcome = co_await h.join();
      CHECK(outcome.cancelled());
      CHECK(q.try_pop() == 1);
      CHECK_FALSE(q.try_pop().has_value());
      q.push(3);  // the queue is still usable
      CHECK(q.try_pop() == 3);
    };
    coring::run(body());
  }
}

TEST_CASE("fd() is readable from a plain thread's poll(2) once items come",
          "[sync][pollable_queue]") {
  PollableQueue<int> q;
  const int fd = q.fd();
  CHECK_FALSE(readable(fd, 0));  // empty: nothing to wait for
  q.push(1);
  CHECK(readable(fd, 0));
  q.push(2);
  CHECK(q.stats().fd_writes == 1);  // a burst costs one write
  CHECK(q.try_pop() == 1);
  CHECK(readable(fd, 0));  // still an item stored
  CHECK(q.try_pop() == 2);
  CHECK_FALSE(q.try_pop().has_value());  // found empty: resets
  CHECK_FALSE(readable(fd, 0));

  constexpr int kItems = 5000;
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) {
      q.push(i);
      if (i % 500 == 0) std::this_thread::sleep_for(1ms);  // the poller sleeps
    }
    q.close();
  });
  std::vector<int> got;
  int polls = 0;
  for (;;) {
    while (auto v = q.try_pop()) got.push_back(*v);
    if (q.closed() && q.empty()) break;
    REQUIRE(readable(fd, 5000));  // never sleeps through an item
    ++polls;
  }
  producer.join();
  REQUIRE(got.size() == kItems);
  for (int i = 0; i < kItems; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
  CHECK(readable(fd, 0));  // closed: readable for good
  CHECK(q.stats().fd_writes <= static_cast<std::uint64_t>(polls) + 2);
}

TEST_CASE("fd() made when items are already stored is readable at once", "[sync][pollable_queue]") {
  PollableQueue<int> q;
  q.push(1);
  const int fd = q.fd();
  CHECK(readable(fd, 0));
  const std::size_t before = coring_test::count_open_fds();
  { PollableQueue<int> other; }  // no fd() asked: no eventfd made
  CHECK(coring_test::count_open_fds() == before);
}

TEST_CASE("destroying a PollableQueue with a parked pop is reported; the task gets logic_error",
          "[sync][pollable_queue]") {
  coring_test::StderrCapture err;
  auto body = []() -> Task<bool> {
    auto q = std::make_unique<PollableQueue<int>>();
    auto popper = [](PollableQueue<int>& queue) -> Task<bool> {
      try {
        (void)co_await queue.pop();
      } catch (const std::logic_error&) {
        co_return true;
      }
      co_return false;
    };
    auto h = coring::spawn(popper(*q));
    co_await coring::yield_now();
    q.reset();
    co_return co_await h;
  };
  CHECK(coring::run(body()));
  CHECK(err.finish().find("PollableQueue destroyed while 1 task(s) were waiting") !=
        std::string::npos);
}

TEST_CASE("an item on its way to a task whose loop shuts down goes back to the queue",
          "[sync][pollable_queue]") {
  PollableQueue<int> q;
  {
    coring::EventLoop loop;
    auto popper = [](PollableQueue<int>& queue) -> Task<void> { (void)co_await queue.pop(); };
    auto h = loop.scheduler().spawn(popper(q));
    loop.run_once(false);  // the task parks
    REQUIRE(q.waiting_poppers() == 1);
    std::thread([&q] { q.push(11); }).join();  // handed over, a post on its way
    CHECK(q.waiting_poppers() == 0);
  }  // the loop ends without running the post: the frame gives the item back
  CHECK(q.try_pop() == 11);
}

TEST_CASE("a producer task on another loop wakes the consumer by a post",
          "[sync][pollable_queue]") {
  PollableQueue<int> q;
  std::vector<int> got;
  std::thread consumer([&] { coring::run(pop_all(q, got)); });
  std::thread producer([&] {
    auto body = [](PollableQueue<int>& queue) -> Task<void> {
      for (int i = 0; i < 100; ++i) {
        queue.push(i);
        if (i % 10 == 0) co_await coring::sleep_for(1ms);
      }
      queue.close();
    };
    coring::run(body(q));
  });
  producer.join();
  consumer.join();
  REQUIRE(got.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("PollableQueue moves owning items across threads, put_back included",
          "[sync][pollable_queue]") {
  PollableQueue<std::string> q;
  std::vector<std::string> got;
  std::thread consumer([&] { coring::run(pop_strings(q, got)); });
  for (int i = 0; i < 2000; ++i) {
    q.push(std::string(100, 'a') +
           std::to_string(i));  // on the heap: ASan sees a leak or a double free
    if (i % 200 == 0) std::this_thread::sleep_for(1ms);
  }
  q.close();
  consumer.join();
  REQUIRE(got.size() == 2000);
  for (int i = 0; i < 2000; ++i) {
    CHECK(got[static_cast<std::size_t>(i)] == std::string(100, 'a') + std::to_string(i));
  }
}

TEST_CASE("an awaiter destroyed holding an item frees it", "[sync][pollable_queue]") {
  auto body = []() -> Task<void> {
    PollableQueue<std::unique_ptr<int>> q;
    q.push(std::make_unique<int>(1));
    {
      auto a = q.pop();
      struct Take {
        PollableQueue<std::unique_ptr<int>>::PopAwaiter& a;
        bool await_ready() { return false; }
        bool await_suspend(std::coroutine_handle<> h) { return a.await_suspend(h); }
        void await_resume() {}
      };
      co_await Take{a};  // takes the item, never resumes with it
      CHECK(a.holds_item());
      CHECK(q.empty());
    }  // LeakSanitizer reports the int if the awaiter does not free it
  };
  coring::run(body());
}
