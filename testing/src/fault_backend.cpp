// FaultBackend (see fault_backend.hpp for what it does).
//
// Implementation notes.
// - Synthetic completions wait in `queued_`; poll() moves them to
//   `delivering_` before calling any of them, so a callback that starts an
//   operation which is faulted again queues it for the next poll() (no
//   unbounded loop inside one poll), and a callback that cancels one still
//   waiting in this batch finds it there (and leaves it alone).
// - The PRNG is splitmix64: one 64-bit state, good enough to spread faults,
//   and the same sequence on every platform for a given seed.
#include "coring/testing/fault_backend.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace coring::testing {

const char* to_string(Fault f) noexcept {
  switch (f) {
    case Fault::enobufs:
      return "enobufs";
    case Fault::ecanceled:
      return "ecanceled";
    case Fault::eintr:
      return "eintr";
    case Fault::eagain:
      return "eagain";
    case Fault::econnreset:
      return "econnreset";
    case Fault::short_send:
      return "short_send";
    case Fault::short_read:
      return "short_read";
  }
  return "?";
}

const char* to_string(IoOpcode op) noexcept {
  switch (op) {
    case IoOpcode::nop:
      return "nop";
    case IoOpcode::read:
      return "read";
    case IoOpcode::write:
      return "write";
    case IoOpcode::poll_add:
      return "poll_add";
    case IoOpcode::close:
      return "close";
    case IoOpcode::recv:
      return "recv";
    case IoOpcode::send:
      return "send";
    case IoOpcode::accept:
      return "accept";
    case IoOpcode::connect:
      return "connect";
  }
  return "?";
}

std::string FaultStats::summary() const {
  std::string out = fmt::format("operations={}", operations.load(std::memory_order_relaxed));
  for (Fault f : kAllFaults) {
    if (const std::uint64_t n = injected(f); n != 0) out += fmt::format(" {}={}", to_string(f), n);
  }
  return out;
}

namespace {

int error_of(Fault f) noexcept {
  switch (f) {
    case Fault::enobufs:
      return ENOBUFS;
    case Fault::ecanceled:
      return ECANCELED;
    case Fault::eintr:
      return EINTR;
    case Fault::eagain:
      return EAGAIN;
    case Fault::econnreset:
      return ECONNRESET;
    case Fault::short_send:
    case Fault::short_read:
      break;
  }
  return 0;
}

}  // namespace

FaultBackend::FaultBackend(std::unique_ptr<Backend> inner, FaultPlan plan,
                           std::shared_ptr<FaultStats> stats)
    : ForwardingBackend(std::move(inner)),
      plan_(std::move(plan)),
      stats_(stats ? std::move(stats) : std::make_shared<FaultStats>()),
      rng_state_(plan_.seed) {
  if (!(plan_.rate >= 0 && plan_.rate <= 1)) {
    throw std::invalid_argument(
        fmt::format("coring::testing::FaultPlan: rate {} is not in [0, 1]", plan_.rate));
  }
}

// Synthetic completions still queued are dropped: the loop has drained (it
// polls until in_flight() is 0) or is being destroyed without having run.
FaultBackend::~FaultBackend() = default;

std::string FaultBackend::describe() const {
  std::string kinds;
  for (Fault f : plan_.kinds) {
    if (!kinds.empty()) kinds += ',';
    kinds += to_string(f);
  }
  std::string out =
      fmt::format("fault({}) seed={} rate={}", inner().describe(), plan_.seed, plan_.rate);
  if (!kinds.empty()) out += " kinds=" + kinds;
  if (!plan_.at.empty()) out += fmt::format(" at={}", plan_.at.size());
  if (plan_.tiny_ring) out += " tiny_ring";
  return out;
}

std::uint64_t FaultBackend::next_random() noexcept {
  // splitmix64
  std::uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool FaultBackend::applies(Fault f, const IoRequest& r) noexcept {
  const IoOpcode op = r.opcode;
  switch (f) {
    case Fault::enobufs:
      return op == IoOpcode::recv && r.buffers != nullptr;
    case Fault::ecanceled:
      return op == IoOpcode::recv || op == IoOpcode::send || op == IoOpcode::read ||
             op == IoOpcode::write || op == IoOpcode::connect || op == IoOpcode::poll_add;
    case Fault::eintr:
      return op != IoOpcode::close && op != IoOpcode::nop;
    case Fault::eagain:
      return op == IoOpcode::recv || op == IoOpcode::send || op == IoOpcode::accept ||
             op == IoOpcode::read || op == IoOpcode::write;
    case Fault::econnreset:
      return op == IoOpcode::recv || op == IoOpcode::send;
    case Fault::short_send:
      return op == IoOpcode::send && r.len > 1;
    case Fault::short_read:
      // A pooled recv takes the pool's buffer size: it cannot be shortened.
      return r.len > 1 && !r.multishot &&
             (op == IoOpcode::read || (op == IoOpcode::recv && r.buffers == nullptr));
  }
  return false;
}

bool FaultBackend::decide(const IoRequest& req, std::uint64_t index, Fault& out) noexcept {
  for (const auto& [n, f] : plan_.at) {
    if (n == index) {
      out = f;
      return applies(f, req);  // an exact fault that does not apply: none
    }
  }
  if (plan_.rate <= 0 || plan_.kinds.empty()) return false;
  // 53 random bits: a double uniform in [0, 1).
  const double u = static_cast<double>(next_random() >> 11) * 0x1.0p-53;
  if (u >= plan_.rate) return false;
  // Uniform over the kinds that apply (a kind listed twice counts twice).
  std::size_t n = 0;
  for (Fault f : plan_.kinds) n += applies(f, req) ? 1 : 0;
  if (n == 0) return false;
  std::size_t pick = static_cast<std::size_t>(next_random() % n);
  for (Fault f : plan_.kinds) {
    if (!applies(f, req)) continue;
    if (pick-- == 0) {
      out = f;
      return true;
    }
  }
  return false;
}

void FaultBackend::record(const FaultRecord& r) {
  stats_->by_kind[static_cast<std::size_t>(r.fault)].fetch_add(1, std::memory_order_relaxed);
  if (stats_->log.size() < FaultStats::kLogLimit) stats_->log.push_back(r);
}

void FaultBackend::start(const IoRequest& req, Completion* c) {
  const std::uint64_t index = started_++;
  stats_->operations.fetch_add(1, std::memory_order_relaxed);
  Fault f{};
  if (!decide(req, index, f)) {
    ForwardingBackend::start(req, c);
    return;
  }
  FaultRecord rec;
  rec.op = index;
  rec.opcode = req.opcode;
  rec.fault = f;
  rec.fd = req.fd;
  rec.len = req.len;
  if (f == Fault::short_send || f == Fault::short_read) {
    IoRequest shorter = req;
    shorter.len = 1 + static_cast<std::uint32_t>(next_random() % (req.len - 1));
    rec.new_len = shorter.len;
    record(rec);
    ForwardingBackend::start(shorter, c);
    return;
  }
  record(rec);
  queued_.push_back({c, -error_of(f)});
}

void FaultBackend::cancel(Completion* c) {
  // A synthetic completion is its operation's result already: it wins the race.
  for (const Synthetic& s : queued_) {
    if (s.c == c) return;
  }
  for (std::size_t i = delivered_; i < delivering_.size(); ++i) {
    if (delivering_[i].c == c) return;
  }
  ForwardingBackend::cancel(c);
}

std::size_t FaultBackend::deliver_synthetic() {
  if (queued_.empty()) return 0;
  delivering_.swap(queued_);
  delivered_ = 0;
  std::size_t n = 0;
  while (delivered_ < delivering_.size()) {
    const Synthetic s = delivering_[delivered_++];
    s.c->on_complete(s.c, s.res, 0);
    ++n;
  }
  delivering_.clear();
  delivered_ = 0;
  return n;
}

std::size_t FaultBackend::poll(const Duration* timeout) {
  std::size_t n = 0;
  if (queued_.empty()) {
    n = ForwardingBackend::poll(timeout);
  } else {
    const Duration zero{0};
    n = ForwardingBackend::poll(&zero);
  }
  return n + deliver_synthetic();
}

std::size_t FaultBackend::in_flight() const noexcept {
  return ForwardingBackend::in_flight() + queued_.size() + (delivering_.size() - delivered_);
}

std::size_t FaultBackend::pending_submissions() const noexcept {
  return ForwardingBackend::pending_submissions() + queued_.size() +
         (delivering_.size() - delivered_);
}

LoopOptions fault_options(FaultPlan plan, LoopOptions base, std::shared_ptr<FaultStats> stats) {
  base.backend_factory = [p = std::move(plan), st = std::move(stats)](const LoopOptions& opts) {
    LoopOptions inner = opts;
    inner.backend_factory = nullptr;
    if (p.tiny_ring) {
      inner.uring.sq_entries = 2;
      inner.uring.cq_entries = 4;
    }
    return std::unique_ptr<Backend>(std::make_unique<FaultBackend>(make_backend(inner), p, st));
  };
  return base;
}

std::uint64_t fault_seed(std::uint64_t fallback) {
  const char* v = std::getenv("CORING_FAULT_SEED");
  if (v == nullptr || *v == '\0') return fallback;
  errno = 0;
  char* end = nullptr;
  const unsigned long long seed = std::strtoull(v, &end, 0);
  if (errno != 0 || end == v || *end != '\0' || *v == '-') {
    throw std::invalid_argument(
        fmt::format("coring: CORING_FAULT_SEED={} is not a number (decimal, or hex with 0x)", v));
  }
  return seed;
}

}  // namespace coring::testing
