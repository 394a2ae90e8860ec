// Event: the seed's threading.Event as a loop-local awaitable.
//
// - set(): the flag becomes true and every waiting task is woken (FIFO).
// - clear(): the flag becomes false; later waits suspend again.
// - co_await wait(): returns at once if set; otherwise suspends until set().
//   Cancel-safe: a cancelled waiter unlinks itself and the task is unwound.
//   Waking is by scheduling, never inline: set() returns before any waiter runs.
// - with_timeout(d, e.wait()): false when `d` passed first.
// Destroying an Event that tasks still wait on is reported (see WaitList).
#pragma once

#include "coring/sync/wait_list.hpp"

namespace coring {

class Event {
 public:
  explicit Event(bool initially_set = false) noexcept : set_(initially_set) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set() noexcept {
    set_ = true;
    waiters_.wake_all();
  }
  void clear() noexcept { set_ = false; }
  [[nodiscard]] bool is_set() const noexcept { return set_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  class [[nodiscard]] WaitAwaiter : public WaitOp {
   public:
    explicit WaitAwaiter(Event& e) noexcept : event_(e) {}
    WaitAwaiter(WaitAwaiter&& o) noexcept : WaitOp(std::move(o)), event_(o.event_) {}
    bool await_ready() const noexcept { return event_.set_; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park(event_.waiters_, h, WaitKind::event, &event_);
    }
    void await_resume() const { check(); }

   private:
    Event& event_;
  };

  WaitAwaiter wait() noexcept { return WaitAwaiter{*this}; }

 private:
  WaitList waiters_{"Event"};
  bool set_;
};

}  // namespace coring
