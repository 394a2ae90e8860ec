// FrameAllocator retention: a burst's frames are reused by the next burst, and an
// idle EventLoop trims the cache back to cache_limit.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#if !defined(__SANITIZE_ADDRESS__)  // ASan builds bypass the cache on purpose

using coring::FrameAllocator;
using coring::Task;

namespace {

Task<int> leaf(int v) {
  co_return v;
}

// Spawns `n` tasks at once (all frames live together), then joins them.
Task<long> burst(int n) {
  std::vector<coring::JoinHandle<int>> hs;
  hs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) hs.push_back(coring::spawn(leaf(i)));
  long sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

long run_burst(int n) {
  coring::TaskScheduler sched;
  auto h = sched.spawn(burst(n));
  sched.run();
  return h.result();
}

}  // namespace

TEST_CASE("a burst's frames are kept for the next burst, beyond the idle limit",
          "[runtime][frames]") {
  FrameAllocator::trim();
  FrameAllocator::set_cache_limit(64 * 1024);
  constexpr int kTasks = 20'000;  // far more than 64 KiB of frames
  CHECK(run_burst(kTasks) == 199'990'000L);
  const auto after_first = FrameAllocator::stats();
  CHECK(after_first.cached_bytes > 64 * 1024);

  CHECK(run_burst(kTasks) == 199'990'000L);
  const auto after_second = FrameAllocator::stats();
  const auto allocs = after_second.allocations - after_first.allocations;
  const auto reused = after_second.from_cache - after_first.from_cache;
  CHECK(reused == allocs);  // the second burst took every frame from the cache

  // An idle loop (waiting on a timer) trims the cache back to the limit; the
  // frames of the loop's own tasks, freed after that, may add a few more.
  coring::run([]() -> Task<void> { co_await coring::sleep_for(std::chrono::milliseconds(1)); }());
  CHECK(FrameAllocator::stats().cached_bytes <= 64 * 1024 + 4096);

  FrameAllocator::set_burst_limit(128 * 1024);  // a hard cap also applies at once
  CHECK(run_burst(kTasks) == 199'990'000L);
  CHECK(FrameAllocator::stats().cached_bytes <= 128 * 1024);

  FrameAllocator::set_burst_limit(std::size_t{1} << 30);
  FrameAllocator::set_cache_limit(std::size_t{16} << 20);
}
#endif
