// The per-task state that sync keeps in a spawned task's TaskContext (a
// ContextExtension, see runtime/task_context.hpp): the task's TaskLocal values
// and the guards through which it holds mutexes (for the lock-order checker,
// mutex.hpp). Created on first use, destroyed when the task ends: a finished
// task leaves no record behind.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "coring/runtime/task_context.hpp"

namespace coring::detail {

// One TaskLocal value of one task: a node of an intrusive, type-erased list;
// `destroy` deletes the whole node.
struct TaskLocalValue {
  TaskLocalValue* next = nullptr;
  std::uint64_t key = 0;
  void (*destroy)(TaskLocalValue* self) noexcept = nullptr;
};

class SyncTaskState;

// The record a tracked MutexGuard carries: the state of the task that locked
// through it (null when untracked).
struct HeldLock {
  SyncTaskState* tracker = nullptr;
};

class SyncTaskState final : public ContextExtension {
 public:
  SyncTaskState() noexcept = default;
  SyncTaskState(const SyncTaskState&) = delete;
  SyncTaskState& operator=(const SyncTaskState&) = delete;
  // Values are destroyed most recent first; guards still tracked stop being.
  ~SyncTaskState() override {
    for (HeldLock* h : held) h->tracker = nullptr;
    while (TaskLocalValue* v = locals) {
      locals = v->next;
      v->destroy(v);
    }
  }

  // The state of the task `ctx` belongs to; null when it has none yet.
  static SyncTaskState* find(const TaskContext& ctx) noexcept {
    return static_cast<SyncTaskState*>(ctx.extension());
  }
  // The same, created on first use.
  static SyncTaskState& of(TaskContext& ctx) {
    if (SyncTaskState* s = find(ctx)) return *s;
    auto made = std::make_unique<SyncTaskState>();
    SyncTaskState& ref = *made;
    ctx.set_extension(std::move(made));
    return ref;
  }

  // ---- held locks: the tracked guards, by address (a guard that moves says so) ----
  void track(HeldLock* h) {
    held.push_back(h);
    h->tracker = this;
  }
  void untrack(HeldLock* h) noexcept {
    auto it = std::find(held.begin(), held.end(), h);
    if (it != held.end()) {
      *it = held.back();
      held.pop_back();
    }
    h->tracker = nullptr;
  }
  void moved(HeldLock* from, HeldLock* to) noexcept {
    std::replace(held.begin(), held.end(), from, to);
  }

  TaskLocalValue* locals = nullptr;
  std::vector<HeldLock*> held;
};

}  // namespace coring::detail
