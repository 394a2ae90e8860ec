// Cancellation: the context a task runs in, and the slot a suspended operation
// registers so that cancelling the task can interrupt it.
//
// Implementation notes. Every spawned task owns one TaskContext; the tasks it
// awaits run in the same context (a chain of awaits suspends at exactly one leaf
// at a time). A leaf awaitable that supports cancellation registers a CancelSlot
// in the context before it suspends (`arm`) and removes it when it resumes
// (`disarm`). `request_cancel()` sets the flag and calls the armed slot, which
// makes the operation finish early: a timer is removed and its task scheduled, an
// io_uring operation gets an IORING_OP_ASYNC_CANCEL and resumes when its CQE comes
// back. A cancelled suspension point throws `Cancelled` from `await_resume`.
// `with_timeout` nests a context: the outer context's slot forwards to the inner one.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <type_traits>

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

namespace detail {
// One TaskLocal value of one task (see sync/task_local.hpp): a node of the
// context's intrusive list, type-erased; `destroy` deletes the whole node.
struct TaskLocalSlot {
  TaskLocalSlot* next = nullptr;
  std::uint64_t key = 0;
  void (*destroy)(TaskLocalSlot* self) noexcept = nullptr;
};
}  // namespace detail

class TaskContext {
 public:
  TaskContext() noexcept = default;
  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;
  ~TaskContext() { destroy_locals(); }

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

  // ---- TaskLocal storage (used by sync/task_local.hpp) ----
  // A root task's context owns the TaskLocal values of that task. A nested
  // context (with_timeout's) shares the storage of the context it runs in, so
  // code inside a with_timeout sees the same values as the code around it.
  void share_locals_of(TaskContext* outer) noexcept { locals_outer_ = outer; }
  [[nodiscard]] detail::TaskLocalSlot*& local_slots() noexcept {
    TaskContext* c = this;
    while (c->locals_outer_ != nullptr) c = c->locals_outer_;
    return c->locals_;
  }
  // Destroys this context's values (most recent first). Called when a root task
  // ends and by the destructor; costs one null check for a task without any.
  void destroy_locals() noexcept {
    while (detail::TaskLocalSlot* s = locals_) {
      locals_ = s->next;
      s->destroy(s);
    }
  }

 private:
  CancelSlot* slot_ = nullptr;
  detail::TaskLocalSlot* locals_ = nullptr;  // this context's TaskLocal values
  TaskContext* locals_outer_ = nullptr;      // nested contexts: whose values they use
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
