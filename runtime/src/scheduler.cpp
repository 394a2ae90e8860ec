#include "coring/runtime/join_handle.hpp"

#include <fmt/core.h>
#include <malloc.h>

#include <cassert>
#include <cstdint>
#include <cstdio>
#include <new>
#include <stdexcept>

namespace coring {
namespace {

std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

void report_failure(std::string_view name, const char* how, const std::exception_ptr& e) {
  fmt::print(stderr, "coring: {} task '{}' failed: {}\n", how,
             name.empty() ? std::string_view("<unnamed>") : name, describe_exception(e));
  std::fflush(stderr);
}

void report_unobserved(const detail::PromiseBase& p, const char* how) {
  report_failure(p.name(), how, p.exception());
}

}  // namespace

namespace detail {

void ReadyQueue::grow() {
  // Entries keep their sequence numbers: each goes to seq & (new mask).
  const std::size_t bigger_mask = (mask_ + 1) * 2 - 1;
  std::unique_ptr<void*[]> bigger(new void*[bigger_mask + 1]);
  for (std::size_t seq = head_; seq != tail_; ++seq) bigger[seq & bigger_mask] = buf_[seq & mask_];
  buf_ = std::move(bigger);
  mask_ = bigger_mask;
}

// Returns the coroutine to transfer to, or a null handle for none.
std::coroutine_handle<> PromiseBase::on_final(std::coroutine_handle<> self) noexcept {
  TaskScheduler* const sched = root_ctx_.scheduler();
  if (sched == nullptr) {
    // An awaited child: transfer straight back to the awaiter.
    return continuation_;
  }
  done_ = true;
  root_ctx_.destroy_extension();  // a task's TaskLocal values die when it ends
  sched->forget(*this);
  JoinOp* const joiner = joiner_;
  if (JoinHandleBase* h = handle_) {
    // The result moves into the handle (a value already did, in TaskPromise<T>).
    TaskEndRecord* r = std::exchange(record_, nullptr);
    if (!exception_) [[likely]] {
      h->settle(JoinHandleBase::State::returned, r);
    } else {
      if (r == nullptr) r = new (std::nothrow) TaskEndRecord;
      if (r != nullptr) {
        r->error = std::move(exception_);
      } else {
        report_unobserved(*this, "joined (no memory to keep its exception)");
      }
      h->settle(JoinHandleBase::State::failed, r);
    }
  } else if (exception_) {
    report_unobserved(*this, "detached");  // detached: nobody will read the result
  }
  self.destroy();  // by-value parameters and everything else the frame held go now
  return joiner != nullptr ? joiner->resume_joiner() : std::coroutine_handle<>();
}

void PromiseBase::unwind_root(void* promise) noexcept {
  static_cast<PromiseBase*>(promise)->end_cancelled();
}

void PromiseBase::end_cancelled() noexcept {
  done_ = true;
  root_ctx_.scheduler()->forget(*this);
  JoinOp* joiner = std::exchange(joiner_, nullptr);
  TaskEndRecord* r = std::exchange(record_, nullptr);
  if (handle_ != nullptr) {
    handle_->settle(JoinHandleBase::State::cancelled, r);
  } else {
    delete r;
  }
  // The frames' destructors run (locals first, then this promise, with the
  // task's context and extension); no code after the suspension point does.
  frame().destroy();
  if (joiner != nullptr) joiner->wake();
}

void JoinHandleBase::release_slow() noexcept {
  if (state() == State::running) {
    task()->handle_ = nullptr;  // detach: the task frees itself when it ends
  } else if (TaskEndRecord* r = record()) {
    if (state() == State::failed && (word_ & kObserved) == 0) {
      report_failure(r->name, "unjoined", r->error);
    }
    delete r;
  }
  word_ = 0;
}

void JoinHandleBase::cancel() noexcept {
  if (state() == State::running) task()->cancel_root();
}

std::string_view JoinHandleBase::name() const noexcept {
  if (state() == State::running) return task()->name();
  if (TaskEndRecord* r = record(); r != nullptr && state() != State::empty) return r->name;
  return {};
}

const std::exception_ptr& JoinHandleBase::error() const noexcept {
  static const std::exception_ptr kNone;
  TaskEndRecord* r = state() == State::failed ? record() : nullptr;
  return r != nullptr ? r->error : kNone;
}

void JoinHandleBase::throw_not_ended() const {
  if (state() == State::taken) {
    throw std::logic_error("coring: the result of this JoinHandle was already taken");
  }
  throw std::logic_error(state() == State::running
                             ? "coring: the result of a task that has not ended"
                             : "coring: the result of an empty JoinHandle");
}

void JoinHandleBase::throw_result() {
  check_ended();
  if (state() == State::failed) {
    if (const std::exception_ptr& e = error()) std::rethrow_exception(e);
    throw std::bad_alloc();  // the exception was lost: no memory to keep it
  }
  throw TaskCancelled(name());
}

}  // namespace detail

bool detail::in_await_chain(const void* leaf_frame, const PromiseBase& leaf,
                            const void* address) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  const void* frame = leaf_frame;
  const PromiseBase* p = &leaf;
  for (;;) {
    // A frame is one malloc block (FrameAllocator), so its extent is known.
    const auto f = reinterpret_cast<std::uintptr_t>(frame);
    if (a >= f && a < f + ::malloc_usable_size(const_cast<void*>(frame))) return true;
    if (p->is_root() || !p->parent_is_task_ || !p->continuation_) return false;
    frame = p->continuation_.address();
    // A task frame's promise is at the same place whatever its value type.
    p = &std::coroutine_handle<PromiseBase>::from_address(const_cast<void*>(frame)).promise();
  }
}

void TaskContext::unqueue() noexcept {
  scheduler_->replace_scheduled(queued_seq_, unwinder());
}

void detail::throw_no_scheduler() {
  throw std::logic_error(
      "coring: no scheduler is running on this thread (call spawn/yield_now from a task "
      "run by TaskScheduler::run or EventLoop::run)");
}

void TaskScheduler::adopt(detail::PromiseBase& p, void* frame, std::string_view name) {
  assert(frame == p.frame().address());
  (void)frame;
  if (!name.empty()) p.record_ = new detail::TaskEndRecord{std::string(name), {}};
  p.ctx_ = &p.root_ctx_;
  p.root_ctx_.bind(this);
  p.next_ = roots_;
  if (roots_ != nullptr) roots_->prev_ = &p;
  roots_ = &p;
  ++live_;
}

void TaskScheduler::forget(detail::PromiseBase& p) noexcept {
  if (p.prev_ != nullptr) {
    p.prev_->next_ = p.next_;
  } else {
    roots_ = p.next_;
  }
  if (p.next_ != nullptr) p.next_->prev_ = p.prev_;
  p.prev_ = p.next_ = nullptr;
  --live_;
}

void TaskScheduler::run() {
  CurrentGuard guard(this);
  while (!ready_.empty()) detail::resume_chain(ready_.pop());
}

std::size_t TaskScheduler::run_ready(std::size_t budget) {
  CurrentGuard guard(this);
  std::size_t n = 0;
  while (n < budget && !ready_.empty()) {
    detail::resume_chain(ready_.pop());
    ++n;
  }
  return n;
}

std::size_t TaskScheduler::cancel_all(std::size_t max_resumes) {
  for (detail::PromiseBase* p = roots_; p != nullptr; p = p->next_) p->cancel_root();
  if (max_resumes == 0) max_resumes = live_ * 16 + 1024;
  CurrentGuard guard(this);
  for (std::size_t n = 0; n < max_resumes && !ready_.empty(); ++n)
    detail::resume_chain(ready_.pop());
  return live_;
}

void TaskScheduler::shutdown() {
  cancel_all();
  // Whatever is left is suspended on something that cannot be interrupted, or
  // ignores cancellation. Free it without resuming; destructors of the
  // awaitables in its frames unlink them from whatever they wait on.
  while (roots_ != nullptr) {
    detail::PromiseBase* p = roots_;
    forget(*p);
    if (p->joiner_ != nullptr) std::exchange(p->joiner_, nullptr)->task_ = nullptr;
    if (p->handle_ != nullptr) {
      p->handle_->settle(detail::JoinHandleBase::State::cancelled,
                         std::exchange(p->record_, nullptr));
    }
    p->frame().destroy();
  }
  ready_.clear();
}

TaskScheduler::~TaskScheduler() {
  shutdown();
}

}  // namespace coring
