// ThreadPool and offload on real threads and a real EventLoop (either backend:
// CORING_BACKEND): value and exception round trips, many offloads from many
// tasks, an offload whose task is cancelled or times out while the job runs or
// waits, a full pool, shutdown with queued work (run and drop), a pool of one
// thread running jobs in order, and a loop destroyed with offloads in flight.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::EventLoop;
using coring::JoinHandle;
using coring::PendingWork;
using coring::Task;
using coring::ThreadPool;
using coring::ThreadPoolClosed;
using coring::ThreadPoolFull;

namespace {

// A gate a test opens by hand: jobs that wait on it stay running (or queued
// behind them) until then.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(m_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

Task<std::string> offload_string(ThreadPool* pool, int n) {
  std::string s = co_await coring::offload(*pool, [n] { return std::string(n, 'x'); });
  co_return s;
}

Task<std::string> offload_throwing(ThreadPool* pool) {
  try {
    co_await coring::offload(*pool, []() -> int { throw std::runtime_error("boom on a worker"); });
  } catch (const std::runtime_error& e) {
    co_return e.what();
  }
  co_return "no exception";
}

Task<int> sum_of_offloads(ThreadPool* pool, int tasks, int per_task) {
  std::atomic<int> ran{0};
  std::vector<JoinHandle<long>> handles;
  for (int t = 0; t < tasks; ++t) {
    handles.push_back(
        coring::spawn([](ThreadPool* p, int base, int n, std::atomic<int>* r) -> Task<long> {
          long sum = 0;
          for (int i = 0; i < n; ++i) {
            const int v = base + i;
            int got = co_await coring::offload(*p, [v, r] {
              r->fetch_add(1, std::memory_order_relaxed);
              return v * 2;
            });
            sum += got;
          }
          co_return sum;
        }(pool, t * per_task, per_task, &ran)));
  }
  long total = 0;
  for (auto& h : handles) total += co_await h;
  const long n = static_cast<long>(tasks) * per_task;
  co_return (total == n * (n - 1) && ran.load() == n) ? 1 : 0;
}

// A worker counts a job completed just after handing its result back, so the
// loop may see the result first: wait (bounded) for the count.
std::uint64_t completed_after(const ThreadPool& pool, std::uint64_t expected) {
  for (int i = 0; i < 2000 && pool.stats().completed < expected; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  return pool.stats().completed;
}

}  // namespace

TEST_CASE("offload returns the job's value and resumes on the loop's thread", "[thread_pool]") {
  ThreadPool pool(2);
  REQUIRE(pool.size() == 2);
  EventLoop loop;
  const std::thread::id loop_thread = std::this_thread::get_id();
  struct Seen {
    std::thread::id job;
    std::thread::id after;
  };
  Seen seen = loop.run([](ThreadPool* p) -> Task<Seen> {
    std::thread::id job = co_await coring::offload(*p, [] { return std::this_thread::get_id(); });
    co_return Seen{job, std::this_thread::get_id()};
  }(&pool));
  CHECK(seen.job != loop_thread);
  CHECK(seen.after == loop_thread);
  CHECK(loop.run(offload_string(&pool, 1000)) == std::string(1000, 'x'));
  CHECK(completed_after(pool, 2) == 2);
}

TEST_CASE("offload rethrows the job's exception in the task", "[thread_pool]") {
  ThreadPool pool(1);
  EventLoop loop;
  CHECK(loop.run(offload_throwing(&pool)) == "boom on a worker");
  // A void job.
  std::atomic<int> ran{0};
  loop.run([](ThreadPool* p, std::atomic<int>* r) -> Task<void> {
    co_await coring::offload(*p, [r] { r->fetch_add(1); });
  }(&pool, &ran));
  CHECK(ran.load() == 1);
}

TEST_CASE("many tasks offload concurrently, every job runs once", "[thread_pool]") {
  ThreadPool pool(4);
  EventLoop loop;
  CHECK(loop.run(sum_of_offloads(&pool, 64, 50)) == 1);
  CHECK(completed_after(pool, 64 * 50) == 64 * 50);
  CHECK(pool.stats().dropped == 0);
}

TEST_CASE("offload on the default pool", "[thread_pool]") {
  EventLoop loop;
  int v = loop.run([]() -> Task<int> {
    int r = co_await coring::offload([] { return 6 * 7; });
    co_return r;
  }());
  CHECK(v == 42);
  CHECK(coring::default_thread_pool().size() >= 1);
}

TEST_CASE("a pool of one thread runs its jobs in order", "[thread_pool]") {
  ThreadPool pool(1);
  std::vector<int> order;  // touched by the one worker only
  std::vector<std::future<void>> done;
  for (int i = 0; i < 200; ++i) done.push_back(pool.submit([i, &order] { order.push_back(i); }));
  for (auto& f : done) f.get();
  REQUIRE(order.size() == 200);
  bool in_order = true;
  for (int i = 0; i < 200; ++i) in_order = in_order && order[static_cast<std::size_t>(i)] == i;
  CHECK(in_order);
}

TEST_CASE("submit from a plain thread gives a future with the value or the exception",
          "[thread_pool]") {
  ThreadPool pool(2);
  auto f = pool.submit([] { return 5; });
  auto g = pool.submit([]() -> int { throw std::invalid_argument("bad"); });
  CHECK(f.get() == 5);
  CHECK_THROWS_AS(g.get(), std::invalid_argument);
}

TEST_CASE("shutdown runs the queued jobs, then joins; later work is refused", "[thread_pool]") {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  auto first = pool.submit([&] { gate.wait(); });
  std::vector<std::future<void>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(pool.submit([&] { ran.fetch_add(1); }));
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    gate.open();
  });
  pool.shutdown();  // waits for all 11
  opener.join();
  CHECK(ran.load() == 10);
  CHECK(pool.closed());
  CHECK_THROWS_AS(pool.submit([] {}), ThreadPoolClosed);
  pool.shutdown();  // idempotent
}

TEST_CASE("shutdown(drop) drops the queued jobs: futures and offloads get ThreadPoolClosed",
          "[thread_pool]") {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  auto first = pool.submit([&] { gate.wait(); });
  auto queued = pool.submit([&] { ran.fetch_add(1); });
  EventLoop loop;
  std::string what = loop.run([](ThreadPool* p, Gate* g, std::atomic<int>* r) -> Task<std::string> {
    auto h = coring::spawn([](ThreadPool* pp, std::atomic<int>* rr) -> Task<std::string> {
      try {
        co_await coring::offload(*pp, [rr] { rr->fetch_add(1); });
      } catch (const ThreadPoolClosed& e) {
        co_return e.what();
      }
      co_return "ran";
    }(p, r));
    co_await coring::sleep_for(10ms);  // the offload is queued behind the gate
    std::thread closer([p] { p->shutdown(PendingWork::drop); });
    co_await coring::sleep_for(10ms);
    g->open();
    std::string s = co_await h;
    closer.join();
    co_return s;
  }(&pool, &gate, &ran));
  CHECK(what.find("dropped") != std::string::npos);
  CHECK_THROWS_AS(queued.get(), ThreadPoolClosed);
  CHECK(ran.load() == 0);
  CHECK(pool.stats().dropped == 2);
}

TEST_CASE("offload after shutdown reports ThreadPoolClosed", "[thread_pool]") {
  ThreadPool pool(1);
  pool.shutdown();
  EventLoop loop;
  bool closed = loop.run([](ThreadPool* p) -> Task<bool> {
    try {
      co_await coring::offload(*p, [] { return 1; });
    } catch (const ThreadPoolClosed&) {
      co_return true;
    }
    co_return false;
  }(&pool));
  CHECK(closed);
}

TEST_CASE("a full bounded pool: offload fails with ThreadPoolFull, try_submit gives nullopt",
          "[thread_pool]") {
  ThreadPool pool(1, 2);
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  while (pool.stats().running == 0) std::this_thread::yield();
  auto q1 = pool.submit([] {});
  auto q2 = pool.submit([] {});
  CHECK(pool.stats().queued == 2);
  CHECK_FALSE(pool.try_submit([] {}).has_value());
  EventLoop loop;
  bool full = loop.run([](ThreadPool* p) -> Task<bool> {
    try {
      co_await coring::offload(*p, [] { return 1; });
    } catch (const ThreadPoolFull&) {
      co_return true;
    }
    co_return false;
  }(&pool));
  CHECK(full);
  // submit() waits for room.
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    gate.open();
  });
  auto q3 = pool.submit([] { return 3; });
  CHECK(q3.get() == 3);
  opener.join();
}

TEST_CASE("cancelling a task whose offload runs: the job finishes, the frame is gone",
          "[thread_pool]") {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<int> finished{0};
  EventLoop loop;
  bool after_await = false;
  loop.run([](ThreadPool* p, Gate* g, std::atomic<int>* fin, bool* after) -> Task<void> {
    auto h =
        coring::spawn([](ThreadPool* pp, Gate* gg, std::atomic<int>* ff, bool* aa) -> Task<void> {
          std::vector<int> frame_data(1000, 7);  // freed when the frame is
          int v = co_await coring::offload(*pp, [gg, ff] {
            gg->wait();
            ff->fetch_add(1);
            return 1;
          });
          *aa = frame_data[0] + v > 0;
        }(p, g, fin, after));
    co_await coring::sleep_for(10ms);  // the job is running, blocked on the gate
    h.cancel();
    auto o = co_await h.join();
    g->open();  // the job now completes into a job record nobody waits on
    while (fin->load() != 1) co_await coring::sleep_for(1ms);
    co_await coring::sleep_for(5ms);  // its inbox drain runs on this loop
    *after = *after || !o.cancelled();
  }(&pool, &gate, &finished, &after_await));
  CHECK(finished.load() == 1);
  CHECK_FALSE(after_await);
  CHECK(completed_after(pool, 1) == 1);
}

TEST_CASE("cancelling a task whose offload is still queued drops the job", "[thread_pool]") {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  auto blocker = pool.submit([&] { gate.wait(); });
  EventLoop loop;
  loop.run([](std::atomic<int>* r, ThreadPool* p) -> Task<void> {
    auto h = coring::spawn([](ThreadPool* pp, std::atomic<int>* rr) -> Task<void> {
      co_await coring::offload(*pp, [rr] { rr->fetch_add(1); });
    }(p, r));
    co_await coring::sleep_for(5ms);
    h.cancel();
    auto o = co_await h.join();
    (void)o;
  }(&ran, &pool));
  gate.open();
  blocker.get();
  pool.shutdown();
  CHECK(ran.load() == 0);
  CHECK(pool.stats().dropped == 1);
  CHECK(pool.stats().completed == 1);  // the blocker; the skipped job is not counted twice
}

TEST_CASE("offload with a timeout: the task gives up, the job still runs to its end",
          "[thread_pool]") {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<int> finished{0};
  EventLoop loop;
  struct Got {
    bool with_timeout_empty = false;
    bool set_timeout_threw = false;
    int later = 0;
  };
  Got got = loop.run([](ThreadPool* p, Gate* g, std::atomic<int>* fin) -> Task<Got> {
    Got out;
    std::optional<int> r = co_await coring::with_timeout(10ms, coring::offload(*p, [g, fin] {
                                                           g->wait();
                                                           fin->fetch_add(1);
                                                           return 1;
                                                         }));
    out.with_timeout_empty = !r.has_value();
    auto op = coring::offload(*p, [] { return 2; });  // queued behind the gated job
    op.set_timeout(5ms);
    try {
      (void)co_await std::move(op);
    } catch (const std::system_error& e) {
      out.set_timeout_threw = e.code() == std::errc::timed_out;
    }
    g->open();
    int later = co_await coring::offload(*p, [] { return 3; });
    out.later = later;
    co_return out;
  }(&pool, &gate, &finished));
  CHECK(got.with_timeout_empty);
  CHECK(got.set_timeout_threw);
  CHECK(got.later == 3);
  pool.shutdown();
  CHECK(finished.load() == 1);
  CHECK(pool.stats().dropped == 1);  // the timed-out one that was still queued
}

TEST_CASE("a task cancelled before it offloads never queues the job", "[thread_pool]") {
  ThreadPool pool(1);
  std::atomic<int> ran{0};
  EventLoop loop;
  bool after = false;
  loop.run([](ThreadPool* p, std::atomic<int>* r, bool* a) -> Task<void> {
    JoinHandle<void> self;
    self = coring::spawn(
        [](ThreadPool* pp, std::atomic<int>* rr, JoinHandle<void>* me, bool* aa) -> Task<void> {
          me->cancel();  // while it runs: the offload is its next suspension point
          co_await coring::offload(*pp, [rr] { rr->fetch_add(1); });
          *aa = true;
        }(p, r, &self, a));
    auto o = co_await self.join();
    *a = *a || !o.cancelled();
  }(&pool, &ran, &after));
  pool.shutdown();
  CHECK_FALSE(after);
  CHECK(ran.load() == 0);
  CHECK(pool.stats().completed == 0);
}

TEST_CASE("a loop destroyed with offloads in flight: no leak, no touch of the freed loop",
          "[thread_pool]") {
  ThreadPool pool(2);
  Gate gate;
  std::atomic<int> finished{0};
  {
    EventLoop loop;
    loop.run([](ThreadPool* p, Gate* g, std::atomic<int>* fin) -> Task<void> {
      for (int i = 0; i < 8; ++i) {
        coring::spawn([](ThreadPool* pp, Gate* gg, std::atomic<int>* ff) -> Task<void> {
          auto big = std::make_unique<std::vector<int>>(256, 1);
          int v = co_await coring::offload(*pp, [gg, ff] {
            gg->wait();
            ff->fetch_add(1);
            return 1;
          });
          (*big)[0] += v;
        }(p, g, fin))
            .detach();
      }
      co_await coring::sleep_for(5ms);
    }(&pool, &gate, &finished));
  }  // the loop goes with 8 tasks suspended in offload: 2 jobs running, 6 queued
  gate.open();
  pool.shutdown();
  CHECK(finished.load() == 2);
  CHECK(pool.stats().dropped == 6);
}
