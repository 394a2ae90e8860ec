// CountingBackend: counts what a loop asks of its backend (starts, cancels,
// polls) and records how many operations were still in flight when the loop
// destroyed it -- the check that a test left nothing in the kernel.
//
//   auto counters = std::make_shared<coring::testing::BackendCounters>();
//   coring::EventLoop loop(coring::testing::counting_options(counters));
//   ...
//   CHECK(counters->in_flight_at_destruction == 0);
//
// The counters are atomics so another thread may read them while the loop runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "coring/runtime/event_loop.hpp"
#include "coring/testing/forwarding_backend.hpp"

namespace coring::testing {

struct BackendCounters {
  std::atomic<std::uint64_t> starts{0};
  std::atomic<std::uint64_t> cancels{0};
  std::atomic<std::uint64_t> cancel_alls{0};
  std::atomic<std::uint64_t> polls{0};
  std::atomic<long> in_flight_at_destruction{-1};
};

class CountingBackend final : public ForwardingBackend {
 public:
  CountingBackend(std::unique_ptr<Backend> inner, std::shared_ptr<BackendCounters> c)
      : ForwardingBackend(std::move(inner)), c_(std::move(c)) {}
  ~CountingBackend() override {
    c_->in_flight_at_destruction = static_cast<long>(inner().in_flight());
  }
  void start(const IoRequest& req, Completion* comp) override {
    ++c_->starts;
    ForwardingBackend::start(req, comp);
  }
  void cancel(Completion* comp) override {
    ++c_->cancels;
    ForwardingBackend::cancel(comp);
  }
  void cancel_all() override {
    ++c_->cancel_alls;
    ForwardingBackend::cancel_all();
  }
  std::size_t poll(const Duration* timeout) override {
    ++c_->polls;
    return ForwardingBackend::poll(timeout);
  }

 private:
  std::shared_ptr<BackendCounters> c_;
};

// `base` with a backend_factory that wraps the backend `base` chooses in a
// CountingBackend reporting to `c`.
inline LoopOptions counting_options(const std::shared_ptr<BackendCounters>& c,
                                    LoopOptions base = {}) {
  base.backend_factory = [c](const LoopOptions& opts) -> std::unique_ptr<Backend> {
    return std::make_unique<CountingBackend>(make_backend(opts), c);
  };
  return base;
}

}  // namespace coring::testing
