// TaskLocal: one copy per spawned task, shared by awaited children, destroyed
// when the task ends, no leaks.
// (co_await is kept out of Catch macros: see the note in queue_test.cpp.)
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <string>
#include <vector>

using coring::Task;
using coring::TaskLocal;
using namespace std::chrono_literals;

namespace {

// Counts live instances so tests can see when copies are destroyed.
struct Tracked {
  static inline int live = 0;
  static inline int destroyed = 0;
  int value = 0;
  Tracked() { ++live; }
  explicit Tracked(int v) : value(v) { ++live; }
  Tracked(const Tracked& o) : value(o.value) { ++live; }
  ~Tracked() {
    --live;
    ++destroyed;
  }
};

Task<int> read_in_child(TaskLocal<int>& local) {
  int& v = co_await local.get();
  co_return v;
}

Task<void> bump_in_child(TaskLocal<int>& local) {
  int& v = co_await local.get();
  ++v;
}

}  // namespace

TEST_CASE("two tasks see different copies", "[sync][task_local]") {
  auto body = []() -> Task<std::vector<int>> {
    TaskLocal<int> local(100);
    auto worker = [](TaskLocal<int>& l, int add) -> Task<int> {
      int& v = co_await l.get();
      v += add;
      co_await coring::yield_now();  // interleave with the other task
      int& again = co_await l.get();
      co_return again;
    };
    auto a = coring::spawn(worker(local, 1));
    auto b = coring::spawn(worker(local, 2));
    int& mine = co_await local.get();
    int ra = co_await a;
    int rb = co_await b;
    co_return std::vector<int>{ra, rb, mine};
  };
  CHECK(coring::run(body()) == std::vector<int>{101, 102, 100});
}

TEST_CASE("awaited children (and with_timeout) share the task's copy", "[sync][task_local]") {
  auto body = []() -> Task<void> {
    TaskLocal<int> local;
    int* mine = co_await local.find();
    CHECK(mine == nullptr);
    int& v = co_await local.get();
    CHECK(v == 0);
    v = 7;
    int seen = co_await read_in_child(local);
    CHECK(seen == 7);
    co_await bump_in_child(local);
    CHECK(v == 8);
    auto r = co_await coring::with_timeout(10s, read_in_child(local));
    CHECK(r == 8);
    // A spawned task has its own copy, even when spawned from a child.
    auto h = coring::spawn(read_in_child(local));
    int other = co_await h;
    CHECK(other == 0);
    CHECK(v == 8);
  };
  coring::run(body());
}

TEST_CASE("a task's copies are destroyed when it ends", "[sync][task_local]") {
  const auto before = coring::FrameAllocator::live_frames();
  Tracked::live = 0;
  Tracked::destroyed = 0;
  auto body = []() -> Task<void> {
    TaskLocal<Tracked> local(Tracked(5));
    CHECK(Tracked::live == 1);  // the initial value
    auto worker = [](TaskLocal<Tracked>& l) -> Task<int> {
      Tracked& t = co_await l.get();
      co_await coring::yield_now();
      co_return t.value;
    };
    std::vector<coring::JoinHandle<int>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(coring::spawn(worker(local)));
    co_await coring::yield_now();
    CHECK(Tracked::live == 11);
    for (auto& h : hs) {
      int v = co_await h;
      CHECK(v == 5);
    }
    CHECK(Tracked::live == 1);  // destroyed as each task ended, before the join resumed
    CHECK(Tracked::destroyed >= 10);
    // reset() destroys this task's copy at once; get() makes a fresh one.
    Tracked& t = co_await local.get();
    t.value = 9;
    CHECK(Tracked::live == 2);
    bool had = co_await local.reset();
    CHECK(had);
    CHECK(Tracked::live == 1);
    Tracked* gone = co_await local.find();
    CHECK(gone == nullptr);
    Tracked& fresh = co_await local.get();
    CHECK(fresh.value == 5);
  };
  coring::run(body());
  CHECK(Tracked::live == 0);
  CHECK(coring::FrameAllocator::live_frames() == before);
}

TEST_CASE("copies of a cancelled or never-finished task are destroyed too", "[sync][task_local]") {
  Tracked::live = 0;
  auto body = []() -> Task<void> {
    TaskLocal<Tracked> local;
    auto sleeper = [](TaskLocal<Tracked>& l) -> Task<void> {
      (void)co_await l.get();
      co_await coring::sleep_for(1h);
    };
    auto a = coring::spawn(sleeper(local));
    coring::spawn(sleeper(local)).detach();  // freed by loop shutdown
    co_await coring::yield_now();
    CHECK(Tracked::live == 2);
    a.cancel();
    {
      const auto ended = co_await a.join();
      CHECK(ended.cancelled());
    }
    CHECK(Tracked::live == 1);
  };
  coring::run(body());
  CHECK(Tracked::live == 0);
}

TEST_CASE("a destroyed TaskLocal's leftover copies are never seen by a new one",
          "[sync][task_local]") {
  auto body = []() -> Task<void> {
    std::string first;
    {
      TaskLocal<std::string> a(std::string("old"));
      first = co_await a.get();
    }
    TaskLocal<std::string> b(std::string("new"));
    std::string& s = co_await b.get();
    CHECK(first == "old");
    CHECK(s == "new");
  };
  coring::run(body());
}
