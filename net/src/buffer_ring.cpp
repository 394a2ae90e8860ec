#include "coring/net/buffer_ring.hpp"

#include <fmt/core.h>
#include <liburing.h>
#include <sys/mman.h>

#include <cerrno>
#include <system_error>

namespace coring::net {

BufferRing::BufferRing(::io_uring* ring, const BufferRingOptions& options)
    : ring_(ring), options_(options) {
  const std::uint32_t n = options_.entries;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0) {
    throw std::invalid_argument(fmt::format(
        "coring: BufferRingOptions::entries must be a power of two in 1..32768, not {}", n));
  }
  if (options_.buffer_size == 0) {
    throw std::invalid_argument("coring: BufferRingOptions::buffer_size must not be 0");
  }
  if (ring_ == nullptr) {
    throw std::invalid_argument(
        "coring: provided-buffer rings need the io_uring backend (Backend::native_ring() is null)");
  }
  ring_bytes_ = static_cast<std::size_t>(n) * sizeof(io_uring_buf);
  void* mem =
      ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    throw std::system_error(errno, std::system_category(), "coring: mmap of the buffer ring");
  }
  br_ = static_cast<io_uring_buf_ring*>(mem);
  data_bytes_ = static_cast<std::size_t>(n) * options_.buffer_size;
  void* data =
      ::mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (data == MAP_FAILED) {
    const int err = errno;
    ::munmap(br_, ring_bytes_);
    throw std::system_error(err, std::system_category(), "coring: mmap of the receive buffers");
  }
  data_ = static_cast<std::byte*>(data);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = n;
  reg.bgid = options_.group;
  const int r = io_uring_register_buf_ring(ring_, &reg, 0);
  if (r < 0) {
    ::munmap(data_, data_bytes_);
    ::munmap(br_, ring_bytes_);
    throw std::system_error(
        -r, std::system_category(),
        -r == EINVAL ? "coring: io_uring_register_buf_ring failed (EINVAL): this kernel has no "
                       "provided-buffer rings (Linux 5.19+), or buffer group " +
                           std::to_string(options_.group) + " is already registered on this ring"
                     : "coring: io_uring_register_buf_ring failed");
  }
  registered_ = true;
  io_uring_buf_ring_init(br_);
  const int mask = io_uring_buf_ring_mask(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    io_uring_buf_ring_add(br_, data_ + static_cast<std::size_t>(i) * options_.buffer_size,
                          options_.buffer_size, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(n));
}

BufferRing::~BufferRing() {
  if (registered_ && ring_ != nullptr) io_uring_unregister_buf_ring(ring_, options_.group);
  ::munmap(data_, data_bytes_);
  ::munmap(br_, ring_bytes_);
}

void BufferRing::forget_ring() noexcept {
  ring_ = nullptr;
}

void BufferRing::recycle(std::uint16_t bid) noexcept {
  io_uring_buf_ring_add(br_, data_ + static_cast<std::size_t>(bid) * options_.buffer_size,
                        options_.buffer_size, bid, io_uring_buf_ring_mask(options_.entries), 0);
  io_uring_buf_ring_advance(br_, 1);
  --in_use_;
}

}  // namespace coring::net
