#include "coring/sync/pollable_queue.hpp"

#include <fmt/core.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>

namespace coring::detail {

int pq_make_eventfd() {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    throw std::system_error(
        errno, std::system_category(),
        "coring: PollableQueue::fd(): eventfd() failed (out of file descriptors? raise ulimit -n)");
  }
  return fd;
}

void pq_signal_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(fd, &one, sizeof(one));
  } while (r < 0 && errno == EINTR);
  // EAGAIN: the counter is at its maximum, so it is readable anyway.
}

void pq_reset_eventfd(int fd) noexcept {
  std::uint64_t value;
  ssize_t r;
  do {
    r = ::read(fd, &value, sizeof(value));
  } while (r < 0 && errno == EINTR);
  // EAGAIN: it was already 0.
}

void pq_close_eventfd(int fd) noexcept {
  ::close(fd);
}

void pq_report_destroyed(std::size_t waiters) noexcept {
  fmt::print(stderr, "coring: PollableQueue destroyed while {} task(s) were waiting on it\n",
             waiters);
  std::fflush(stderr);
}

void pq_throw_loop_push() {
  throw std::logic_error(
      "coring: PollableQueue::push() on a full queue would block the loop's thread; use "
      "try_push() or co_await push_async()");
}

void pq_throw_needs_loop() {
  throw std::logic_error(
      "coring: PollableQueue::pop() and push_async() must be awaited by a task on an EventLoop");
}

}  // namespace coring::detail
