// FaultBackend: a Backend decorator that makes operations fail, or succeed
// short, the way the kernel may -- on purpose, reproducibly -- so that tests
// can check that code built on coring survives results it rarely sees.
//
//   auto stats = std::make_shared<coring::testing::FaultStats>();
//   coring::testing::FaultPlan plan;
//   plan.seed = coring::testing::fault_seed(42);  // CORING_FAULT_SEED replays a run
//   plan.rate = 0.2;
//   plan.kinds = {coring::testing::Fault::eintr, coring::testing::Fault::short_send};
//   coring::EventLoop loop(coring::testing::fault_options(plan, {}, stats));
//   ...
//   CHECK(stats->injected(coring::testing::Fault::eintr) > 0);
//
// Contract.
// - State: the plan, a PRNG (splitmix64) seeded with plan.seed, the count of
//   operations started so far (the index `FaultPlan::at` refers to: 0 for the
//   first start(), whatever the operation), and a queue of synthetic
//   completions. The counters live in a FaultStats, which may be shared with
//   the test (fault_options) and outlives the backend.
// - Deciding: each start() is one operation. An entry of `at` naming its index
//   wins (the first one, if several do); otherwise, with probability `rate`, a fault is drawn
//   uniformly from those of `kinds` that apply to the operation (none apply: no fault). A fault
//   that does not apply to the operation (an `at` entry naming one, say) leaves it untouched and is
//   not counted. Nothing else changes: cancel(), cancel_all(), forget_fd() and buffer pools go to
//   the inner backend.
// - What each fault does, and to which opcodes it applies:
//     enobufs     recv naming a BufferPool          -ENOBUFS (as if the pool were empty)
//     ecanceled   recv send read write connect poll_add   -ECANCELED
//     eintr       every opcode but close and nop    -EINTR
//     eagain      recv send accept read write       -EAGAIN
//     econnreset  recv send                         -ECONNRESET
//   These error faults never run the operation: its FINAL completion (flags 0,
//   also for a multishot operation) is queued and delivered by the next poll(),
//   on the loop thread, never from start(). While such completions are queued
//   poll() does not block (it polls the inner backend with a zero timeout, then
//   delivers them). They count in in_flight() and pending_submissions() until
//   delivered. cancel() of one does nothing: it completes with its injected
//   result, as an operation that finished before the cancel would.
//     short_send  send with len > 1                 runs with len in [1, len-1]
//     short_read  read with len > 1, and recv with len > 1 that names no
//                 BufferPool (and is not multishot) runs with len in [1, len-1]
//   The shortened operation runs for real on the inner backend, so it reports
//   what the kernel did with the shorter length.
// - What it cannot do: shorten a recv that names a BufferPool (the buffer size
//   is the pool's, the kernel picks it), nor a multishot operation; make the
//   kernel itself fail (a real ECONNRESET, a full socket buffer); fault close
//   (a close must run or the fd leaks) or nop. A shortened read of a file that
//   refuses small reads (an eventfd: EINVAL) fails instead of coming back
//   short. An injected ECANCELED on an operation nobody cancelled looks to its
//   owner like a cancel it did not ask for (e.g. a shutdown); that is the
//   point, but it is not a result the kernel gives on its own.
// - Threading: loop thread only, like any backend. FaultStats' counters are
//   atomics (readable from any thread); its log only on the loop thread or
//   once the loop is gone.
// - Replay: the decisions depend only on the seed and on the sequence of
//   operations started, so the same seed on the same program replays the same
//   faults as long as the operations come in the same order (real sockets'
//   timing can change that order; a replay then shows a similar run, not the
//   same one). fault_seed() takes CORING_FAULT_SEED from the environment so a
//   failing run's seed (printed by the test, and by describe()) can be given
//   back.
// - tiny_ring: the inner io_uring backend is made with sq_entries=2 and
//   cq_entries=4, so a full SQ and an overflowing CQ happen for real (epoll
//   ignores it).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/testing/forwarding_backend.hpp"

namespace coring::testing {

enum class Fault : std::uint8_t {
  enobufs,
  ecanceled,
  eintr,
  eagain,
  econnreset,
  short_send,
  short_read
};

inline constexpr std::size_t kFaultKinds = 7;
inline constexpr std::array<Fault, kFaultKinds> kAllFaults = {
    Fault::enobufs,    Fault::ecanceled,  Fault::eintr,     Fault::eagain,
    Fault::econnreset, Fault::short_send, Fault::short_read};

// "enobufs", "ecanceled", ... (the enumerator's name).
[[nodiscard]] const char* to_string(Fault f) noexcept;
// "recv", "send", ... (the enumerator's name).
[[nodiscard]] const char* to_string(IoOpcode op) noexcept;

// Transient faults: eintr, eagain, short_send, short_read. Code that handles
// results correctly loses nothing to them (no error reaches the application
// of a stream, only a retry or a shorter transfer).
[[nodiscard]] constexpr bool transient(Fault f) noexcept {
  return f == Fault::eintr || f == Fault::eagain || f == Fault::short_send ||
         f == Fault::short_read;
}

struct FaultPlan {
  std::uint64_t seed = 0;
  // Chance that an operation gets a fault drawn from `kinds` (0: never).
  double rate = 0;
  std::vector<Fault> kinds;  // a kind listed twice is drawn twice as often
  // Exact: the Nth started operation (0-based count of start() calls) gets this fault.
  std::vector<std::pair<std::uint64_t, Fault>> at;
  // io_uring inner backend with sq_entries=2, cq_entries=4.
  bool tiny_ring = false;
};

// One injected fault.
struct FaultRecord {
  std::uint64_t op = 0;  // index of the operation (as in FaultPlan::at)
  IoOpcode opcode = IoOpcode::nop;
  Fault fault = Fault::eintr;
  int fd = -1;
  std::uint32_t len = 0;      // the request's length
  std::uint32_t new_len = 0;  // short_send/short_read: the length it ran with
};

struct FaultStats {
  std::atomic<std::uint64_t> operations{0};  // start() calls seen
  std::array<std::atomic<std::uint64_t>, kFaultKinds> by_kind{};

  [[nodiscard]] std::uint64_t injected(Fault f) const noexcept {
    return by_kind[static_cast<std::size_t>(f)].load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t total_injected() const noexcept {
    std::uint64_t n = 0;
    for (const auto& k : by_kind) n += k.load(std::memory_order_relaxed);
    return n;
  }
  // The first kLogLimit faults injected (loop thread, or after the loop is gone).
  static constexpr std::size_t kLogLimit = 4096;
  std::vector<FaultRecord> log;

  // "eintr=3 eagain=1 ..." (kinds with a count only) and the operations seen.
  [[nodiscard]] std::string summary() const;
};

class FaultBackend : public ForwardingBackend {
 public:
  // `stats` null: the backend keeps its own (see stats()). Throws
  // std::invalid_argument for a rate outside [0, 1].
  FaultBackend(std::unique_ptr<Backend> inner, FaultPlan plan,
               std::shared_ptr<FaultStats> stats = nullptr);
  ~FaultBackend() override;

  // "fault(<inner describe>) seed=... rate=... kinds=...".
  std::string describe() const override;
  void start(const IoRequest& req, Completion* c) override;
  void cancel(Completion* c) override;
  std::size_t poll(const Duration* timeout) override;
  std::size_t in_flight() const noexcept override;
  std::size_t pending_submissions() const noexcept override;

  [[nodiscard]] std::uint64_t seed() const noexcept { return plan_.seed; }
  [[nodiscard]] const FaultPlan& plan() const noexcept { return plan_; }
  [[nodiscard]] const FaultStats& stats() const noexcept { return *stats_; }
  [[nodiscard]] std::uint64_t operations() const noexcept {
    return stats_->operations.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t injected(Fault f) const noexcept { return stats_->injected(f); }

  // Whether `f` can be applied to `req` (the table in the header comment).
  [[nodiscard]] static bool applies(Fault f, const IoRequest& req) noexcept;

 private:
  struct Synthetic {
    Completion* c;
    int res;
  };
  std::uint64_t next_random() noexcept;
  bool decide(const IoRequest& req, std::uint64_t index, Fault& out) noexcept;
  void record(const FaultRecord& r);
  std::size_t deliver_synthetic();

  FaultPlan plan_;
  std::shared_ptr<FaultStats> stats_;
  std::uint64_t rng_state_;
  std::uint64_t started_ = 0;
  std::vector<Synthetic> queued_;      // for the next poll()
  std::vector<Synthetic> delivering_;  // being delivered by this poll()
  std::size_t delivered_ = 0;          // of delivering_
};

// `base` with a backend_factory that builds the backend `base` chooses
// (make_backend; the tiny ring when plan.tiny_ring) and wraps it in a
// FaultBackend following `plan`, counting into `stats` (when given; every loop
// built with these options shares it).
[[nodiscard]] LoopOptions fault_options(FaultPlan plan, LoopOptions base = {},
                                        std::shared_ptr<FaultStats> stats = nullptr);

// CORING_FAULT_SEED from the environment when it is set and not empty
// (decimal, or hex with 0x), else `fallback`. Throws std::invalid_argument
// for a value that is not a number.
[[nodiscard]] std::uint64_t fault_seed(std::uint64_t fallback);

}  // namespace coring::testing
