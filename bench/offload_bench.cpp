// offload_bench: the round trip task -> ThreadPool -> task of
// `co_await coring::offload(pool, fn)`, against, in the same run,
// `std::async(std::launch::async, fn).get()` (a thread per call) and a plain
// submit to the same pool with a std::future waited on by the calling thread.
// fn is trivial (returns its argument + 1): what is measured is the crossing.
// BM_OffloadBurst: 64 tasks each offloading in a loop (throughput per offload,
// completions batched by the loop's inbox). Arg: 0 = io_uring, 1 = epoll.
//
// Run: build/bench/bench/offload_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <coring/coring.hpp>

#include <future>
#include <vector>

namespace {

coring::LoopOptions options_for(const benchmark::State& state) {
  coring::LoopOptions o;
  o.backend = state.range(0) == 0 ? coring::BackendKind::io_uring : coring::BackendKind::epoll;
  return o;
}

coring::Task<long> offload_loop(benchmark::State* state, coring::ThreadPool* pool) {
  long v = 0;
  for (auto _ : *state) {
    long next = co_await coring::offload(*pool, [v] { return v + 1; });
    v = next;
  }
  co_return v;
}

void BM_OffloadRoundTrip(benchmark::State& state) {
  coring::ThreadPool pool(2);
  coring::EventLoop loop(options_for(state));
  state.SetLabel(coring::to_string(loop.options().backend));
  const long v = loop.run(offload_loop(&state, &pool));
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OffloadRoundTrip)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_StdAsyncGet(benchmark::State& state) {
  long v = 0;
  for (auto _ : state) v = std::async(std::launch::async, [v] { return v + 1; }).get();
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StdAsyncGet)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_PoolSubmitFutureGet(benchmark::State& state) {
  coring::ThreadPool pool(2);
  long v = 0;
  for (auto _ : state) v = pool.submit([v] { return v + 1; }).get();
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolSubmitFutureGet)->Unit(benchmark::kMicrosecond)->UseRealTime();

coring::Task<void> offload_n(coring::ThreadPool* pool, long n, long* sum) {
  for (long i = 0; i < n; ++i) {
    long r = co_await coring::offload(*pool, [i] { return i; });
    *sum += r;
  }
}

coring::Task<long> burst(coring::ThreadPool* pool, int tasks, long per_task) {
  long sum = 0;
  std::vector<coring::JoinHandle<void>> hs;
  hs.reserve(static_cast<std::size_t>(tasks));
  for (int t = 0; t < tasks; ++t) hs.push_back(coring::spawn(offload_n(pool, per_task, &sum)));
  for (auto& h : hs) co_await h;
  co_return sum;
}

void BM_OffloadBurst(benchmark::State& state) {
  constexpr int kTasks = 64;
  constexpr long kPerTask = 100;
  coring::ThreadPool pool(2);
  coring::EventLoop loop(options_for(state));
  state.SetLabel(coring::to_string(loop.options().backend));
  for (auto _ : state) benchmark::DoNotOptimize(loop.run(burst(&pool, kTasks, kPerTask)));
  state.SetItemsProcessed(state.iterations() * kTasks * kPerTask);
}
BENCHMARK(BM_OffloadBurst)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
