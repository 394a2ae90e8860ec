// TaskLocal<T>: a value of which each spawned task sees its own copy, as the
// seed's threading.local gives each thread its own (the LazyConnection recipe).
//
// - A task's copy is created on its first `co_await local.get()` (a copy of the
//   initial value given to the constructor, or a default-constructed T), and is
//   destroyed when the task ends (before its joiner resumes), or when its frame
//   is freed unfinished (loop shutdown). Values of one task are destroyed most
//   recent first.
// - Tasks awaited by a task run in its TaskContext and share its copies (so do
//   awaitables run by with_timeout); every spawned task has its own.
// - Access needs the current task, hence awaitables that never suspend (their
//   await_suspend reads the task's context and returns false):
//     T& v = co_await local.get();      // creates this task's copy if needed
//     T* p = co_await local.find();     // nullptr if this task has no copy
//     bool had = co_await local.reset();  // destroys this task's copy (`del`)
//   A reference stays valid until the task ends or reset() is awaited.
//   Awaiting from a coroutine that is not a coring task throws std::logic_error.
// - Destroying a TaskLocal does not destroy the copies of tasks still running;
//   they stay unreachable until those tasks end (each TaskLocal has a unique key,
//   so a later TaskLocal never sees them).
// Loop-local like everything in sync/: one task runs at a time, nothing is locked.
//
// Implementation notes: the values of a task are an intrusive, type-erased list
// of heap nodes kept in sync's per-task state (detail/task_state.hpp), which the
// runtime stores in the task's TaskContext and destroys when the task ends.
// Lookup is a walk of that list: meant for the few task-locals a task uses.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "coring/runtime/task_context.hpp"
#include "coring/sync/detail/task_state.hpp"

namespace coring {

namespace detail {
// Each TaskLocal gets a key never used before in the process (a TaskLocal may be
// built on one thread and used by tasks on another; only construction touches
// the counter).
inline std::uint64_t next_task_local_key() noexcept {
  static std::atomic<std::uint64_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) + 1;
}
}  // namespace detail

template <class T>
class TaskLocal {
  struct Node : detail::TaskLocalValue {
    template <class... A>
    explicit Node(std::uint64_t k, A&&... a) : value(std::forward<A>(a)...) {
      key = k;
      destroy = [](detail::TaskLocalValue* v) noexcept { delete static_cast<Node*>(v); };
    }
    T value;
  };

 public:
  TaskLocal() requires std::is_default_constructible_v<T> : make_(&make_default) {}
  explicit TaskLocal(T initial) requires std::is_copy_constructible_v<T>
      : initial_(std::move(initial)), make_(&make_copy) {}
  TaskLocal(const TaskLocal&) = delete;
  TaskLocal& operator=(const TaskLocal&) = delete;

  // The copy of the task that runs in `ctx`: the building blocks of the awaitables.
  T& get_in(TaskContext& ctx) {
    if (T* p = find_in(ctx)) return *p;
    detail::SyncTaskState& state = detail::SyncTaskState::of(ctx);
    Node* n = make_(*this);
    n->next = state.locals;
    state.locals = n;
    return n->value;
  }
  T* find_in(TaskContext& ctx) const noexcept {
    detail::SyncTaskState* state = detail::SyncTaskState::find(ctx);
    if (state == nullptr) return nullptr;
    for (detail::TaskLocalValue* v = state->locals; v != nullptr; v = v->next) {
      if (v->key == key_) return &static_cast<Node*>(v)->value;
    }
    return nullptr;
  }
  bool reset_in(TaskContext& ctx) noexcept {
    detail::SyncTaskState* state = detail::SyncTaskState::find(ctx);
    if (state == nullptr) return false;
    for (detail::TaskLocalValue** link = &state->locals; *link != nullptr; link = &(*link)->next) {
      if ((*link)->key == key_) {
        detail::TaskLocalValue* v = *link;
        *link = v->next;
        v->destroy(v);
        return true;
      }
    }
    return false;
  }

  // An awaitable that does not suspend; F(TaskLocal&, TaskContext&) gives the result.
  template <class F>
  class [[nodiscard]] AccessAwaiter {
   public:
    explicit AccessAwaiter(TaskLocal& l) noexcept : local_(l) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept {
      ctx_ = context_of(h);
      return false;  // resume at once: we only wanted the task's context
    }
    decltype(auto) await_resume() {
      if (ctx_ == nullptr) {
        throw std::logic_error("coring: TaskLocal used outside a coring task");
      }
      return F{}(local_, *ctx_);
    }

   private:
    TaskLocal& local_;
    TaskContext* ctx_ = nullptr;
  };

 private:
  struct Get {
    T& operator()(TaskLocal& l, TaskContext& c) const { return l.get_in(c); }
  };
  struct Find {
    T* operator()(TaskLocal& l, TaskContext& c) const noexcept { return l.find_in(c); }
  };
  struct Reset {
    bool operator()(TaskLocal& l, TaskContext& c) const noexcept { return l.reset_in(c); }
  };

 public:
  AccessAwaiter<Get> get() noexcept { return AccessAwaiter<Get>{*this}; }
  AccessAwaiter<Find> find() noexcept { return AccessAwaiter<Find>{*this}; }
  AccessAwaiter<Reset> reset() noexcept { return AccessAwaiter<Reset>{*this}; }

 private:
  static Node* make_default(TaskLocal& l) { return new Node(l.key_); }
  static Node* make_copy(TaskLocal& l) { return new Node(l.key_, *l.initial_); }

  std::uint64_t key_ = detail::next_task_local_key();
  std::optional<T> initial_;
  Node* (*make_)(TaskLocal&);
};

}  // namespace coring
