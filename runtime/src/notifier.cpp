#include "coring/runtime/notifier.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace coring {

Notifier::Notifier() {
  fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd_ < 0) {
    throw std::system_error(errno, std::system_category(),
                            "coring: eventfd() failed (out of file descriptors? raise ulimit -n)");
  }
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

void Notifier::write_one() noexcept {
  const std::uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(fd_, &one, sizeof(one));
  } while (r < 0 && errno == EINTR);
  // EAGAIN: the counter is at its maximum, so a read is due anyway.
  writes_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace coring
