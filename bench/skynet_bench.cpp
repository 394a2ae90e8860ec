// Skynet: a root task spawns 10 children with coring::spawn, each spawns 10 more,
// down to `leaves` leaf tasks that return their number; sums come back up through
// `co_await` on the JoinHandles. With 1,000,000 leaves that is 1,111,111 tasks and
// the sum is 499999500000 (checked; a wrong sum fails the benchmark).
//
//   BM_Skynet            on a standalone coring::TaskScheduler (Arg = leaves)
//   BM_SkynetEventLoop   on one coring::EventLoop
//   Diagnostics (1M leaves; registered last because they change process-wide
//   allocator settings):
//   BM_SkynetFrameCache  FrameAllocator::set_cache_limit(2 GiB) instead of the
//                        default 16 MiB, so every frame is recycled by coring
//   BM_SkynetNoTrim      mallopt(M_TRIM_THRESHOLD, 4 GiB): glibc keeps the freed
//                        heap, so the run does not page-fault it back in
//
// Each repetition does one untimed warm-up run first, so the figures are the
// steady state of a program that runs skynet repeatedly.
//
// Counters: ns_per_task (wall time / tasks), tasks, maxrss_MiB (peak RSS of the
// process so far, from getrusage; the Args run in increasing order so each figure
// is the peak reached up to and including that size), minflt_per_task (minor page
// faults per task in the timed iterations) and frame_bytes (heap bytes per skynet
// coroutine frame, malloc chunk included, measured once per benchmark).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

coring::Task<std::uint64_t> skynet(std::uint64_t num, std::uint64_t size) {
  if (size == 1) co_return num;
  const std::uint64_t step = size / 10;
  coring::JoinHandle<std::uint64_t> children[10];
  for (std::uint64_t i = 0; i < 10; ++i) children[i] = coring::spawn(skynet(num + i * step, step));
  std::uint64_t sum = 0;
  for (auto& child : children) sum += co_await child;
  co_return sum;
}

std::uint64_t task_count(std::uint64_t leaves) {
  std::uint64_t n = 0;
  for (std::uint64_t level = leaves; level >= 1; level /= 10) n += level;
  return n;
}

rusage usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru;
}

// Heap bytes (malloc chunk size included) of one skynet frame.
double frame_bytes() {
  coring::FrameAllocator::trim();  // so the frames below come from malloc
  constexpr std::size_t kN = 1000;
  std::vector<coring::Task<std::uint64_t>> tasks;
  tasks.reserve(kN);
  const auto before = mallinfo2().uordblks;
  for (std::size_t i = 0; i < kN; ++i) tasks.push_back(skynet(0, 1));
  const auto after = mallinfo2().uordblks;
  return static_cast<double>(after - before) / kN;
}

template <class RunOnce>
void run_skynet(benchmark::State& state, RunOnce&& run_once) {
  const auto leaves = static_cast<std::uint64_t>(state.range(0));
  const std::uint64_t tasks = task_count(leaves);
  const std::uint64_t expected = leaves * (leaves - 1) / 2;
  if (run_once(leaves) != expected) {  // warm-up, untimed
    state.SkipWithError("wrong sum in the warm-up run");
    return;
  }
  double ns = 0;
  const long flt0 = usage().ru_minflt;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t sum = run_once(leaves);
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (sum != expected) {
      state.SkipWithError(
          ("wrong sum " + std::to_string(sum) + ", expected " + std::to_string(expected)).c_str());
      break;
    }
  }
  const rusage ru = usage();
  const auto iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(tasks));
  state.counters["tasks"] = static_cast<double>(tasks);
  state.counters["ns_per_task"] = ns / (iters * static_cast<double>(tasks));
  state.counters["maxrss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
  state.counters["minflt_per_task"] =
      static_cast<double>(ru.ru_minflt - flt0) / (iters * static_cast<double>(tasks));
  state.counters["frame_bytes"] = frame_bytes();
}

std::uint64_t skynet_standalone(coring::TaskScheduler& sched, std::uint64_t leaves) {
  coring::JoinHandle<std::uint64_t> root = sched.spawn(skynet(0, leaves));
  sched.run();
  return root.result();
}

void BM_Skynet(benchmark::State& state) {
  coring::TaskScheduler sched;
  run_skynet(state, [&](std::uint64_t leaves) { return skynet_standalone(sched, leaves); });
}

void BM_SkynetEventLoop(benchmark::State& state) {
  coring::EventLoop loop;
  run_skynet(state, [&](std::uint64_t leaves) { return loop.run(skynet(0, leaves)); });
}

void BM_SkynetFrameCache(benchmark::State& state) {
  constexpr std::size_t kDefaultLimit = 16u << 20;  // FrameAllocator's default
  coring::FrameAllocator::set_cache_limit(std::size_t{2} << 30);
  coring::TaskScheduler sched;
  run_skynet(state, [&](std::uint64_t leaves) { return skynet_standalone(sched, leaves); });
  coring::FrameAllocator::set_cache_limit(kDefaultLimit);  // trims the excess
}

void BM_SkynetNoTrim(benchmark::State& state) {
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());  // not restored: runs last
  coring::TaskScheduler sched;
  run_skynet(state, [&](std::uint64_t leaves) { return skynet_standalone(sched, leaves); });
}

BENCHMARK(BM_Skynet)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_SkynetEventLoop)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SkynetFrameCache)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SkynetNoTrim)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
