// pollable_queue_bench: PollableQueue<uint64_t> push -> pop across threads.
//
// Throughput: P producer threads push 1M items in all as fast as they can; a
// task on an EventLoop (its own thread) pops them. Counters: items/s,
// eventfd writes per item (the consumer loop's notifier writes plus the
// queue's own fd() writes -- none, fd() is not used), remote wake-ups per item
// (posts to the consumer's loop). Baseline in the same run: the classic
// std::mutex + std::deque + std::condition_variable queue (one lock and one
// notify per push, one lock per pop), the shape of Python's queue.Queue.
//
// Latency: one producer pushes a timestamp, then sleeps 20 us (about 70 with
// the timer slack); the consumer records now - stamp: p50 and p99 in ns, for
// both queues. The consumer is idle between items, so this is the wake-up path
// (for PollableQueue: a post to the sleeping loop, its eventfd write and read).
//
// Run: build/bench/bench/pollable_queue_bench --benchmark_repetitions=3
//        --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <coring/coring.hpp>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t kItems = 1'000'000;

// ---- the baseline: mutex + deque + condition variable ----
class CvQueue {
 public:
  void push(std::uint64_t v) {
    {
      std::lock_guard lk(m_);
      items_.push_back(v);
    }
    cv_.notify_one();
  }
  std::optional<std::uint64_t> pop() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    const std::uint64_t v = items_.front();
    items_.pop_front();
    return v;
  }
  void close() {
    {
      std::lock_guard lk(m_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::uint64_t> items_;
  bool closed_ = false;
};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// CPU time of the calling thread, in ns.
double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

coring::Task<std::uint64_t> consume(coring::PollableQueue<std::uint64_t>& q) {
  std::uint64_t sum = 0;
  while (auto v = co_await q.pop()) sum += *v;
  co_return sum;
}

coring::Task<void> record_latency(coring::PollableQueue<std::uint64_t>& q,
                                  std::vector<std::uint64_t>& lat) {
  while (auto v = co_await q.pop()) lat.push_back(now_ns() - *v);
}

// Returns the producers' CPU time in all, in ns.
double run_producers(int producers, auto&& push) {
  std::vector<std::thread> ts;
  std::atomic<double> cpu{0};
  const std::uint64_t per = kItems / static_cast<std::uint64_t>(producers);
  for (int p = 0; p < producers; ++p) {
    ts.emplace_back([&push, &cpu, per] {
      const double t0 = thread_cpu_ns();
      for (std::uint64_t i = 0; i < per; ++i) push(i);
      double c = cpu.load();
      while (!cpu.compare_exchange_weak(c, c + thread_cpu_ns() - t0)) {
      }
    });
  }
  for (auto& t : ts) t.join();
  return cpu.load();
}

// CPU ns per item of the producers and of the consumer: what bounds the
// throughput on an idle machine, whatever else runs on this one.
void cpu_counters(benchmark::State& state, double producer_ns, double consumer_ns, double items) {
  state.counters["producer_cpu_ns"] = producer_ns / items;
  state.counters["consumer_cpu_ns"] = consumer_ns / items;
}

coring::LoopOptions options_for(std::int64_t backend) {
  coring::LoopOptions o;
  o.backend = backend == 0 ? coring::BackendKind::io_uring : coring::BackendKind::epoll;
  return o;
}

void BM_PollableQueue(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const coring::LoopOptions opts = options_for(state.range(1));
  state.SetLabel(coring::to_string(opts.backend));
  double writes = 0, wakeups = 0, items = 0, pcpu = 0, ccpu = 0;
  for (auto _ : state) {
    coring::PollableQueue<std::uint64_t> q;
    coring::LoopStats stats{};
    std::thread consumer([&] {
      const double t0 = thread_cpu_ns();
      coring::EventLoop loop(opts);
      benchmark::DoNotOptimize(loop.run(consume(q)));
      stats = loop.stats();
      ccpu += thread_cpu_ns() - t0;
    });
    pcpu += run_producers(producers, [&q](std::uint64_t v) { q.push(v); });
    q.close();
    consumer.join();
    const auto s = q.stats();
    writes += static_cast<double>(stats.wakeups_sent + s.fd_writes);
    wakeups += static_cast<double>(s.remote_wakeups);
    items += static_cast<double>(s.pushed);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["eventfd_writes_per_item"] = writes / items;
  state.counters["wakeups_per_item"] = wakeups / items;
  cpu_counters(state, pcpu, ccpu, items);
}
BENCHMARK(BM_PollableQueue)
    ->Args({1, 0})
    ->Args({4, 0})
    ->Args({1, 1})
    ->Args({4, 1})
    ->ArgNames({"producers", "epoll"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MutexDequeCv(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  double pcpu = 0, ccpu = 0;
  for (auto _ : state) {
    CvQueue q;
    std::thread consumer([&] {
      const double t0 = thread_cpu_ns();
      std::uint64_t sum = 0;
      while (auto v = q.pop()) sum += *v;
      benchmark::DoNotOptimize(sum);
      ccpu += thread_cpu_ns() - t0;
    });
    pcpu += run_producers(producers, [&q](std::uint64_t v) { q.push(v); });
    q.close();
    consumer.join();
  }
  const auto items =
      static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(kItems);
  state.SetItemsProcessed(items);
  cpu_counters(state, pcpu, ccpu, static_cast<double>(items));
}
BENCHMARK(BM_MutexDequeCv)
    ->Arg(1)
    ->Arg(4)
    ->ArgName("producers")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- latency: one item, then a pause (the consumer goes idle) ----
constexpr int kLatencyItems = 10'000;

void paced_push(auto&& push) {
  for (int i = 0; i < kLatencyItems; ++i) {
    push(now_ns());
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void report(benchmark::State& state, std::vector<std::uint64_t>& lat) {
  std::sort(lat.begin(), lat.end());
  auto at = [&](double f) {
    return static_cast<double>(
        lat[static_cast<std::size_t>(f * static_cast<double>(lat.size() - 1))]);
  };
  state.counters["p50_ns"] = at(0.50);
  state.counters["p99_ns"] = at(0.99);
  state.SetItemsProcessed(static_cast<std::int64_t>(lat.size()));
}

void BM_PollableQueueLatency(benchmark::State& state) {
  const coring::LoopOptions opts = options_for(state.range(0));
  state.SetLabel(coring::to_string(opts.backend));
  std::vector<std::uint64_t> lat;
  lat.reserve(kLatencyItems);
  for (auto _ : state) {
    coring::PollableQueue<std::uint64_t> q;
    std::thread consumer([&] {
      coring::EventLoop loop(opts);
      loop.run(record_latency(q, lat));
    });
    paced_push([&q](std::uint64_t v) { q.push(v); });
    q.close();
    consumer.join();
  }
  report(state, lat);
}
BENCHMARK(BM_PollableQueueLatency)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("epoll")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

void BM_MutexDequeCvLatency(benchmark::State& state) {
  std::vector<std::uint64_t> lat;
  lat.reserve(kLatencyItems);
  for (auto _ : state) {
    CvQueue q;
    std::thread consumer([&] {
      while (auto v = q.pop()) lat.push_back(now_ns() - *v);
    });
    paced_push([&q](std::uint64_t v) { q.push(v); });
    q.close();
    consumer.join();
  }
  report(state, lat);
}
BENCHMARK(BM_MutexDequeCvLatency)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
