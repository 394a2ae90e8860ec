// BufferPool: receive buffers a backend fills for recvs that name the pool
// (IoRequest::buffers). One pool per loop serves every connection's recv, so an
// idle connection holds no receive buffer at all: a buffer is taken only when
// data arrives, and named in the completion (completion::buffer_id).
//
// State: `entries` buffers of `buffer_size` bytes in one anonymous mapping,
// touched page by page as they are filled. A buffer is either the backend's
// (free) or the application's: named by a completion, counted by take(), and
// handed back by recycle().
// Backends: io_uring registers the pool as a provided-buffer ring (the kernel
// picks the buffer); epoll keeps a free list and passes a free buffer to
// recv(2) when the socket is readable.
// Destruction: the pool may outlive its backend (net's per-loop service owns
// it and is destroyed after the ring); forget_backend() is called first then.
// Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coring {

struct BufferPoolOptions {
  // Power of two, at most 32768.
  std::uint32_t entries = 1024;
  std::uint32_t buffer_size = 16 * 1024;
  std::uint16_t group = 0x6e;  // io_uring: the buffer group id recvs name
};

class BufferPool {
 public:
  virtual ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  [[nodiscard]] std::uint16_t group() const noexcept { return options_.group; }
  [[nodiscard]] std::uint32_t buffer_size() const noexcept { return options_.buffer_size; }
  [[nodiscard]] std::uint32_t entries() const noexcept { return options_.entries; }
  // Buffers the application holds (named by a completion, not yet recycled).
  [[nodiscard]] std::uint32_t in_use() const noexcept { return in_use_; }

  // Buffer `bid` was named by a completion: the application's now.
  std::byte* take(std::uint16_t bid) noexcept {
    ++in_use_;
    return data(bid);
  }
  // The memory of buffer `bid`.
  [[nodiscard]] std::byte* data(std::uint16_t bid) const noexcept {
    return data_ + static_cast<std::size_t>(bid) * options_.buffer_size;
  }
  // Hands buffer `bid` back to the backend.
  void recycle(std::uint16_t bid) noexcept {
    --in_use_;
    give_back(bid);
  }
  // The backend is gone: the destructor must not unregister from it.
  virtual void forget_backend() noexcept {}

 protected:
  // Validates the options (std::invalid_argument naming the bad one) and maps
  // the buffers (std::system_error).
  explicit BufferPool(const BufferPoolOptions& options);
  virtual void give_back(std::uint16_t bid) noexcept = 0;

  BufferPoolOptions options_;
  std::byte* data_ = nullptr;
  std::size_t data_bytes_ = 0;

 private:
  std::uint32_t in_use_ = 0;
};

}  // namespace coring
