// Mutex error messages and the lock-order checker (see the implementation
// notes in mutex.hpp).
#include "coring/sync/mutex.hpp"

#include <fmt/core.h>

#include <functional>

namespace coring {
namespace detail {

#ifdef NDEBUG
std::atomic<bool> lock_order_checking_enabled{false};
#else
std::atomic<bool> lock_order_checking_enabled{true};
#endif

const Mutex* lock_order_conflict(TaskContext& ctx, const Mutex* m, const void* leaf_frame,
                                 const PromiseBase& leaf) noexcept {
  SyncTaskState* state = SyncTaskState::find(ctx);
  if (state == nullptr) return nullptr;
  const Mutex* worst = nullptr;
  for (std::size_t i = 0; i < state->held.size();) {
    auto* g = static_cast<MutexGuard*>(state->held[i]);
    const Mutex* h = g->mutex();
    if (std::less<const Mutex*>{}(h, m)) {  // in order: fine
      ++i;
      continue;
    }
    if (!in_await_chain(leaf_frame, leaf, g)) {
      // The guard left this task's frames (moved into another task, or to the
      // heap): the task does not hold it any more. Swap-removes entry i.
      state->untrack(g);
      continue;
    }
    if (worst == nullptr || std::less<const Mutex*>{}(worst, h)) worst = h;
    ++i;
  }
  return worst;
}

void throw_lock_order_violation(const Mutex& held, const Mutex& wanted) {
  if (&held == &wanted) {
    throw LockOrderViolation(fmt::format(
        "coring: Lock Order Violation: locking {} again while this task already holds it "
        "(it would wait for itself forever)",
        wanted.describe()));
  }
  throw LockOrderViolation(fmt::format(
      "coring: Lock Order Violation: locking {} while holding {}, which comes after it in the "
      "global lock order; take them together with lock_all(), or nest them in order",
      wanted.describe(), held.describe()));
}

}  // namespace detail

std::string Mutex::describe() const {
  if (name_ != nullptr) return fmt::format("'{}'", name_);
  return fmt::format("Mutex@{}", static_cast<const void*>(this));
}

void Mutex::throw_not_locked() const {
  throw std::logic_error(fmt::format("coring: unlock() of {}, which is not locked", describe()));
}

}  // namespace coring
