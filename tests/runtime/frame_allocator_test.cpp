// FrameAllocator retention: a burst's frames are reused by the next burst, and an
// idle EventLoop trims the cache back to cache_limit; reuse order: the last
// frame freed is the first reused, and a burst's frames, freed in any order,
// come back in address order.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

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

TEST_CASE("the frame freed last is reused first", "[runtime][frames]") {
  FrameAllocator::trim();
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(FrameAllocator::allocate(200));
  for (void* b : blocks) FrameAllocator::deallocate(b, 200);
  // Steady state: one frame out, one back, again and again -- always the same,
  // still warm in the cache.
  void* hot = FrameAllocator::allocate(200);
  CHECK(hot == blocks.back());
  for (int i = 0; i < 1000; ++i) {
    FrameAllocator::deallocate(hot, 200);
    void* again = FrameAllocator::allocate(200);
    REQUIRE(again == hot);
  }
  FrameAllocator::deallocate(hot, 200);
  FrameAllocator::trim();
}

TEST_CASE("a burst's frames, freed in any order, come back in address order", "[runtime][frames]") {
  FrameAllocator::trim();
  constexpr std::size_t kN = 20'000;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < kN; ++i) blocks.push_back(FrameAllocator::allocate(300));
  // Tasks end in any order (timers, I/O): free the frames shuffled.
  std::mt19937 rng(7);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (void* b : blocks) FrameAllocator::deallocate(b, 300);
  std::vector<std::uintptr_t> next;
  for (std::size_t i = 0; i < kN; ++i) {
    next.push_back(reinterpret_cast<std::uintptr_t>(FrameAllocator::allocate(300)));
  }
  // Each frame of the next burst follows the one before it in memory (but for
  // neighbours in one bucket of the sort); in LIFO order half would go back.
  std::size_t backwards = 0;
  for (std::size_t i = 1; i < kN; ++i) backwards += next[i] < next[i - 1] ? 1 : 0;
  INFO("frames placed before the one allocated just before them: " << backwards);
  CHECK(backwards < kN / 8);
  std::sort(next.begin(), next.end());
  std::vector<std::uintptr_t> freed;
  for (void* b : blocks) freed.push_back(reinterpret_cast<std::uintptr_t>(b));
  std::sort(freed.begin(), freed.end());
  CHECK(next == freed);  // the same frames, all of them from the cache
  for (std::uintptr_t a : next) FrameAllocator::deallocate(reinterpret_cast<void*>(a), 300);
  FrameAllocator::trim();
}
#endif
