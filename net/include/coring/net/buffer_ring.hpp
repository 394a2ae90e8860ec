// BufferRing: an io_uring provided-buffer ring (IORING_REGISTER_PBUF_RING).
//
// The kernel picks a free buffer from the ring when data arrives for a recv that
// asked for one (IOSQE_BUFFER_SELECT), and names it in the CQE; the buffer is the
// application's until it is handed back with recycle(). One ring per loop serves
// every connection's multishot recv, so an idle connection holds no receive
// buffer at all.
//
// Debian's liburing 2.3 has no io_uring_setup_buf_ring (2.4+): the ring memory
// is mmap()ed here and registered with io_uring_register_buf_ring. The buffers
// themselves are one anonymous mapping, touched page by page as the kernel fills
// them.
//
// Loop thread only. Must outlive every operation that may select from it; the
// net layer's per-loop service (NetService) owns it and frees it after the ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>

struct io_uring;
struct io_uring_buf_ring;

namespace coring::net {

struct BufferRingOptions {
  // Power of two, at most 32768.
  std::uint32_t entries = 1024;
  std::uint32_t buffer_size = 16 * 1024;
  std::uint16_t group = 0x6e;  // the buffer group id the recvs name
};

class BufferRing {
 public:
  // Registers the ring with `ring`. Throws std::system_error naming the cause
  // (for example a kernel before 5.19, which has no buffer rings).
  BufferRing(::io_uring* ring, const BufferRingOptions& options);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  [[nodiscard]] std::uint16_t group() const noexcept { return options_.group; }
  [[nodiscard]] std::uint32_t buffer_size() const noexcept { return options_.buffer_size; }
  [[nodiscard]] std::uint32_t entries() const noexcept { return options_.entries; }
  // Buffers the application holds (taken by the kernel, named in a CQE, not yet
  // recycled).
  [[nodiscard]] std::uint32_t in_use() const noexcept { return in_use_; }

  // Buffer `bid` was named by a CQE: the application's now, counted as in use.
  std::byte* take(std::uint16_t bid) noexcept {
    ++in_use_;
    return data(bid);
  }
  // The memory of buffer `bid`.
  [[nodiscard]] std::byte* data(std::uint16_t bid) const noexcept {
    return data_ + static_cast<std::size_t>(bid) * options_.buffer_size;
  }
  // Hands buffer `bid` back to the kernel.
  void recycle(std::uint16_t bid) noexcept;
  // The ring has been torn down already (io_uring_queue_exit): the destructor
  // must not unregister from it.
  void forget_ring() noexcept;

 private:
  ::io_uring* ring_;
  BufferRingOptions options_;
  ::io_uring_buf_ring* br_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::byte* data_ = nullptr;
  std::size_t data_bytes_ = 0;
  std::uint32_t in_use_ = 0;
  bool registered_ = false;
};

}  // namespace coring::net
