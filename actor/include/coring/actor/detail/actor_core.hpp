// ActorCoreBase: the lifecycle of one actor, shared by its ActorRefs, its
// Inbox and the watchers that wait for its end. ActorCore<Msg> (actor_ref.hpp)
// adds the mailbox.
//
// State: open -> closed (no more sends; the actor drains what is queued) ->
// ended (its task is gone: returned, failed or cancelled; the settled
// JoinHandle keeps a failed one's exception). `closed_` is set at the latest
// when it ends.
// Invariants: once ended_, nothing waits in waiters_ and callbacks_ is empty;
// the core lives while a reference (ActorRef, the actor's own Inbox, a pending
// watcher) holds it: refs_ counts them.
// Destruction: the last reference deletes it. A failure nobody looked at
// (with join(), watch() or on_exit()) is reported on stderr then, as for a
// detached task.
// Loop-local: refs_ is not atomic; every reference stays on the actor's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string_view>

#include "coring/runtime/frame_allocator.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/sync/wait_list.hpp"

namespace coring::detail {

class ActorCoreBase {
 public:
  using ExitFn = std::function<void(const Outcome<void>&)>;

  ActorCoreBase(const ActorCoreBase&) = delete;
  ActorCoreBase& operator=(const ActorCoreBase&) = delete;

  // From the frame allocator's per-thread size classes, like the actor's frame:
  // spawning a burst of actors reuses the blocks of the last burst.
  static void* operator new(std::size_t n) { return FrameAllocator::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { FrameAllocator::deallocate(p, n); }

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] bool ended() const noexcept { return ended_; }
  [[nodiscard]] TaskEnd end() const noexcept { return end_; }
  // The exception of a failed actor (null otherwise).
  [[nodiscard]] std::exception_ptr error() noexcept {
    return end_ == TaskEnd::failed ? task_.outcome().error() : nullptr;
  }
  // The name given to spawn_actor (empty if none).
  [[nodiscard]] std::string_view name() const noexcept { return task_.name(); }
  // Messages accepted but never received: queued when the actor ended or was stopped.
  [[nodiscard]] std::uint32_t undelivered() const noexcept { return undelivered_; }

  // How the actor ended (requires ended()); marks a failure observed.
  Outcome<void> outcome() noexcept {
    observed_ = true;
    switch (end_) {
      case TaskEnd::returned:
        return Outcome<void>::from_value();
      case TaskEnd::failed:
        return Outcome<void>::from_error(error());
      default:
        return Outcome<void>::from_cancel();
    }
  }
  void mark_observed() noexcept { observed_ = true; }

  // Registers `fn`, called once when the actor ends (at once if it has).
  void on_exit(ExitFn fn);

  // join()/watch() park here until the actor ends, and so do send_async()s
  // waiting for room in a bounded mailbox (one list keeps the core small;
  // senders are told apart by their WaitKind).
  WaitList& waiters() noexcept { return waiters_; }

  // The actor's task was destroyed (ended); `task` is its settled handle.
  void on_task_end() noexcept;
  // Asks the task to stop (see ActorRef::stop).
  void cancel_task() noexcept { task_.cancel(); }

  // Where spawn_actor() keeps the task (only the core cancels or reads it).
  JoinHandle<void>& task() noexcept { return task_; }

  // Throws ActorClosed naming this actor.
  [[noreturn]] void throw_closed() const;
  [[noreturn]] void throw_full(std::size_t capacity) const;

 protected:
  ActorCoreBase() noexcept = default;
  virtual ~ActorCoreBase();
  // The mailbox's part of ending: drop what is queued (returning how many),
  // wake waiting senders (ActorClosed) and a parked receiver.
  virtual std::size_t drain_on_end() noexcept = 0;

  void count_undelivered(std::size_t n) noexcept {
    const std::uint64_t sum = std::uint64_t{undelivered_} + n;
    undelivered_ = sum > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(sum);
  }

  std::uint32_t refs_ = 0;
  std::uint32_t undelivered_ = 0;  // saturates
  bool closed_ = false;
  bool ended_ = false;
  bool observed_ = false;
  bool senders_may_wait_ = false;  // a send_async() parked in waiters_ since last checked

 public:
  bool pinned_ = false;  // the actor's Inbox is in its frame (see spawn_actor)

 protected:
  TaskEnd end_ = TaskEnd::returned;

 private:
  struct ExitNode {
    ExitFn fn;
    ExitNode* next;
  };
  void run_exit_callbacks() noexcept;

  JoinHandle<void> task_;      // settled when the actor ends; keeps a failure's exception
  WaitList waiters_{"actor"};  // joiners, watchers, senders waiting for room
  ExitNode* callbacks_ = nullptr;
};

}  // namespace coring::detail
