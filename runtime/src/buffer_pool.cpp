#include "coring/runtime/buffer_pool.hpp"

#include <fmt/core.h>
#include <sys/mman.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace coring {

BufferPool::BufferPool(const BufferPoolOptions& options) : options_(options) {
  const std::uint32_t n = options_.entries;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0) {
    throw std::invalid_argument(fmt::format(
        "coring: BufferPoolOptions::entries must be a power of two in 1..32768, not {}", n));
  }
  if (options_.buffer_size == 0) {
    throw std::invalid_argument("coring: BufferPoolOptions::buffer_size must not be 0");
  }
  data_bytes_ = static_cast<std::size_t>(n) * options_.buffer_size;
  void* data =
      ::mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (data == MAP_FAILED) {
    throw std::system_error(
        errno, std::system_category(),
        fmt::format("coring: mmap of {} receive buffers of {} bytes", n, options_.buffer_size));
  }
  data_ = static_cast<std::byte*>(data);
}

BufferPool::~BufferPool() {
  if (data_ != nullptr) ::munmap(data_, data_bytes_);
}

}  // namespace coring
