// ForwardingBackend: a Backend that hands every call to another one. Derive
// from it to watch or change what a loop asks of its backend and override only
// what you need: the automatic fallback's epoll backend (which adds why to
// describe()), coring::testing's CountingBackend and FaultBackend.
//
// Ownership: owns the inner backend; destroys it first in its own destructor
// body's end (so a derived destructor may still read it).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "coring/runtime/backend.hpp"

namespace coring {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) noexcept : inner_(std::move(inner)) {}

  BackendKind kind() const noexcept override { return inner_->kind(); }
  std::string describe() const override { return inner_->describe(); }
  void bind_to_current_thread() override { inner_->bind_to_current_thread(); }
  void start(const IoRequest& req, Completion* c) override { inner_->start(req, c); }
  void cancel(Completion* c) override { inner_->cancel(c); }
  void cancel_all() override { inner_->cancel_all(); }
  std::size_t poll(const Duration* timeout) override { return inner_->poll(timeout); }
  std::size_t in_flight() const noexcept override { return inner_->in_flight(); }
  std::size_t pending_submissions() const noexcept override {
    return inner_->pending_submissions();
  }
  std::unique_ptr<BufferPool> make_buffer_pool(const BufferPoolOptions& options) override {
    return inner_->make_buffer_pool(options);
  }
  void forget_fd(int fd) noexcept override { inner_->forget_fd(fd); }

  [[nodiscard]] Backend& inner() noexcept { return *inner_; }
  [[nodiscard]] const Backend& inner() const noexcept { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace coring
