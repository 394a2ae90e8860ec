// TaskGroup: structured concurrency -- tasks that cannot outlive the scope that
// started them (Python 3.11's asyncio.TaskGroup, Trio's nursery, tokio's JoinSet).
//
//   co_await task_group([&](TaskGroup& g) -> Task<void> {
//     for (auto& url : urls) g.spawn(fetch(url, results));
//     co_return;
//   });   // here every child has ended; the first failure is rethrown
//
// `task_group(body)` runs `body(g)` and then waits for every task spawned into
// `g` (by the body or by the children themselves) before it returns -- also when
// the body throws or is cancelled. So a child may use by reference anything that
// lives in the enclosing task's frame.
// - The first failure (an exception escaping a child, or the body) cancels the
//   other children and the body, and is rethrown by task_group once they all
//   stopped. Later failures are counted (failures()) and dropped.
// - Cancelling the enclosing task cancels the body and every child; the task
//   is unwound once they all stopped (never earlier: nothing a child uses is
//   freed under it).
// - `g.cancel()` cancels the children and the body, as a failure would but
//   without an error: task_group then returns normally (a body of type T that
//   was cut short gives TaskCancelled).
// - Gives the body's value.
// State: the live children (an intrusive list through links in their frames,
// no allocation besides each child's frame), the first error, the failure count.
// A child is a root task on the enclosing task's scheduler, in a small wrapper
// frame that reports its end; its value is dropped (collect values through
// what it captures, or use when_all). A child spawned into a group that is
// already cancelling starts cancelled (it never runs). TaskGroup is not
// movable; a TaskGroup& must not be kept past its body's scope. One thread.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <string_view>
#include <type_traits>
#include <utility>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

class TaskGroup;

namespace detail {

// A child's entry in its group. A by-value parameter of the child's wrapper
// coroutine: it lives in the wrapper's frame from the moment the frame is made
// (before it ever runs) until the frame is destroyed -- the task ended, was
// unwound, or was cancelled before it started -- and then reports the end.
class GroupLink {
 public:
  explicit GroupLink(TaskGroup* g) noexcept : group_(g) {}
  inline GroupLink(GroupLink&& o) noexcept;  // the frame's copy: links itself
  GroupLink& operator=(GroupLink&&) = delete;
  inline ~GroupLink();

  [[nodiscard]] TaskGroup* group() const noexcept { return group_; }

 private:
  friend class coring::TaskGroup;
  TaskGroup* group_;  // null once unlinked, or for the moved-from argument
  GroupLink* prev_ = nullptr;
  GroupLink* next_ = nullptr;
  PromiseBase* task_ = nullptr;  // the wrapper's promise, to cancel it
};

template <class T>
Task<void> group_child(GroupLink link, Task<T> task);

class GroupWaitOp;
struct GroupAccess;

// The enclosing task's context, without suspending.
struct ThisContext {
  TaskContext* ctx = nullptr;
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    ctx = context_of(h);
    return false;
  }
  TaskContext* await_resume() const noexcept { return ctx; }
};

}  // namespace detail

class TaskGroup {
 public:
  TaskGroup() = default;
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup() {
    // Only at a loop's shutdown can children outlive the group (their frames
    // are freed in any order): they then report to nobody.
    for (detail::GroupLink* l = head_; l != nullptr; l = l->next_) l->group_ = nullptr;
  }

  // Starts `task` as a child of the group (queued to run, like spawn()).
  template <class T>
  void spawn(Task<T> task, std::string_view name = {}) {
    auto wrapper = detail::group_child(detail::GroupLink(this), std::move(task)).release();
    detail::GroupLink* link = tail_;  // the wrapper's frame linked itself last
    link->task_ = &wrapper.promise();
    current_scheduler().spawn(Task<void>(wrapper), name).detach();
    if (cancelling_) link->task_->cancel_root();  // never runs
  }

  // Cancels every child and the body (see the header comment).
  void cancel() noexcept {
    cancelled_ = true;
    cancel_all();
  }

  // Children that have not ended yet.
  [[nodiscard]] std::size_t size() const noexcept { return live_; }
  // Failures seen (the first is the one rethrown).
  [[nodiscard]] std::size_t failures() const noexcept { return failures_; }
  [[nodiscard]] bool cancelling() const noexcept { return cancelling_; }

 private:
  friend class detail::GroupLink;
  friend class detail::GroupWaitOp;
  friend struct detail::GroupAccess;

  void link(detail::GroupLink* l) noexcept {
    l->prev_ = tail_;
    l->next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = l;
    } else {
      head_ = l;
    }
    tail_ = l;
    ++live_;
  }
  inline void unlink(detail::GroupLink* l) noexcept;

  // The first failure cancels everything else.
  void fail(std::exception_ptr e) noexcept {
    ++failures_;
    if (error_ == nullptr) {
      error_ = std::move(e);
      cancel_all();
    }
  }
  void cancel_all() noexcept {
    cancelling_ = true;
    for (detail::GroupLink* l = head_; l != nullptr; l = l->next_) {
      if (l->task_ != nullptr) l->task_->cancel_root();
    }
    if (body_ctx_ != nullptr) body_ctx_->request_cancel();
  }

  detail::GroupLink* head_ = nullptr;
  detail::GroupLink* tail_ = nullptr;
  std::size_t live_ = 0;
  std::size_t failures_ = 0;
  std::exception_ptr error_;
  TaskContext* body_ctx_ = nullptr;  // while the body runs
  detail::GroupWaitOp* waiter_ = nullptr;
  bool cancelling_ = false;
  bool cancelled_ = false;  // by cancel()
};

namespace detail {

inline GroupLink::GroupLink(GroupLink&& o) noexcept : group_(std::exchange(o.group_, nullptr)) {
  if (group_ != nullptr) group_->link(this);
}
inline GroupLink::~GroupLink() {
  if (group_ != nullptr) group_->unlink(this);
}

// What the wrappers and task_group() use of a group.
struct GroupAccess {
  static void fail(TaskGroup& g, std::exception_ptr e) noexcept { g.fail(std::move(e)); }
  static void cancel_all(TaskGroup& g) noexcept { g.cancel_all(); }
  static const std::exception_ptr& error(const TaskGroup& g) noexcept { return g.error_; }
  static bool cancelling(const TaskGroup& g) noexcept { return g.cancelling_; }
  static void set_body(TaskGroup& g, TaskContext* ctx) noexcept { g.body_ctx_ = ctx; }
};

template <class T>
Task<void> group_child(GroupLink link, Task<T> task) {
  try {
    co_await std::move(task);
  } catch (...) {
    if (TaskGroup* g = link.group()) GroupAccess::fail(*g, std::current_exception());
  }
}

// The enclosing task waiting for the children. Cancelling it cancels them and
// waits on: it reports (and the task unwinds) once they all ended.
class GroupWaitOp : public Operation {
 public:
  explicit GroupWaitOp(TaskGroup& g) noexcept : group_(g) {}
  ~GroupWaitOp() {
    if (group_.waiter_ == this) group_.waiter_ = nullptr;
  }
  bool await_ready() const noexcept { return group_.live_ == 0; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!prepare<&GroupWaitOp::interrupt>(h, WaitKind::join, &group_)) return suspend_cancelled();
    group_.waiter_ = this;
    return true;
  }
  void await_resume() const noexcept {}

 private:
  friend class coring::TaskGroup;
  void all_ended() noexcept {
    group_.waiter_ = nullptr;
    complete(interrupting());
  }
  static bool interrupt(Operation* op) noexcept {
    static_cast<GroupWaitOp*>(op)->group_.cancel_all();
    return false;  // reports once the children have stopped
  }
  TaskGroup& group_;
};

}  // namespace detail

inline void TaskGroup::unlink(detail::GroupLink* l) noexcept {
  if (l->prev_ != nullptr) {
    l->prev_->next_ = l->next_;
  } else {
    head_ = l->next_;
  }
  if (l->next_ != nullptr) {
    l->next_->prev_ = l->prev_;
  } else {
    tail_ = l->prev_;
  }
  l->group_ = nullptr;
  if (--live_ == 0 && waiter_ != nullptr) waiter_->all_ended();
}

namespace detail {

// The body, in a scope of its own whose context the group can cancel.
template <class T>
class [[nodiscard]] GroupBodyScope : public ScopeAwaiter<T> {
 public:
  GroupBodyScope(Task<T>&& body, TaskGroup& g) noexcept
      : ScopeAwaiter<T>(std::move(body), ScopeMode::capture), group_(g) {}
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) {
    GroupAccess::set_body(group_, &this->inner_context());
    return ScopeAwaiter<T>::await_suspend(parent);
  }
  Outcome<T> await_resume() noexcept {
    this->finish();
    GroupAccess::set_body(group_, nullptr);
    return this->take_outcome();
  }

 private:
  TaskGroup& group_;
};

}  // namespace detail

// See the header comment. `body` is called as body(g) and must return a Task.
template <class F>
auto task_group(F body) -> Task<detail::await_result_t<std::invoke_result_t<F&, TaskGroup&>>> {
  using T = detail::await_result_t<std::invoke_result_t<F&, TaskGroup&>>;
  using Access = detail::GroupAccess;
  TaskGroup g;
  Outcome<T> out = co_await detail::GroupBodyScope<T>(body(g), g);
  if (out.failed()) Access::fail(g, out.error());
  TaskContext* self = co_await detail::ThisContext{};
  const bool owner_cancelled = self != nullptr && self->cancel_requested();
  if (owner_cancelled) Access::cancel_all(g);
  {
    detail::GroupWaitOp wait(g);
    if (owner_cancelled) wait.shield();  // wait for the children before unwinding
    co_await wait;
  }
  if (owner_cancelled) co_await cancellation_point();  // unwinds here
  if (Access::error(g) != nullptr) std::rethrow_exception(Access::error(g));
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    co_return std::move(out).value();  // TaskCancelled if g.cancel() cut the body short
  }
}

}  // namespace coring
