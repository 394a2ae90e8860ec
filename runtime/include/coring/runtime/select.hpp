// select(a, b, ...): awaits several operations at once in one task, and gives
// the first to complete -- which one, with its value. The others are cancelled.
//
//   auto r = co_await select(jobs.pop(), control.pop(), stream.recv(), sleep_for(1s));
//   switch (r.index()) {
//     case 0: run(*std::get<0>(r)); break;          // std::optional<Job>
//     case 1: ...                                   // a control message
//     case 2: consume(std::get<2>(r)); break;       // net::Received
//     case 3: ...                                   // std::monostate: the second passed
//   }
//
// What it takes: operations of the library (anything built on coring::Operation:
// a queue's pop, a PollableQueue's pop, a socket's recv or accept, a
// sleep, an Event's wait, a JoinHandle -- by reference, so the handle stays
// usable --, ...), 1 to 255 of them. A Task is not an operation: spawn it and
// select on its JoinHandle, or race tasks with when_any (when.hpp).
//
// What it gives: std::variant<R0, R1, ...> (Ri the result of operation i,
// std::monostate for void), index() telling which one won.
//
// Semantics.
// - If some operations are ready at once (their await_ready), the first of
//   them in argument order wins and nothing suspends; later ones are not even
//   looked at. Otherwise each operation is started, in order, and the first to
//   complete wins (one that completes while being started wins at once).
// - The losers are cancelled, each through a context of its own (the task's
//   context is not touched), and select returns once every loser has stopped:
//   nothing a loser holds outlives the co_await. A loser whose result raced
//   ahead of its cancellation (an item was handed to it, a connection given)
//   loses nothing either: select calls its `put_back()`, which returns what it
//   took (the item goes back to the front of its queue, a received buffer to
//   the front of the stream's queue, the connection to the front of the
//   listener's backlog). A loser with nothing to give back (a join: the result
//   stays in the handle; a sleep; an Event wait) has no put_back(). An
//   operation whose completion hands over what cannot be given back (a lock,
//   a permit, an item it pushed, bytes it sent or read, an actor's message:
//   `kSelectable = false`) is refused at compile time.
// - An operation that throws while being started (two tasks in recv() on one
//   stream, a full ThreadPool...): those already started are cancelled, and
//   once they have stopped the exception comes out of the co_await.
// - A loser costs no exception, no task frame and no allocation: each
//   operation lives in the select's awaiter, in the task's frame, and is
//   awaited with a frame-shaped stand-in (detail::ContextFrame).
// - Timeouts of the operations themselves (q.pop(1s)) count as results: the
//   one that times out first wins, with its timed-out value.
// - Cancelling the task cancels every operation; once all have stopped the
//   task is unwound -- unless one had already completed: a result is never
//   dropped (the task gets it; the cancellation takes effect at its next
//   suspension point), as for every operation.
// - A frame destroyed while the select is pending (loop shutdown) destroys the
//   operations, which unpark themselves.
// Cost: an operation ready at once costs its await_ready; otherwise each
// operation parks as it would alone, and each loser is interrupted and
// settles on a later turn of the scheduler (select returns one turn after the
// winner completes, when every loser stopped at once).
//
// Protocol for an operation of one's own: derive from Operation and do every
// wait through it (prepare / complete / interrupt: operation.hpp); give it a
// `void put_back() noexcept` if a completion hands it something that must not
// be lost when it loses (called instead of await_resume, at most once).
#pragma once

#include <array>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "coring/runtime/cancel.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/task_context.hpp"
#include "coring/runtime/with_timeout.hpp"

namespace coring {

namespace detail {

class SelectCore;

// One raced operation's stand-in coroutine: completing the operation resumes
// it (settle with a result); cancelling it unwinds it (settle without one).
struct SelectBranch {
  ContextFrame frame;  // first: its address is the branch's coroutine handle
  TaskContext ctx;
  SelectCore* core = nullptr;
  std::uint8_t index = 0;
  bool pending = false;  // started and not settled

  SelectBranch() noexcept : frame{&SelectBranch::resumed, nullptr, &ctx}, ctx(&unwound, this) {}
  SelectBranch(const SelectBranch&) = delete;
  SelectBranch& operator=(const SelectBranch&) = delete;

  [[nodiscard]] std::coroutine_handle<ContextFramePromise> handle() noexcept {
    return std::coroutine_handle<ContextFramePromise>::from_address(&frame);
  }
  static void resumed(ContextFrame* f) noexcept;
  static void unwound(void* self) noexcept;
};

// What does not depend on the operations' types.
class SelectCore : private CancelSlot {
 public:
  SelectCore(const SelectCore&) = delete;
  SelectCore& operator=(const SelectCore&) = delete;

 protected:
  using PutBackFn = void (*)(SelectCore* self, unsigned index) noexcept;

  SelectCore(SelectBranch* branches, unsigned n, PutBackFn put_back) noexcept
      : branches_(branches), n_(n), put_back_(put_back) {
    on_cancel = &SelectCore::parent_cancelled;
  }
  // Runs after the derived class destroyed the operations (which disarm from
  // their branch's context first).
  ~SelectCore() {
    if (parent_armed_) parent_ctx_->disarm(this);
    if (branches_made_) {
      for (unsigned i = 0; i < n_; ++i) branches_[i].~SelectBranch();
    }
  }

  // Start of await_suspend: false if the task is already cancelled (its
  // unwinder is then scheduled: stay suspended).
  bool begin(std::coroutine_handle<> parent, TaskContext* parent_ctx) {
    sched_ = &current_scheduler();
    parent_ = parent;
    parent_ctx_ = parent_ctx;
    if (parent_ctx != nullptr) {
      if (!parent_ctx->arm(this)) {
        sched_->schedule(parent_ctx->unwinder());
        return false;
      }
      parent_armed_ = true;
    }
    // Made only now: a select that completes at once never pays for them.
    for (unsigned i = 0; i < n_; ++i) {
      SelectBranch* b = ::new (static_cast<void*>(branches_ + i)) SelectBranch();
      b->core = this;
      b->index = static_cast<std::uint8_t>(i);
      b->ctx.share_extension_of(parent_ctx);
    }
    branches_made_ = true;
    return true;
  }
  // Branch i suspended (pending) or completed while being started.
  void started(unsigned i, bool suspended) noexcept {
    if (suspended) {
      branches_[i].pending = true;
      ++pending_;
    } else {
      winner_ = static_cast<int>(i);
      cancel_losers();
    }
  }
  // End of await_suspend: whether the task stays suspended.
  bool end_start() noexcept {
    if (pending_ != 0) return true;
    disarm_parent();
    return false;  // a branch completed while being started, and nothing else is pending
  }

  // An operation threw while being started: cancel those already pending;
  // await_resume rethrows once they have stopped.
  void start_failed(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    cancel_losers();  // no winner: every pending operation
  }
  [[nodiscard]] const std::exception_ptr& start_error() const noexcept { return error_; }
  [[nodiscard]] int winner() const noexcept { return winner_; }
  void set_winner(unsigned i) noexcept { winner_ = static_cast<int>(i); }
  [[noreturn]] static void throw_no_winner() {
    throw std::logic_error("coring: select() resumed without a completed operation");
  }

 private:
  friend struct SelectBranch;

  void settle(unsigned i, bool has_result) noexcept {
    branches_[i].pending = false;
    --pending_;
    if (has_result) {
      if (winner_ < 0 && error_ == nullptr) {
        winner_ = static_cast<int>(i);
        cancel_losers();
      } else {
        put_back_(this, i);  // a loser whose result raced ahead of its cancellation
      }
    }
    if (pending_ == 0) {
      disarm_parent();
      // No winner: every operation was cancelled, because the task was.
      sched_->schedule(winner_ < 0 && error_ == nullptr && parent_cancelled_
                           ? parent_ctx_->unwinder()
                           : parent_);
    }
  }
  void cancel_losers() noexcept {
    for (unsigned j = 0; j < n_; ++j) {
      if (branches_[j].pending && static_cast<int>(j) != winner_) branches_[j].ctx.request_cancel();
    }
  }
  void disarm_parent() noexcept {
    if (parent_armed_) {
      parent_armed_ = false;
      parent_ctx_->disarm(this);
    }
  }
  static void parent_cancelled(CancelSlot* s) noexcept {
    auto* self = static_cast<SelectCore*>(s);
    self->parent_armed_ = false;  // the context cleared its slot
    self->parent_cancelled_ = true;
    for (unsigned j = 0; j < self->n_; ++j) {
      if (self->branches_[j].pending) self->branches_[j].ctx.request_cancel();
    }
  }

  SelectBranch* branches_;
  unsigned n_;
  PutBackFn put_back_;
  std::coroutine_handle<> parent_;
  TaskContext* parent_ctx_ = nullptr;
  TaskScheduler* sched_ = nullptr;
  std::exception_ptr error_;  // an operation threw while being started
  unsigned pending_ = 0;
  int winner_ = -1;
  bool parent_armed_ = false;
  bool parent_cancelled_ = false;
  bool branches_made_ = false;
};

inline void SelectBranch::resumed(ContextFrame* f) noexcept {
  auto* b = reinterpret_cast<SelectBranch*>(f);  // the first member
  b->core->settle(b->index, true);
}
inline void SelectBranch::unwound(void* self) noexcept {
  auto* b = static_cast<SelectBranch*>(self);
  b->core->settle(b->index, false);
}

template <class R>
using select_value_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

}  // namespace detail

// What select(ops...) gives: which operation won (index()) and its result.
template <class... Ops>
using Selected = std::variant<detail::select_value_t<detail::await_result_t<Ops>>...>;

template <class... Ops>
class [[nodiscard]] SelectAwaiter : private detail::SelectCore {
  static constexpr std::size_t N = sizeof...(Ops);
  static_assert(N >= 1 && N <= 255, "select() races 1 to 255 operations");
  static_assert((detail::is_operation_v<Ops> && ...),
                "select() races operations of the library (built on coring::Operation); for a "
                "Task, spawn it and select on its JoinHandle, or race tasks with when_any()");
  static_assert((std::remove_cvref_t<detail::awaiter_of_t<Ops>>::kSelectable && ...),
                "select(): this operation hands over something it could not give back if it "
                "lost (a lock, a permit, an item it pushed, bytes it sent or read, a message); "
                "await it on its own, or spawn a task for it and select on the JoinHandle");
  using Indices = std::make_index_sequence<N>;

 public:
  using result_type = Selected<Ops...>;

  explicit SelectAwaiter(Ops&&... ops)
      : SelectCore(reinterpret_cast<detail::SelectBranch*>(branch_storage_), N,
                   &SelectAwaiter::put_back_at),
        slots_(std::forward<Ops>(ops)...) {}

  bool await_ready() { return ready(Indices{}); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!begin(h, context_of(h))) return true;  // cancelled: the unwinder is scheduled
    try {
      start(Indices{});
    } catch (...) {
      // An operation could not start: stop those that did, then rethrow.
      start_failed(std::current_exception());
    }
    return end_start();
  }
  result_type await_resume() {
    if (start_error()) [[unlikely]]
      std::rethrow_exception(start_error());
    if (winner() < 0) [[unlikely]]
      throw_no_winner();
    return resume_table(Indices{})[static_cast<std::size_t>(winner())](*this);
  }

 private:
  template <std::size_t... I>
  bool ready(std::index_sequence<I...>) {
    return ((std::get<I>(slots_).op().await_ready() ? (set_winner(I), true) : false) || ...);
  }
  template <std::size_t... I>
  void start(std::index_sequence<I...>) {
    bool done = false;
    ((done = done || !start_one<I>()), ...);
  }
  // Starts operation I; false if it completed at once (it won).
  template <std::size_t I>
  bool start_one() {
    auto& op = std::get<I>(slots_).op();
    detail::SelectBranch& b = branch(I);
    using R = decltype(op.await_suspend(b.handle()));
    static_assert(std::is_void_v<R> || std::is_same_v<R, bool>,
                  "select(): an operation whose await_suspend transfers to another coroutine");
    bool suspended = true;
    if constexpr (std::is_void_v<R>) {
      op.await_suspend(b.handle());
    } else {
      suspended = op.await_suspend(b.handle());
    }
    started(I, suspended);
    return suspended;
  }

  template <std::size_t I>
  static result_type resume_at(SelectAwaiter& s) {
    auto& op = std::get<I>(s.slots_).op();
    if constexpr (std::is_void_v<decltype(op.await_resume())>) {
      op.await_resume();
      return result_type(std::in_place_index<I>);
    } else {
      return result_type(std::in_place_index<I>, op.await_resume());
    }
  }
  template <std::size_t... I>
  static constexpr auto resume_table(std::index_sequence<I...>) {
    return std::array<result_type (*)(SelectAwaiter&), N>{&resume_at<I>...};
  }

  template <std::size_t I>
  void put_back_one() noexcept {
    auto& op = std::get<I>(slots_).op();
    if constexpr (requires { op.put_back(); }) {
      static_assert(noexcept(op.put_back()), "put_back() must be noexcept");
      op.put_back();
    }
  }
  template <std::size_t... I>
  void put_back_index(unsigned i, std::index_sequence<I...>) noexcept {
    ((i == I ? put_back_one<I>() : void()), ...);
  }
  static void put_back_at(SelectCore* core, unsigned i) noexcept {
    static_cast<SelectAwaiter*>(core)->put_back_index(i, Indices{});
  }

  detail::SelectBranch& branch(std::size_t i) noexcept {
    return *std::launder(reinterpret_cast<detail::SelectBranch*>(branch_storage_) + i);
  }

  // The branches, made by begin() (SelectCore destroys them, after the
  // operations: those disarm from their branch's context when destroyed).
  alignas(detail::SelectBranch) std::byte branch_storage_[N * sizeof(detail::SelectBranch)];
  std::tuple<detail::OperationStorage<Ops>...> slots_;  // see with_timeout.hpp
};

// See the header comment. Operations given as lvalues are awaited in place
// (a JoinHandle stays the caller's); temporaries are moved into the select.
template <class... Ops>
SelectAwaiter<Ops...> select(Ops&&... ops) {
  return SelectAwaiter<Ops...>(std::forward<Ops>(ops)...);
}

}  // namespace coring
