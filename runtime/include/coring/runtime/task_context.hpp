// TaskContext: the cancellation state of a running task, the slot through
// which cancelling it interrupts what it is suspended on, and the unwinder
// that stops it.
//
// State. Every spawned task owns one TaskContext (in its promise); the tasks it
// awaits run in the same context, so a chain of awaits suspends at exactly one
// leaf at a time. A scope (with_timeout of a task, shield, try_finally) runs
// its child in a context of its own, nested in the task's.
// - `cancel_requested()`: a cancellation was asked for (idempotent, never reset).
// - the armed slot: the CancelSlot of the operation the task is suspended on,
//   or none. An Operation registers it before suspending (`arm`) and removes
//   it when it ends (`disarm`).
// Invariant: at most one slot is armed, and only while its operation is pending.
//
// Cancellation is not an exception. `request_cancel()` sets the flag and
// interrupts the armed operation; once that operation has stopped (at once for
// a timer or a parked waiter, when its CQE is back for an io_uring operation),
// it schedules the context's *unwinder* instead of resuming the task. A task
// waiting in the ready line because it was spawned or yielded (not because an
// operation of its completed: a result is never dropped) has its entry in the
// line replaced by the unwinder: the context remembers where it was put
// (`note_queued`), and the entry is still there while the line has not reached
// it. A task that is running when the request comes is unwound at its next
// suspension point. The unwinder belongs to the context's owner: for a spawned
// task it destroys the task's frames (their destructors run, no code after the
// suspension point does), records the task as cancelled and wakes its joiner;
// for a scope it destroys the scope's child and resumes or unwinds the task
// around it. The unwinder is scheduled like a coroutine: a two-word proxy frame
// in the context, whose "resume" calls the owner's function (the layout of
// every coroutine frame on GCC and Clang, as std::noop_coroutine's).
//
// Extension. A higher layer may keep per-task state in the context of the
// spawned task (sync keeps TaskLocal values and held locks there): a
// ContextExtension, owned by that context, destroyed when the task ends.
// Nested contexts share their outer context's extension.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace coring {

class TaskScheduler;

// Embedded in an operation; `on_cancel` interrupts it. It must not resume or
// unwind the task inline (it schedules that).
// Its owner sets `on_cancel` before it arms the slot.
struct CancelSlot {
  void (*on_cancel)(CancelSlot* self) noexcept;
};

// Per-task state of a layer above the runtime; see "Extension" above.
class ContextExtension {
 public:
  virtual ~ContextExtension() = default;
};

class TaskContext {
 public:
  // Called (through the scheduler) when the context must unwind; `owner` is
  // what was given to the constructor.
  using UnwindFn = void (*)(void* owner) noexcept;

  TaskContext(UnwindFn on_unwind, void* owner) noexcept
      : proxy_{&TaskContext::run_unwinder, on_unwind}, owner_(owner) {}
  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;
  ~TaskContext() {
    if (!nested_) delete extension_;
  }

  [[nodiscard]] bool cancel_requested() const noexcept { return cancelled_; }

  // Idempotent. Interrupts the operation the task is suspended on, if any, or
  // unwinds it in place of its entry in the ready line (see above).
  void request_cancel() noexcept {
    if (cancelled_) return;
    cancelled_ = true;
    if (CancelSlot* s = slot_) {
      slot_ = nullptr;
      s->on_cancel(s);
    } else if (scheduler_ != nullptr) {
      unqueue();
    }
  }
  // The scheduler the context's task runs on (set when it starts), or null.
  [[nodiscard]] TaskScheduler* scheduler() const noexcept { return scheduler_; }
  void bind(TaskScheduler* s) noexcept { scheduler_ = s; }
  // The task was put in its scheduler's ready line as entry `seq` (spawned, or
  // yielded).
  void note_queued(std::size_t seq) noexcept { queued_seq_ = seq; }

  // Registers `s` before suspending. Returns false if the context is already
  // cancelled: the caller must then not start, and schedule unwinder().
  [[nodiscard]] bool arm(CancelSlot* s) noexcept {
    if (cancelled_) return false;
    slot_ = s;
    return true;
  }
  void disarm(CancelSlot* s) noexcept {
    if (slot_ == s) slot_ = nullptr;
  }

  // What to schedule to unwind this context (see above).
  [[nodiscard]] std::coroutine_handle<> unwinder() noexcept {
    return std::coroutine_handle<>::from_address(&proxy_);
  }

  // ---- extension (see above) ----
  // Makes this (fresh) context a nested one, using the extension of `outer`'s
  // task (no-op for a null `outer`).
  void share_extension_of(TaskContext* outer) noexcept {
    if (outer == nullptr) return;
    outer_ = outer;
    nested_ = true;
  }
  // The context this one is nested in (null for a spawned task's).
  [[nodiscard]] TaskContext* outer_context() const noexcept { return nested_ ? outer_ : nullptr; }
  // The extension of the spawned task this context belongs to (null if none yet).
  [[nodiscard]] ContextExtension* extension() const noexcept { return owner().extension_; }
  // Installs `e` in the spawned task's context (replacing any earlier one).
  void set_extension(std::unique_ptr<ContextExtension> e) noexcept {
    TaskContext& o = owner();
    delete o.extension_;
    o.extension_ = e.release();
  }
  // Destroys the extension now (when the task ends, before its joiner resumes).
  void destroy_extension() noexcept {
    if (nested_) return;
    delete extension_;
    extension_ = nullptr;
  }

 private:
  // Laid out as a coroutine frame: its resume function first. The second word,
  // a frame's destroy function, holds the owner's unwind function instead: an
  // unwinder is only ever resumed, never destroyed.
  struct ProxyFrame {
    void (*resume)(ProxyFrame*) noexcept;
    UnwindFn on_unwind;
  };
  static void run_unwinder(ProxyFrame* f) noexcept {
    auto* ctx = reinterpret_cast<TaskContext*>(f);  // the first member
    f->on_unwind(ctx->owner_);
  }
  void unqueue() noexcept;  // scheduler.cpp

  TaskContext& owner() noexcept {
    TaskContext* c = this;
    while (c->nested_) c = c->outer_;
    return *c;
  }
  const TaskContext& owner() const noexcept { return const_cast<TaskContext*>(this)->owner(); }

  ProxyFrame proxy_;  // first
  CancelSlot* slot_ = nullptr;
  union {
    ContextExtension* extension_ = nullptr;  // a spawned task's (owned)
    TaskContext* outer_;                     // a nested context's: the context it runs inside
  };
  TaskScheduler* scheduler_ = nullptr;  // see bind()
  std::size_t queued_seq_ = SIZE_MAX;   // see note_queued(); SIZE_MAX: never queued
  void* owner_;
  bool cancelled_ = false;
  bool nested_ = false;  // outer_ (not extension_) is set
};

static_assert(std::is_standard_layout_v<TaskContext>,
              "TaskContext's proxy frame must be at its address");
static_assert(sizeof(TaskContext) == 8 * sizeof(void*));

namespace detail {
class PromiseBase;

// A frame-shaped object (the two-word layout of every coroutine frame on GCC
// and Clang, as TaskContext's proxy) that stands for a coroutine with a context
// of its own: select() awaits each operation it races with one, so that each
// runs, and is cancelled, in its own context. `std::coroutine_handle<
// ContextFramePromise>` is the handle type of such a frame; resuming it calls
// `resume`; it is never destroyed through the handle.
struct ContextFrame {
  void (*resume)(ContextFrame*) noexcept;
  void (*destroy)(ContextFrame*) noexcept;  // never called
  TaskContext* context;
};
struct ContextFramePromise {};  // a tag: no coroutine has this promise type
}  // namespace detail

// The context of the coroutine `h`, or nullptr for coroutine types that are not
// coring tasks (their awaits then simply cannot be cancelled).
template <class P>
TaskContext* context_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
    return h.promise().context();
  } else if constexpr (std::is_same_v<P, detail::ContextFramePromise>) {
    return static_cast<detail::ContextFrame*>(h.address())->context;
  } else {
    (void)h;
    return nullptr;
  }
}

}  // namespace coring
