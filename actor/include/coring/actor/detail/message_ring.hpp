// MessageRing<T>: the store of a mailbox -- a FIFO ring of messages.
//
// State: a power-of-two buffer (none until the first message is stored, so an
// actor that never had a backlog holds no buffer), `head_`, `size_`, and the
// bound `limit_` (0: none) that full() reports against; the ring itself never
// refuses a message (its owner checks full() first).
// Invariants: size_ <= cap_; the stored messages are the size_ slots from
// head_ on (mod cap_), each a live T; every other slot is raw memory.
// It grows by doubling and never shrinks while the actor lives.
// Not thread-safe (a mailbox is loop-local).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "coring/runtime/frame_allocator.hpp"

namespace coring::detail {

template <class T>
class MessageRing {
 public:
  // `limit`: the bound full() checks (0: unbounded); at most 2^31.
  explicit MessageRing(std::size_t limit = 0) : limit_(checked_limit(limit)) {}
  MessageRing(const MessageRing&) = delete;
  MessageRing& operator=(const MessageRing&) = delete;
  ~MessageRing() {
    clear();
    if (buf_ != nullptr) release(buf_, cap_);
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }
  [[nodiscard]] bool full() const noexcept { return limit_ != 0 && size_ >= limit_; }

  template <class... A>
  [[gnu::always_inline]] inline void emplace(A&&... args) {
    if (size_ == cap_) [[unlikely]]
      grow();
    ::new (static_cast<void*>(buf_ + ((head_ + size_) & (cap_ - 1)))) T(std::forward<A>(args)...);
    ++size_;
  }
  // Requires !empty().
  T take() {
    T* slot = buf_ + head_;
    T v = std::move(*slot);
    slot->~T();
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    return v;
  }
  // Destroys every stored message; returns how many there were.
  std::size_t clear() noexcept {
    const std::size_t n = size_;
    while (size_ != 0) {
      buf_[head_].~T();
      head_ = (head_ + 1) & (cap_ - 1);
      --size_;
    }
    return n;
  }

 private:
  // Buffers come from the frame allocator's size classes (small, recycled per
  // thread) unless T needs more than malloc's alignment.
  static T* acquire(std::uint32_t cap) {
    if constexpr (alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      return static_cast<T*>(FrameAllocator::allocate(std::size_t{cap} * sizeof(T)));
    } else {
      return std::allocator<T>().allocate(cap);
    }
  }
  static void release(T* buf, std::uint32_t cap) noexcept {
    if constexpr (alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      FrameAllocator::deallocate(buf, std::size_t{cap} * sizeof(T));
    } else {
      std::allocator<T>().deallocate(buf, cap);
    }
  }

  [[gnu::noinline]] void grow() {
    const std::uint32_t cap = cap_ == 0 ? 4 : cap_ * 2;
    T* buf = acquire(cap);
    for (std::uint32_t i = 0; i < size_; ++i) {
      T* from = buf_ + ((head_ + i) & (cap_ - 1));
      ::new (static_cast<void*>(buf + i)) T(std::move(*from));
      from->~T();
    }
    if (buf_ != nullptr) release(buf_, cap_);
    buf_ = buf;
    cap_ = cap;
    head_ = 0;
  }

  static std::uint32_t checked_limit(std::size_t limit) {
    if (limit > (std::size_t{1} << 31)) {
      throw std::invalid_argument("coring: a mailbox capacity must be at most 2^31");
    }
    return static_cast<std::uint32_t>(limit);
  }

  T* buf_ = nullptr;
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;
  std::uint32_t limit_;
};

}  // namespace coring::detail
