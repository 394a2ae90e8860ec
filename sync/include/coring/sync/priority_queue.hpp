// PriorityQueue<T, Compare>: the seed's heapq-on-a-Condition PriorityQueue as a
// loop-local awaitable.
//
// Same interface and contract as Queue<T> (queue.hpp): co_await push()/pop(),
// try_push/try_pop, a capacity (0: unbounded) with backpressure, close() with
// drain-then-closed, cancel safety, direct hand-off to the oldest waiting popper.
// Only the order differs: pop() returns the highest-priority item first, the
// one Compare ranks greatest (as std::priority_queue: with std::less the largest
// first; std::greater gives the smallest first). Items of equal priority come out
// in the order they were pushed (a push sequence number breaks ties, like the
// seed's `_count`). Taking from a full queue with a waiting pusher first takes
// the highest stored item, then admits the pusher's item.
//
// The seed's `put(item, priority)` style: Prioritized<Item, Priority> pairs an
// item with a priority and compares by priority only, and a PriorityQueue of
// them has push(item, priority):
//   PriorityQueue<Prioritized<std::string>> q;
//   co_await q.push("C", 5);                   // the seed's q.put('C', 5)
//   std::optional<Prioritized<std::string>> e = co_await q.pop();  // e->item
// GCC 12 pitfall: `co_await q.push({"C", 5})` (an aggregate temporary in the
// co_await expression) is miscompiled by GCC 12, which destroys the temporary
// twice. push(item, priority) and emplace() build the item inside the awaiter
// and avoid it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "coring/sync/queue.hpp"

namespace coring {

// An item and its priority, ordered by priority alone (ties stay FIFO).
template <class Item, class Priority = int>
struct Prioritized {
  Item item;
  Priority priority{};

  friend bool operator<(const Prioritized& a, const Prioritized& b) {
    return a.priority < b.priority;
  }
  friend bool operator>(const Prioritized& a, const Prioritized& b) {
    return b.priority < a.priority;
  }
};

namespace detail {

template <class T>
inline constexpr bool is_prioritized_v = false;
template <class I, class P>
inline constexpr bool is_prioritized_v<Prioritized<I, P>> = true;

// A binary max-heap (by Compare, then by earliest push) in a vector.
template <class T, class Compare>
class HeapStore {
  struct Entry {
    T value;
    std::uint64_t seq;
  };

 public:
  static constexpr const char* kName = "PriorityQueue";

  explicit HeapStore(Compare comp = Compare()) : comp_(std::move(comp)) {}

  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
  template <class U>
  void put(U&& v) {
    heap_.push_back(Entry{T(std::forward<U>(v)), next_seq_++});
    std::push_heap(heap_.begin(), heap_.end(), order());
  }
  // Ahead of every stored item of the same priority (an item select() gives back).
  template <class U>
  void put_front(U&& v) {
    heap_.push_back(Entry{T(std::forward<U>(v)), --front_seq_});
    std::push_heap(heap_.begin(), heap_.end(), order());
  }
  T take() {
    std::pop_heap(heap_.begin(), heap_.end(), order());
    T v = std::move(heap_.back().value);
    heap_.pop_back();
    return v;
  }

 private:
  // "a comes out after b": lower priority, or equal priority and pushed later.
  auto order() {
    return [this](const Entry& a, const Entry& b) {
      if (comp_(a.value, b.value)) return true;
      if (comp_(b.value, a.value)) return false;
      return a.seq > b.seq;
    };
  }

  std::vector<Entry> heap_;
  // Pushes count up from the middle, put-backs down from it.
  std::uint64_t next_seq_ = std::uint64_t{1} << 63;
  std::uint64_t front_seq_ = std::uint64_t{1} << 63;
  [[no_unique_address]] Compare comp_;
};

}  // namespace detail

template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
  using Base = detail::BasicQueue<T, detail::HeapStore<T, Compare>>;

 public:
  explicit PriorityQueue(std::size_t capacity = 0, Compare comp = Compare())
      : Base(capacity, detail::HeapStore<T, Compare>(std::move(comp))) {}

  using Base::push;
  // For T = Prioritized<Item, Priority>: push(Prioritized{item, priority}).
  template <class I, class P>
  requires detail::is_prioritized_v<T>
  typename Base::PushAwaiter push(I&& item, P&& priority) {
    return this->emplace(std::forward<I>(item), std::forward<P>(priority));
  }
};

}  // namespace coring
