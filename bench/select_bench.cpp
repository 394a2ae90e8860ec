// select() benchmarks (Google Benchmark), on an EventLoop (io_uring, or the
// backend CORING_BACKEND names).
//
//   BM_ReadyPop / BM_ReadySelect
//       one round = push an int into a Queue, then take it back: with a plain
//       `co_await q.pop()`, or with `co_await select(q.pop(), stream.recv())`
//       over the same queue and an idle socket (the queue is ready, so the
//       select returns at once). The target: select <= 3x the plain pop.
//   BM_ParkedPop / BM_ParkedSelect
//       two tasks bounce an int through two queues; every pop parks. The
//       select variant parks on the pop and on an idle socket's recv, and the
//       recv is cancelled each round (the loser's full cost).
//
// Counters: ns_per_round (wall clock) and cpu_ns_per_round (the loop thread's
// CPU time: the figure to compare on a busy machine). bench/run_select_bench.sh prints the ratios.
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdint>
#include <ctime>
#include <stdexcept>

namespace {

// CPU time of this thread (the loop's): robust to other processes on the machine.
double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

constexpr std::int64_t kReadyRounds = 2'000'000;
constexpr std::int64_t kParkedRounds = 200'000;

// An idle connected stream (one end of a socketpair; the other end never writes).
struct IdleStream {
  int peer = -1;
  coring::net::TcpStream stream;
  IdleStream() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::runtime_error("socketpair failed");
    }
    peer = fds[1];
    stream = coring::net::TcpStream(fds[0]);
  }
  ~IdleStream() { ::close(peer); }
};

template <bool Select>
coring::Task<double> ready_rounds(std::int64_t n) {
  IdleStream idle;
  coring::Queue<int> q;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    co_await q.push(static_cast<int>(i));
    if constexpr (Select) {
      auto r = co_await coring::select(q.pop(), idle.stream.recv());
      benchmark::DoNotOptimize(r);
    } else {
      auto v = co_await q.pop();
      benchmark::DoNotOptimize(v);
    }
  }
  co_return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

template <bool Select>
void BM_Ready(benchmark::State& state) {
  double ns = 0;
  coring::EventLoop loop;
  const double cpu0 = thread_cpu_ns();
  for (auto _ : state) ns += loop.run(ready_rounds<Select>(kReadyRounds));
  const double rounds = static_cast<double>(kReadyRounds) * static_cast<double>(state.iterations());
  state.counters["ns_per_round"] = ns / rounds;
  state.counters["cpu_ns_per_round"] = (thread_cpu_ns() - cpu0) / rounds;
}

template <bool Select>
coring::Task<void> bounce(coring::Queue<int>& out, coring::Queue<int>& in,
                          coring::net::TcpStream& idle, std::int64_t n, bool first) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (first) co_await out.push(static_cast<int>(i));
    if constexpr (Select) {
      auto r = co_await coring::select(in.pop(), idle.recv());
      benchmark::DoNotOptimize(r);
    } else {
      auto v = co_await in.pop();
      benchmark::DoNotOptimize(v);
    }
    if (!first) co_await out.push(static_cast<int>(i));
  }
}

template <bool Select>
coring::Task<double> parked_rounds(std::int64_t n) {
  IdleStream idle_a, idle_b;
  coring::Queue<int> q1, q2;
  const auto t0 = std::chrono::steady_clock::now();
  auto a = coring::spawn(bounce<Select>(q1, q2, idle_a.stream, n, true));
  auto b = coring::spawn(bounce<Select>(q2, q1, idle_b.stream, n, false));
  co_await a;
  co_await b;
  co_return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

template <bool Select>
void BM_Parked(benchmark::State& state) {
  double ns = 0;
  coring::EventLoop loop;
  const double cpu0 = thread_cpu_ns();
  for (auto _ : state) ns += loop.run(parked_rounds<Select>(kParkedRounds));
  const double rounds =
      static_cast<double>(kParkedRounds) * static_cast<double>(state.iterations());
  state.counters["ns_per_round"] = ns / rounds;
  state.counters["cpu_ns_per_round"] = (thread_cpu_ns() - cpu0) / rounds;
}

void BM_ReadyPop(benchmark::State& s) {
  BM_Ready<false>(s);
}
void BM_ReadySelect(benchmark::State& s) {
  BM_Ready<true>(s);
}
void BM_ParkedPop(benchmark::State& s) {
  BM_Parked<false>(s);
}
void BM_ParkedSelect(benchmark::State& s) {
  BM_Parked<true>(s);
}

BENCHMARK(BM_ReadyPop)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ReadySelect)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ParkedPop)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ParkedSelect)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
