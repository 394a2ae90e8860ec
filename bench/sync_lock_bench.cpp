// Ping-pong between two tasks through the sync primitives, in ns per hand-off.
//
// One hand-off is one task making the other runnable through the primitive and
// the other one running: the cost of the primitive's wake-up plus one switch.
//
//   BM_YieldPingPong      the reference: two tasks that co_await yield_now().
//   BM_EventPingPong      two Events: A sets ping and waits on pong, B the reverse.
//   BM_SemaphorePingPong  two Semaphore(0): A releases one and acquires the other.
//   BM_MutexPingPong      both tasks lock one Mutex in a loop: after the first
//                         round every unlock hands the mutex to the parked
//                         other task and every lock parks.
//
// All run on a standalone TaskScheduler (no io_uring), 1,000,000 hand-offs per
// iteration. Counter ns_per_handoff = wall time / hand-offs.
#include <benchmark/benchmark.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>

namespace {

constexpr std::int64_t kRounds = 500'000;  // two hand-offs per round

template <class F>
void measure(benchmark::State& state, std::int64_t handoffs_per_iter, F&& body) {
  double ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetItemsProcessed(iters * handoffs_per_iter);
  state.counters["ns_per_handoff"] = ns / static_cast<double>(iters * handoffs_per_iter);
}

template <class MakeA, class MakeB>
void ping_pong(benchmark::State& state, MakeA make_a, MakeB make_b) {
  coring::TaskScheduler sched;
  measure(state, 2 * kRounds, [&] {
    sched.spawn(make_a()).detach();
    sched.spawn(make_b()).detach();
    sched.run();
  });
}

coring::Task<void> yielder(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_await coring::yield_now();
}

void BM_YieldPingPong(benchmark::State& state) {
  ping_pong(
      state, [] { return yielder(kRounds); }, [] { return yielder(kRounds); });
}

coring::Task<void> event_a(coring::Event& ping, coring::Event& pong, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    ping.set();
    co_await pong.wait();
    pong.clear();
  }
}
coring::Task<void> event_b(coring::Event& ping, coring::Event& pong, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    co_await ping.wait();
    ping.clear();
    pong.set();
  }
}

void BM_EventPingPong(benchmark::State& state) {
  coring::Event ping;
  coring::Event pong;
  ping_pong(
      state, [&] { return event_a(ping, pong, kRounds); },
      [&] { return event_b(ping, pong, kRounds); });
}

coring::Task<void> sem_a(coring::Semaphore& ping, coring::Semaphore& pong, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    ping.release();
    co_await pong.acquire();
  }
}
coring::Task<void> sem_b(coring::Semaphore& ping, coring::Semaphore& pong, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    co_await ping.acquire();
    pong.release();
  }
}

void BM_SemaphorePingPong(benchmark::State& state) {
  coring::Semaphore ping(0);
  coring::Semaphore pong(0);
  ping_pong(
      state, [&] { return sem_a(ping, pong, kRounds); },
      [&] { return sem_b(ping, pong, kRounds); });
}

coring::Task<void> mutex_user(coring::Mutex& m, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    coring::MutexGuard g = co_await m.lock();
    if (i == 0) co_await coring::yield_now();  // let the other task queue up once
  }
}

void BM_MutexPingPong(benchmark::State& state) {
  coring::Mutex m;
  ping_pong(
      state, [&] { return mutex_user(m, kRounds); }, [&] { return mutex_user(m, kRounds); });
}

BENCHMARK(BM_YieldPingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EventPingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SemaphorePingPong)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MutexPingPong)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
