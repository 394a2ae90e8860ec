// TimerQueue: one 4-ary min-heap of timers per loop.
//
// A node lives inside the awaitable that armed it (so inside a coroutine frame):
// arming and cancelling allocate nothing once the heap's vector has grown. The
// heap entries carry a copy of the deadline and a sequence number, so sifting
// compares entries in one contiguous array instead of visiting a coroutine frame
// per comparison; a node is touched only to record its index when it moves,
// which makes cancelling O(log n). Equal deadlines fire in the order they were
// armed. The loop passes the nearest deadline to the kernel as the wait's
// timeout: no SQE per timer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "coring/runtime/clock.hpp"

namespace coring {

struct TimerNode {
  static constexpr std::size_t kNotArmed = static_cast<std::size_t>(-1);
  union {
    TimePoint deadline;        // read by add(); in a union: a Deferred node leaves it unset
    Duration pending_timeout;  // free for the owner while the node is not armed
  };
  std::size_t heap_index;
  // Called when the deadline passes; the node is already unarmed. Must not resume
  // a coroutine inline.
  void (*on_fire)(TimerNode*) noexcept;

  TimerNode() noexcept : deadline(), heap_index(kNotArmed), on_fire(nullptr) {}
  // For a node that is set up only when it is used (Operation::prepare): the
  // fields are left for that code to set (heap_index = kNotArmed first).
  struct Deferred {};
  explicit TimerNode(Deferred) noexcept {}

  [[nodiscard]] bool armed() const noexcept { return heap_index != kNotArmed; }
};

class TimerQueue {
 public:
  // The clock deadlines are measured on (null: Clock, steady_clock).
  void set_clock(ClockSource* clock) noexcept { clock_ = clock; }
  [[nodiscard]] ClockSource* clock() const noexcept { return clock_; }
  [[nodiscard]] TimePoint now() const noexcept {
    return clock_ == nullptr ? Clock::now() : clock_->now();
  }

  void add(TimerNode* n);
  // No-op when the node is not armed.
  void remove(TimerNode* n) noexcept;
  // Fires every node whose deadline is <= now; returns how many fired.
  std::size_t expire(TimePoint now);
  [[nodiscard]] std::optional<TimePoint> next_deadline() const noexcept {
    if (heap_.empty()) return std::nullopt;
    return heap_.front().deadline;
  }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }

 private:
  struct Entry {
    TimePoint deadline;
    std::uint64_t seq;
    TimerNode* node;
  };
  static constexpr std::size_t kArity = 4;
  static bool before(const Entry& a, const Entry& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }
  void sift_up(std::size_t i, Entry e) noexcept;
  void sift_down(std::size_t i, Entry e) noexcept;
  void place(std::size_t i, const Entry& e) noexcept {
    heap_[i] = e;
    e.node->heap_index = i;
  }

  std::vector<Entry> heap_;
  std::uint64_t next_seq_ = 0;
  ClockSource* clock_ = nullptr;
};

namespace detail {
// The timer heap of the EventLoop running on this thread (set while it runs).
inline thread_local TimerQueue* tls_current_timers = nullptr;
[[noreturn]] void throw_no_event_loop();
// That heap; throws std::logic_error naming the fix outside an EventLoop.
inline TimerQueue& current_timers() {
  TimerQueue* t = tls_current_timers;
  if (t == nullptr) [[unlikely]]
    throw_no_event_loop();
  return *t;
}
}  // namespace detail

// The running loop's time (its LoopOptions::clock), or Clock::now() outside a
// loop. See clock.hpp.
inline TimePoint now() noexcept {
  const TimerQueue* t = detail::tls_current_timers;
  return t == nullptr ? Clock::now() : t->now();
}

}  // namespace coring
