// The io_uring backend.
//
// Implementation notes.
// - Set-up tries SINGLE_ISSUER|DEFER_TASKRUN (6.1+), then COOP_TASKRUN (5.19+),
//   then a plain ring; only EINVAL (flag unknown to this kernel) moves on to the
//   next mode. Any other errno is a set-up failure with an explanation.
// - With SINGLE_ISSUER the ring is created disabled (R_DISABLED) and enabled by
//   the thread that first runs the loop, so a loop may be built on one thread and
//   run on another.
// - Completions are copied out of the CQ ring in batches before any callback
//   runs, so a callback may start operations (even flush a full SQ, which reaps)
//   without re-delivering a CQE. CQ overflow (kept by the kernel with
//   IORING_FEAT_NODROP) is flushed with io_uring_get_events and drained too.
// - Cancel requests carry user_data 0; their own CQEs are ignored.
// - CQE flags are passed on as coring's completion flags: IORING_CQE_F_BUFFER,
//   IORING_CQE_F_MORE and the buffer id sit where completion::kBuffer, kMore
//   and kBufferShift say (checked below); the other bits are masked off.
// - A BufferPool is a provided-buffer ring (IORING_REGISTER_PBUF_RING). Debian's
//   liburing 2.3 has no io_uring_setup_buf_ring (2.4+): the ring memory is
//   mmap()ed here and registered with io_uring_register_buf_ring.
#include <fmt/core.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/uring_backend.hpp"

namespace coring {
namespace {

static_assert(IORING_CQE_F_BUFFER == completion::kBuffer);
static_assert(IORING_CQE_F_MORE == completion::kMore);
static_assert(IORING_CQE_BUFFER_SHIFT == completion::kBufferShift);
constexpr std::uint32_t kFlagsPassed = completion::kBuffer | completion::kMore | 0xffff0000U;

// A BufferPool registered with the ring: the kernel picks a free buffer when
// data arrives for a recv that names the pool's group.
class UringBufferRing final : public BufferPool {
 public:
  UringBufferRing(io_uring* ring, const BufferPoolOptions& options)
      : BufferPool(options), ring_(ring) {
    const std::uint32_t n = options_.entries;
    ring_bytes_ = static_cast<std::size_t>(n) * sizeof(io_uring_buf);
    void* mem =
        ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
      throw std::system_error(errno, std::system_category(), "coring: mmap of the buffer ring");
    }
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
    reg.ring_entries = n;
    reg.bgid = options_.group;
    const int r = io_uring_register_buf_ring(ring_, &reg, 0);
    if (r < 0) {
      ::munmap(br_, ring_bytes_);
      throw std::system_error(
          -r, std::system_category(),
          -r == EINVAL ? "coring: io_uring_register_buf_ring failed (EINVAL): this kernel has no "
                         "provided-buffer rings (Linux 5.19+), or buffer group " +
                             std::to_string(options_.group) + " is already registered on this ring"
                       : "coring: io_uring_register_buf_ring failed");
    }
    registered_ = true;
    io_uring_buf_ring_init(br_);
    const int mask = io_uring_buf_ring_mask(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      io_uring_buf_ring_add(br_, data(static_cast<std::uint16_t>(i)), options_.buffer_size,
                            static_cast<unsigned short>(i), mask, static_cast<int>(i));
    }
    io_uring_buf_ring_advance(br_, static_cast<int>(n));
  }
  ~UringBufferRing() override {
    if (registered_ && ring_ != nullptr) io_uring_unregister_buf_ring(ring_, options_.group);
    ::munmap(br_, ring_bytes_);
  }
  void forget_backend() noexcept override { ring_ = nullptr; }

 private:
  void give_back(std::uint16_t bid) noexcept override {
    io_uring_buf_ring_add(br_, data(bid), options_.buffer_size, bid,
                          io_uring_buf_ring_mask(options_.entries), 0);
    io_uring_buf_ring_advance(br_, 1);
  }

  io_uring* ring_;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t ring_bytes_ = 0;
  bool registered_ = false;
};

int default_queue_init(unsigned entries, io_uring* ring, io_uring_params* p) {
  return io_uring_queue_init_params(entries, ring, p);
}

int default_read_io_uring_disabled() {
  std::FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r");
  if (f == nullptr) return -1;
  int v = -1;
  if (std::fscanf(f, "%d", &v) != 1) v = -1;
  std::fclose(f);
  return v;
}

struct ModeAttempt {
  RingMode mode;
  unsigned flags;
  const char* name;
};

constexpr ModeAttempt kAttempts[] = {
    {RingMode::defer_taskrun,
     IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
         IORING_SETUP_SUBMIT_ALL,
     "SINGLE_ISSUER|DEFER_TASKRUN"},
    {RingMode::coop_taskrun,
     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
     "COOP_TASKRUN"},
    {RingMode::plain, IORING_SETUP_SUBMIT_ALL, "plain"},
    {RingMode::plain, 0, "plain"},
};

class UringBackend final : public Backend {
  struct Cqe;

 public:
  UringBackend(const UringOptions& opt, const UringSyscalls& sys) {
    auto init = sys.queue_init_params != nullptr            ? sys.queue_init_params
                : opt.syscalls.queue_init_params != nullptr ? opt.syscalls.queue_init_params
                                                            : &default_queue_init;
    auto disabled = sys.read_io_uring_disabled != nullptr ? sys.read_io_uring_disabled
                    : opt.syscalls.read_io_uring_disabled != nullptr
                        ? opt.syscalls.read_io_uring_disabled
                        : &default_read_io_uring_disabled;
    const unsigned sq = opt.sq_entries == 0 ? 256 : opt.sq_entries;
    const unsigned cq = opt.cq_entries == 0 ? sq * 4 : opt.cq_entries;
    int err = EINVAL;
    for (const ModeAttempt& a : kAttempts) {
      if (opt.ring_mode != RingMode::automatic && opt.ring_mode != a.mode) continue;
      io_uring_params p{};
      p.flags = a.flags | IORING_SETUP_CQSIZE;
      p.cq_entries = cq;
      const int r = init(sq, &ring_, &p);
      if (r == 0) {
        mode_ = a.name;
        flags_ = p.flags;
        features_ = p.features;
        sq_entries_ = p.sq_entries;
        cq_entries_ = p.cq_entries;
        ok_ = true;
        break;
      }
      err = -r;
      if (err != EINVAL) break;
    }
    if (!ok_) {
      throw std::system_error(err, std::system_category(),
                              describe_uring_setup_error(err, disabled()));
    }
    batch_.resize(std::min<unsigned>(cq_entries_, 256));
  }

  ~UringBackend() override {
    if (ok_) io_uring_queue_exit(&ring_);
  }

  BackendKind kind() const noexcept override { return BackendKind::io_uring; }

  std::string describe() const override {
    return fmt::format("io_uring ({}), sq={} cq={}, ext_arg={}, nodrop={}", mode_, sq_entries_,
                       cq_entries_, (features_ & IORING_FEAT_EXT_ARG) != 0 ? "yes" : "no",
                       (features_ & IORING_FEAT_NODROP) != 0 ? "yes" : "no");
  }

  void bind_to_current_thread() override {
    if ((flags_ & IORING_SETUP_R_DISABLED) == 0 || enabled_) return;
    // Debian's liburing 2.3 declares io_uring_enable_rings but does not export it.
    const long r =
        ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    if (r < 0) {
      throw std::system_error(
          errno, std::system_category(),
          "coring: enabling the io_uring ring (IORING_REGISTER_ENABLE_RINGS) failed");
    }
    enabled_ = true;
  }

  void start(const IoRequest& req, Completion* c) override {
    io_uring_sqe* sqe = get_sqe();
    prepare(sqe, req);
    io_uring_sqe_set_data(sqe, c);
    ++in_flight_;
  }

  void cancel(Completion* c) override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(c), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }

  void cancel_all() override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, 0);
  }

  std::size_t poll(const Duration* timeout) override {
    if (!stashed_.empty()) {
      // Completions a full SQ made start() take out of the ring: deliver them
      // without waiting (and hand over what is queued).
      if (io_uring_sq_ready(&ring_) != 0) enter_nowait();
      return reap();
    }
    if (timeout != nullptr && timeout->count() <= 0) {
      if (io_uring_sq_ready(&ring_) == 0 && in_flight_ == 0) return 0;
      if (io_uring_sq_ready(&ring_) == 0 && (flags_ & IORING_SETUP_DEFER_TASKRUN) == 0) {
        return reap();  // completions are visible without entering the kernel
      }
      enter_nowait();
      return reap();
    }
    __kernel_timespec ts{};
    __kernel_timespec* tsp = nullptr;
    if (timeout != nullptr) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count();
      ts.tv_sec = ns / 1'000'000'000;
      ts.tv_nsec = ns % 1'000'000'000;
      tsp = &ts;
    }
    if (io_uring_cq_ready(&ring_) == 0) {
      io_uring_cqe* cqe = nullptr;
      for (;;) {
        const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
        if (r >= 0 || r == -ETIME || r == -EINTR) break;
        if (r == -EBUSY || r == -EAGAIN) {
          if (reap() > 0) break;  // the kernel wants us to make room first
          continue;
        }
        throw_enter_error(r);
      }
    } else if (io_uring_sq_ready(&ring_) != 0) {
      enter_nowait();
    }
    return reap();
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }
  std::size_t pending_submissions() const noexcept override {
    return io_uring_sq_ready(const_cast<io_uring*>(&ring_));
  }
  std::unique_ptr<BufferPool> make_buffer_pool(const BufferPoolOptions& options) override {
    return std::make_unique<UringBufferRing>(&ring_, options);
  }
  io_uring* ring() noexcept { return &ring_; }

 private:
  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      // SQ full: hand what is queued to the kernel; if it pushes back, make room in the CQ.
      const int r = io_uring_submit(&ring_);
      if (r < 0 && r != -EINTR) {
        if (r == -EBUSY || r == -EAGAIN) {
          // The kernel wants CQ room first. start() must not deliver
          // completions: move them out of the ring, for poll() to deliver.
          stash();
        } else {
          throw_enter_error(r);
        }
      }
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void enter_nowait() {
    for (;;) {
      const int r = (flags_ & IORING_SETUP_DEFER_TASKRUN) != 0
                        ? io_uring_submit_and_get_events(&ring_)
                        : io_uring_submit(&ring_);
      if (r >= 0) return;
      if (r == -EINTR) continue;
      if (r == -EBUSY || r == -EAGAIN) {
        reap();
        return;
      }
      throw_enter_error(r);
    }
  }

  [[noreturn]] void throw_enter_error(int r) {
    if (r == -EEXIST) {
      throw std::system_error(-r, std::system_category(),
                              "coring: this EventLoop's ring was used from a second thread; a "
                              "loop and its tasks belong to the thread that first ran it");
    }
    throw std::system_error(-r, std::system_category(), "coring: io_uring_enter failed");
  }

  // Moves up to `max` CQEs out of the ring into `out` (flushing the kernel's
  // overflow list when the ring is empty); returns how many.
  unsigned take(Cqe* out, unsigned max) {
    io_uring_cqe* cqes[256];
    max = std::min(max, 256U);
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, max);
    if (n == 0) {
      if (!io_uring_cq_has_overflow(&ring_)) return 0;
      io_uring_get_events(&ring_);
      n = io_uring_peek_batch_cqe(&ring_, cqes, max);
    }
    for (unsigned i = 0; i < n; ++i) out[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&ring_, n);
    return n;
  }

  // Moves every CQE out of the ring into `stashed_` without running a callback.
  void stash() {
    Cqe got[256];
    while (const unsigned n = take(got, 256)) stashed_.insert(stashed_.end(), got, got + n);
  }

  // Runs the completion's callback unless it is one of our cancel requests.
  bool deliver(const Cqe& e) {
    if (e.user_data == 0) return false;
    if ((e.flags & IORING_CQE_F_MORE) == 0) --in_flight_;
    auto* c = reinterpret_cast<Completion*>(e.user_data);
    c->on_complete(c, e.res, e.flags & kFlagsPassed);
    return true;
  }

  std::size_t reap() {
    std::size_t delivered = 0;
    if (!stashed_.empty()) {
      // Moved out of the ring by a start() that found the SQ full: first, in order.
      std::vector<Cqe> earlier;
      earlier.swap(stashed_);
      for (const Cqe& e : earlier) delivered += deliver(e) ? 1 : 0;
    }
    // Copied out before any callback runs: a callback may start operations
    // (even stash, on a full SQ) without a CQE being seen twice.
    while (const unsigned n = take(batch_.data(), static_cast<unsigned>(batch_.size()))) {
      for (unsigned i = 0; i < n; ++i) delivered += deliver(batch_[i]) ? 1 : 0;
    }
    return delivered;
  }

  static void prepare(io_uring_sqe* sqe, const IoRequest& r) {
    switch (r.opcode) {
      case IoOpcode::nop:
        io_uring_prep_nop(sqe);
        break;
      case IoOpcode::read:
        io_uring_prep_read(sqe, r.fd, r.addr, r.len, r.offset);
        break;
      case IoOpcode::write:
        io_uring_prep_write(sqe, r.fd, r.addr, r.len, r.offset);
        break;
      case IoOpcode::poll_add:
        if (r.multishot) {
          io_uring_prep_poll_multishot(sqe, r.fd, r.len);
        } else {
          io_uring_prep_poll_add(sqe, r.fd, r.len);
        }
        break;
      case IoOpcode::close:
        io_uring_prep_close(sqe, r.fd);
        break;
      case IoOpcode::recv:
        if (r.multishot) {
          io_uring_prep_recv_multishot(sqe, r.fd, r.addr, r.len, static_cast<int>(r.op_flags));
          // The total byte limit goes in the SQE's optlen, which liburing 2.3
          // still calls file_index (Linux 6.17+; older kernels give -EINVAL).
          sqe->file_index = r.multishot_limit;
        } else {
          io_uring_prep_recv(sqe, r.fd, r.addr, r.len, static_cast<int>(r.op_flags));
        }
        break;
      case IoOpcode::send:
        io_uring_prep_send(sqe, r.fd, r.addr, r.len, static_cast<int>(r.op_flags));
        break;
      case IoOpcode::accept:
        if (r.multishot) {
          io_uring_prep_multishot_accept(sqe, r.fd, static_cast<sockaddr*>(r.addr),
                                         static_cast<socklen_t*>(r.addr2),
                                         static_cast<int>(r.op_flags));
        } else {
          io_uring_prep_accept(sqe, r.fd, static_cast<sockaddr*>(r.addr),
                               static_cast<socklen_t*>(r.addr2), static_cast<int>(r.op_flags));
        }
        break;
      case IoOpcode::connect:
        io_uring_prep_connect(sqe, r.fd, static_cast<const sockaddr*>(r.addr), r.len);
        break;
    }
    if (r.buffers != nullptr) {
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = r.buffers->group();
    }
  }

  struct Cqe {
    std::uint64_t user_data;
    int res;
    std::uint32_t flags;
  };

  io_uring ring_{};
  bool ok_ = false;
  bool enabled_ = false;
  const char* mode_ = "";
  unsigned flags_ = 0;
  unsigned features_ = 0;
  unsigned sq_entries_ = 0;
  unsigned cq_entries_ = 0;
  std::size_t in_flight_ = 0;
  std::vector<Cqe> batch_;
  std::vector<Cqe> stashed_;  // taken out of the ring by start(), delivered by poll()
};

}  // namespace

std::string describe_uring_setup_error(int err, int io_uring_disabled) {
  switch (err) {
    case ENOSYS:
      return "coring: io_uring is not available (io_uring_setup: ENOSYS): the kernel is too old "
             "(io_uring needs Linux 5.1; coring wants 5.19 or newer) or was built without "
             "CONFIG_IO_URING. Fix: run on a newer kernel built with io_uring.";
    case EPERM:
      if (io_uring_disabled > 0) {
        return fmt::format(
            "coring: io_uring is disabled by the sysctl kernel.io_uring_disabled={} "
            "(io_uring_setup: EPERM). Fix: `sysctl -w kernel.io_uring_disabled=0`{}",
            io_uring_disabled,
            io_uring_disabled == 1
                ? ", or run as a member of the group named by kernel.io_uring_group."
                : ".");
      }
      return "coring: io_uring_setup was denied (EPERM) although io_uring is not disabled by "
             "sysctl: most likely a seccomp profile blocks it, as container runtimes' default "
             "profiles do. Fix: allow io_uring_setup, io_uring_enter and io_uring_register in "
             "the profile (e.g. docker run --security-opt seccomp=<profile>).";
    case EACCES:
      return "coring: io_uring_setup was denied (EACCES): a security module (SELinux, AppArmor) "
             "or the kernel.io_uring_group setting keeps this process from using io_uring. Fix: "
             "allow io_uring in the policy, or run on the epoll backend "
             "(LoopOptions::backend = BackendKind::epoll, or CORING_BACKEND=epoll).";
    case ENOMEM: {
      rlimit rl{};
      std::string limit = "unknown";
      if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
        limit = rl.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                             : fmt::format("{} bytes", rl.rlim_cur);
      }
      return fmt::format(
          "coring: io_uring_setup failed with ENOMEM: the ring's memory could not be "
          "allocated or locked (RLIMIT_MEMLOCK is {}; kernels before 5.12 charge rings to it). "
          "Fix: raise the limit (`ulimit -l`, LimitMEMLOCK= in systemd, --ulimit memlock in "
          "docker) or use fewer ring entries (LoopOptions::uring.sq_entries).",
          limit);
    }
    case EINVAL:
      return "coring: io_uring_setup rejected every ring mode coring tries (EINVAL): the kernel's "
             "io_uring is too old for the parameters used. Fix: run on Linux 5.19 or newer, or "
             "use fewer ring entries.";
    case EMFILE:
    case ENFILE:
      return fmt::format(
          "coring: io_uring_setup failed: {} (out of file descriptors). Fix: close "
          "descriptors or raise `ulimit -n`.",
          std::strerror(err));
    default:
      return fmt::format("coring: io_uring_setup failed: {} (errno {})", std::strerror(err), err);
  }
}

std::unique_ptr<Backend> make_uring_backend(const UringOptions& options,
                                            const UringSyscalls& syscalls) {
  return std::make_unique<UringBackend>(options, syscalls);
}

std::unique_ptr<Backend> make_uring_backend(const LoopOptions& options,
                                            const UringSyscalls& syscalls) {
  return make_uring_backend(options.uring, syscalls);
}

bool uring_unavailable(int err) noexcept {
  return err == ENOSYS || err == EPERM || err == EACCES;
}

io_uring* uring_native_ring(Backend& backend) noexcept {
  auto* u = dynamic_cast<UringBackend*>(&backend);
  return u != nullptr ? u->ring() : nullptr;
}

}  // namespace coring
