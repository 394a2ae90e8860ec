// The epoll backend: the same operations as io_uring's, on readiness. It serves
// where io_uring is unavailable (Docker's default seccomp profile, containerd's
// RuntimeDefault, kernel.io_uring_disabled, gVisor...), chosen by
// LoopOptions::backend (automatic falls back to it) or CORING_BACKEND=epoll.
//
// How an operation runs: start() queues it; the next poll() tries it at once
// when its fd is known ready (send, and a recv/accept whose socket was readable
// last time), else parks it on the fd until epoll reports the fd ready, then
// does the system call (recv, send, accept4, connect's SO_ERROR, read, write)
// and queues the completion, which poll() delivers. Each fd is registered once,
// edge-triggered, for reading and writing: no epoll_ctl per operation.
//   - recv with a BufferPool takes a free buffer of the pool for each recv(2)
//     (none free: -ENOBUFS, as io_uring); multishot recv and accept keep the fd
//     armed and deliver one completion per buffer or connection, a bounded
//     number per readiness event so one busy socket cannot starve the others.
//     A recv that fills less than its buffer drained the socket: the next
//     recv waits for the next edge instead of asking for EAGAIN.
//   - read/write on a regular file (epoll refuses it: EPERM) run directly, in
//     poll(); on a pipe, eventfd or socket they wait for readiness.
//   - poll_add checks readiness with poll(2) before it parks (level-triggered,
//     as io_uring's), so a drained fd is never reported ready twice.
//   - close removes the fd from epoll (operations still parked on it end with
//     -ECANCELED) and closes it.
//   - cancel ends a queued or parked operation with -ECANCELED at once (the
//     completion comes from the next poll()).
// fds registered by read, write, poll_add or connect leave epoll when their
// last operation ends (an fd the application closes itself cannot linger);
// sockets used by recv, send and accept, and fds of requests marked
// IoRequest::fd_managed (the loop's wake-up eventfd), stay registered until
// closed through the backend or forget_fd().
// Side effect: the fd of a read, write, accept or connect is set O_NONBLOCK.
#pragma once

#include <memory>

#include "coring/runtime/backend.hpp"

namespace coring {

struct EpollOptions {
  // Events taken per epoll_wait.
  unsigned max_events = 256;
};

// Creates the epoll backend. Throws std::system_error if epoll_create1 fails.
std::unique_ptr<Backend> make_epoll_backend(const EpollOptions& options = {});

}  // namespace coring
