// TaskContext: the cancellation state of a running task, and the slot through
// which cancelling the task interrupts what it is suspended on.
//
// State. Every spawned task owns one TaskContext (in its promise); the tasks it
// awaits run in the same context, so a chain of awaits suspends at exactly one
// leaf at a time. with_timeout nests a context of its own inside the task's.
// - `cancel_requested()`: a cancellation was asked for (idempotent, never reset).
// - the armed slot: the CancelSlot of the operation the task is suspended on, or
//   none. A leaf awaitable registers it before suspending (`arm`) and removes it
//   when it resumes (`disarm`).
// Invariant: at most one slot is armed, and only while its operation is suspended.
// `request_cancel()` sets the flag and calls the armed slot, which makes the
// operation finish early (a timer is removed and its task scheduled; an io_uring
// operation gets IORING_OP_ASYNC_CANCEL and resumes when its CQE comes back).
//
// Extension. A higher layer may keep per-task state in the context of the
// spawned task (sync keeps TaskLocal values there): a ContextExtension, owned by
// that context, destroyed when the task ends. Nested contexts share their outer
// context's extension, so code inside with_timeout sees the task's state.
#pragma once

#include <coroutine>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace coring {

// Thrown at a suspension point of a task that was cancelled. A task may catch it
// to clean up, but should let it propagate: the task then ends as cancelled.
class Cancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "coring: task cancelled"; }
};

// Embedded in an awaitable; `on_cancel` interrupts the suspended operation. It
// must not resume the coroutine inline (schedule it instead).
struct CancelSlot {
  void (*on_cancel)(CancelSlot* self) noexcept = nullptr;
};

// Per-task state of a layer above the runtime; see "Extension" above.
class ContextExtension {
 public:
  virtual ~ContextExtension() = default;
};

class TaskContext {
 public:
  TaskContext() noexcept = default;
  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;
  ~TaskContext() = default;

  [[nodiscard]] bool cancel_requested() const noexcept { return cancelled_; }

  // Idempotent. Interrupts the operation the task is suspended on, if any.
  void request_cancel() noexcept {
    if (cancelled_) return;
    cancelled_ = true;
    if (CancelSlot* s = slot_) {
      slot_ = nullptr;
      s->on_cancel(s);
    }
  }

  // Registers `s` before suspending. Returns false if the context is already
  // cancelled: the caller must then not suspend, and should throw Cancelled.
  [[nodiscard]] bool arm(CancelSlot* s) noexcept {
    if (cancelled_) return false;
    slot_ = s;
    return true;
  }
  void disarm(CancelSlot* s) noexcept {
    if (slot_ == s) slot_ = nullptr;
  }

  // ---- extension (see above) ----
  // Makes this (nested) context use the extension of `outer`'s task.
  void share_extension_of(TaskContext* outer) noexcept { outer_ = outer; }
  // The extension of the spawned task this context belongs to (null if none yet).
  [[nodiscard]] ContextExtension* extension() const noexcept { return owner().extension_.get(); }
  // Installs `e` in the spawned task's context (replacing any earlier one).
  void set_extension(std::unique_ptr<ContextExtension> e) noexcept {
    owner().extension_ = std::move(e);
  }
  // Destroys the extension now (when the task ends, before its joiner resumes).
  void destroy_extension() noexcept { extension_.reset(); }

 private:
  TaskContext& owner() noexcept {
    TaskContext* c = this;
    while (c->outer_ != nullptr) c = c->outer_;
    return *c;
  }
  const TaskContext& owner() const noexcept { return const_cast<TaskContext*>(this)->owner(); }

  CancelSlot* slot_ = nullptr;
  std::unique_ptr<ContextExtension> extension_;
  TaskContext* outer_ = nullptr;  // nested contexts: the context they run inside
  bool cancelled_ = false;
};

namespace detail {
class PromiseBase;
}  // namespace detail

// The context of the coroutine `h`, or nullptr for coroutine types that are not
// coring tasks (their awaits then simply cannot be cancelled).
template <class P>
TaskContext* context_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
    return h.promise().context();
  } else {
    (void)h;
    return nullptr;
  }
}

}  // namespace coring
