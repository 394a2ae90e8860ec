// TaskGroup (structured concurrency) and when_all / when_any / as_completed:
// scope exit waits, the first failure cancels the rest and is rethrown, the
// owner's cancellation reaches every child and waits for it, outcomes per task.
//
// Never co_await inside a Catch macro (GCC 12 runs it twice): store first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using coring::Finished;
using coring::Outcome;
using coring::Task;
using coring::TaskGroup;
using namespace std::chrono_literals;

namespace {

// Counts frames still alive: a child's destructors run when it ends or unwinds.
struct Alive {
  int* n;
  explicit Alive(int* c) : n(c) { ++*n; }
  Alive(const Alive&) = delete;
  ~Alive() { --*n; }
};

Task<void> sleeper(coring::Duration d, int* alive, std::vector<int>* order, int id) {
  Alive a(alive);
  co_await coring::sleep_for(d);
  order->push_back(id);
}

Task<void> thrower(coring::Duration d, int* alive, std::string what) {
  Alive a(alive);
  co_await coring::sleep_for(d);
  throw std::runtime_error(what);
}

Task<int> value_after(coring::Duration d, int v) {
  co_await coring::sleep_for(d);
  co_return v;
}

Task<int> fail_after(coring::Duration d, std::string what) {
  co_await coring::sleep_for(d);
  throw std::runtime_error(what);
}

}  // namespace

TEST_CASE("task_group: leaving the scope waits for every child", "[task_group]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto group_body = [&](TaskGroup& g) -> Task<void> {
      g.spawn(sleeper(30ms, &alive, &order, 3));
      g.spawn(sleeper(10ms, &alive, &order, 1));
      g.spawn(sleeper(20ms, &alive, &order, 2));
      CHECK(g.size() == 3);
      co_return;
    };
    co_await coring::task_group(group_body);
    CHECK(alive == 0);
    CHECK(order == std::vector<int>{1, 2, 3});
  };
  coring::run(body());
}

TEST_CASE("task_group: children may use the body's locals and spawn siblings", "[task_group]") {
  auto body = []() -> Task<int> {
    auto group_body = [](TaskGroup& g) -> Task<int> {
      int sum = 0;  // lives in the body's frame; the children write to it
      auto add = [](TaskGroup& grp, int* total, int v, int depth) -> Task<void> {
        co_await coring::yield_now();
        *total += v;
        (void)grp;
        (void)depth;
      };
      for (int i = 1; i <= 10; ++i) g.spawn(add(g, &sum, i, 0));
      // The body waits for its own children here, so `sum` stays valid.
      while (g.size() != 0) co_await coring::yield_now();
      co_return sum;
    };
    const int v = co_await coring::task_group(group_body);
    co_return v;
  };
  CHECK(coring::run(body()) == 55);
}

TEST_CASE("task_group: a child can spawn into its own group", "[task_group]") {
  auto body = []() -> Task<int> {
    int count = 0;
    struct Spawner {
      static Task<void> run(TaskGroup& g, int* c, int depth) {
        ++*c;
        co_await coring::yield_now();
        if (depth < 4) {
          g.spawn(run(g, c, depth + 1));
          g.spawn(run(g, c, depth + 1));
        }
      }
    };
    auto group_body = [&](TaskGroup& g) -> Task<void> {
      g.spawn(Spawner::run(g, &count, 0));
      co_return;
    };
    co_await coring::task_group(group_body);
    co_return count;
  };
  CHECK(coring::run(body()) == 31);  // 1 + 2 + 4 + 8 + 16
}

TEST_CASE("task_group: the first failure cancels the siblings and is rethrown", "[task_group]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    const auto t0 = coring::now();
    auto group_body = [&](TaskGroup& g) -> Task<void> {
      g.spawn(sleeper(10s, &alive, &order, 1));
      g.spawn(thrower(5ms, &alive, "first"));
      g.spawn(thrower(5s, &alive, "second"));
      g.spawn(sleeper(10s, &alive, &order, 2));
      co_await coring::sleep_for(10s);  // the body is cancelled too
      order.push_back(99);
    };
    std::string what;
    try {
      co_await coring::task_group(group_body);
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "first");
    CHECK(alive == 0);     // every sibling stopped before task_group returned
    CHECK(order.empty());  // none of them ran on, nor did the body
    CHECK(coring::now() - t0 < 5s);
  };
  coring::run(body());
}

TEST_CASE("task_group: a failing body cancels the children", "[task_group]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto group_body = [&](TaskGroup& g) -> Task<void> {
      g.spawn(sleeper(10s, &alive, &order, 1));
      co_await coring::sleep_for(5ms);
      throw std::logic_error("body");
    };
    std::string what;
    try {
      co_await coring::task_group(group_body);
    } catch (const std::logic_error& e) {
      what = e.what();
    }
    CHECK(what == "body");
    CHECK(alive == 0);
    CHECK(order.empty());
  };
  coring::run(body());
}

TEST_CASE("task_group: cancelling the owner cancels the group and waits for it", "[task_group]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    bool after = false;
    const std::size_t before = coring::current_scheduler().live_tasks();
    auto owner = coring::spawn([](int* a, std::vector<int>* o, bool* reached) -> Task<void> {
      auto group_body = [a, o](TaskGroup& g) -> Task<void> {
        g.spawn(sleeper(10s, a, o, 1));
        g.spawn(sleeper(10s, a, o, 2));
        co_await coring::sleep_for(10s);
      };
      co_await coring::task_group(group_body);
      *reached = true;
    }(&alive, &order, &after));
    co_await coring::sleep_for(5ms);
    CHECK(alive == 2);
    owner.cancel();
    auto out = co_await owner.join();
    CHECK(out.cancelled());
    CHECK_FALSE(after);
    CHECK(alive == 0);  // the children were gone before the owner ended
    CHECK(coring::current_scheduler().live_tasks() == before);

    // The same while the owner already waits at the scope's end.
    auto owner2 = coring::spawn([](int* a, std::vector<int>* o) -> Task<void> {
      auto group_body = [a, o](TaskGroup& g) -> Task<void> {
        g.spawn(sleeper(10s, a, o, 3));
        co_return;
      };
      co_await coring::task_group(group_body);
    }(&alive, &order));
    co_await coring::sleep_for(5ms);
    CHECK(alive == 1);
    owner2.cancel();
    auto out2 = co_await owner2.join();
    CHECK(out2.cancelled());
    CHECK(alive == 0);
    CHECK(order.empty());
  };
  coring::run(body());
}

TEST_CASE("task_group: cancel() stops everything without an error", "[task_group]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto group_body = [&](TaskGroup& g) -> Task<void> {
      g.spawn(sleeper(10s, &alive, &order, 1));
      g.spawn(sleeper(1ms, &alive, &order, 2));
      co_await coring::sleep_for(20ms);
      g.cancel();
      g.spawn(sleeper(1ms, &alive, &order, 3));  // a cancelling group: never runs
      co_return;
    };
    co_await coring::task_group(group_body);
    CHECK(alive == 0);
    CHECK(order == std::vector<int>{2});
  };
  coring::run(body());
}

TEST_CASE("task_group: gives the body's value; the first of two failures wins", "[task_group]") {
  auto body = []() -> Task<void> {
    auto simple = [](TaskGroup& g) -> Task<std::string> {
      g.spawn(value_after(1ms, 1));
      co_return std::string("done");
    };
    const std::string v = co_await coring::task_group(simple);
    CHECK(v == "done");

    auto two_fail = [](TaskGroup& g) -> Task<void> {
      g.spawn(fail_after(1ms, "a"));
      g.spawn(fail_after(1ms, "b"));
      co_await coring::sleep_for(10s);
    };
    std::string what;
    try {
      co_await coring::task_group(two_fail);
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "a");
  };
  coring::run(body());
}

TEST_CASE("when_all: every task's outcome, in order, failures per task", "[when]") {
  auto body = []() -> Task<void> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(20ms, 1));
    tasks.push_back(fail_after(5ms, "two"));
    tasks.push_back(value_after(1ms, 3));
    std::vector<Outcome<int>> out = co_await coring::when_all(std::move(tasks));
    REQUIRE(out.size() == 3);
    CHECK(out[0].value() == 1);
    REQUIRE(out[1].failed());
    CHECK_THROWS_WITH(out[1].value(), "two");
    CHECK(out[2].value() == 3);

    auto both = co_await coring::when_all(value_after(2ms, 7), fail_after(1ms, "x"));
    CHECK(std::get<0>(both).value() == 7);
    CHECK(std::get<1>(both).failed());

    std::vector<Task<int>> none;
    auto empty = co_await coring::when_all(std::move(none));
    CHECK(empty.empty());
  };
  coring::run(body());
}

TEST_CASE("when_all: cancelling the owner cancels every task", "[when]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto owner = coring::spawn([](int* a, std::vector<int>* o) -> Task<void> {
      auto both = co_await coring::when_all(sleeper(10s, a, o, 1), sleeper(10s, a, o, 2));
      (void)both;
    }(&alive, &order));
    co_await coring::sleep_for(5ms);
    CHECK(alive == 2);
    owner.cancel();
    auto out = co_await owner.join();
    CHECK(out.cancelled());
    CHECK(alive == 0);
  };
  coring::run(body());
}

TEST_CASE("when_any: the first to end wins; the others are stopped first", "[when]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto slow = [](int* a, std::vector<int>* o, int id) -> Task<int> {
      co_await sleeper(10s, a, o, id);
      co_return id;
    };
    std::vector<Task<int>> tasks;
    tasks.push_back(slow(&alive, &order, 1));
    tasks.push_back(value_after(5ms, 42));
    tasks.push_back(slow(&alive, &order, 3));
    Finished<int> f = co_await coring::when_any(std::move(tasks));
    CHECK(f.index == 1);
    CHECK(f.outcome.value() == 42);
    CHECK(alive == 0);  // the losers were cancelled and have stopped
    CHECK(order.empty());

    std::vector<Task<int>> failing;
    failing.push_back(value_after(50ms, 1));
    failing.push_back(fail_after(1ms, "boom"));
    Finished<int> g = co_await coring::when_any(std::move(failing));
    CHECK(g.index == 1);
    CHECK(g.outcome.failed());

    std::vector<Task<int>> none;
    bool threw = false;
    try {
      (void)co_await coring::when_any(std::move(none));
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  };
  coring::run(body());
}

TEST_CASE("as_completed: outcomes in the order the tasks end", "[when]") {
  auto body = []() -> Task<void> {
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(30ms, 0));
    tasks.push_back(fail_after(10ms, "one"));
    tasks.push_back(value_after(1ms, 2));
    tasks.push_back(value_after(20ms, 3));
    auto done = coring::as_completed(std::move(tasks));
    CHECK(done.remaining() == 4);
    std::vector<std::size_t> order;
    std::vector<bool> failed;
    while (std::optional<Finished<int>> f = co_await done.next()) {
      order.push_back(f->index);
      failed.push_back(f->outcome.failed());
      if (f->outcome.has_value()) CHECK(f->outcome.value() == static_cast<int>(f->index));
    }
    CHECK(order == std::vector<std::size_t>{2, 1, 3, 0});
    CHECK(failed == std::vector<bool>{false, true, false, false});
    CHECK(done.remaining() == 0);
  };
  coring::run(body());
}

TEST_CASE("as_completed: next(timeout), then cancel_rest stops the rest", "[when]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    auto slow = [](int* a, std::vector<int>* o, int id) -> Task<int> {
      co_await sleeper(10s, a, o, id);
      co_return id;
    };
    std::vector<Task<int>> tasks;
    tasks.push_back(slow(&alive, &order, 0));
    tasks.push_back(value_after(1ms, 1));
    tasks.push_back(slow(&alive, &order, 2));
    auto done = coring::as_completed(std::move(tasks));
    auto first = co_await done.next();
    REQUIRE(first.has_value());
    CHECK(first->index == 1);
    auto none = co_await done.next(10ms);
    CHECK_FALSE(none.has_value());
    CHECK(done.remaining() == 2);
    co_await done.cancel_rest();
    CHECK(alive == 0);
    CHECK(done.remaining() == 0);
    auto end = co_await done.next();
    CHECK_FALSE(end.has_value());
  };
  coring::run(body());
}

TEST_CASE("as_completed: dropping it cancels the tasks still running", "[when]") {
  auto body = []() -> Task<void> {
    int alive = 0;
    std::vector<int> order;
    {
      std::vector<Task<void>> tasks;
      tasks.push_back(sleeper(10s, &alive, &order, 1));
      tasks.push_back(sleeper(10s, &alive, &order, 2));
      auto done = coring::as_completed(std::move(tasks));
      co_await coring::sleep_for(5ms);
      CHECK(alive == 2);
    }
    // They unwind on the next turns.
    for (int i = 0; i < 10 && alive != 0; ++i) co_await coring::yield_now();
    CHECK(alive == 0);
    CHECK(order.empty());
  };
  coring::run(body());
}
