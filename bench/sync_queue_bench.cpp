// Queue benchmarks (Google Benchmark), all on a standalone TaskScheduler.
//
//   BM_YieldPingPong     the reference: two tasks alternate with yield_now().
//                        One "hand-off" = one switch from one task to the other.
//   BM_QueuePingPong     two tasks bounce an int through two Queue<int>s (A pushes
//                        to q1 and pops q2, B the reverse). Every pop waits, so
//                        every item is a direct hand-off to a parked popper:
//                        one hand-off = one push + the popper's wake-up.
//   BM_QueueThroughput   1 producer, 1 consumer, 10,000,000 ints through one
//                        Queue<int>; Arg = capacity (0: unbounded, where the
//                        producer never waits and the consumer drains afterwards).
//
// Counters: ns_per_handoff (ping-pongs), items_per_second and ns_per_item
// (throughput). bench/run_sync_bench.sh runs them and prints the ratios.
#include <benchmark/benchmark.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>

namespace {

constexpr std::int64_t kPingPongs = 1'000'000;
constexpr std::int64_t kItems = 10'000'000;

template <class F>
double timed_ns(F&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

coring::Task<void> yielder(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await coring::yield_now();
}

void BM_YieldPingPong(benchmark::State& state) {
  coring::TaskScheduler sched;
  double ns = 0;
  for (auto _ : state) {
    ns += timed_ns([&] {
      sched.spawn(yielder(kPingPongs)).detach();
      sched.spawn(yielder(kPingPongs)).detach();
      sched.run();
    });
  }
  const double handoffs = 2.0 * kPingPongs * static_cast<double>(state.iterations());
  state.counters["ns_per_handoff"] = ns / handoffs;
}

coring::Task<void> ping(coring::Queue<int>& out, coring::Queue<int>& in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    co_await out.push(static_cast<int>(i));
    auto v = co_await in.pop();
    benchmark::DoNotOptimize(v);
  }
}

coring::Task<void> pong(coring::Queue<int>& in, coring::Queue<int>& out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    auto v = co_await in.pop();
    co_await out.push(*v);
  }
}

void BM_QueuePingPong(benchmark::State& state) {
  coring::TaskScheduler sched;
  coring::Queue<int> q1;
  coring::Queue<int> q2;
  double ns = 0;
  for (auto _ : state) {
    ns += timed_ns([&] {
      sched.spawn(pong(q1, q2, kPingPongs)).detach();
      sched.spawn(ping(q1, q2, kPingPongs)).detach();
      sched.run();
    });
  }
  const double handoffs = 2.0 * kPingPongs * static_cast<double>(state.iterations());
  state.counters["ns_per_handoff"] = ns / handoffs;
}

coring::Task<void> produce(coring::Queue<int>& q, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await q.push(static_cast<int>(i));
  q.close();
}

coring::Task<void> consume(coring::Queue<int>& q, std::int64_t& sum) {
  while (auto v = co_await q.pop()) sum += *v;
}

void BM_QueueThroughput(benchmark::State& state) {
  const auto capacity = static_cast<std::size_t>(state.range(0));
  coring::TaskScheduler sched;
  double ns = 0;
  for (auto _ : state) {
    coring::Queue<int> q(capacity);
    std::int64_t sum = 0;
    ns += timed_ns([&] {
      sched.spawn(consume(q, sum)).detach();
      sched.spawn(produce(q, kItems)).detach();
      sched.run();
    });
    if (sum != kItems * (kItems - 1) / 2) state.SkipWithError("items lost or duplicated");
  }
  const double items = static_cast<double>(kItems) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["ns_per_item"] = ns / items;
}

}  // namespace

BENCHMARK(BM_YieldPingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_QueuePingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_QueueThroughput)->Arg(1024)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
