// Helpers shared by the test files: real pipes, fd counting, stderr capture, and
// a Backend that forwards to io_uring while counting what the loop asks of it.
#pragma once

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

struct BackendCounters {
  std::atomic<std::uint64_t> starts{0};
  std::atomic<std::uint64_t> cancels{0};
  std::atomic<std::uint64_t> cancel_alls{0};
  std::atomic<std::uint64_t> polls{0};
  std::atomic<long> in_flight_at_destruction{-1};
};

// Forwards to the real io_uring backend; counts requests and records what was
// still in flight when the loop destroyed it.
class CountingBackend final : public coring::Backend {
 public:
  CountingBackend(std::unique_ptr<coring::Backend> inner, std::shared_ptr<BackendCounters> c)
      : inner_(std::move(inner)), c_(std::move(c)) {}
  ~CountingBackend() override {
    c_->in_flight_at_destruction = static_cast<long>(inner_->in_flight());
  }
  std::string describe() const override { return inner_->describe(); }
  void bind_to_current_thread() override { inner_->bind_to_current_thread(); }
  void start(const coring::IoRequest& req, coring::Completion* comp) override {
    ++c_->starts;
    inner_->start(req, comp);
  }
  void cancel(coring::Completion* comp) override {
    ++c_->cancels;
    inner_->cancel(comp);
  }
  void cancel_all() override {
    ++c_->cancel_alls;
    inner_->cancel_all();
  }
  std::size_t poll(const coring::Duration* timeout) override {
    ++c_->polls;
    return inner_->poll(timeout);
  }
  std::size_t in_flight() const noexcept override { return inner_->in_flight(); }
  std::size_t pending_submissions() const noexcept override {
    return inner_->pending_submissions();
  }
  ::io_uring* native_ring() noexcept override { return inner_->native_ring(); }

 private:
  std::unique_ptr<coring::Backend> inner_;
  std::shared_ptr<BackendCounters> c_;
};

inline coring::LoopOptions counting_options(const std::shared_ptr<BackendCounters>& c,
                                            coring::RingMode mode = coring::RingMode::automatic) {
  coring::LoopOptions o;
  o.ring_mode = mode;
  o.backend_factory = [c](const coring::LoopOptions& opts) -> std::unique_ptr<coring::Backend> {
    return std::make_unique<CountingBackend>(coring::make_uring_backend(opts), c);
  };
  return o;
}

}  // namespace coring_test
