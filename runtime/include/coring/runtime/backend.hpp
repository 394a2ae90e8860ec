// The io backend seam: the only part of coring that talks to the kernel's I/O
// interface. Tasks, sync and net see an operation description (IoRequest) and a
// Completion callback, in coring's own words; two backends implement it:
// io_uring (uring_backend.hpp) and epoll (epoll_backend.hpp), and a decorator
// can stand between the loop and either (coring::testing's fault injector).
//
// Contract:
// - The address of a Completion is the operation's identity. It must stay valid
//   until the operation's final completion is delivered (for a multishot
//   operation, the one without completion::kMore), even when it was cancelled.
// - Completions are delivered from poll(), on the loop's thread, never from
//   start() or cancel(); a callback must not resume coroutines inline (it
//   schedules them), and may start or cancel operations.
// - A result is what the system call would return: >= 0, or -errno. EINTR may
//   come back (the caller decides whether to try again); ECANCELED means the
//   operation was cancelled before it finished.
// - A recv that names a BufferPool (IoRequest::buffers) gets its data in a
//   buffer of that pool, named by the completion (completion::buffer_id); the
//   buffer is the caller's until it recycles it. An empty pool is -ENOBUFS.
// - fds: a backend may keep state per fd (epoll's interest list) while
//   operations use it, and between them for sockets (recv, send, accept) and
//   requests marked fd_managed. Close such an fd through an IoOpcode::close
//   request, or call forget_fd() just before closing it yourself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "coring/runtime/buffer_pool.hpp"
#include "coring/runtime/clock.hpp"

namespace coring {

// The bits of a completion's `flags`.
namespace completion {
// The completion names a buffer of the request's pool: buffer_id(flags).
inline constexpr std::uint32_t kBuffer = 1U << 0;
// More completions of this operation follow (multishot); without it this is
// the operation's final completion.
inline constexpr std::uint32_t kMore = 1U << 1;
inline constexpr unsigned kBufferShift = 16;

[[nodiscard]] constexpr bool more(std::uint32_t flags) noexcept {
  return (flags & kMore) != 0;
}
[[nodiscard]] constexpr bool has_buffer(std::uint32_t flags) noexcept {
  return (flags & kBuffer) != 0;
}
[[nodiscard]] constexpr std::uint16_t buffer_id(std::uint32_t flags) noexcept {
  return static_cast<std::uint16_t>(flags >> kBufferShift);
}
[[nodiscard]] constexpr std::uint32_t with_buffer(std::uint16_t bid) noexcept {
  return kBuffer | (static_cast<std::uint32_t>(bid) << kBufferShift);
}
}  // namespace completion

struct Completion {
  // `res`: the operation's result (>= 0, or -errno); `flags`: completion::* bits.
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
  // recv: receive into a buffer taken from this pool (addr/len unused).
  BufferPool* buffers = nullptr;
  bool multishot = false;  // accept/recv/poll multishot
  // A multishot recv ends (final completion) once it has received this many
  // bytes; 0: no limit. A backend that cannot limit it fails the operation
  // with -EINVAL (io_uring before Linux 6.17).
  std::uint32_t multishot_limit = 0;
  // The caller closes `fd` only through an IoOpcode::close request, or calls
  // Backend::forget_fd() first: the backend may keep per-fd state (epoll's
  // registration) between operations. Always so for recv, send and accept.
  bool fd_managed = false;
};

enum class BackendKind : std::uint8_t {
  automatic,  // io_uring, or epoll when io_uring is unavailable
  io_uring,
  epoll
};

// "automatic", "io_uring", "epoll".
[[nodiscard]] const char* to_string(BackendKind kind) noexcept;

class Backend {
 public:
  virtual ~Backend() = default;

  // Which backend this is (a decorator answers for the one it wraps).
  [[nodiscard]] virtual BackendKind kind() const noexcept = 0;
  // One line: the backend and what it chose, e.g. "io_uring (SINGLE_ISSUER|DEFER_TASKRUN), ...".
  [[nodiscard]] virtual std::string describe() const = 0;
  // The thread that runs the loop calls this before it first starts anything.
  virtual void bind_to_current_thread() {}

  // Queues an operation; it is started by the next poll() at the latest. Never
  // drops it: a full submission queue is flushed (and completions reaped) first.
  virtual void start(const IoRequest& req, Completion* c) = 0;
  // Asks to cancel `c`. Its completion still arrives (normally -ECANCELED, or
  // its real result if it finished first).
  virtual void cancel(Completion* c) = 0;
  // Cancels every operation in flight.
  virtual void cancel_all() = 0;

  // Starts what is queued and delivers completions. Waits for at least one
  // completion until `timeout` (nullptr: no limit; zero: never blocks).
  // Returns the number of completions delivered.
  virtual std::size_t poll(const Duration* timeout) = 0;

  // Operations started whose final completion has not been delivered yet.
  [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;
  // Requests queued but not yet handed to the kernel.
  [[nodiscard]] virtual std::size_t pending_submissions() const noexcept = 0;

  // A pool of receive buffers for IoRequest::buffers (io_uring: a provided-
  // buffer ring registered with the kernel; epoll: buffers the backend hands to
  // recv(2)). Throws std::system_error / std::invalid_argument naming the cause.
  // The pool must outlive every operation that names it; it may outlive the
  // backend (the loop's services do).
  virtual std::unique_ptr<BufferPool> make_buffer_pool(const BufferPoolOptions& options) = 0;

  // `fd` is about to be closed without an IoOpcode::close request: forget any
  // state kept for it. Cancel its operations first (io_uring keeps them waiting
  // on the file; epoll ends any still waiting with -ECANCELED).
  virtual void forget_fd(int fd) noexcept { (void)fd; }
};

}  // namespace coring
