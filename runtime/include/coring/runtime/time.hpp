// Timers on the current EventLoop: sleep_for, sleep_until, PeriodicTimer.
//
// Each awaitable embeds its TimerNode, so a pending sleep allocates nothing and
// costs no SQE: the loop waits on the nearest deadline. A sleep always suspends
// (a past deadline resumes on the next turn). Cancelling the task removes the
// timer and throws Cancelled from the co_await.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "coring/runtime/event_loop.hpp"

namespace coring {

class [[nodiscard]] SleepAwaiter : private TimerNode, private CancelSlot {
 public:
  explicit SleepAwaiter(TimePoint at) noexcept {
    deadline = at;
    on_fire = &SleepAwaiter::fired;
    on_cancel = &SleepAwaiter::cancelled;
  }
  // Movable only before it is awaited (as when passed to with_timeout).
  SleepAwaiter(SleepAwaiter&& o) noexcept : SleepAwaiter(o.deadline) {}
  SleepAwaiter& operator=(SleepAwaiter&&) = delete;
  ~SleepAwaiter() {
    if (armed()) loop_->timers().remove(this);
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    loop_ = &EventLoop::current_or_throw();
    ctx_ = context_of(h);
    if (ctx_ != nullptr && !ctx_->arm(this)) {
      cancelled_ = true;
      return false;
    }
    handle_ = h;
    loop_->timers().add(this);
    return true;
  }
  void await_resume() const {
    if (cancelled_) throw Cancelled{};
  }

 private:
  static void fired(TimerNode* n) noexcept {
    auto* self = static_cast<SleepAwaiter*>(n);
    if (self->ctx_ != nullptr) self->ctx_->disarm(self);
    self->loop_->scheduler().schedule(self->handle_);
  }
  static void cancelled(CancelSlot* s) noexcept {
    auto* self = static_cast<SleepAwaiter*>(s);
    self->loop_->timers().remove(self);
    self->cancelled_ = true;
    self->loop_->scheduler().schedule(self->handle_);
  }

  EventLoop* loop_ = nullptr;
  TaskContext* ctx_ = nullptr;
  std::coroutine_handle<> handle_;
  bool cancelled_ = false;
};

inline SleepAwaiter sleep_until(TimePoint deadline) noexcept {
  return SleepAwaiter{deadline};
}
inline SleepAwaiter sleep_for(Duration d) noexcept {
  return SleepAwaiter{Clock::now() + d};
}

// The seed's PeriodicTimer: `co_await timer.tick()` resumes at start + k * interval.
// Ticks are kept on the grid, so there is no drift; a task that falls behind
// skips the ticks it missed instead of running them in a burst, and tick()
// returns how many intervals passed since the previous tick (1 when on time).
class PeriodicTimer {
 public:
  explicit PeriodicTimer(Duration interval) : PeriodicTimer(interval, Clock::now() + interval) {}
  PeriodicTimer(Duration interval, TimePoint first_tick) : interval_(interval), next_(first_tick) {
    if (interval_ <= Duration::zero())
      throw std::invalid_argument("coring: PeriodicTimer interval must be > 0");
  }

  class [[nodiscard]] TickAwaiter {
   public:
    explicit TickAwaiter(PeriodicTimer& t) noexcept : timer_(t), sleep_(t.next_) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return sleep_.await_suspend(h);
    }
    std::uint64_t await_resume() { return timer_.advance(sleep_); }

   private:
    PeriodicTimer& timer_;
    SleepAwaiter sleep_;
  };

  TickAwaiter tick() noexcept { return TickAwaiter{*this}; }
  [[nodiscard]] Duration interval() const noexcept { return interval_; }
  [[nodiscard]] TimePoint next_deadline() const noexcept { return next_; }

 private:
  std::uint64_t advance(SleepAwaiter& s) {
    s.await_resume();  // throws Cancelled
    const TimePoint now = Clock::now();
    const auto passed = static_cast<std::uint64_t>((now - next_) / interval_) + 1;
    next_ += interval_ * static_cast<Duration::rep>(passed);
    return passed;
  }

  Duration interval_;
  TimePoint next_;
};

}  // namespace coring
