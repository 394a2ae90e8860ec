// LoopInbox: where other threads hand finished work back to a loop (a pool
// worker's offload result, another loop's LoopGroup::submit_to result), so
// the task waiting for it resumes on its own loop.
//
// State. One inbox per EventLoop (a LoopService), created on first use. It is
// shared, counted, by the loop and by every InboxNode that refers to it, so a
// thread finishing work never touches a loop that is gone: push() runs under
// the inbox mutex, and the loop's destruction closes the inbox under the same
// mutex. Open -> closed (the loop is being destroyed; services go after the
// tasks, so no awaiter is left).
//
// push(node) (any thread) appends the node and, when no drain is on its way,
// posts one (EventLoop::post: the Notifier writes the eventfd only if the loop
// sleeps), so a burst of completions costs one post. The drain (loop thread)
// calls node->wake(node->waiter) for each node whose waiter is still there,
// then releases the node. A node pushed to a closed inbox, or left in it when
// it closes, is released at once.
// Invariant: `waiter` is read and written on the loop's thread only (set
// before the work can finish, cleared by an awaiter that gives up).
// Thread-safety: push() any thread; of() and the drain on the loop's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "coring/runtime/event_loop.hpp"

namespace coring::detail {

// A piece of finished work on its way back to a loop. push() takes one
// reference, which the inbox gives back with release_node.
struct InboxNode {
  InboxNode* next_ready = nullptr;
  void* waiter = nullptr;  // loop thread only: who to wake, null once it gave up
  void (*wake)(void* waiter) noexcept = nullptr;
  void (*release_node)(InboxNode* self) noexcept = nullptr;
};

class LoopInbox {
 public:
  // The inbox of `loop` (created on first use). Loop thread.
  static LoopInbox& of(EventLoop& loop);

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Any thread: see the header comment.
  void push(InboxNode* node) noexcept;

 private:
  friend class LoopInboxService;
  explicit LoopInbox(EventLoop& loop) noexcept : loop_(&loop) {}
  void drain() noexcept;  // loop thread
  void close() noexcept;  // the loop is being destroyed

  std::mutex mutex_;
  InboxNode* head_ = nullptr;  // guarded by mutex_
  InboxNode* tail_ = nullptr;
  bool drain_posted_ = false;  // a drain is on its way to the loop
  bool closed_ = false;
  EventLoop* loop_;
  std::atomic<std::uint32_t> refs_{1};  // the loop's (its service's)
};

}  // namespace coring::detail
