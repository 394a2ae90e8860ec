#include "coring/runtime/timer_queue.hpp"

#include <stdexcept>

namespace coring {

void detail::throw_no_event_loop() {
  throw std::logic_error(
      "coring: no EventLoop is running on this thread (timers and I/O need one: run the task "
      "with coring::run or EventLoop::run)");
}

void TimerQueue::add(TimerNode* n) {
  heap_.push_back(Entry{n->deadline, next_seq_++, n});
  sift_up(heap_.size() - 1, heap_.back());
}

void TimerQueue::remove(TimerNode* n) noexcept {
  if (!n->armed()) return;
  const std::size_t i = n->heap_index;
  n->heap_index = TimerNode::kNotArmed;
  const Entry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;  // it was the last entry
  if (i > 0 && before(last, heap_[(i - 1) / kArity])) {
    sift_up(i, last);
  } else {
    sift_down(i, last);
  }
}

std::size_t TimerQueue::expire(TimePoint now) {
  std::size_t fired = 0;
  while (!heap_.empty() && heap_.front().deadline <= now) {
    TimerNode* n = heap_.front().node;
    remove(n);
    n->on_fire(n);
    ++fired;
  }
  return fired;
}

// Moves the hole at `i` up until `e` fits, then puts `e` there.
void TimerQueue::sift_up(std::size_t i, Entry e) noexcept {
  while (i > 0) {
    const std::size_t parent = (i - 1) / kArity;
    if (!before(e, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

// Moves the hole at `i` down until `e` fits, then puts `e` there.
void TimerQueue::sift_down(std::size_t i, Entry e) noexcept {
  const std::size_t size = heap_.size();
  for (;;) {
    const std::size_t first = kArity * i + 1;
    if (first >= size) break;
    const std::size_t last = first + kArity < size ? first + kArity : size;
    std::size_t best = first;
    for (std::size_t c = first + 1; c < last; ++c) {
      if (before(heap_[c], heap_[best])) best = c;
    }
    if (!before(heap_[best], e)) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, e);
}

}  // namespace coring
