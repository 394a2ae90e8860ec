// lock_all(a, b, ...): the seed's acquire(*locks) -- takes a set of mutexes in
// the one global order (by address, as the seed sorts by id()), so two tasks
// that name the same mutexes in opposite orders cannot deadlock.
//
// - co_await lock_all(a, b, ...) returns a LockAllGuard owning every mutex;
//   destroying it (or unlock()) releases them in reverse order. A mutex named
//   twice is locked once.
// - The order checker (mutex.hpp) applies: a task that already holds a mutex
//   ordered after the first of the set gets LockOrderViolation naming both.
// - Cancel-safe: if the task is cancelled while waiting for one of the
//   mutexes, it is unwound and the ones already taken are released.
// It runs as a child Task (one pooled frame per call) in the caller's context.
// GCC 12 caveat: do not put `co_await lock_all(...)` (or any co_await that
// yields a guard) in a branch of `?:`. GCC 12 miscompiles it: the temporary is
// destroyed, unlocking the mutexes, while the new guard still thinks it owns
// them (found while writing lock_all_test; use if/else and assign instead).
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <functional>

#include "coring/runtime/task.hpp"
#include "coring/sync/mutex.hpp"

namespace coring {

template <std::size_t N>
class LockAllGuard;

template <class... Ms>
Task<LockAllGuard<sizeof...(Ms)>> lock_all(Ms&... mutexes);

// Owns N locked mutexes (some guards empty when a mutex was named twice).
template <std::size_t N>
class LockAllGuard {
 public:
  LockAllGuard() noexcept = default;
  LockAllGuard(LockAllGuard&&) noexcept = default;
  LockAllGuard& operator=(LockAllGuard&& o) noexcept {
    if (this != &o) {
      unlock();
      guards_ = std::move(o.guards_);
    }
    return *this;
  }
  ~LockAllGuard() { unlock(); }

  // Releases every mutex, the last taken first; idempotent.
  void unlock() noexcept {
    for (std::size_t i = N; i-- > 0;) guards_[i].unlock();
  }
  [[nodiscard]] bool owns_lock() const noexcept {
    return std::any_of(guards_.begin(), guards_.end(),
                       [](const MutexGuard& g) { return g.owns_lock(); });
  }

 private:
  template <class... Ms>
  friend Task<LockAllGuard<sizeof...(Ms)>> lock_all(Ms&... mutexes);
  std::array<MutexGuard, N> guards_;
};

template <class... Ms>
Task<LockAllGuard<sizeof...(Ms)>> lock_all(Ms&... mutexes) {
  static_assert(sizeof...(Ms) > 0, "lock_all() needs at least one mutex");
  static_assert((std::same_as<Ms, Mutex> && ...), "lock_all() takes coring::Mutex objects");
  std::array<Mutex*, sizeof...(Ms)> order{&mutexes...};
  std::sort(order.begin(), order.end(), std::less<Mutex*>{});
  LockAllGuard<sizeof...(Ms)> all;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && order[i] == order[i - 1]) continue;
    all.guards_[i] = co_await order[i]->lock();
  }
  co_return all;
}

}  // namespace coring
