// Notifier: wakes a loop that may be asleep in the kernel, from any thread.
//
// The loop waits in the backend (io_uring_enter or epoll_wait) with a read of
// the notifier's eventfd always in flight; writing the eventfd ends the wait.
// A write is a system call (about 1 µs here), so it is made only when needed:
//
// - notify() (any thread), called after publishing work the loop will look
//   for: writes the eventfd only if the loop may be asleep (`sleeping_`) and no
//   write is already on its way (`wake_pending_`). A loop that is running costs
//   no write at all, and a burst of notifies while it sleeps costs one.
//   The work must be published with a seq_cst store (a flag the loop reads).
// - prepare_sleep(has_work) (loop thread, just before a blocking wait): marks
//   the loop asleep, then looks for work once more (has_work must read the
//   flags with seq_cst loads); if there is some it takes the mark back and
//   returns false (do not block). end_sleep() after the wait.
// - consumed() (loop thread): the eventfd read completed; a later notify()
//   writes again.
// Why no wake-up is lost: the producer publishes, then reads `sleeping_`; the
// loop sets `sleeping_`, then looks for work, all four seq_cst. Of two such
// store-then-load sequences at least one sees the other's store (the
// store-buffering pattern; seq_cst operations rather than fences, which
// ThreadSanitizer cannot check, as in Seastar's reactor): either the loop sees the
// work and does not block, or the producer sees it asleep and writes. A write
// skipped because `wake_pending_` was still set is covered by the write that
// set it, whose read has not been taken into account yet (consumed() runs after
// the loop woke for it).
// Counters: writes() (eventfd writes made).
#pragma once

#include <atomic>
#include <cstdint>

namespace coring {

class Notifier {
 public:
  // Creates the eventfd; throws std::system_error if it cannot.
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }

  // Any thread; see the header comment.
  void notify() noexcept {
    if (!sleeping_.load(std::memory_order_seq_cst)) return;
    if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
    write_one();
  }

  // Loop thread. Returns true if the caller may block now.
  template <class HasWork>
  [[nodiscard]] bool prepare_sleep(HasWork&& has_work) noexcept {
    sleeping_.store(true, std::memory_order_seq_cst);
    if (has_work()) {
      sleeping_.store(false, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void end_sleep() noexcept { sleeping_.store(false, std::memory_order_relaxed); }
  void consumed() noexcept { wake_pending_.store(false, std::memory_order_release); }

  [[nodiscard]] std::uint64_t writes() const noexcept {
    return writes_.load(std::memory_order_relaxed);
  }

 private:
  void write_one() noexcept;

  int fd_ = -1;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> wake_pending_{false};
  std::atomic<std::uint64_t> writes_{0};
};

}  // namespace coring
