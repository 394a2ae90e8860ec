#include "coring/runtime/frame_allocator.hpp"

#include <cstdlib>
#include <new>

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

struct FreeBlock {
  FreeBlock* next;
};

struct ThreadCache {
  FreeBlock* lists[kClasses] = {};
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
      while (cached_bytes > keep) {
        FreeBlock* b = lists[c];
        if (b == nullptr) break;
        lists[c] = b->next;
        cached_bytes -= bytes;
        std::free(b);
      }
    }
  }
  void release_all() noexcept { release_down_to(0); }
  ~ThreadCache() { release_all(); }
};

thread_local ThreadCache tls_cache;

inline std::size_t class_of(std::size_t size) noexcept {
  return (size + kGranule - 1) / kGranule - 1;
}

}  // namespace

void* FrameAllocator::allocate(std::size_t size) {
  ThreadCache& tc = tls_cache;
  ++tc.live;
  ++tc.allocations;
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    if (FreeBlock* b = tc.lists[c]) {
      tc.lists[c] = b->next;
      tc.cached_bytes -= (c + 1) * kGranule;
      ++tc.from_cache;
      return b;
    }
    if (void* p = std::malloc((c + 1) * kGranule)) return p;
    --tc.live;
    throw std::bad_alloc();
  }
#endif
  if (void* p = std::malloc(size)) return p;
  --tc.live;
  throw std::bad_alloc();
}

void FrameAllocator::deallocate(void* p, std::size_t size) noexcept {
  ThreadCache& tc = tls_cache;
  --tc.live;
#if CORING_FRAME_CACHE
  if (size <= kMaxCached) {
    const std::size_t c = class_of(size);
    const std::size_t bytes = (c + 1) * kGranule;
    // Every block this thread frees was part of its footprint, so caching it
    // never grows the footprint past its peak; burst_limit caps even that.
    if (tc.cached_bytes + bytes <= tc.burst_limit) {
      auto* b = static_cast<FreeBlock*>(p);
      b->next = tc.lists[c];
      tc.lists[c] = b;
      tc.cached_bytes += bytes;
      return;
    }
  }
#else
  (void)size;
#endif
  std::free(p);
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
