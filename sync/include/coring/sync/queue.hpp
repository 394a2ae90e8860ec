// Queue<T>: the seed's queue.Queue as a loop-local awaitable, unbounded or bounded.
//
// State: the stored items, `capacity_` (0: unbounded), `closed_`, and two FIFO
// lines of waiting tasks. Invariants: poppers wait only while no item is stored;
// pushers wait only while the queue is full (size() == capacity()) and open.
//
// - co_await push(v): stores v, or suspends at the back of the pushers' line
//   while the queue is full (backpressure). If a popper waits, v is handed
//   straight to the oldest one (recorded in its awaiter, then it is scheduled),
//   so nobody barges in between. On a closed queue it throws QueueClosed; a
//   pusher still waiting when close() is called is woken, its item is not
//   enqueued and its push throws QueueClosed.
// - co_await pop(): the oldest item, or suspends at the back of the poppers'
//   line while the queue is empty. Returns std::nullopt once the queue is
//   closed *and* drained: after close(), pops still get what was stored. Taking
//   an item from a full queue admits the oldest waiting pusher's item.
// - co_await emplace(args...): push(T(args...)), T built inside the awaiter.
// - try_push(v) / try_pop(): the same without waiting. try_push returns false
//   (leaving v untouched) if the queue is full, throws QueueClosed if closed;
//   try_pop returns std::nullopt if nothing is stored (see closed()).
// - close(): idempotent; wakes every waiter (poppers get std::nullopt, pushers
//   QueueClosed).
// Cancel-safe, and no item is ever lost or duplicated: a cancelled popper
// unlinks itself and takes nothing; a popper that was handed an item and is then
// cancelled still gets it from its co_await (the task stops at its next
// suspension point); a cancelled pusher unlinks itself and its item is not
// enqueued. A cancelled task is unwound (see runtime/cancel.hpp).
// In select() (runtime/select.hpp) a pop that loses after an item was handed
// to it gives the item back, to the front of the queue (PopAwaiter::put_back).
// Timeouts: `co_await q.pop(d)` (or with_timeout(d, q.pop())) gives std::nullopt
// when nothing came within `d` -- closed() tells that from "closed and
// drained" -- and an item pushed as the timeout fired is still taken;
// with_timeout(d, q.push(v)) gives false when `d` passed first, and the item
// was not enqueued.
// Waking is by scheduling, never inline: a woken task runs after the caller
// suspends. Destroying a queue that tasks still wait on is reported (WaitList).
//
// Implementation notes: Queue and PriorityQueue share detail::BasicQueue; only
// the store differs (a deque here, a heap with a FIFO tie-break there).
#pragma once

#include <cassert>
#include <cstddef>
#include <deque>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "coring/sync/wait_list.hpp"

namespace coring {

// Thrown by a push on a closed queue (a programming or shutdown-ordering error
// of the producer; a closed queue is an ordinary value for consumers).
class QueueClosed : public std::logic_error {
 public:
  explicit QueueClosed(const char* queue)
      : std::logic_error(std::string("coring: push to a closed ") + queue) {}
};

namespace detail {

template <class T>
class FifoStore {
 public:
  static constexpr const char* kName = "Queue";
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  template <class U>
  void put(U&& v) {
    items_.emplace_back(std::forward<U>(v));
  }
  template <class U>
  void put_front(U&& v) {
    items_.emplace_front(std::forward<U>(v));
  }
  T take() {
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }

 private:
  std::deque<T> items_;
};

template <class T, class Store>
class BasicQueue {
  static_assert(std::is_move_constructible_v<T>, "queue items must be movable");

 public:
  using value_type = T;

  explicit BasicQueue(std::size_t capacity = 0, Store store = Store())
      : store_(std::move(store)), capacity_(capacity) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // Items stored (not counting those of waiting pushers).
  [[nodiscard]] std::size_t size() const noexcept { return store_.size(); }
  [[nodiscard]] bool empty() const noexcept { return store_.empty(); }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool full() const noexcept { return capacity_ != 0 && store_.size() >= capacity_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] std::size_t waiting_poppers() const noexcept { return poppers_.size(); }
  [[nodiscard]] std::size_t waiting_pushers() const noexcept { return pushers_.size(); }

  [[nodiscard]] bool try_push(const T& v) { return try_put(v); }
  [[nodiscard]] bool try_push(T&& v) { return try_put(std::move(v)); }

  [[nodiscard]] std::optional<T> try_pop() {
    if (store_.empty()) return std::nullopt;
    return take_and_admit();
  }

  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    poppers_.wake_all();
    pushers_.wake_all();
  }

  class [[nodiscard]] PopAwaiter : public WaitOp {
   public:
    static constexpr bool kReportsTimeout = true;  // a late item is still taken
    explicit PopAwaiter(BasicQueue& q) noexcept : queue_(q) {}
    PopAwaiter(PopAwaiter&& o) noexcept : WaitOp(std::move(o)), queue_(o.queue_) {}

    bool await_ready() const noexcept { return !queue_.store_.empty() || queue_.closed_; }
    template <class P>
    [[gnu::always_inline]] bool await_suspend(std::coroutine_handle<P> h) {
      return park(queue_.poppers_, h, WaitKind::queue_pop, &queue_);
    }
    // The item; std::nullopt once the queue is closed and drained, or when the
    // timeout passed with nothing to take (closed() tells which).
    [[gnu::always_inline]] std::optional<T> await_resume() {
      check();
      // Not handed an item: take a stored one (one may have come after a
      // timeout fired, before this task ran), or stay empty. One return of one
      // object: GCC then copies a small std::optional as a whole instead of
      // field by field (which costs a store-forwarding stall per pop).
      if (!item_.has_value() && !queue_.store_.empty()) item_.emplace(queue_.take_and_admit());
      return std::move(item_);
    }
    // For select() (runtime/select.hpp): this pop lost, but an item was handed
    // to it first; the item goes back to the front of the queue (or to the
    // next waiting popper), so order holds and nothing is lost.
    void put_back() noexcept {
      if (!item_.has_value()) return;
      queue_.give_back(std::move(*item_));
      item_.reset();
    }

   private:
    friend class BasicQueue;
    BasicQueue& queue_;
    std::optional<T> item_;  // handed over by a push while parked
  };

  class [[nodiscard]] PushAwaiter : public WaitOp {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    template <class U>
    PushAwaiter(BasicQueue& q, U&& v) : queue_(q), value_(std::forward<U>(v)) {}
    template <class... A>
    PushAwaiter(BasicQueue& q, std::in_place_t, A&&... args)
        : queue_(q), value_(std::forward<A>(args)...) {}
    PushAwaiter(PushAwaiter&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : WaitOp(std::move(o)), queue_(o.queue_), value_(std::move(o.value_)) {}

    [[gnu::always_inline]] bool await_ready() {
      if (queue_.closed_) return true;  // await_resume throws QueueClosed
      if (!queue_.poppers_.empty()) {
        queue_.hand_to_popper(std::move(value_));
      } else if (!queue_.full()) {
        queue_.store_.put(std::move(value_));
      } else {
        return false;
      }
      admitted_ = true;
      return true;
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park(queue_.pushers_, h, WaitKind::queue_push, &queue_);
    }
    // Returns once the item went in. A push that timed out (with_timeout)
    // leaves the item in the awaiter, dropped with it.
    void await_resume() const {
      check();
      if (!admitted_ && !timed_out()) throw QueueClosed(Store::kName);
    }

   private:
    friend class BasicQueue;
    BasicQueue& queue_;
    T value_;
    bool admitted_ = false;  // stored or handed over
  };

  PushAwaiter push(const T& v) { return PushAwaiter(*this, v); }
  PushAwaiter push(T&& v) { return PushAwaiter(*this, std::move(v)); }
  // Like push(T(args...)), the item being built inside the awaiter.
  template <class... A>
  PushAwaiter emplace(A&&... args) {
    return PushAwaiter(*this, std::in_place, std::forward<A>(args)...);
  }
  PopAwaiter pop() noexcept { return PopAwaiter(*this); }
  // pop() giving up after `timeout`: std::nullopt then, as for a closed and
  // drained queue; closed() tells the two apart.
  PopAwaiter pop(Duration timeout) noexcept {
    PopAwaiter a(*this);
    a.set_timeout(timeout);
    return a;
  }

 private:
  template <class U>
  bool try_put(U&& v) {
    if (closed_) throw QueueClosed(Store::kName);
    if (!poppers_.empty()) {
      hand_to_popper(std::forward<U>(v));
    } else if (full()) {
      return false;
    } else {
      store_.put(std::forward<U>(v));
    }
    return true;
  }

  // An item a popper was handed but did not take (see PopAwaiter::put_back):
  // to the next waiting popper, or stored ahead of the rest -- even past the
  // capacity (by the items given back), so that nothing is lost.
  void give_back(T&& v) noexcept {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "select() over a queue pop needs a nothrow-movable item type");
    try {
      if (!poppers_.empty()) {
        hand_to_popper(std::move(v));
      } else {
        store_.put_front(std::move(v));
      }
    } catch (...) {
      // The store could not grow (out of memory): nothing sane is left to do.
      std::terminate();
    }
  }

  // Requires a waiting popper (so nothing is stored).
  template <class U>
  void hand_to_popper(U&& v) {
    auto* w = static_cast<PopAwaiter*>(poppers_.front());
    w->item_.emplace(std::forward<U>(v));  // recorded before the wake
    poppers_.wake(*w);
  }

  // Requires a stored item. Takes it; if a pusher waits (the queue was full),
  // its item takes the freed place and it is woken.
  T take_and_admit() {
    T v = store_.take();
    if (!pushers_.empty()) {
      auto* w = static_cast<PushAwaiter*>(pushers_.front());
      store_.put(std::move(w->value_));
      w->admitted_ = true;  // recorded before the wake
      pushers_.wake(*w);
    }
    return v;
  }

  Store store_;
  std::size_t capacity_;
  bool closed_ = false;
  WaitList poppers_{Store::kName};
  WaitList pushers_{Store::kName};
};

}  // namespace detail

// A FIFO queue; `Queue<T> q(capacity)` bounds it (0, the default: unbounded).
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
 public:
  explicit Queue(std::size_t capacity = 0)
      : detail::BasicQueue<T, detail::FifoStore<T>>(capacity) {}
};

}  // namespace coring
