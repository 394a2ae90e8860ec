// Helpers shared by the test files: real pipes, fd counting, stderr capture, and
// a Backend that forwards to io_uring while counting what the loop asks of it.
#pragma once

#include "coring/testing/counting_backend.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <coring/coring.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace coring_test {

inline std::size_t count_open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct Pipe {
  int r = -1;
  int w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

inline int bytes_available(int fd) {
  int n = -1;
  if (::ioctl(fd, FIONREAD, &n) != 0) return -1;
  return n;
}

inline bool write_str(int fd, const std::string& s) {
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

// Redirects fd 2 to a temporary file while alive; finish() returns what was written.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    char path[] = "/tmp/coring_test_stderr_XXXXXX";
    file_ = ::mkstemp(path);
    ::unlink(path);
    saved_ = ::dup(2);
    ::dup2(file_, 2);
  }
  ~StderrCapture() { finish(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  std::string finish() {
    if (saved_ < 0) return text_;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
    ::lseek(file_, 0, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(file_, buf, sizeof buf)) > 0) text_.append(buf, static_cast<std::size_t>(n));
    ::close(file_);
    return text_;
  }

 private:
  int file_ = -1;
  int saved_ = -1;
  std::string text_;
};

using coring::testing::BackendCounters;
using coring::testing::CountingBackend;

// counting_options() with io_uring's ring forced to `mode` (the backend stays
// the one the environment chooses unless the mode asks for a ring).
inline coring::LoopOptions counting_options(const std::shared_ptr<BackendCounters>& c,
                                            coring::RingMode mode) {
  coring::LoopOptions o;
  o.uring.ring_mode = mode;
  if (mode != coring::RingMode::automatic) o.backend = coring::BackendKind::io_uring;
  return coring::testing::counting_options(c, o);
}

}  // namespace coring_test
