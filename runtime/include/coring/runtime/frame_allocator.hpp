// Per-thread recycling allocator for coroutine frames.
//
// Frames are sized in 32-byte classes up to 2 KiB; each class keeps an intrusive
// free list of blocks this thread freed, so a steady-state program allocates no
// frame from malloc. Blocks are individual malloc blocks, so a frame allocated on
// one thread and freed on another is still correct (it joins the freeing
// thread's cache). The cache is bounded (cache_limit bytes per thread); beyond it
// blocks go back to malloc. Under AddressSanitizer the cache is bypassed so that a
// use-after-free of a frame is still caught.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coring {

struct FrameAllocatorStats {
  std::uint64_t live = 0;         // frames allocated and not yet freed, on this thread
  std::uint64_t allocations = 0;  // total allocations on this thread
  std::uint64_t from_cache = 0;   // of which served from the free lists
  std::size_t cached_bytes = 0;   // bytes held in this thread's free lists
};

class FrameAllocator {
 public:
  static void* allocate(std::size_t size);
  static void deallocate(void* p, std::size_t size) noexcept;

  // Counters of the calling thread. `live` can go negative per thread when frames
  // migrate between threads, so it is reported as a signed difference.
  static FrameAllocatorStats stats() noexcept;
  static std::int64_t live_frames() noexcept;

  // Bytes each thread may keep cached (default 16 MiB). Applies to the calling thread.
  static void set_cache_limit(std::size_t bytes) noexcept;
  // Returns every cached block of the calling thread to malloc.
  static void trim() noexcept;
};

}  // namespace coring
