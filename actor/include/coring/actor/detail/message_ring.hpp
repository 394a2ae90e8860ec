// MessageRing<T>: the store of a mailbox -- a FIFO ring of messages.
//
// State: a power-of-two buffer (none until the first message is stored, so an
// actor that never had a backlog holds no buffer), `head_`, `size_`.
// Invariants: size_ <= cap_; the stored messages are the size_ slots from
// head_ on (mod cap_), each a live T; every other slot is raw memory.
// It grows by doubling and never shrinks while the actor lives.
// Not thread-safe (a mailbox is loop-local).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace coring::detail {

template <class T>
class MessageRing {
 public:
  MessageRing() noexcept = default;
  MessageRing(const MessageRing&) = delete;
  MessageRing& operator=(const MessageRing&) = delete;
  ~MessageRing() {
    clear();
    if (buf_ != nullptr) std::allocator<T>().deallocate(buf_, cap_);
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  template <class... A>
  void emplace(A&&... args) {
    if (size_ == cap_) grow();
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
  void grow() {
    const std::uint32_t cap = cap_ == 0 ? 4 : cap_ * 2;
    T* buf = std::allocator<T>().allocate(cap);
    for (std::uint32_t i = 0; i < size_; ++i) {
      T* from = buf_ + ((head_ + i) & (cap_ - 1));
      ::new (static_cast<void*>(buf + i)) T(std::move(*from));
      from->~T();
    }
    if (buf_ != nullptr) std::allocator<T>().deallocate(buf_, cap_);
    buf_ = buf;
    cap_ = cap;
    head_ = 0;
  }

  T* buf_ = nullptr;
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;
};

}  // namespace coring::detail
