// TimerQueue: one binary min-heap of intrusive timer nodes per loop.
//
// A node lives inside the awaitable that armed it (so inside a coroutine frame):
// arming and cancelling allocate nothing once the heap's vector has grown. Each
// node knows its heap index, so cancelling is O(log n). Equal deadlines fire in
// the order they were armed. The loop passes the nearest deadline to the kernel
// as the wait's timeout: no SQE per timer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "coring/runtime/clock.hpp"

namespace coring {

struct TimerNode {
  static constexpr std::size_t kNotArmed = static_cast<std::size_t>(-1);
  TimePoint deadline{};
  std::uint64_t seq = 0;
  std::size_t heap_index = kNotArmed;
  // Called when the deadline passes; the node is already unarmed. Must not resume
  // a coroutine inline.
  void (*on_fire)(TimerNode*) noexcept = nullptr;

  [[nodiscard]] bool armed() const noexcept { return heap_index != kNotArmed; }
};

class TimerQueue {
 public:
  void add(TimerNode* n);
  // No-op when the node is not armed.
  void remove(TimerNode* n) noexcept;
  // Fires every node whose deadline is <= now; returns how many fired.
  std::size_t expire(TimePoint now);
  [[nodiscard]] std::optional<TimePoint> next_deadline() const noexcept {
    if (heap_.empty()) return std::nullopt;
    return heap_.front()->deadline;
  }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }

 private:
  static bool before(const TimerNode* a, const TimerNode* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  void place(std::size_t i, TimerNode* n) noexcept {
    heap_[i] = n;
    n->heap_index = i;
  }

  std::vector<TimerNode*> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace coring
