// What cancellation and timeouts cost, through the public API, against the same
// operation ending the ordinary way in the same run.
//
//   BM_EventWaiterWoken       spawn a task that waits on an Event, let it park,
//                             set the Event, join the task.
//   BM_EventWaiterCancelled   the same, but cancel the task instead of setting
//                             the Event, then join it.
//   BM_TimedPopGetsItem       tasks park in with_timeout(1ms, queue.pop()); an
//                             item arrives for each before the timeout.
//   BM_TimedPopTimesOut       the same, and nothing arrives: every timeout fires.
//   BM_ReadyPop               queue.pop() of an item that is already there.
//   BM_ReadyPopWithTimeout    with_timeout(1ms, queue.pop()) of an item that is
//                             already there.
//
// The first four run batches of kBatch tasks on an EventLoop and report
// cpu_ns_per_task: the loop's thread CPU time (the wait for the 1 ms timeouts
// is sleep, not CPU) divided by the tasks. Spawning, parking and joining are in
// both variants of a pair; the difference is what the cancellation or the
// timeout costs. The last two report ns_per_pop.
#include <benchmark/benchmark.h>
#include <time.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr int kBatch = 1000;

double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Runs `batch()` (a Task<void>) once per benchmark iteration on one loop and
// reports the loop thread's CPU time per task.
template <class MakeBatch>
void per_task(benchmark::State& state, MakeBatch make_batch) {
  coring::EventLoop loop;
  double cpu = 0;
  for (auto _ : state) {
    const double t0 = thread_cpu_ns();
    loop.run(make_batch());
    cpu += thread_cpu_ns() - t0;
  }
  const auto tasks = static_cast<double>(state.iterations()) * kBatch;
  state.counters["cpu_ns_per_task"] = cpu / tasks;
}

coring::Task<void> wait_on(coring::Event& e) {
  co_await e.wait();
}

coring::Task<void> event_batch(bool cancel) {
  coring::Event e;
  std::vector<coring::JoinHandle<void>> waiters;
  waiters.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) waiters.push_back(coring::spawn(wait_on(e)));
  co_await coring::yield_now();  // every waiter runs once and parks
  if (cancel) {
    for (auto& w : waiters) w.cancel();
  } else {
    e.set();
  }
  int cancelled = 0;
  for (auto& w : waiters) {
    const coring::Outcome<void> o = co_await w.join();
    if (o.cancelled()) ++cancelled;
  }
  if (cancelled != (cancel ? kBatch : 0)) std::abort();
}

void BM_EventWaiterWoken(benchmark::State& state) {
  per_task(state, [] { return event_batch(false); });
}
void BM_EventWaiterCancelled(benchmark::State& state) {
  per_task(state, [] { return event_batch(true); });
}

coring::Task<void> timed_pop(coring::Queue<int>& q, int* got) {
  std::optional<int> r = co_await coring::with_timeout(1ms, q.pop());
  if (r) ++*got;
}

coring::Task<void> pop_batch(bool feed) {
  coring::Queue<int> q;
  int got = 0;
  std::vector<coring::JoinHandle<void>> poppers;
  poppers.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) poppers.push_back(coring::spawn(timed_pop(q, &got)));
  co_await coring::yield_now();  // every popper parks with its timer armed
  if (feed) {
    for (int i = 0; i < kBatch; ++i) q.try_push(i) ? void() : std::abort();
  }
  for (auto& p : poppers) co_await p;
  if (got != (feed ? kBatch : 0)) std::abort();
}

void BM_TimedPopGetsItem(benchmark::State& state) {
  per_task(state, [] { return pop_batch(true); });
}
void BM_TimedPopTimesOut(benchmark::State& state) {
  per_task(state, [] { return pop_batch(false); });
}

constexpr std::int64_t kPops = 100'000;

template <class Pop>
void per_pop(benchmark::State& state, Pop pop) {
  coring::EventLoop loop;
  double ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    loop.run(pop());
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["ns_per_pop"] = ns / (static_cast<double>(state.iterations()) * kPops);
}

// Two coroutines, not one with a flag: GCC may hoist the stores that build
// one branch's awaiter into the other branch.
coring::Task<void> ready_pops() {
  coring::Queue<std::int64_t> q;
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kPops; ++i) {
    if (!q.try_push(i)) std::abort();
    auto r = co_await q.pop();
    sum += *r;
  }
  benchmark::DoNotOptimize(sum);
}

coring::Task<void> ready_pops_with_timeout() {
  coring::Queue<std::int64_t> q;
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kPops; ++i) {
    if (!q.try_push(i)) std::abort();
    auto r = co_await coring::with_timeout(1ms, q.pop());
    sum += *r;
  }
  benchmark::DoNotOptimize(sum);
}

void BM_ReadyPop(benchmark::State& state) {
  per_pop(state, [] { return ready_pops(); });
}
void BM_ReadyPopWithTimeout(benchmark::State& state) {
  per_pop(state, [] { return ready_pops_with_timeout(); });
}

}  // namespace

BENCHMARK(BM_EventWaiterWoken)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EventWaiterCancelled)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TimedPopGetsItem)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TimedPopTimesOut)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadyPop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadyPopWithTimeout)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
