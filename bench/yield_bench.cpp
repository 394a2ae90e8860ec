// Round-robin switch cost: many tasks that each `co_await yield_now()` N times.
//
// One "switch" is one resume of a queued coroutine by the scheduler (each task is
// resumed once to start and once after each yield). Variants:
//
//   BM_DequeYield        the floor: a bare std::deque<std::coroutine_handle<>> loop
//                        and a minimal hand-written coroutine whose await_suspend
//                        pushes itself back onto the deque.
//   BM_CoringYield       coring::Task<void> tasks spawned on a standalone
//                        coring::TaskScheduler, yielding with coring::yield_now().
//   BM_SchedulerRawYield the minimal coroutine type on coring::TaskScheduler with
//                        coring::yield_now(): the scheduler and awaiter without the
//                        Task promise (splits the gap between floor and coring).
//   BM_EventLoopYield    coring::Task<void> tasks on an EventLoop (run_budget turns
//                        interleaved with timer/io polling).
//
// Arg = number of tasks; every variant does ~1,000,000 switches per iteration.
// Counter ns_per_switch = wall time of the measured region / switches.
#include <benchmark/benchmark.h>

#include <chrono>
#include <coring/coring.hpp>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <vector>

namespace {

constexpr std::int64_t kTotalYields = 1'000'000;

// Runs `body` once per benchmark iteration and reports ns per switch.
template <class F>
void measure_switches(benchmark::State& state, std::int64_t switches_per_iter, F&& body) {
  double ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iters * switches_per_iter);
  state.counters["switches"] = static_cast<double>(switches_per_iter);
  state.counters["ns_per_switch"] = ns / static_cast<double>(iters * switches_per_iter);
}

// ---------------------------------------------------------------------------
// The floor: a minimal coroutine type and a bare deque.
namespace bare {

struct Coro {
  struct promise_type {
    Coro get_return_object() noexcept {
      return Coro{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

using Queue = std::deque<std::coroutine_handle<>>;

// The awaiter pushes the suspended coroutine back onto the deque.
struct Yield {
  Queue& q;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { q.push_back(h); }
  void await_resume() const noexcept {}
};

Coro deque_worker(Queue& q, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await Yield{q};
}

// The same minimal coroutine, yielding through coring's scheduler instead.
Coro coring_worker(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await coring::yield_now();
}

}  // namespace bare

void BM_DequeYield(benchmark::State& state) {
  const std::int64_t tasks = state.range(0);
  const std::int64_t yields = kTotalYields / tasks;
  std::vector<bare::Coro> coros;
  coros.reserve(static_cast<std::size_t>(tasks));
  bare::Queue q;
  measure_switches(state, tasks * (yields + 1), [&] {
    coros.clear();
    for (std::int64_t t = 0; t < tasks; ++t) {
      coros.push_back(bare::deque_worker(q, yields));
      q.push_back(coros.back().h);
    }
    while (!q.empty()) {
      std::coroutine_handle<> h = q.front();
      q.pop_front();
      h.resume();
    }
    for (auto& c : coros) c.h.destroy();
  });
}

// ---------------------------------------------------------------------------
// coring::Task on a standalone TaskScheduler.
coring::Task<void> yielder(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await coring::yield_now();
}

void BM_CoringYield(benchmark::State& state) {
  const std::int64_t tasks = state.range(0);
  const std::int64_t yields = kTotalYields / tasks;
  coring::TaskScheduler sched;
  measure_switches(state, tasks * (yields + 1), [&] {
    for (std::int64_t t = 0; t < tasks; ++t) sched.spawn(yielder(yields)).detach();
    sched.run();
  });
}

void BM_SchedulerRawYield(benchmark::State& state) {
  const std::int64_t tasks = state.range(0);
  const std::int64_t yields = kTotalYields / tasks;
  std::vector<bare::Coro> coros;
  coros.reserve(static_cast<std::size_t>(tasks));
  coring::TaskScheduler sched;
  measure_switches(state, tasks * (yields + 1), [&] {
    coros.clear();
    for (std::int64_t t = 0; t < tasks; ++t) {
      coros.push_back(bare::coring_worker(yields));
      sched.schedule(coros.back().h);
    }
    sched.run();
    for (auto& c : coros) c.h.destroy();
  });
}

// ---------------------------------------------------------------------------
// coring::Task on an EventLoop (io_uring backend; nothing in flight but the
// loop's own eventfd read, so a busy turn makes no system call).
coring::Task<void> spawn_and_join(std::int64_t tasks, std::int64_t yields) {
  std::vector<coring::JoinHandle<void>> handles;
  handles.reserve(static_cast<std::size_t>(tasks));
  for (std::int64_t t = 0; t < tasks; ++t) handles.push_back(coring::spawn(yielder(yields)));
  for (auto& h : handles) co_await h;
}

void BM_EventLoopYield(benchmark::State& state) {
  const std::int64_t tasks = state.range(0);
  const std::int64_t yields = kTotalYields / tasks;
  coring::EventLoop loop;
  measure_switches(state, tasks * (yields + 1), [&] { loop.run(spawn_and_join(tasks, yields)); });
}

BENCHMARK(BM_DequeYield)->Arg(100)->Arg(10'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CoringYield)->Arg(100)->Arg(10'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SchedulerRawYield)
    ->Arg(100)
    ->Arg(10'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_EventLoopYield)->Arg(100)->Arg(10'000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
