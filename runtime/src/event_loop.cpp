#include "coring/runtime/event_loop.hpp"

#include <fmt/core.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "coring/runtime/forwarding_backend.hpp"

namespace coring {
namespace {
thread_local EventLoop* tls_loop = nullptr;
// The loop's own wake-up read is always in flight; it is not "work".
constexpr std::size_t kInternalOps = 1;
}  // namespace

const char* to_string(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::automatic:
      return "automatic";
    case BackendKind::io_uring:
      return "io_uring";
    case BackendKind::epoll:
      return "epoll";
  }
  return "?";
}

BackendKind backend_from_environment() {
  const char* v = std::getenv("CORING_BACKEND");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "automatic") == 0) {
    return BackendKind::automatic;
  }
  if (std::strcmp(v, "io_uring") == 0) return BackendKind::io_uring;
  if (std::strcmp(v, "epoll") == 0) return BackendKind::epoll;
  throw std::invalid_argument(fmt::format(
      "coring: CORING_BACKEND={} is not a backend; use io_uring, epoll or automatic", v));
}

namespace {
// The epoll backend, saying why it stands in for io_uring (in describe()).
class FallbackBackend final : public ForwardingBackend {
 public:
  FallbackBackend(std::unique_ptr<Backend> inner, std::string why)
      : ForwardingBackend(std::move(inner)), why_(std::move(why)) {}
  std::string describe() const override {
    return fmt::format("{} (automatic: {})", inner().describe(), why_);
  }

 private:
  std::string why_;
};

std::atomic<bool> fallback_reported{false};
}  // namespace

std::unique_ptr<Backend> make_backend(const LoopOptions& options) {
  BackendKind kind = options.backend;
  if (kind == BackendKind::automatic) kind = backend_from_environment();
  if (kind == BackendKind::epoll) return make_epoll_backend(options.epoll);
  if (kind == BackendKind::io_uring) return make_uring_backend(options.uring);
  try {
    return make_uring_backend(options.uring);
  } catch (const std::system_error& e) {
    if (e.code().category() != std::system_category() || !uring_unavailable(e.code().value())) {
      throw;
    }
    std::string why = fmt::format("io_uring is unavailable: {}", e.what());
    auto backend = std::make_unique<FallbackBackend>(make_epoll_backend(options.epoll), why);
    if (!fallback_reported.exchange(true)) {
      fmt::print(stderr, "coring: using the epoll backend; {}\n", why);
    }
    return backend;
  }
}

EventLoop::EventLoop(LoopOptions options) : options_(std::move(options)) {
  if (options_.run_budget == 0) options_.run_budget = 1;
  scheduler_.timers_ = &timers_;
  timers_.set_clock(options_.clock.get());
  backend_ = options_.backend_factory ? options_.backend_factory(options_) : make_backend(options_);
  wakeup_op_.loop = this;
  wakeup_op_.on_complete = &EventLoop::on_wakeup;
}

EventLoop::~EventLoop() {
  {
    std::lock_guard lock(post_mutex_);
    closed_ = true;  // from here on post() and stop() leave the loop alone
  }
  if (entered_) {
    RunGuard guard(*this);
    try {
      drain_for_shutdown();
    } catch (const std::exception& e) {
      fmt::print(stderr, "coring: loop shutdown could not drain the ring ({}); freeing tasks\n",
                 e.what());
    }
    shutting_down_ = true;  // frames freed from here on can no longer use the ring
    scheduler_.shutdown();
  } else {
    // Never run: nothing of ours is in the kernel, and spawned tasks never started.
    TaskScheduler::CurrentGuard sched_guard(&scheduler_);
    shutting_down_ = true;
    scheduler_.shutdown();
  }
  backend_->forget_fd(notifier_.fd());
  // The ring goes first (nothing of ours is in the kernel after this), then the
  // services, most recently created first; the notifier's eventfd is closed last.
  backend_.reset();
  while (!services_.empty()) services_.pop_back();
}

void EventLoop::drain_for_shutdown() {
  // A SINGLE_ISSUER ring refuses io_uring_enter from any other thread. With no
  // task left, only our own eventfd read is in the kernel, and closing the ring
  // cancels it; so a loop run on a worker thread may be destroyed elsewhere.
  if (std::this_thread::get_id() != owner_ && scheduler_.live_tasks() == 0 &&
      backend_->in_flight() <= kInternalOps) {
    return;
  }
  // Let every task unwind, giving cancelled I/O time to come back.
  scheduler_.cancel_all();
  // Real time: a virtual clock does not move while the loop drains.
  const TimePoint deadline = Clock::now() + std::chrono::seconds(2);
  while (
      scheduler_.live_tasks() > 0 && Clock::now() < deadline &&
      (scheduler_.has_ready() || backend_->in_flight() > (wakeup_op_.armed ? kInternalOps : 0))) {
    const Duration step = std::chrono::milliseconds(10);
    timers_.expire(timers_.now());
    scheduler_.cancel_all(options_.run_budget);
    backend_->poll(&step);
  }
  // Nothing of ours may stay in the kernel when frames are freed.
  if (backend_->in_flight() > 0) {
    backend_->cancel_all();
    while (backend_->in_flight() > 0 && Clock::now() < deadline) {
      const Duration step = std::chrono::milliseconds(10);
      backend_->poll(&step);
    }
    if (backend_->in_flight() > 0) {
      fmt::print(stderr, "coring: {} I/O operations still in flight at loop shutdown\n",
                 backend_->in_flight());
    }
  }
}

EventLoop* EventLoop::current() noexcept {
  return tls_loop;
}

EventLoop& EventLoop::current_or_throw() {
  if (tls_loop == nullptr) detail::throw_no_event_loop();
  return *tls_loop;
}

EventLoop::RunGuard::RunGuard(EventLoop& loop)
    : prev_loop_(tls_loop),
      prev_timers_(detail::tls_current_timers),
      sched_guard_(&loop.scheduler_) {
  tls_loop = &loop;
  detail::tls_current_timers = &loop.timers_;
  loop.enter();
}
EventLoop::RunGuard::~RunGuard() {
  tls_loop = prev_loop_;
  detail::tls_current_timers = prev_timers_;
}

void EventLoop::enter() {
  if (entered_) return;
  backend_->bind_to_current_thread();
  owner_ = std::this_thread::get_id();
  entered_ = true;
  arm_wakeup();
}

void EventLoop::arm_wakeup() {
  IoRequest req;
  req.opcode = IoOpcode::read;
  req.fd = notifier_.fd();
  req.addr = &wakeup_op_.value;
  req.len = sizeof(wakeup_op_.value);
  req.offset = 0;
  req.fd_managed = true;  // forgotten before it is closed (~EventLoop)
  backend_->start(req, &wakeup_op_);
  wakeup_op_.armed = true;
}

void EventLoop::on_wakeup(Completion* c, int, std::uint32_t) noexcept {
  auto* op = static_cast<WakeupOp*>(c);
  op->armed = false;
  EventLoop& loop = *op->loop;
  // Only a closing loop stops reading: an ECANCELED it did not ask for (a
  // fault injected, a cancel_all by hand) must not leave it deaf to post().
  loop.notifier_.consumed();  // the eventfd was read: a later notify() writes again
  if (loop.closed_) return;
  loop.arm_wakeup();
}

void EventLoop::post(std::function<void()> fn) {
  // Everything happens under the mutex: once post() unlocks, the loop thread may
  // run `fn`, return from run() and destroy the loop, so nothing may touch the
  // loop after that. The notifier writes the eventfd only when the loop may be
  // asleep and no write is on its way, so holding the lock across it is rare.
  std::lock_guard lock(post_mutex_);
  if (closed_) throw std::logic_error("coring: EventLoop::post after the loop began shutting down");
  posted_.push_back(std::move(fn));
  posted_count_.fetch_add(1, std::memory_order_relaxed);
  // The flag is cleared under this mutex when the loop takes the list: if it is
  // still set, the loop has yet to take it (ours included) and was notified by
  // the post that set it, so a burst pays the flag and the notifier once.
  if (!has_posts_.load(std::memory_order_relaxed)) {
    has_posts_.store(true, std::memory_order_seq_cst);  // see Notifier: then notify() looks
    notifier_.notify();
  }
}

void EventLoop::stop() {
  std::lock_guard lock(post_mutex_);
  if (closed_) return;
  stop_requested_.store(true, std::memory_order_seq_cst);
  notifier_.notify();
}

void EventLoop::drain_posted() {
  {
    std::lock_guard lock(post_mutex_);
    running_posts_.swap(posted_);
    has_posts_.store(false, std::memory_order_relaxed);  // a later post sets it again
  }
  ++post_drains_;
  for (auto& fn : running_posts_) {
    try {
      fn();
    } catch (const std::exception& e) {
      // Like a detached task: report it and keep serving everyone else.
      fmt::print(stderr, "coring: a function posted to the loop threw: {}\n", e.what());
    } catch (...) {
      fmt::print(stderr, "coring: a function posted to the loop threw a non-std exception\n");
    }
  }
  running_posts_.clear();
}

void EventLoop::run() {
  RunGuard guard(*this);
  while (!stop_requested_.load(std::memory_order_acquire)) run_once(true);
  stop_requested_.store(false, std::memory_order_relaxed);
}

void EventLoop::run_once(bool may_block) {
  RunGuard guard(*this);
  ++turns_;
  scheduler_.run_ready(options_.run_budget);
  if (!timers_.empty()) timers_.expire(timers_.now());
  if (has_posts_.load(std::memory_order_acquire)) drain_posted();

  const bool busy = scheduler_.has_ready() || stop_requested_.load(std::memory_order_relaxed) ||
                    (run_target_ != nullptr && run_target_->done());
  if (busy || !may_block) {
    // Poll without blocking, and skip the system call when nothing can be there.
    if (backend_->pending_submissions() > 0 || backend_->in_flight() > kInternalOps ||
        !wakeup_op_.armed) {
      const Duration zero{0};
      backend_->poll(&zero);
    }
  } else {
    const TimePoint real_now = Clock::now();
    if (real_now - last_frame_trim_ >= std::chrono::seconds(1)) {
      // Idle: give back frames a burst left cached beyond the steady-state limit.
      FrameAllocator::trim_to_limit();
      last_frame_trim_ = real_now;
    }
    // From here the loop may sleep in the kernel: the notifier must know, so
    // that a post() from another thread writes the eventfd (see Notifier).
    const auto has_work = [this] {
      return has_posts_.load(std::memory_order_seq_cst) ||
             stop_requested_.load(std::memory_order_seq_cst);
    };
    if (!notifier_.prepare_sleep(has_work)) {
      const Duration zero{0};
      backend_->poll(&zero);
    } else if (auto next = timers_.next_deadline()) {
      ClockSource* clock = timers_.clock();
      if (clock == nullptr) {
        const Duration wait = std::max(Duration{0}, *next - real_now);
        backend_->poll(&wait);
      } else {
        // Another clock (a virtual one) may jump to the deadline, but only when
        // nothing else can happen first: no completion waiting, nothing ready.
        const Duration zero{0};
        if (backend_->poll(&zero) == 0 && !scheduler_.has_ready() && !clock->idle_until(*next)) {
          const Duration wait = std::max(Duration{0}, *next - clock->now());
          backend_->poll(&wait);
        }
      }
      notifier_.end_sleep();
    } else {
      backend_->poll(nullptr);
      notifier_.end_sleep();
    }
  }
  if (!timers_.empty()) timers_.expire(timers_.now());
}

std::string EventLoop::describe() const {
  return backend_->describe();
}

LoopStats EventLoop::stats() const noexcept {
  LoopStats s;
  s.turns = turns_;
  s.posted = posted_count_.load(std::memory_order_relaxed);
  s.wakeups_sent = notifier_.writes();
  s.post_drains = post_drains_;
  return s;
}

}  // namespace coring
