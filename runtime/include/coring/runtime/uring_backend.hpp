// The io_uring backend: its options, its set-up errors, and the raw ring for
// code that needs io_uring itself (tests of the kernel's behaviour).
//
// Set-up tries SINGLE_ISSUER|DEFER_TASKRUN (6.1+), then COOP_TASKRUN (5.19+),
// then a plain ring (RingMode::automatic); only EINVAL moves on. Any other
// errno throws std::system_error whose message names the cause and the fix
// (describe_uring_setup_error). uring_unavailable() tells which errnos mean
// "this process may not use io_uring at all" -- the ones an automatic
// EventLoop falls back to epoll on.
#pragma once

#include <memory>
#include <string>

#include "coring/runtime/backend.hpp"

struct io_uring;
struct io_uring_params;

namespace coring {

// How the ring is set up. `automatic` tries each in this order.
enum class RingMode { automatic, defer_taskrun, coop_taskrun, plain };

// The kernel entry points used to set up a ring. Tests replace them to make
// set-up fail with a chosen errno; the defaults call liburing and read /proc.
struct UringSyscalls {
  // Returns 0 or -errno, like io_uring_queue_init_params.
  int (*queue_init_params)(unsigned entries, ::io_uring* ring, ::io_uring_params* p) = nullptr;
  // The value of /proc/sys/kernel/io_uring_disabled, or -1 when it does not exist.
  int (*read_io_uring_disabled)() = nullptr;
};

struct UringOptions {
  unsigned sq_entries = 256;
  unsigned cq_entries = 0;  // 0: four times sq_entries
  RingMode ring_mode = RingMode::automatic;
  // The set-up entry points (tests make set-up fail with a chosen errno, also
  // under an automatic EventLoop, to see it fall back).
  UringSyscalls syscalls;
};

struct LoopOptions;

// Creates the io_uring backend. Throws std::system_error naming the cause and the
// fix when io_uring cannot be set up. `syscalls` (when set) replaces
// options.syscalls.
std::unique_ptr<Backend> make_uring_backend(const UringOptions& options,
                                            const UringSyscalls& syscalls = {});
// The same with `options.uring`.
std::unique_ptr<Backend> make_uring_backend(const LoopOptions& options,
                                            const UringSyscalls& syscalls = {});

// The message make_uring_backend throws for a set-up failure with `err`
// (a positive errno); exposed for tests and for programs that want to check early.
std::string describe_uring_setup_error(int err, int io_uring_disabled);

// True for the set-up errnos that mean io_uring is not available to this
// process (ENOSYS: no io_uring in the kernel; EPERM/EACCES: a seccomp profile
// or kernel.io_uring_disabled) -- not for ENOMEM, EMFILE or EINVAL.
[[nodiscard]] bool uring_unavailable(int err) noexcept;

// The ring under `backend` when it is the io_uring backend, else nullptr.
[[nodiscard]] ::io_uring* uring_native_ring(Backend& backend) noexcept;

}  // namespace coring
