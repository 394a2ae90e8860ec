// WaitList: the intrusive "parking lot" every sync primitive is built on, and
// WaitOp, the operation (runtime/operation.hpp) of a task parked in one.
//
// A WaitNode lives inside the awaiter, so inside the waiting coroutine's frame:
// parking allocates nothing. Primitives are loop-local (one thread, one task at
// a time), so there are no atomics or locks here.
//
// Contract:
// - A primitive hands something over (a permit, the lock, an item) by
//   recording it in the awaiter and then calling wake(node) / wake_front(),
//   which unlink the node and call its `woken` callback: for a WaitOp that
//   completes the operation and schedules the task. Once woken, a node is no
//   longer parked, so a later cancellation or timeout cannot lose what was
//   handed over (the task gets it; a cancellation takes effect at its next
//   suspension point).
// - A WaitOp that times out or is cancelled while parked unlinks itself and
//   takes nothing; the primitive stays usable.
// - A frame destroyed while parked (loop shutdown) unlinks itself.
// - Destroying a WaitList that still has nodes is reported on stderr, and
//   every node is woken as `broken`: WaitOp::check() then throws
//   std::logic_error naming the primitive, instead of leaving the task
//   suspended on freed memory.
#pragma once

#include <coroutine>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "coring/runtime/operation.hpp"

namespace coring {

class WaitList;

// Throws the std::logic_error of a node whose primitive `what` was destroyed.
[[noreturn]] void throw_broken(const char* what);

class WaitNode {
 public:
  using WokenFn = void (*)(WaitNode* self) noexcept;
  // `woken` is called once the node was woken (unlinked); a node made without
  // one gets it from link_back().
  explicit WaitNode(WokenFn woken) noexcept : woken_(woken) {}
  WaitNode() noexcept {}
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;
  ~WaitNode() { unlink(); }

  [[nodiscard]] bool parked() const noexcept { return list_ != nullptr; }
  // Set when the WaitList was destroyed under the node: the primitive's name.
  [[nodiscard]] const char* broken() const noexcept { return broken_; }
  // Throws std::logic_error if the primitive was destroyed under the node.
  void check_broken() const {
    if (broken_ != nullptr) [[unlikely]]
      throw_broken(broken_);
  }
  // Leaves the list it is parked in (no-op when not parked).
  inline void unlink() noexcept;

 private:
  friend class WaitList;
  WaitNode* prev_;  // valid while parked
  WaitNode* next_;
  WaitList* list_ = nullptr;  // non-null while parked
  WokenFn woken_;
  const char* broken_ = nullptr;
};

class WaitList {
 public:
  // `what` names the primitive in reports ("Mutex", "Queue"...); must be a literal.
  explicit WaitList(const char* what) noexcept : what_(what) {}
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList();

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  // Counts the nodes (a walk: the hot paths keep no count).
  [[nodiscard]] std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const WaitNode* w = head_; w != nullptr; w = w->next_) ++n;
    return n;
  }
  [[nodiscard]] WaitNode* front() const noexcept { return head_; }
  [[nodiscard]] const char* what() const noexcept { return what_; }

  // Parks `n` at the back of the line.
  void link_back(WaitNode& n, WaitNode::WokenFn woken) noexcept {
    n.woken_ = woken;
    link_back(n);
  }
  void link_back(WaitNode& n) noexcept {
    n.list_ = this;
    n.prev_ = tail_;
    n.next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = &n;
    } else {
      head_ = &n;
    }
    tail_ = &n;
  }
  // Wakes `n` (which must be parked here): unlinks it and calls its callback.
  inline void wake(WaitNode& n) noexcept;
  // Wakes the oldest node; returns it, or nullptr if none.
  WaitNode* wake_front() noexcept {
    WaitNode* n = head_;
    if (n != nullptr) wake(*n);
    return n;
  }
  void wake_all() noexcept {
    while (head_ != nullptr) wake(*head_);
  }
  // The oldest node for which pred(node) is true, or nullptr (a walk: for lists
  // that park more than one kind of waiter).
  template <class Pred>
  WaitNode* find_first(Pred pred) const {
    for (WaitNode* w = head_; w != nullptr; w = w->next_) {
      if (pred(*w)) return w;
    }
    return nullptr;
  }

 private:
  friend class WaitNode;
  void unlink(WaitNode& n) noexcept {
    if (n.prev_ != nullptr) {
      n.prev_->next_ = n.next_;
    } else {
      head_ = n.next_;
    }
    if (n.next_ != nullptr) {
      n.next_->prev_ = n.prev_;
    } else {
      tail_ = n.prev_;
    }
    n.list_ = nullptr;
  }

  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  const char* what_;
};

inline void WaitNode::unlink() noexcept {
  if (list_ != nullptr) list_->unlink(*this);
}

// The operation of a task parked in one WaitList: the awaiters of Event,
// Semaphore, Mutex, Queue, Latch and Barrier derive from it. Being woken
// completes it; a timeout or a cancellation unlinks it.
class WaitOp : public Operation, public WaitNode {
 public:
  WaitOp(WaitOp&& o) noexcept : Operation(std::move(o)) {}

 protected:
  WaitOp() noexcept = default;

  // The body of await_suspend: parks in `list` (see operation.hpp); `kind` and
  // `primitive` say what it waits on.
  template <class P>
  [[gnu::always_inline]] inline bool park(WaitList& list, std::coroutine_handle<P> h, WaitKind kind,
                                          const void* primitive) {
    if (!prepare<&WaitOp::interrupt_wait>(h, kind, primitive)) return suspend_cancelled();
    list.link_back(*this, &WaitOp::woken);
    start_timeout();
    return true;
  }
  // Call first in await_resume: throws std::logic_error if the primitive was
  // destroyed under the task.
  void check() const { check_broken(); }

 private:
  friend class WaitList;
  static void woken(WaitNode* n) noexcept { static_cast<WaitOp*>(n)->complete(false); }
  static bool interrupt_wait(Operation* op) noexcept {
    static_cast<WaitOp*>(op)->unlink();
    return true;
  }
};

inline void WaitList::wake(WaitNode& n) noexcept {
  unlink(n);
  // Nearly every node is a WaitOp: call it directly, so the wake-up inlines.
  if (n.woken_ == &WaitOp::woken) {
    WaitOp::woken(&n);
  } else {
    n.woken_(&n);
  }
}

}  // namespace coring
