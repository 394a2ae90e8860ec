// RingProbe: stands between the loop (or a FaultBackend) and the io_uring
// backend and counts what the ring went through: starts that found the SQ full
// (the backend then flushes it first) and the times the kernel held completions
// in its overflow list (the CQ was full). On another backend it counts nothing.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "coring/runtime/uring_backend.hpp"
#include "coring/testing/forwarding_backend.hpp"

namespace coring_test {

struct RingCounts {
  std::uint64_t sq_full = 0;
  std::uint64_t cq_overflow = 0;
};

class RingProbe final : public coring::testing::ForwardingBackend {
 public:
  RingProbe(std::unique_ptr<coring::Backend> inner, std::shared_ptr<RingCounts> counts)
      : ForwardingBackend(std::move(inner)), counts_(std::move(counts)) {}
  void start(const coring::IoRequest& req, coring::Completion* c) override {
    if (::io_uring* r = coring::uring_native_ring(inner()); r != nullptr) {
      if (::io_uring_sq_space_left(r) == 0) ++counts_->sq_full;
    }
    probe();
    ForwardingBackend::start(req, c);
    probe();
  }
  std::size_t poll(const coring::Duration* timeout) override {
    probe();
    return ForwardingBackend::poll(timeout);
  }

 private:
  void probe() {
    if (::io_uring* r = coring::uring_native_ring(inner());
        r != nullptr && ::io_uring_cq_has_overflow(r)) {
      ++counts_->cq_overflow;
    }
  }
  std::shared_ptr<RingCounts> counts_;
};

}  // namespace coring_test
