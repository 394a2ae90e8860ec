// WaitList: the intrusive "parking lot" every sync primitive is built on.
//
// A Waiter lives inside the awaiter, so inside the waiting coroutine's frame:
// parking allocates nothing. Primitives are loop-local (one thread, one task at
// a time), so there are no atomics or locks here.
//
// Contract:
// - park(): called from await_suspend. Returns false, without parking, if the
//   task is already cancelled; the awaiter must then not suspend, and its
//   await_resume must call check() (which throws Cancelled).
// - wake(w) / wake_front(): unlink the waiter, disarm its cancel slot and
//   schedule it. Whatever the primitive handed over (a permit, a lock, an item)
//   must be recorded in the awaiter *before* waking it: once woken, a later
//   cancellation no longer touches the waiter, so nothing handed over is lost.
// - A cancelled waiter unlinks itself and is scheduled; check() throws Cancelled.
// - A frame destroyed while parked (loop shutdown) unlinks itself (~Waiter).
// - Destroying a WaitList that still has waiters is reported on stderr, and
//   every waiter is woken with `broken` set: check() throws std::logic_error
//   naming the primitive, instead of leaving the task suspended on freed memory.
#pragma once

#include <coroutine>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/scheduler.hpp"

namespace coring {

class WaitList;

class Waiter : private CancelSlot {
 public:
  Waiter() noexcept { on_cancel = &Waiter::cancelled_cb; }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter();

  [[nodiscard]] bool parked() const noexcept { return list_ != nullptr; }
  [[nodiscard]] bool cancelled() const noexcept { return cancelled_; }

  // Throws Cancelled if the wait was cancelled, std::logic_error if the
  // primitive was destroyed under it. Call first thing in await_resume.
  void check() const {
    if (cancelled_) throw Cancelled{};
    if (broken_ != nullptr) {
      throw std::logic_error(std::string("coring: ") + broken_ +
                             " destroyed while tasks were waiting on it");
    }
  }

 private:
  friend class WaitList;
  static void cancelled_cb(CancelSlot* s) noexcept;
  void schedule() noexcept { scheduler_->schedule(handle_); }

  Waiter* prev_ = nullptr;
  Waiter* next_ = nullptr;
  WaitList* list_ = nullptr;  // non-null while parked
  std::coroutine_handle<> handle_;
  TaskContext* ctx_ = nullptr;
  TaskScheduler* scheduler_ = nullptr;
  const char* broken_ = nullptr;
  bool cancelled_ = false;
};

class WaitList {
 public:
  // `what` names the primitive in reports ("Mutex", "Queue"...); must be a literal.
  explicit WaitList(const char* what) noexcept : what_(what) {}
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList();

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] Waiter* front() const noexcept { return head_; }

  // Parks the coroutine `h` at the back of the line. See the contract above.
  template <class P>
  [[nodiscard]] bool park(Waiter& w, std::coroutine_handle<P> h) {
    TaskContext* ctx = context_of(h);
    if (ctx != nullptr && !ctx->arm(&w)) {
      w.cancelled_ = true;
      return false;
    }
    w.ctx_ = ctx;
    w.handle_ = h;
    w.scheduler_ = &current_scheduler();
    link_back(w);
    return true;
  }

  // Wakes `w` (which must be parked here): unlinks, disarms, schedules.
  void wake(Waiter& w) noexcept {
    unlink(w);
    if (w.ctx_ != nullptr) w.ctx_->disarm(&w);
    w.schedule();
  }
  // Wakes the oldest waiter; returns it, or nullptr if none.
  Waiter* wake_front() noexcept {
    Waiter* w = head_;
    if (w != nullptr) wake(*w);
    return w;
  }
  void wake_all() noexcept {
    while (head_ != nullptr) wake(*head_);
  }

 private:
  friend class Waiter;
  void link_back(Waiter& w) noexcept {
    w.list_ = this;
    w.prev_ = tail_;
    w.next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
    ++size_;
  }
  void unlink(Waiter& w) noexcept {
    if (w.prev_ != nullptr) {
      w.prev_->next_ = w.next_;
    } else {
      head_ = w.next_;
    }
    if (w.next_ != nullptr) {
      w.next_->prev_ = w.prev_;
    } else {
      tail_ = w.prev_;
    }
    w.prev_ = w.next_ = nullptr;
    w.list_ = nullptr;
    --size_;
  }

  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  std::size_t size_ = 0;
  const char* what_;
};

// ---- inline definitions ----

inline Waiter::~Waiter() {
  if (list_ != nullptr) {
    list_->unlink(*this);
    if (ctx_ != nullptr) ctx_->disarm(this);
  }
}

inline void Waiter::cancelled_cb(CancelSlot* s) noexcept {
  auto* w = static_cast<Waiter*>(s);
  if (w->list_ != nullptr) w->list_->unlink(*w);
  w->cancelled_ = true;
  w->schedule();
}

}  // namespace coring
