#include "coring/runtime/timer_queue.hpp"

namespace coring {

void TimerQueue::add(TimerNode* n) {
  n->seq = next_seq_++;
  heap_.push_back(n);
  n->heap_index = heap_.size() - 1;
  sift_up(n->heap_index);
}

void TimerQueue::remove(TimerNode* n) noexcept {
  if (!n->armed()) return;
  const std::size_t i = n->heap_index;
  n->heap_index = TimerNode::kNotArmed;
  TimerNode* last = heap_.back();
  heap_.pop_back();
  if (last == n) return;
  place(i, last);
  if (i > 0 && before(last, heap_[(i - 1) / 2])) {
    sift_up(i);
  } else {
    sift_down(i);
  }
}

std::size_t TimerQueue::expire(TimePoint now) {
  std::size_t fired = 0;
  while (!heap_.empty() && heap_.front()->deadline <= now) {
    TimerNode* n = heap_.front();
    remove(n);
    n->on_fire(n);
    ++fired;
  }
  return fired;
}

void TimerQueue::sift_up(std::size_t i) noexcept {
  TimerNode* n = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!before(n, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, n);
}

void TimerQueue::sift_down(std::size_t i) noexcept {
  TimerNode* n = heap_[i];
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], n)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, n);
}

}  // namespace coring
