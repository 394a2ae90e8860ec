// Worker and Result<T>: values and exceptions through get() and co_await,
// get() from plain threads, co_await from loops on this and other threads, job
// order (one submitter and several), Task jobs awaited before the next job,
// submit after close, the destructor running what is queued, get() on the
// worker's own thread, wait_for, and with_timeout / cancellation on a
// co_await that leave the value in the Result.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using coring::ActorClosed;
using coring::Result;
using coring::Task;
using coring::Worker;

namespace {

long long ipow(long long base, int exp) {
  long long r = 1;
  while (exp-- > 0) r *= base;
  return r;
}

struct JobError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

TEST_CASE("submit returns a Result with the job's value", "[actor][worker]") {
  Worker worker("calc");
  CHECK(worker.name() == "calc");
  Result<long long> r = worker.submit(ipow, 2, 10);
  Result<std::string> s = worker.submit(
      [](std::string a, int n) {
        std::string out;
        for (int i = 0; i < n; ++i) out += a;
        return out;
      },
      std::string("ab"), 3);
  Result<void> v = worker.submit([] {});
  CHECK(r.valid());
  CHECK(r.get() == 1024);
  CHECK(r.get() == 1024);  // may be read again
  CHECK(s.get() == "ababab");
  v.get();
  CHECK(v.ready());
  CHECK_FALSE(Result<int>().valid());
}

TEST_CASE("a job's exception comes out of get() and co_await", "[actor][worker]") {
  Worker worker;
  Result<int> r = worker.submit([]() -> int { throw JobError("job failed"); });
  Result<void> rv = worker.submit([] { throw JobError("void job failed"); });
  CHECK_THROWS_WITH(r.get(), "job failed");
  CHECK_THROWS_AS(r.get(), JobError);
  CHECK_THROWS_AS(rv.get(), JobError);
  std::string awaited;
  std::string awaited_void;
  coring::run([&]() -> Task<void> {
    try {
      (void)co_await r;
    } catch (const JobError& e) {
      awaited = e.what();
    }
    try {
      co_await rv;
    } catch (const JobError& e) {
      awaited_void = e.what();
    }
  }());
  CHECK(awaited == "job failed");
  CHECK(awaited_void == "void job failed");
  // The worker goes on after a failed job.
  CHECK(worker.submit([] { return 5; }).get() == 5);
}

TEST_CASE("get() from plain threads", "[actor][worker][threads]") {
  Worker worker;
  constexpr int kThreads = 4;
  std::vector<int> got(kThreads, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&worker, &got, t] {
      Result<int> r = worker.submit([](int x) { return x * x; }, t + 2);
      got[static_cast<std::size_t>(t)] = r.get();
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(got[static_cast<std::size_t>(t)] == (t + 2) * (t + 2));
}

TEST_CASE("co_await a Result from a task on an EventLoop: the loop is not blocked",
          "[actor][worker]") {
  Worker worker;
  int value = 0;
  int ticks = 0;
  coring::run([&]() -> Task<void> {
    std::atomic<bool> release{false};
    Result<int> r = worker.submit([&release] {
      // Released by the ticker below, which runs only if this loop is free.
      for (int i = 0; i < 10000 && !release.load(); ++i) std::this_thread::sleep_for(1ms);
      return release.load() ? 7 : -1;
    });
    // Another task keeps running on this loop while we wait.
    auto ticker = coring::spawn([](int* n, std::atomic<bool>* rel) -> Task<void> {
      for (int i = 0; i < 5; ++i) {
        co_await coring::sleep_for(1ms);
        ++*n;
      }
      rel->store(true);
    }(&ticks, &release));
    value = co_await r;
    co_await ticker;
  }());
  CHECK(value == 7);
  CHECK(ticks == 5);
}

TEST_CASE("co_await a Result from a loop on another thread", "[actor][worker][threads]") {
  Worker worker;
  std::vector<int> got;
  std::thread other([&] {
    coring::run([&]() -> Task<void> {
      for (int i = 0; i < 20; ++i) {
        const int v = co_await worker.submit(
            [](int x) {
              std::this_thread::sleep_for(100us);
              return x + 1;
            },
            i);
        got.push_back(v);
      }
    }());
  });
  other.join();
  REQUIRE(got.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(got[static_cast<std::size_t>(i)] == i + 1);
}

TEST_CASE("jobs run one at a time, in the order submitted, on the worker's thread",
          "[actor][worker]") {
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  int overlapping = 0;
  {
    Worker worker;
    std::atomic<int> running{0};
    std::vector<Result<void>> rs;
    for (int i = 0; i < 100; ++i) {
      rs.push_back(worker.submit([&, i] {
        if (running.fetch_add(1) != 0) ++overlapping;
        order.push_back(i);
        threads.push_back(std::this_thread::get_id());
        running.fetch_sub(1);
      }));
    }
    for (auto& r : rs) r.get();
  }
  REQUIRE(order.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
  CHECK(overlapping == 0);
  for (const auto& id : threads) CHECK(id == threads.front());
  CHECK(threads.front() != std::this_thread::get_id());
}

TEST_CASE("jobs from several submitting threads keep each submitter's order",
          "[actor][worker][threads]") {
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  std::vector<std::pair<int, int>> seen;  // touched by the worker only
  {
    Worker worker;
    std::vector<std::thread> submitters;
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&worker, &seen, t] {
        Result<void> last;
        for (int i = 0; i < kEach; ++i)
          last = worker.submit([&seen, t, i] { seen.emplace_back(t, i); });
        last.get();
      });
    }
    for (auto& th : submitters) th.join();
  }
  REQUIRE(seen.size() == static_cast<std::size_t>(kThreads * kEach));
  std::vector<int> next(kThreads, 0);
  for (const auto& [t, i] : seen) {
    REQUIRE(i == next[static_cast<std::size_t>(t)]);
    ++next[static_cast<std::size_t>(t)];
  }
}

TEST_CASE("a job returning Task<R> is awaited on the worker's loop before the next job runs",
          "[actor][worker]") {
  std::vector<std::string> log;
  int awaited_value = 0;
  {
    Worker worker;
    Result<int> r = worker.submit([&log]() -> Task<int> {
      co_await coring::sleep_for(20ms);  // the worker's own loop
      log.push_back("task job");
      co_return 42;
    });
    Result<void> rv = worker.submit([&log]() -> Task<void> {
      co_await coring::yield_now();
      log.push_back("void task job");
    });
    Result<void> after = worker.submit([&log] { log.push_back("plain job"); });
    after.get();
    awaited_value = r.get();
    rv.get();
  }
  CHECK(awaited_value == 42);
  CHECK(log == std::vector<std::string>{"task job", "void task job", "plain job"});
}

TEST_CASE("a Task job's exception reaches its Result", "[actor][worker]") {
  Worker worker;
  Result<int> r = worker.submit([]() -> Task<int> {
    co_await coring::yield_now();
    throw JobError("task job failed");
  });
  CHECK_THROWS_WITH(r.get(), "task job failed");
}

TEST_CASE("submit after close throws ActorClosed; queued jobs still run", "[actor][worker]") {
  std::atomic<int> ran{0};
  Worker worker;
  std::vector<Result<void>> rs;
  for (int i = 0; i < 10; ++i)
    rs.push_back(worker.submit([&ran] {
      std::this_thread::sleep_for(200us);
      ++ran;
    }));
  worker.close();
  worker.close();  // idempotent
  CHECK_THROWS_AS(worker.submit([] { return 1; }), ActorClosed);
  worker.join();
  CHECK(ran.load() == 10);
  for (auto& r : rs) CHECK(r.ready());
  CHECK_THROWS_AS(worker.submit([] {}), ActorClosed);
}

TEST_CASE("the destructor runs what is queued, then joins", "[actor][worker]") {
  std::atomic<int> ran{0};
  std::vector<Result<int>> rs;
  {
    Worker worker;
    for (int i = 0; i < 20; ++i) {
      rs.push_back(worker.submit(
          [&ran](int x) {
            std::this_thread::sleep_for(100us);
            ++ran;
            return x;
          },
          i));
    }
  }
  CHECK(ran.load() == 20);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(rs[static_cast<std::size_t>(i)].ready());
    CHECK(rs[static_cast<std::size_t>(i)].get() == i);
  }
}

TEST_CASE("get() on the worker's own thread is a std::logic_error, not a deadlock",
          "[actor][worker][misuse]") {
  Worker worker;
  std::promise<Result<int>*> later_ready;
  std::shared_future<Result<int>*> later_f = later_ready.get_future().share();
  Result<bool> first = worker.submit([later_f] {
    Result<int>* later = later_f.get();  // a job queued behind this one
    try {
      (void)later->get();
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  });
  Result<int> later = worker.submit([] { return 3; });
  later_ready.set_value(&later);
  CHECK(first.get());
  CHECK(later.get() == 3);
}

TEST_CASE("wait_for: false while the job has not run, true once it has", "[actor][worker]") {
  Worker worker;
  std::latch release(1);
  Result<int> r = worker.submit([&release] {
    release.wait();
    return 1;
  });
  CHECK_FALSE(r.wait_for(5ms));
  CHECK_FALSE(r.ready());
  release.count_down();
  CHECK(r.wait_for(30s));
  CHECK(r.ready());
  CHECK(r.get() == 1);
}

TEST_CASE("with_timeout on co_await result gives nullopt; the value stays in the Result",
          "[actor][worker][timeout]") {
  Worker worker;
  std::latch release(1);
  Result<int> r = worker.submit([&release] {
    release.wait();
    return 99;
  });
  std::optional<int> timed;
  std::optional<int> in_time;
  int awaited_after = 0;
  coring::run([&]() -> Task<void> {
    timed = co_await coring::with_timeout(10ms, r);
    release.count_down();
    in_time = co_await coring::with_timeout(30s, r);
    awaited_after = co_await r;
  }());
  CHECK_FALSE(timed.has_value());
  CHECK(in_time == 99);
  CHECK(awaited_after == 99);
  CHECK(r.get() == 99);
}

TEST_CASE("with_timeout on co_await result, then get() from this thread",
          "[actor][worker][timeout]") {
  Worker worker;
  std::latch release(1);
  Result<std::string> r = worker.submit([&release] {
    release.wait();
    return std::string("late value");
  });
  std::optional<std::string> timed = std::string("unset");
  coring::run([&]() -> Task<void> { timed = co_await coring::with_timeout(5ms, r); }());
  CHECK_FALSE(timed.has_value());
  release.count_down();
  CHECK(r.get() == "late value");
}

TEST_CASE("a task cancelled while awaiting a Result leaves the value in it",
          "[actor][worker][cancel]") {
  Worker worker;
  std::latch release(1);
  Result<int> r = worker.submit([&release] {
    release.wait();
    return 5;
  });
  bool cancelled = false;
  bool after = false;
  coring::run([&]() -> Task<void> {
    auto waiter = coring::spawn([](Result<int> res, bool* a) -> Task<void> {
      (void)co_await res;
      *a = true;
    }(r, &after));
    co_await coring::sleep_for(2ms);
    waiter.cancel();
    const coring::Outcome<void> o = co_await waiter.join();
    cancelled = o.cancelled();
    release.count_down();
    const int v = co_await r;  // another wait on the same Result: fine now
    CHECK(v == 5);
  }());
  CHECK(cancelled);
  CHECK_FALSE(after);
  CHECK(r.get() == 5);
}

TEST_CASE("one task awaits a Result at a time: a second awaiter gets std::logic_error",
          "[actor][worker][misuse]") {
  Worker worker;
  std::latch release(1);
  Result<int> r = worker.submit([&release] {
    release.wait();
    return 8;
  });
  int first = 0;
  bool second_threw = false;
  coring::run([&]() -> Task<void> {
    auto waiter = coring::spawn(
        [](Result<int> res, int* out) -> Task<void> { *out = co_await res; }(r, &first));
    co_await coring::sleep_for(2ms);  // it waits now
    try {
      (void)co_await r;
    } catch (const std::logic_error&) {
      second_threw = true;
    }
    co_await coring::sleep_for(1ms);  // this task goes on normally
    release.count_down();
    co_await waiter;
  }());
  CHECK(second_threw);
  CHECK(first == 8);
}

TEST_CASE("a Task job on one worker awaits a Result of another worker",
          "[actor][worker][threads]") {
  Worker a("a");
  Worker b("b");
  Result<int> r = a.submit([&b]() -> Task<int> {
    int sum = 0;
    for (int i = 1; i <= 10; ++i) {
      const int v = co_await b.submit([](int x) { return x * x; }, i);
      sum += v;
    }
    co_return sum;
  });
  CHECK(r.get() == 385);
}

TEST_CASE("a Worker with no jobs is destroyed promptly", "[actor][worker]") {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    Worker w;
    if (i % 2 == 0) w.close();
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
}

TEST_CASE("an empty Result says so instead of crashing", "[actor][worker]") {
  coring::Result<int> empty;
  CHECK_FALSE(empty.valid());
  CHECK_THROWS_AS(empty.get(), std::logic_error);
  CHECK_THROWS_AS(empty.ready(), std::logic_error);
}
