// Actor benchmarks (Google Benchmark), all on a standalone TaskScheduler.
//
// Switching and message passing (wall time; the three ping-pongs side by side):
//   BM_YieldSwitch          the reference: two tasks alternate with yield_now(),
//                           measured as bench/yield_bench.cpp does (one switch =
//                           one resume by the scheduler; each task is resumed
//                           once to start and once after each yield).
//   BM_ActorPingPong        two actors (spawn_actor<int>) bounce a counter: each
//                           receives n and sends n - 1 to the other; the one
//                           that receives 0 closes the other. One hand-off = one
//                           message delivered (a send to a parked receive() plus
//                           the receiver's wake-up).
//   BM_QueuePingPong        two tasks bounce an int through two Queue<int>s, as in
//                           bench/sync_queue_bench.cpp. One hand-off = one push
//                           to a parked popper plus its wake-up.
//   BM_ActorSchedulerCounter  the seed's printer/counter program on
//                           coring::ActorScheduler<std::int64_t> (demos/
//                           actor_scheduler.cpp, the printer silent), count
//                           10,000,000: run() returns 2N + 3 deliveries (checked).
//
// Memory and bulk (1,000,000 actors or tasks):
//   BM_IdleActors           spawn N actors that each park in co_await
//                           inbox.receive(), run until all are parked, and take
//                           the memory; then close them all and run them to
//                           their end (nothing leaks: checked).
//   BM_IdleQueueTasks       the same with N plain tasks parked in Queue<int>::pop():
//                           Arg 1: each task has its own Queue (the analogue of a
//                           mailbox); Arg 0: all on one shared Queue (the task
//                           and its waiter alone).
//   BM_ActorSpawnSendJoin   a task spawns N actors, sends each one message, then
//                           co_awaits ref.join() on each; each actor receives its
//                           message and returns.
//
// Memory is measured around the parked (or peak) state:
//   rss  /proc/self/statm resident pages; every iteration first gives cached
//        frames back to malloc (FrameAllocator::trim) and free heap pages back
//        to the kernel (malloc_trim), so the growth is the pages really touched;
//   heap mallinfo2() in-use bytes (malloc chunk headers included) minus the
//        bytes FrameAllocator holds cached for reuse: the live heap.
// The vector that holds the N ActorRefs (or queue pointers) is reserved before
// the first snapshot: the holder's 8 bytes per actor are not counted. Each of
// these benchmarks first does one untimed run, so the scheduler's ready line
// has grown to N entries (8 MiB that stays allocated) before anything is taken.
//
// Counters: ns_per_switch / ns_per_handoff (ping-pongs), ns_per_message
// (ActorScheduler), bytes_per_idle_actor (rss) and heap_bytes_per_idle_actor
// (idle actors; bytes_per_idle_task, heap_bytes_per_idle_task for the tasks),
// ns_per_actor, peak_heap_bytes_per_actor, cold_peak_rss_growth_MiB (the
// untimed first run, after a trim: the RSS growth of spawning N actors in a
// process for the first time), maxrss_MiB and minflt_per_actor (spawn/send/join).
// bench/run_actor_bench.sh runs them and prints the ratios.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t kTotalYields = 1'000'000;  // as in bench/yield_bench.cpp
constexpr std::int64_t kPingPongs = 1'000'000;
constexpr std::int64_t kCount = 10'000'000;  // the ActorScheduler counter's start value
constexpr std::int64_t kActors = 1'000'000;

template <class F>
double timed_ns(F&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

coring::ActorOptions on(coring::TaskScheduler& sched) {
  coring::ActorOptions options;
  options.scheduler = &sched;
  return options;
}

// ---------------------------------------------------------------------------
// Memory probes.

struct Mem {
  double rss = 0;   // resident bytes
  double heap = 0;  // live heap bytes
};

Mem mem_now() {
  Mem m;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    long size = 0;
    long resident = 0;
    if (std::fscanf(f, "%ld %ld", &size, &resident) == 2) {
      m.rss = static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
    }
    std::fclose(f);
  }
  const struct mallinfo2 mi = mallinfo2();
  m.heap = static_cast<double>(mi.uordblks + mi.hblkhd) -
           static_cast<double>(coring::FrameAllocator::stats().cached_bytes);
  return m;
}

// Gives cached frames back to malloc and free heap pages back to the kernel.
void release_memory() {
  coring::FrameAllocator::trim();
  malloc_trim(0);
}

rusage usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru;
}

double maxrss_mib() {
  return static_cast<double>(usage().ru_maxrss) / 1024.0;
}

// ---------------------------------------------------------------------------
// 1. The reference: two tasks alternating with yield_now(), in the shape of
// yield_bench's BM_CoringYield with 2 tasks.

coring::Task<void> yielder(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await coring::yield_now();
}

void BM_YieldSwitch(benchmark::State& state) {
  constexpr std::int64_t kTasks = 2;
  constexpr std::int64_t kYields = kTotalYields / kTasks;
  constexpr std::int64_t kSwitches = kTasks * (kYields + 1);
  coring::TaskScheduler sched;
  double ns = 0;
  for (auto _ : state) {
    ns += timed_ns([&] {
      for (std::int64_t t = 0; t < kTasks; ++t) sched.spawn(yielder(kYields)).detach();
      sched.run();
    });
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iters * kSwitches);
  state.counters["switches"] = static_cast<double>(kSwitches);
  state.counters["ns_per_switch"] = ns / static_cast<double>(iters * kSwitches);
  state.counters["ns_per_handoff"] = state.counters["ns_per_switch"];
}

// ---------------------------------------------------------------------------
// 2. Mailbox ping-pong: two actors bounce a counter down to 0.

coring::Task<void> bouncer(coring::Inbox<int> inbox, coring::ActorRef<int>* peer,
                           std::int64_t* received) {
  while (std::optional<int> n = co_await inbox.receive()) {
    ++*received;
    if (*n == 0) {
      peer->close();  // the other one is parked in receive(): it gets nullopt and ends
      break;
    }
    peer->send(*n - 1);
  }
}

void BM_ActorPingPong(benchmark::State& state) {
  coring::TaskScheduler sched;
  double ns = 0;
  std::int64_t handoffs = 0;
  for (auto _ : state) {
    std::int64_t received = 0;
    ns += timed_ns([&] {
      coring::ActorRef<int> a;
      coring::ActorRef<int> b;
      a = coring::spawn_actor<int>(on(sched), bouncer, &b, &received);
      b = coring::spawn_actor<int>(on(sched), bouncer, &a, &received);
      a.send(static_cast<int>(kPingPongs));
      sched.run();
      if (!a.done() || !b.done()) state.SkipWithError("an actor did not end");
    });
    if (received != kPingPongs + 1) state.SkipWithError("messages lost or duplicated");
    handoffs += received;
  }
  state.counters["ns_per_handoff"] = ns / static_cast<double>(handoffs);
}

// The same with two plain tasks and two Queue<int>s (bench/sync_queue_bench.cpp).
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

// ---------------------------------------------------------------------------
// 3. The seed's ActorScheduler program (demos/actor_scheduler.cpp), printer silent.

using Sched = coring::ActorScheduler<std::int64_t>;

Sched::Actor silent_printer(Sched& sched) {
  for (;;) {
    std::int64_t msg = co_await sched.receive();
    benchmark::DoNotOptimize(msg);
  }
}

Sched::Actor counter(Sched& sched) {
  const Sched::ActorId to_printer = *sched.find("printer");
  const Sched::ActorId self = *sched.find("counter");
  for (;;) {
    std::int64_t n = co_await sched.receive();
    if (n == 0) break;
    sched.send(to_printer, n);
    sched.send(self, n - 1);
  }
}

void BM_ActorSchedulerCounter(benchmark::State& state) {
  double ns = 0;
  std::uint64_t messages = 0;
  for (auto _ : state) {
    Sched sched;
    sched.new_actor("printer", silent_printer(sched));
    sched.new_actor("counter", counter(sched));
    sched.send("counter", kCount);
    std::uint64_t m = 0;
    ns += timed_ns([&] { m = sched.run(); });
    if (m != 2 * kCount + 3) state.SkipWithError("run() did not make 2N + 3 deliveries");
    messages += m;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  state.counters["messages"] = static_cast<double>(2 * kCount + 3);
  state.counters["ns_per_message"] = ns / static_cast<double>(messages);
}

// ---------------------------------------------------------------------------
// 4. Memory per idle actor (and per idle task parked on a Queue).

coring::Task<void> idle_actor(coring::Inbox<int> inbox) {
  while (std::optional<int> m = co_await inbox.receive()) benchmark::DoNotOptimize(*m);
}

coring::Task<void> idle_task(coring::Queue<int>& q) {
  while (std::optional<int> v = co_await q.pop()) benchmark::DoNotOptimize(*v);
}

// Runs `park` (spawn N and run until all are parked), takes the memory, then
// `finish` (close them all, run to the end, free). One untimed run first.
template <class Park, class Finish>
void measure_idle(benchmark::State& state, const char* per, Park&& park, Finish&& finish) {
  park();
  finish();
  double rss = 0;
  double heap = 0;
  double ns = 0;
  for (auto _ : state) {
    release_memory();
    const Mem before = mem_now();
    ns += timed_ns(park);
    const Mem parked = mem_now();
    rss += parked.rss - before.rss;
    heap += parked.heap - before.heap;
    finish();
  }
  const double n = static_cast<double>(kActors) * static_cast<double>(state.iterations());
  state.counters[std::string("bytes_per_idle_") + per] = rss / n;
  state.counters[std::string("heap_bytes_per_idle_") + per] = heap / n;
  state.counters["ns_to_park"] = ns / n;
  state.counters["maxrss_MiB"] = maxrss_mib();
}

void BM_IdleActors(benchmark::State& state) {
  coring::TaskScheduler sched;
  std::vector<coring::ActorRef<int>> refs;
  refs.reserve(kActors);
  measure_idle(
      state, "actor",
      [&] {
        for (std::int64_t i = 0; i < kActors; ++i) {
          refs.push_back(coring::spawn_actor<int>(on(sched), idle_actor));
        }
        sched.run();
        if (sched.live_tasks() != static_cast<std::size_t>(kActors)) {
          state.SkipWithError("not every actor is parked");
        }
      },
      [&] {
        for (auto& r : refs) r.close();
        sched.run();
        for (auto& r : refs) {
          if (!r.done()) state.SkipWithError("an actor did not end");
        }
        refs.clear();  // the last references: the actor cores go
        if (sched.live_tasks() != 0) state.SkipWithError("tasks left alive");
      });
}

void BM_IdleQueueTasks(benchmark::State& state) {
  const bool own_queue = state.range(0) != 0;
  coring::TaskScheduler sched;
  auto shared = std::make_unique<coring::Queue<int>>();
  std::vector<std::unique_ptr<coring::Queue<int>>> queues;
  queues.reserve(kActors);
  measure_idle(
      state, "task",
      [&] {
        for (std::int64_t i = 0; i < kActors; ++i) {
          if (own_queue) {
            queues.push_back(std::make_unique<coring::Queue<int>>());
            sched.spawn(idle_task(*queues.back())).detach();
          } else {
            sched.spawn(idle_task(*shared)).detach();
          }
        }
        sched.run();
        if (sched.live_tasks() != static_cast<std::size_t>(kActors)) {
          state.SkipWithError("not every task is parked");
        }
      },
      [&] {
        if (own_queue) {
          for (auto& q : queues) q->close();
        } else {
          shared->close();
        }
        sched.run();
        queues.clear();
        if (sched.live_tasks() != 0) state.SkipWithError("tasks left alive");
        shared = std::make_unique<coring::Queue<int>>();  // open again for the next run
      });
}

// ---------------------------------------------------------------------------
// 5. Spawn N actors, send each one message, join them all.

coring::Task<void> one_shot(coring::Inbox<int> inbox) {
  std::optional<int> m = co_await inbox.receive();
  benchmark::DoNotOptimize(m);
}

coring::Task<void> spawn_send_join(std::vector<coring::ActorRef<int>>& refs, std::int64_t n,
                                   Mem& peak) {
  for (std::int64_t i = 0; i < n; ++i) refs.push_back(coring::spawn_actor<int>(one_shot));
  for (auto& r : refs) r.send(1);
  peak = mem_now();  // every actor alive, holding its message: the peak
  for (auto& r : refs) co_await r.join();
  refs.clear();
}

void BM_ActorSpawnSendJoin(benchmark::State& state) {
  coring::TaskScheduler sched;
  std::vector<coring::ActorRef<int>> refs;
  refs.reserve(kActors);
  auto run_once = [&](Mem& before, Mem& peak) {
    before = mem_now();
    sched.spawn(spawn_send_join(refs, kActors, peak)).detach();
    sched.run();
  };

  // The untimed first run, cold: nothing cached, free pages given back.
  release_memory();
  Mem before;
  Mem peak;
  const double cold_ns = timed_ns([&] { run_once(before, peak); });
  const double cold_rss = peak.rss - before.rss;

  double ns = 0;
  double heap = 0;
  const long flt0 = usage().ru_minflt;
  for (auto _ : state) {
    ns += timed_ns([&] { run_once(before, peak); });
    heap += peak.heap - before.heap;
    if (sched.live_tasks() != 0) state.SkipWithError("tasks left alive");
  }
  const long flt = usage().ru_minflt - flt0;
  const double n = static_cast<double>(kActors) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["ns_per_actor"] = ns / n;
  state.counters["peak_heap_bytes_per_actor"] = heap / n;
  state.counters["cold_ns_per_actor"] = cold_ns / static_cast<double>(kActors);
  state.counters["cold_peak_rss_growth_MiB"] = cold_rss / (1024.0 * 1024.0);
  state.counters["cold_peak_rss_bytes_per_actor"] = cold_rss / static_cast<double>(kActors);
  state.counters["minflt_per_actor"] = static_cast<double>(flt) / n;
  state.counters["maxrss_MiB"] = maxrss_mib();
}

}  // namespace

BENCHMARK(BM_YieldSwitch)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ActorPingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_QueuePingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ActorSchedulerCounter)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleActors)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdleQueueTasks)
    ->Arg(1)
    ->Arg(0)
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ActorSpawnSendJoin)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
