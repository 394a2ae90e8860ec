// post_bench: what a cross-thread wake-up costs on each backend.
//
// A loop runs on its own thread with nothing to do, so it waits in the
// backend (io_uring_enter, or epoll_wait). The benchmark thread post()s a
// function and waits (a futex, std::atomic::wait) until the loop has run it:
// one round trip = eventfd write, the loop's wake-up, its read of the eventfd
// (an IORING_OP_READ on io_uring; a read(2) after epoll says "readable" on
// epoll), the function, the futex wake. Arg: 0 = io_uring, 1 = epoll.
//
// Run: build/bench/bench/post_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <coring/coring.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace {

void BM_PostRoundTrip(benchmark::State& state) {
  coring::LoopOptions o;
  o.backend = state.range(0) == 0 ? coring::BackendKind::io_uring : coring::BackendKind::epoll;
  coring::EventLoop loop(o);
  state.SetLabel(coring::to_string(o.backend));
  std::thread runner([&] { loop.run(); });
  std::atomic<unsigned> done{0};
  unsigned expect = 0;
  for (auto _ : state) {
    ++expect;
    loop.post([&done] {
      done.fetch_add(1, std::memory_order_release);
      done.notify_one();
    });
    for (unsigned v = done.load(std::memory_order_acquire); v != expect;
         v = done.load(std::memory_order_acquire)) {
      done.wait(v, std::memory_order_acquire);
    }
  }
  loop.stop();
  runner.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PostRoundTrip)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

coring::Task<void> keep_busy(const std::atomic<bool>& done) {
  while (!done.load(std::memory_order_relaxed)) co_await coring::yield_now();
}

void BM_PostToBusyLoop(benchmark::State& state) {
  constexpr long kPosts = 100'000;
  std::atomic<bool> done{false};
  std::atomic<long> ran{0};
  std::promise<coring::EventLoop*> ready;
  auto ready_future = ready.get_future();
  coring::LoopStats stats{};
  std::thread runner([&] {
    coring::LoopOptions o;
    o.backend = state.range(0) == 0 ? coring::BackendKind::io_uring : coring::BackendKind::epoll;
    coring::EventLoop loop(o);
    ready.set_value(&loop);
    loop.run(keep_busy(done));
    stats = loop.stats();
  });
  coring::EventLoop* loop = ready_future.get();
  double ns = 0;
  long posts = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < kPosts; ++i) {
      loop->post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    }
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    posts += kPosts;
    while (ran.load(std::memory_order_relaxed) < posts) std::this_thread::yield();
  }
  done.store(true);
  runner.join();
  state.counters["ns_per_post"] = ns / static_cast<double>(posts);
  state.counters["eventfd_writes_per_post"] =
      static_cast<double>(stats.wakeups_sent) / static_cast<double>(posts);
}
BENCHMARK(BM_PostToBusyLoop)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
