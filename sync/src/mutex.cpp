// Mutex error messages and the per-thread registry of the lock-order checker
// (see the implementation notes in mutex.hpp).
#include "coring/sync/mutex.hpp"

#include <fmt/core.h>

#include <functional>
#include <iterator>
#include <unordered_map>
#include <vector>

namespace coring {
namespace detail {

#ifdef NDEBUG
std::atomic<bool> lock_order_checking_enabled{false};
#else
std::atomic<bool> lock_order_checking_enabled{true};
#endif

namespace {

// The mutexes each task context holds (tracked guards only), in no particular
// order. An entry whose list empties is kept, with its capacity, so the next
// outermost lock of that context allocates nothing; frame addresses are
// recycled, so the keys stay few. Empty entries are swept once they dominate.
class HeldLocks {
 public:
  const Mutex* conflict(const TaskContext* ctx, const Mutex* m) const noexcept {
    auto it = map_.find(ctx);
    if (it == map_.end()) return nullptr;
    const Mutex* worst = nullptr;
    for (const Mutex* h : it->second) {
      if (std::less<const Mutex*>{}(h, m)) continue;
      if (worst == nullptr || std::less<const Mutex*>{}(worst, h)) worst = h;
    }
    return worst;
  }
  void track(const TaskContext* ctx, const Mutex* m) {
    std::vector<const Mutex*>& held = map_[ctx];
    if (held.empty()) ++nonempty_;
    held.push_back(m);
  }
  void untrack(const TaskContext* ctx, const Mutex* m) noexcept {
    auto it = map_.find(ctx);
    if (it == map_.end()) return;  // released on another thread: nothing to undo here
    std::vector<const Mutex*>& held = it->second;
    for (std::size_t i = held.size(); i-- > 0;) {
      if (held[i] != m) continue;
      held[i] = held.back();
      held.pop_back();
      if (held.empty()) {
        --nonempty_;
        if (map_.size() > kSweepAbove && map_.size() > 4 * nonempty_) sweep();
      }
      return;
    }
  }

 private:
  static constexpr std::size_t kSweepAbove = 1024;
  void sweep() noexcept {
    for (auto it = map_.begin(); it != map_.end();) {
      it = it->second.empty() ? map_.erase(it) : std::next(it);
    }
  }
  std::unordered_map<const TaskContext*, std::vector<const Mutex*>> map_;
  std::size_t nonempty_ = 0;
};

thread_local HeldLocks tls_held;

}  // namespace

const Mutex* lock_order_conflict(const TaskContext* ctx, const Mutex* m) noexcept {
  return tls_held.conflict(ctx, m);
}

void lock_order_track(const TaskContext* ctx, const Mutex* m) {
  tls_held.track(ctx, m);
}

void lock_order_untrack(const TaskContext* ctx, const Mutex* m) noexcept {
  tls_held.untrack(ctx, m);
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
