// Timer cost: arm-and-fire and arm-and-cancel, end to end and on the raw heap.
//
//   BM_SpawnJoin           reference for the end-to-end figures: the same spawn
//                          and join of N tasks on an EventLoop, with no timer.
//   BM_SleepFor            N tasks each `co_await sleep_for(d)`, d uniform in
//                          [0, 100us] (fixed seed), spawned and joined by one task
//                          on an EventLoop. Includes the wait for the last
//                          deadline (at most 100us after it was armed).
//   BM_SleepCancel         N tasks each `co_await sleep_for(1h)`; once all are
//                          armed, cancel every one via JoinHandle::cancel() and
//                          join it (each join sees it cancelled).
//   BM_TimerQueueAddExpire raw TimerQueue: add N nodes (random deadlines), then
//                          one expire() fires them all.
//   BM_TimerQueueAddRemove raw TimerQueue: add N nodes, then remove them in a
//                          random order (arm-and-cancel without the tasks).
//
// Arg = N timers. Counter ns_per_timer = wall time of the measured region / N.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using namespace std::chrono_literals;

std::vector<coring::Duration> random_durations(std::size_t n, coring::Duration max) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<coring::Duration::rep> dist(0, max.count());
  std::vector<coring::Duration> out(n);
  for (auto& d : out) d = coring::Duration(dist(rng));
  return out;
}

template <class F>
void measure_timers(benchmark::State& state, F&& body) {
  const std::int64_t n = state.range(0);
  double ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!body()) break;  // body reported the error
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iters * n);
  state.counters["ns_per_timer"] = ns / static_cast<double>(iters * n);
}

// ---------------------------------------------------------------------------
// End to end on an EventLoop.

coring::Task<void> nothing() {
  co_return;
}

coring::Task<void> spawn_join(std::size_t n) {
  std::vector<coring::JoinHandle<void>> handles;
  handles.reserve(n);
  for (std::size_t i = 0; i < n; ++i) handles.push_back(coring::spawn(nothing()));
  for (auto& h : handles) co_await h;
}

void BM_SpawnJoin(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  coring::EventLoop loop;
  measure_timers(state, [&] {
    loop.run(spawn_join(n));
    return true;
  });
}

coring::Task<void> sleeper(coring::Duration d) {
  co_await coring::sleep_for(d);
}

coring::Task<void> spawn_sleepers(const std::vector<coring::Duration>& durations) {
  std::vector<coring::JoinHandle<void>> handles;
  handles.reserve(durations.size());
  for (coring::Duration d : durations) handles.push_back(coring::spawn(sleeper(d)));
  for (auto& h : handles) co_await h;
}

void BM_SleepFor(benchmark::State& state) {
  const auto durations = random_durations(static_cast<std::size_t>(state.range(0)), 100us);
  coring::EventLoop loop;
  measure_timers(state, [&] {
    loop.run(spawn_sleepers(durations));
    if (!loop.timers().empty()) {
      state.SkipWithError("timers left armed after every sleeper finished");
      return false;
    }
    return true;
  });
}

// Returns how many joins saw their task cancelled, or ~0 if the sleepers were
// not all armed when the cancellation started.
coring::Task<std::size_t> spawn_and_cancel(std::size_t n) {
  std::vector<coring::JoinHandle<void>> handles;
  handles.reserve(n);
  for (std::size_t i = 0; i < n; ++i) handles.push_back(coring::spawn(sleeper(1h)));
  // FIFO: every sleeper runs (and arms its timer) before this task resumes.
  co_await coring::yield_now();
  if (coring::EventLoop::current_or_throw().timers().size() != n) co_return ~std::size_t{0};
  for (auto& h : handles) h.cancel();
  std::size_t cancelled = 0;
  for (auto& h : handles) {
    const coring::Outcome<void> o = co_await h.join();
    if (o.cancelled()) ++cancelled;
  }
  co_return cancelled;
}

void BM_SleepCancel(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  coring::EventLoop loop;
  measure_timers(state, [&] {
    const std::size_t cancelled = loop.run(spawn_and_cancel(n));
    if (cancelled != n || !loop.timers().empty()) {
      state.SkipWithError("not every sleeper was armed, then cancelled");
      return false;
    }
    return true;
  });
}

// ---------------------------------------------------------------------------
// The raw TimerQueue.

std::size_t g_fired = 0;
void count_fire(coring::TimerNode*) noexcept {
  ++g_fired;
}

std::vector<coring::TimerNode> make_nodes(std::size_t n, coring::TimePoint base) {
  const auto durations = random_durations(n, 100us);
  std::vector<coring::TimerNode> nodes(n);
  for (std::size_t i = 0; i < n; ++i) {
    nodes[i].deadline = base + durations[i];
    nodes[i].on_fire = &count_fire;
  }
  return nodes;
}

void BM_TimerQueueAddExpire(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const coring::TimePoint base = coring::Clock::now();
  auto nodes = make_nodes(n, base);
  coring::TimerQueue q;
  measure_timers(state, [&] {
    g_fired = 0;
    for (auto& node : nodes) q.add(&node);
    const std::size_t fired = q.expire(base + 1s);
    if (fired != n || g_fired != n || !q.empty()) {
      state.SkipWithError("expire() did not fire every timer");
      return false;
    }
    return true;
  });
}

void BM_TimerQueueAddRemove(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto nodes = make_nodes(n, coring::Clock::now());
  std::vector<coring::TimerNode*> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = &nodes[i];
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  coring::TimerQueue q;
  measure_timers(state, [&] {
    for (auto& node : nodes) q.add(&node);
    for (coring::TimerNode* node : order) q.remove(node);
    if (!q.empty()) {
      state.SkipWithError("remove() left timers armed");
      return false;
    }
    return true;
  });
}

BENCHMARK(BM_SpawnJoin)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SleepFor)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SleepCancel)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TimerQueueAddExpire)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_TimerQueueAddRemove)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
