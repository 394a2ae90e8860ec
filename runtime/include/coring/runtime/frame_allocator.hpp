// Per-thread recycling allocator for coroutine frames.
//
// Frames are sized in 32-byte classes up to 2 KiB; each class keeps a stack of
// the blocks this thread freed, so a steady-state program allocates no frame
// from malloc. Blocks are individual malloc blocks, so a frame allocated on
// one thread and freed on another is still correct (it joins the freeing
// thread's cache).
//
// Reuse order. The frame freed last is reused first (still warm in the cache).
// But a burst frees its frames in the order its tasks end -- any order, for
// tasks woken by timers or I/O -- and a LIFO stack would hand them to the next
// burst in the reverse of that order, scattering the frames of tasks that run
// one after the other across memory, worse with every burst. So once as many
// blocks were freed as the class had left sorted (and at least 256), and out
// of order (not in address order or its reverse), the cache sorts its blocks
// by address (a counting sort on their page, O(n)) and the next burst takes
// them in address order, as from a fresh heap. The stack
// costs 8 bytes per cached block; the blocks themselves are not touched while
// cached.
//
// Retention policy. A burst (a million tasks spawned at once) frees its frames
// into the cache, so the next burst reuses them instead of paying malloc and the
// kernel's page faults again: the cache holds at most the thread's own peak of
// frame memory, and never more than burst_limit (1 GiB by default). When an
// EventLoop goes idle (about to wait for I/O or a timer), it trims the cache
// back to cache_limit (16 MiB by default), at most once a second. trim() gives
// everything back. Under AddressSanitizer the cache is bypassed so that a
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

  // Bytes the calling thread keeps cached after an idle trim (default 16 MiB).
  static void set_cache_limit(std::size_t bytes) noexcept;
  // Bytes the calling thread may ever keep cached (default 1 GiB).
  static void set_burst_limit(std::size_t bytes) noexcept;
  // Returns cached blocks of the calling thread to malloc until at most
  // cache_limit bytes stay cached. Cheap when already under the limit.
  static void trim_to_limit() noexcept;
  // Returns every cached block of the calling thread to malloc.
  static void trim() noexcept;
};

}  // namespace coring
