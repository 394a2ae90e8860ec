// lock_all and the lock-order checker: opposite orders cannot deadlock, the
// global order is by address, nested acquisitions that break it are reported
// naming both locks, per task, switchable; cancellation mid-way releases all.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

using coring::JoinHandle;
using coring::LockOrderViolation;
using coring::Mutex;
using coring::MutexGuard;
using coring::Task;
using namespace std::chrono_literals;

namespace {

// Restores the checker's global setting at the end of a test.
struct CheckingScope {
  explicit CheckingScope(bool on) : saved(coring::lock_order_checking()) {
    coring::set_lock_order_checking(on);
  }
  ~CheckingScope() { coring::set_lock_order_checking(saved); }
  bool saved;
};

}  // namespace

TEST_CASE("the checker is on by default in debug builds", "[sync][lock_all]") {
#ifdef NDEBUG
  CHECK_FALSE(coring::lock_order_checking());
#else
  CHECK(coring::lock_order_checking());
#endif
}

TEST_CASE("tasks naming the same mutexes in opposite orders all finish", "[sync][lock_all]") {
  CheckingScope checking(true);
  constexpr int kTasks = 40;
  constexpr int kRounds = 5;
  int meals = 0;
  int inside_xy = 0;
  bool overlap = false;
  auto worker = [&](Mutex& x, Mutex& y, Mutex& z, int id) -> Task<void> {
    for (int r = 0; r < kRounds; ++r) {
      coring::LockAllGuard<3> all;
      if (id % 2 == 0) {
        all = co_await coring::lock_all(x, y, z);
      } else {
        all = co_await coring::lock_all(z, y, x);
      }
      if (++inside_xy != 1) overlap = true;
      co_await coring::sleep_for(100us);  // hold them across a real wait
      --inside_xy;
      ++meals;
      all.unlock();
      co_await coring::sleep_for(50us);
    }
  };
  auto body = [&]() -> Task<bool> {
    Mutex x("x");
    Mutex y("y");
    Mutex z("z");
    auto everyone = [&]() -> Task<void> {
      std::vector<JoinHandle<void>> hs;
      for (int i = 0; i < kTasks; ++i) hs.push_back(coring::spawn(worker(x, y, z, i)));
      for (auto& h : hs) co_await h;
    };
    const bool finished = co_await coring::with_timeout(20s, everyone());  // fails, not hangs
    CHECK_FALSE(x.locked());
    CHECK_FALSE(y.locked());
    CHECK_FALSE(z.locked());
    co_return finished;
  };
  CHECK(coring::run(body()));
  CHECK(meals == kTasks * kRounds);
  CHECK_FALSE(overlap);
}

TEST_CASE("lock_all takes the mutexes in address order whatever the argument order",
          "[sync][lock_all]") {
  auto body = []() -> Task<void> {
    std::array<Mutex, 2> ms;  // ms[0] comes first in the global order
    Mutex& lo = ms[0];
    Mutex& hi = ms[1];
    MutexGuard hold_hi = co_await hi.lock();
    auto h = coring::spawn([](Mutex& a, Mutex& b) -> Task<void> {
      auto all = co_await coring::lock_all(a, b);
      CHECK(all.owns_lock());
    }(hi, lo));
    co_await coring::yield_now();
    CHECK(lo.locked());  // taken first, while it waits for hi
    CHECK(hi.waiting() == 1);
    hold_hi.unlock();
    co_await h;
    CHECK_FALSE(lo.locked());
    CHECK_FALSE(hi.locked());
  };
  coring::run(body());
}

TEST_CASE("a mutex named twice is locked once", "[sync][lock_all]") {
  auto body = []() -> Task<void> {
    Mutex a;
    Mutex b;
    {
      auto all = co_await coring::lock_all(a, b, a);
      CHECK(a.locked());
      CHECK(b.locked());
    }
    CHECK_FALSE(a.locked());
    CHECK_FALSE(b.locked());
  };
  coring::run(body());
}

TEST_CASE("nesting against the global order throws LockOrderViolation naming both locks",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<std::string> {
    std::array<Mutex, 2> ms{Mutex("x_lock"), Mutex("y_lock")};
    MutexGuard outer = co_await ms[1].lock();
    try {
      MutexGuard inner = co_await ms[0].lock();
    } catch (const LockOrderViolation& e) {
      CHECK_FALSE(ms[0].locked());  // thrown before taking anything
      co_return e.what();
    }
    co_return "";
  };
  const std::string msg = coring::run(body());
  CHECK_THAT(msg, Catch::Contains("Lock Order Violation") && Catch::Contains("'x_lock'") &&
                      Catch::Contains("'y_lock'"));
}

TEST_CASE("an unnamed mutex is named by its address; LockOrderViolation is a logic_error",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<std::string> {
    std::array<Mutex, 2> ms;
    auto outer = co_await coring::lock_all(ms[1]);
    try {
      auto inner = co_await coring::lock_all(ms[0], ms[1]);
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(coring::run(body()),
             Catch::Contains("Lock Order Violation") && Catch::Contains("Mutex@0x"));
}

TEST_CASE("nesting in order is fine, and re-locking a held mutex is caught", "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<void> {
    std::array<Mutex, 3> ms{Mutex("a"), Mutex("b"), Mutex("c")};
    {
      MutexGuard a = co_await ms[0].lock();
      auto bc = co_await coring::lock_all(ms[2], ms[1]);
      CHECK(ms[2].locked());
    }
    MutexGuard b = co_await ms[1].lock();
    CHECK_THROWS_WITH(co_await ms[1].lock(), Catch::Contains("'b' again"));
    b.unlock();
    MutexGuard a = co_await ms[0].lock();  // after unlocking b, a is fine again
    CHECK(a.owns_lock());
  };
  coring::run(body());
}

TEST_CASE("the checker tracks each task on its own", "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<void> {
    std::array<Mutex, 2> ms;
    auto holder = coring::spawn([](Mutex& hi) -> Task<void> {
      MutexGuard g = co_await hi.lock();
      co_await coring::yield_now();
      co_await coring::yield_now();
    }(ms[1]));
    co_await coring::yield_now();
    REQUIRE(ms[1].locked());
    MutexGuard lo = co_await ms[0].lock();  // another task holds hi: no violation
    CHECK(lo.owns_lock());
    co_await holder;
  };
  coring::run(body());
}

TEST_CASE("with the checker switched off the wrong nesting is not reported", "[sync][lock_all]") {
  CheckingScope checking(false);
  auto body = []() -> Task<bool> {
    std::array<Mutex, 2> ms;
    MutexGuard hi = co_await ms[1].lock();
    MutexGuard lo = co_await ms[0].lock();
    co_return lo.owns_lock();
  };
  CHECK(coring::run(body()));
}

TEST_CASE("a lock_all cancelled half-way releases what it took", "[sync][lock_all]") {
  auto body = []() -> Task<void> {
    std::array<Mutex, 2> ms;
    MutexGuard hold_hi = co_await ms[1].lock();
    auto h = coring::spawn([](Mutex& a, Mutex& b) -> Task<void> {
      auto all = co_await coring::lock_all(a, b);
    }(ms[0], ms[1]));
    co_await coring::yield_now();
    REQUIRE(ms[0].locked());
    h.cancel();
    {
      const auto ended = co_await h.join();
      CHECK(ended.cancelled());
    }
    CHECK_FALSE(ms[0].locked());
    CHECK(ms[1].waiting() == 0);
    // The same for a lock_all that times out. ms[1] now held by another task
    // (this one holding it and locking ms[0] would break the lock order).
    hold_hi.unlock();
    coring::Event done;
    auto holder = coring::spawn([](Mutex& hi, coring::Event& go) -> Task<void> {
      MutexGuard g = co_await hi.lock();
      co_await go.wait();
    }(ms[1], done));
    co_await coring::yield_now();
    const bool timed_out = !co_await coring::with_timeout(5ms, coring::lock_all(ms[0], ms[1]));
    CHECK(timed_out);
    CHECK_FALSE(ms[0].locked());
    done.set();
    co_await holder;
  };
  coring::run(body());
}

TEST_CASE("lock_all leaks no frames", "[sync][lock_all]") {
  const auto before = coring::FrameAllocator::live_frames();
  auto body = []() -> Task<void> {
    std::array<Mutex, 4> ms;
    for (int i = 0; i < 1000; ++i) {
      auto all = co_await coring::lock_all(ms[3], ms[1], ms[2], ms[0]);
    }
  };
  coring::run(body());
  CHECK(coring::FrameAllocator::live_frames() == before);
}

// ---- what "holds" means: the record follows the guard (issue 8, bug 2) ----

namespace {

Task<MutexGuard> lock_and_return(Mutex& m) {
  MutexGuard g = co_await m.lock();
  co_return g;
}

Task<std::optional<MutexGuard>> lock_within(Mutex& m) {
  co_return co_await coring::with_timeout(1s, m.lock());
}

Task<void> hold_for_a_while(MutexGuard g, int* released_at_step, int* step) {
  co_await coring::yield_now();
  co_await coring::yield_now();
  *released_at_step = ++*step;
  g.unlock();
}

}  // namespace

TEST_CASE("regression: a task that returned its guard and ended leaves no record behind",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  bool second_got_it = false;
  auto body = [&]() -> Task<void> {
    Mutex m("m");
    // The first task locks, returns its guard to us and ends; the second one,
    // likely built in the same recycled frame, must wait for the mutex, not
    // be told it already holds it.
    for (int round = 0; round < 3; ++round) {
      auto first = coring::spawn(lock_and_return(m));
      MutexGuard kept = co_await first;
      auto second = coring::spawn([](Mutex& mx, bool* got) -> Task<void> {
        MutexGuard g = co_await mx.lock();
        *got = true;
      }(m, &second_got_it));
      co_await coring::yield_now();
      CHECK(m.waiting() == 1);
      kept.unlock();
      const coring::Outcome<void> o = co_await second.join();
      CHECK(o.has_value());  // not a LockOrderViolation
    }
  };
  coring::run(body());
  CHECK(second_got_it);
}

TEST_CASE("regression: locking through a helper task from two tasks waits, does not throw",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  std::vector<int> order;
  auto body = [&]() -> Task<void> {
    Mutex m("m");
    auto user = [](Mutex& mx, std::vector<int>* out, int id) -> Task<void> {
      std::optional<MutexGuard> g = co_await lock_within(mx);
      REQUIRE(g.has_value());
      out->push_back(id);
      co_await coring::yield_now();
      co_await coring::yield_now();
    };
    auto a = coring::spawn(user(m, &order, 1));
    auto b = coring::spawn(user(m, &order, 2));
    const coring::Outcome<void> oa = co_await a.join();
    const coring::Outcome<void> ob = co_await b.join();
    CHECK(oa.has_value());
    CHECK(ob.has_value());  // the second waited for the first: no false violation
  };
  coring::run(body());
  CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("regression: a guard moved into another task no longer counts for the first",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  int step = 0;
  int released_at = 0;
  int locked_low_at = 0;
  auto body = [&]() -> Task<void> {
    std::array<Mutex, 2> ms{Mutex("low"), Mutex("high")};  // low < high: the order
    MutexGuard high = co_await ms[1].lock();
    // Hand the high lock to another task, then lock the low one: this task does
    // not hold `high` any more, so this is not a nesting against the order.
    auto holder = coring::spawn(hold_for_a_while(std::move(high), &released_at, &step));
    MutexGuard low = co_await ms[0].lock();
    locked_low_at = ++step;
    low.unlock();
    co_await holder;
    CHECK_FALSE(ms[0].locked());
    CHECK_FALSE(ms[1].locked());
  };
  coring::run(body());
  CHECK(locked_low_at == 1);
  CHECK(released_at == 2);
}

TEST_CASE("a guard returned by a helper into the task's own frame still counts",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<std::string> {
    std::array<Mutex, 2> ms{Mutex("low"), Mutex("high")};
    MutexGuard high = co_await lock_and_return(ms[1]);  // held by this task, in its frame
    try {
      MutexGuard low = co_await ms[0].lock();
    } catch (const LockOrderViolation& e) {
      co_return e.what();
    }
    co_return "";
  };
  const std::string msg = coring::run(body());
  CHECK_THAT(msg, Catch::Contains("locking 'low' while holding 'high'"));
}

TEST_CASE("a guard held from lock_all counts for the task, and is forgotten when it ends",
          "[sync][lock_all]") {
  CheckingScope checking(true);
  auto body = []() -> Task<std::string> {
    std::array<Mutex, 3> ms{Mutex("a"), Mutex("b"), Mutex("c")};
    std::string what;
    {
      auto both = co_await coring::lock_all(ms[1], ms[2]);
      try {
        MutexGuard a = co_await ms[0].lock();
      } catch (const LockOrderViolation& e) {
        what = e.what();
      }
    }
    // Released: locking `a` now is fine.
    MutexGuard a = co_await ms[0].lock();
    CHECK(a.owns_lock());
    co_return what;
  };
  const std::string msg = coring::run(body());
  CHECK_THAT(msg, Catch::Contains("locking 'a' while holding 'c'"));
}
