#include "coring/runtime/frame_allocator.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define CORING_FRAME_CACHE 0
#else
#define CORING_FRAME_CACHE 1
#endif

namespace coring {
namespace {

constexpr std::size_t kGranule = 32;
constexpr std::size_t kClasses = 64;  // up to 2 KiB
constexpr std::size_t kMaxCached = kGranule * kClasses;
// Fewer frees than this since the last sort are never sorted: a steady state
// stays LIFO.
constexpr std::uint32_t kSortMin = 256;

// The cached blocks of one size class: a stack of pointers, [0, sorted) in
// descending address order (sorted after a burst), then the blocks freed since
// (LIFO). The blocks themselves are never written while cached.
struct ClassCache {
  void** blocks = nullptr;
  std::uint32_t size = 0;
  std::uint32_t capacity = 0;
  std::uint32_t sorted = 0;
  std::uint32_t descents = 0;  // frees since the last sort below the block freed before

  bool push(void* p) noexcept {
    if (size == capacity) [[unlikely]] {
      if (!grow()) return false;
    }
    if (size > sorted && p < blocks[size - 1]) ++descents;
    blocks[size++] = p;
    return true;
  }
  void* pop() noexcept {
    if (size - sorted >= kSortMin) [[unlikely]]
      after_burst();
    void* p = blocks[--size];
    if (sorted >= size) {
      sorted = size;
      descents = 0;
    }
    return p;
  }
  // At least kSortMin frees since the last sort: once they are as many as the
  // blocks left sorted (a burst's worth), they are sorted -- unless they were
  // freed in address order or in its reverse (tasks that end in the order
  // they started), which LIFO already takes back walking memory in order.
  [[gnu::noinline]] void after_burst() noexcept {
    const std::uint32_t fresh = size - sorted;
    if (fresh < sorted) return;
    if (descents > fresh / 64 && descents < fresh - fresh / 64) sort_blocks();
    sorted = size;
    descents = 0;
  }
  [[gnu::noinline]] bool grow() noexcept {
    const std::uint32_t cap = capacity == 0 ? 64 : capacity * 2;
    if (cap <= capacity) return false;  // 2^32 blocks: give the block back to malloc
    void* b = std::realloc(blocks, std::size_t{cap} * sizeof(void*));
    if (b == nullptr) return false;
    blocks = static_cast<void**>(b);
    capacity = cap;
    return true;
  }
  void sort_blocks() noexcept;
  void release() noexcept {
    std::free(blocks);
    blocks = nullptr;
    size = capacity = sorted = descents = 0;
  }
};

// Orders every cached block by address: an LSD radix sort of the blocks'
// offsets from the lowest one, digits of 8 to 16 bits (about log2 of the count:
// one or two passes for a burst of a thousand to a million frames in one heap
// region). Why: the cache is LIFO, so a burst frees its frames in the order its
// tasks end and the next burst would take them in the reverse of that order;
// repeated, that scatters frames that run one after the other all over memory
// (skynet: 13 ms a burst of 111,111 tasks, growing to 30 ms after ten bursts).
// In address order, the next burst runs through memory the way it would
// through a fresh heap (8.5 ms). O(n) per pass, at most once per burst.
void ClassCache::sort_blocks() noexcept {
  std::uintptr_t lo = UINTPTR_MAX;
  std::uintptr_t hi = 0;
  for (std::uint32_t i = 0; i < size; ++i) {
    const auto a = reinterpret_cast<std::uintptr_t>(blocks[i]);
    lo = a < lo ? a : lo;
    hi = a > hi ? a : hi;
  }
  // Keys count down from the highest block (16-byte units: malloc's alignment),
  // so that ascending keys put the lowest address last, where pop() takes.
  const std::uintptr_t top = (hi - lo) >> 4;
  const unsigned key_bits = static_cast<unsigned>(std::bit_width(top));
  const unsigned digit = std::clamp(static_cast<unsigned>(std::bit_width(size)), 8u, 16u);
  const std::size_t radix = std::size_t{1} << digit;
  auto* counts = static_cast<std::uint32_t*>(std::malloc(radix * sizeof(std::uint32_t)));
  auto* other = static_cast<void**>(std::malloc(std::size_t{capacity} * sizeof(void*)));
  if (counts == nullptr || other == nullptr) {  // no memory to sort with: stay LIFO
    std::free(counts);
    std::free(other);
    return;
  }
  void** src = blocks;
  void** dst = other;
  for (unsigned shift = 0; shift < key_bits; shift += digit) {
    auto digit_of = [&](void* p) {
      const std::uintptr_t key = top - ((reinterpret_cast<std::uintptr_t>(p) - lo) >> 4);
      return (key >> shift) & (radix - 1);
    };
    std::memset(counts, 0, radix * sizeof(std::uint32_t));
    for (std::uint32_t i = 0; i < size; ++i) ++counts[digit_of(src[i])];
    std::uint32_t sum = 0;
    for (std::size_t d = 0; d < radix; ++d) sum += std::exchange(counts[d], sum);
    for (std::uint32_t i = 0; i < size; ++i) dst[counts[digit_of(src[i])]++] = src[i];
    std::swap(src, dst);
  }
  std::free(counts);
  blocks = src;
  std::free(dst);
}

struct ThreadCache {
  ClassCache lists[kClasses];
  std::size_t cached_bytes = 0;
  std::size_t limit = std::size_t{16} << 20;       // kept after an idle trim
  std::size_t burst_limit = std::size_t{1} << 30;  // never cached beyond this
  std::int64_t live = 0;
  std::uint64_t allocations = 0;
  std::uint64_t from_cache = 0;

  // Frees cached blocks, largest classes first, until at most `keep` bytes stay.
  void release_down_to(std::size_t keep) noexcept {
    for (std::size_t c = kClasses; c-- > 0 && cached_bytes > keep;) {
      const std::size_t bytes = (c + 1) * kGranule;
      ClassCache& l = lists[c];
      while (cached_bytes > keep && l.size > 0) {
        std::free(l.blocks[--l.size]);
        cached_bytes -= bytes;
      }
      if (l.sorted > l.size) l.sorted = l.size;
      l.descents = 0;
      if (l.size == 0) l.release();
    }
  }
  void release_all() noexcept { release_down_to(0); }
  ~ThreadCache() { release_all(); }
};

thread_local ThreadCache tls_cache;

inline std::size_t class_of(std::size_t size) noexcept {
  return (size + kGranule - 1) / kGranule - 1;
}

// The fast paths take a cached block or cache one without a call; the rest
// (malloc, free, a burst's sort, growing a stack) is out of line, so that the
// fast paths need no registers saved.
[[gnu::noinline]] void* allocate_slow(ThreadCache& tc, std::size_t size) {
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    ClassCache& l = tc.lists[c];
    if (l.size != 0) {
      tc.cached_bytes -= (c + 1) * kGranule;
      ++tc.from_cache;
      return l.pop();
    }
    size = (c + 1) * kGranule;
  }
#endif
  if (void* p = std::malloc(size)) return p;
  --tc.live;
  throw std::bad_alloc();
}

[[gnu::noinline]] void deallocate_slow(ThreadCache& tc, void* p, std::size_t size) noexcept {
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    const std::size_t bytes = (c + 1) * kGranule;
    // Every block this thread frees was part of its footprint, so caching it
    // never grows the footprint past its peak; burst_limit caps even that.
    if (tc.cached_bytes + bytes <= tc.burst_limit && tc.lists[c].push(p)) {
      tc.cached_bytes += bytes;
      return;
    }
  }
#else
  (void)tc;
  (void)size;
#endif
  std::free(p);
}

}  // namespace

void* FrameAllocator::allocate(std::size_t size) {
  ThreadCache& tc = tls_cache;
  ++tc.live;
  ++tc.allocations;
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    ClassCache& l = tc.lists[c];
    if (l.size != 0 && l.size - l.sorted < kSortMin) [[likely]] {
      tc.cached_bytes -= (c + 1) * kGranule;
      ++tc.from_cache;
      void* p = l.blocks[--l.size];
      if (l.sorted >= l.size) {
        l.sorted = l.size;
        l.descents = 0;
      }
      return p;
    }
  }
#endif
  return allocate_slow(tc, size);
}

void FrameAllocator::deallocate(void* p, std::size_t size) noexcept {
  ThreadCache& tc = tls_cache;
  --tc.live;
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    const std::size_t bytes = (c + 1) * kGranule;
    ClassCache& l = tc.lists[c];
    if (l.size != l.capacity && tc.cached_bytes + bytes <= tc.burst_limit) [[likely]] {
      if (l.size > l.sorted && p < l.blocks[l.size - 1]) ++l.descents;
      l.blocks[l.size++] = p;
      tc.cached_bytes += bytes;
      return;
    }
  }
#endif
  deallocate_slow(tc, p, size);
}

FrameAllocatorStats FrameAllocator::stats() noexcept {
  const ThreadCache& tc = tls_cache;
  return {static_cast<std::uint64_t>(tc.live < 0 ? 0 : tc.live), tc.allocations, tc.from_cache,
          tc.cached_bytes};
}

std::int64_t FrameAllocator::live_frames() noexcept {
  return tls_cache.live;
}

void FrameAllocator::set_cache_limit(std::size_t bytes) noexcept {
  tls_cache.limit = bytes;
  if (tls_cache.cached_bytes > bytes) tls_cache.release_down_to(bytes);
}

void FrameAllocator::set_burst_limit(std::size_t bytes) noexcept {
  tls_cache.burst_limit = bytes;
  if (tls_cache.cached_bytes > bytes) tls_cache.release_down_to(bytes);
}

void FrameAllocator::trim_to_limit() noexcept {
  if (tls_cache.cached_bytes > tls_cache.limit) tls_cache.release_down_to(tls_cache.limit);
}

void FrameAllocator::trim() noexcept {
  tls_cache.release_all();
}

}  // namespace coring
