// The per-task state that sync keeps in a spawned task's TaskContext (a
// ContextExtension, see runtime/task_context.hpp): the task's TaskLocal values.
// Created on first use, destroyed when the task ends.
#pragma once

#include <cstdint>
#include <memory>

#include "coring/runtime/task_context.hpp"

namespace coring::detail {

// One TaskLocal value of one task: a node of an intrusive, type-erased list;
// `destroy` deletes the whole node.
struct TaskLocalValue {
  TaskLocalValue* next = nullptr;
  std::uint64_t key = 0;
  void (*destroy)(TaskLocalValue* self) noexcept = nullptr;
};

class SyncTaskState final : public ContextExtension {
 public:
  SyncTaskState() noexcept = default;
  SyncTaskState(const SyncTaskState&) = delete;
  SyncTaskState& operator=(const SyncTaskState&) = delete;
  // Values are destroyed most recent first.
  ~SyncTaskState() override {
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

  TaskLocalValue* locals = nullptr;
};

}  // namespace coring::detail
