// The io backend seam: the only part of coring that talks to the kernel's I/O
// interface. Tasks, sync and net see an operation description (IoRequest) and a
// Completion callback; io_uring is the backend today. A fault-injecting backend
// or an epoll fallback implements the same interface.
//
// Contract: the address of a Completion is the operation's identity (io_uring's
// user_data). It must stay valid until its final completion is delivered (for a
// multishot operation, the one without IORING_CQE_F_MORE), even when the
// operation was cancelled. Completions are delivered from poll(), on the loop's
// thread; a callback must not resume coroutines inline (it schedules them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "coring/runtime/clock.hpp"

struct io_uring;
struct io_uring_params;

namespace coring {

struct Completion {
  // `res` is the kernel's result (>= 0, or -errno); `flags` are IORING_CQE_F_* bits.
  void (*on_complete)(Completion* self, int res, std::uint32_t flags) noexcept = nullptr;
};

enum class IoOpcode : std::uint8_t {
  nop,
  read,
  write,
  poll_add,
  close,
  recv,
  send,
  accept,
  connect
};

struct IoRequest {
  IoOpcode opcode = IoOpcode::nop;
  int fd = -1;
  void* addr = nullptr;          // buffer or sockaddr
  std::uint32_t len = 0;         // buffer length, or poll mask for poll_add
  std::uint64_t offset = ~0ULL;  // file offset; ~0: the file's current position
  std::uint32_t op_flags = 0;    // MSG_* for recv/send, SOCK_* for accept
  void* addr2 = nullptr;         // socklen_t* for accept
  std::uint16_t buf_group = 0;   // provided-buffer group, with select_buffer
  bool select_buffer = false;    // IOSQE_BUFFER_SELECT
  bool multishot = false;        // accept/recv/poll multishot
  // A multishot recv ends (final completion) once it has received this many
  // bytes; 0: no limit. A backend that cannot limit it fails the operation
  // with -EINVAL (io_uring before Linux 6.17).
  std::uint32_t multishot_limit = 0;
};

// How the io_uring ring is set up. `automatic` tries each in this order.
enum class RingMode { automatic, defer_taskrun, coop_taskrun, plain };

class Backend {
 public:
  virtual ~Backend() = default;

  // One line: the backend and what it chose, e.g. "io_uring (SINGLE_ISSUER|DEFER_TASKRUN), ...".
  [[nodiscard]] virtual std::string describe() const = 0;
  // The thread that runs the loop calls this before it first starts anything.
  virtual void bind_to_current_thread() {}

  // Queues an operation; it is submitted by the next poll() at the latest. Never
  // drops it: a full submission queue is flushed (and completions reaped) first.
  virtual void start(const IoRequest& req, Completion* c) = 0;
  // Asks the kernel to cancel `c`. Its completion still arrives (normally -ECANCELED,
  // or its real result if it finished first).
  virtual void cancel(Completion* c) = 0;
  // Cancels every operation in flight.
  virtual void cancel_all() = 0;

  // Submits what is queued and delivers completions. Waits for at least one
  // completion until `timeout` (nullptr: no limit; zero: never blocks).
  // Returns the number of completions delivered.
  virtual std::size_t poll(const Duration* timeout) = 0;

  // Operations started whose final completion has not been delivered yet.
  [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;
  // Requests queued but not yet handed to the kernel.
  [[nodiscard]] virtual std::size_t pending_submissions() const noexcept = 0;

  // The raw ring for features above the seam (buffer rings); null for other backends.
  [[nodiscard]] virtual ::io_uring* native_ring() noexcept { return nullptr; }
};

struct LoopOptions;

// The kernel entry points used to set up a ring. Tests replace them to make
// set-up fail with a chosen errno; the defaults call liburing and read /proc.
struct UringSyscalls {
  // Returns 0 or -errno, like io_uring_queue_init_params.
  int (*queue_init_params)(unsigned entries, ::io_uring* ring, ::io_uring_params* p) = nullptr;
  // The value of /proc/sys/kernel/io_uring_disabled, or -1 when it does not exist.
  int (*read_io_uring_disabled)() = nullptr;
};

// Creates the io_uring backend. Throws std::system_error naming the cause and the
// fix when io_uring cannot be set up.
std::unique_ptr<Backend> make_uring_backend(const LoopOptions& options,
                                            const UringSyscalls& syscalls = {});

// The message make_uring_backend throws for a set-up failure with `err`
// (a positive errno); exposed for tests and for programs that want to check early.
std::string describe_uring_setup_error(int err, int io_uring_disabled);

struct LoopOptions {
  unsigned sq_entries = 256;
  unsigned cq_entries = 0;  // 0: four times sq_entries
  RingMode ring_mode = RingMode::automatic;
  // Coroutines resumed per loop turn before I/O is polled again, so a busy ready
  // queue never starves completions and timers.
  std::size_t run_budget = 256;
  // Builds the backend; empty means io_uring via make_uring_backend.
  std::function<std::unique_ptr<Backend>(const LoopOptions&)> backend_factory;
};

}  // namespace coring
