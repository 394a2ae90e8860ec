// Mutex: RAII guards, try_lock, FIFO hand-off without barging, mutual exclusion,
// cancellation and timeouts (the mutex stays usable), many waiters, destruction.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using coring::JoinHandle;
using coring::Mutex;
using coring::MutexGuard;
using coring::Task;
using namespace std::chrono_literals;

namespace {

Task<void> lock_and_record(Mutex& m, std::vector<int>& out, int id) {
  MutexGuard g = co_await m.lock();
  out.push_back(id);
}

}  // namespace

TEST_CASE("a guard unlocks on destruction, on unlock() and when moved over", "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m("m");
    {
      MutexGuard g = co_await m.lock();
      CHECK(g.owns_lock());
      CHECK(g.mutex() == &m);
      CHECK(m.locked());
      CHECK_FALSE(m.try_lock().has_value());
      MutexGuard moved = std::move(g);
      CHECK_FALSE(g.owns_lock());
      CHECK(m.locked());
      moved.unlock();
      CHECK_FALSE(m.locked());
      moved.unlock();  // idempotent
      CHECK_FALSE(m.locked());
      moved = co_await m.lock();
      CHECK(m.locked());
    }
    CHECK_FALSE(m.locked());
    {
      auto g = m.try_lock();
      REQUIRE(g.has_value());
      CHECK(m.locked());
    }
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
}

TEST_CASE("release() hands the lock to manual unlock(); unlocking twice is an error",
          "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m("manual");
    MutexGuard g = co_await m.lock();
    Mutex* raw = g.release();
    CHECK(raw == &m);
    CHECK_FALSE(g.owns_lock());
    CHECK(m.locked());
    m.unlock();
    CHECK_FALSE(m.locked());
    CHECK_THROWS_WITH(m.unlock(), Catch::Contains("'manual'") && Catch::Contains("not locked"));
  };
  coring::run(body());
}

TEST_CASE("waiters get the mutex in FIFO order and nobody barges in", "[sync][mutex]") {
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Mutex m;
    MutexGuard held = co_await m.lock();
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 5; ++i) hs.push_back(coring::spawn(lock_and_record(m, order, i)));
    co_await coring::yield_now();
    REQUIRE(m.waiting() == 5);
    held.unlock();
    CHECK(m.locked());  // handed to waiter 0, not freed
    CHECK_FALSE(m.try_lock().has_value());
    CHECK(order.empty());  // handing over schedules, it does not run the waiter inline
    for (auto& h : hs) co_await h;
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("the mutex excludes: one task at a time in the critical section, round robin",
          "[sync][mutex]") {
  int inside = 0;
  int max_inside = 0;
  std::vector<int> order;
  auto worker = [&](Mutex& m, int id) -> Task<void> {
    for (int round = 0; round < 4; ++round) {
      MutexGuard g = co_await m.lock();
      ++inside;
      max_inside = std::max(max_inside, inside);
      order.push_back(id);
      co_await coring::yield_now();  // switch while holding it
      --inside;
    }
  };
  auto body = [&]() -> Task<void> {
    Mutex m;
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(worker(m, i)));
    for (auto& h : hs) co_await h;
  };
  coring::run(body());
  CHECK(max_inside == 1);
  CHECK(order == std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
}

TEST_CASE("a waiter cancelled while waiting leaves the mutex usable by the others",
          "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m("shared");
    std::vector<int> order;
    MutexGuard held = co_await m.lock();
    auto a = coring::spawn(lock_and_record(m, order, 0));
    auto b = coring::spawn(lock_and_record(m, order, 1));
    auto c = coring::spawn(lock_and_record(m, order, 2));
    co_await coring::yield_now();
    REQUIRE(m.waiting() == 3);
    a.cancel();  // the head of the line
    b.cancel();
    CHECK(m.waiting() == 1);
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    {
      const auto ended = co_await b.join();
      CHECK(ended.cancelled());
    }
    held.unlock();
    co_await c;
    CHECK(order == std::vector<int>{2});
    CHECK_FALSE(m.locked());
    MutexGuard again = co_await m.lock();  // and it still locks
    CHECK(m.locked());
  };
  coring::run(body());
}

TEST_CASE("a timed-out lock owns nothing and the mutex is free afterwards", "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m;
    coring::Event release;
    auto holder = coring::spawn([](Mutex& mx, coring::Event& go) -> Task<void> {
      MutexGuard held = co_await mx.lock();
      co_await go.wait();
    }(m, release));
    co_await coring::yield_now();
    REQUIRE(m.locked());
    std::optional<MutexGuard> late = co_await coring::with_timeout(5ms, m.lock());
    CHECK_FALSE(late.has_value());
    CHECK(m.waiting() == 0);
    release.set();
    co_await holder;
    CHECK_FALSE(m.locked());  // not handed to the timed-out waiter
    std::optional<MutexGuard> in_time = co_await coring::with_timeout(5s, m.lock());
    REQUIRE(in_time.has_value());
    CHECK(in_time->owns_lock());
    CHECK(m.locked());
  };
  coring::run(body());
}

TEST_CASE("a waiter handed the lock and then cancelled releases it as it unwinds",
          "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m;
    bool got = false;
    MutexGuard held = co_await m.lock();
    auto h = coring::spawn([](Mutex& mx, bool& flag) -> Task<void> {
      MutexGuard g = co_await mx.lock();
      flag = true;
      co_await coring::yield_now();  // unwound here, with g held
    }(m, got));
    co_await coring::yield_now();
    held.unlock();  // handed to h
    h.cancel();     // before h runs
    {
      const auto ended = co_await h.join();
      CHECK(ended.cancelled());
    }
    CHECK(got);
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
}

TEST_CASE("cancelling the holder unlocks the mutex for the next waiter", "[sync][mutex]") {
  auto body = []() -> Task<void> {
    Mutex m;
    std::vector<int> order;
    auto holder = coring::spawn([](Mutex& mx) -> Task<void> {
      MutexGuard g = co_await mx.lock();
      co_await coring::sleep_for(10s);
    }(m));
    co_await coring::yield_now();
    REQUIRE(m.locked());
    auto waiter = coring::spawn(lock_and_record(m, order, 7));
    co_await coring::yield_now();
    REQUIRE(m.waiting() == 1);
    holder.cancel();
    {
      const auto ended = co_await holder.join();
      CHECK(ended.cancelled());
    }
    co_await waiter;
    CHECK(order == std::vector<int>{7});
    CHECK_FALSE(m.locked());
  };
  coring::run(body());
}

TEST_CASE("100,000 waiters take the mutex in order without leaking frames", "[sync][mutex]") {
  const auto before = coring::FrameAllocator::live_frames();
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Mutex m;
    MutexGuard held = co_await m.lock();
    for (int i = 0; i < 100'000; ++i) coring::spawn(lock_and_record(m, order, i)).detach();
    co_await coring::yield_now();
    CHECK(m.waiting() == 100'000);
    held.unlock();
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

TEST_CASE("a mutex works on a standalone TaskScheduler", "[sync][mutex]") {
  coring::TaskScheduler sched;
  coring::TaskScheduler::CurrentGuard current(&sched);
  Mutex m;
  std::vector<int> order;
  auto holder = sched.spawn([](Mutex& mx, std::vector<int>& out) -> Task<void> {
    MutexGuard g = co_await mx.lock();
    co_await coring::yield_now();
    out.push_back(-1);
  }(m, order));
  for (int i = 0; i < 3; ++i) sched.spawn(lock_and_record(m, order, i)).detach();
  sched.run();
  CHECK(holder.done());
  CHECK(order == std::vector<int>{-1, 0, 1, 2});
  CHECK_FALSE(m.locked());
}

TEST_CASE("destroying a mutex with waiters is reported, not undefined", "[sync][mutex]") {
  auto body = []() -> Task<std::string> {
    auto m = std::make_unique<Mutex>();
    MutexGuard held = co_await m->lock();
    auto h = coring::spawn([](Mutex& mx) -> Task<void> { MutexGuard g = co_await mx.lock(); }(*m));
    co_await coring::yield_now();
    (void)held.release();
    m.reset();
    try {
      co_await h;
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()), Catch::Contains("Mutex destroyed while tasks were waiting"));
}
