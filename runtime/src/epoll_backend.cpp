// The epoll backend (see epoll_backend.hpp for what it does).
//
// Implementation notes.
// - Every started operation gets an Op record (from chunks of 64, reused
//   through a free list), found by its Completion* in `ops_` (an open-addressing
//   table) so that cancel() can end it wherever it is: queued in `submit_` (not
//   tried yet) or parked on its fd's list. Records and table slots are what an
//   idle connection costs here beyond io_uring's: no malloc per operation.
// - FdState per fd (slots in chunks of 256, indexed by fd, never moved), with a
//   generation number carried in
//   each epoll_event so an event for an fd closed and reused within one batch is
//   recognised as stale. `readable`/`writable` are the edge-triggered readiness
//   we last learned: set by an event, cleared by EAGAIN (or a short recv).
// - Completions are queued in `ready_` and delivered by poll() from a swapped
//   copy, so a callback may start (queued for the next poll) or cancel
//   (queued behind) operations.
// - `in_flight_` counts operations until their final completion is delivered,
//   as on io_uring.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

#include "coring/runtime/epoll_backend.hpp"

namespace coring {
namespace {

constexpr unsigned kMaxPerEvent = 32;  // multishot completions per readiness event
constexpr unsigned kMaxSkippedWaits = 8;

class EpollBufferPool final : public BufferPool {
 public:
  explicit EpollBufferPool(const BufferPoolOptions& o) : BufferPool(o) {
    free_.reserve(o.entries);
    for (std::uint32_t i = o.entries; i-- > 0;) free_.push_back(static_cast<std::uint16_t>(i));
  }
  // A free buffer, or false when none is left.
  bool pop(std::uint16_t& bid) noexcept {
    if (free_.empty()) return false;
    bid = free_.back();
    free_.pop_back();
    return true;
  }
  // A buffer popped but not filled goes back without having been in use.
  void unpop(std::uint16_t bid) noexcept { free_.push_back(bid); }

 private:
  void give_back(std::uint16_t bid) noexcept override { free_.push_back(bid); }
  std::vector<std::uint16_t> free_;  // capacity `entries`: push_back never allocates
};

enum : std::uint8_t { kWantIn = 1, kWantOut = 2 };

// Completion* -> record, open addressing with linear probing and
// backward-shift deletion (no tombstones); at most half full.
template <class Rec>
class CompletionTable {
 public:
  Rec* find(const Completion* c) const noexcept {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = home(c);; i = (i + 1) & mask()) {
      Rec* r = slots_[i];
      if (r == nullptr) return nullptr;
      if (r->c == c) return r;
    }
  }
  void insert(Rec* rec) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    place(rec);
    ++count_;
  }
  void erase(const Completion* c) noexcept {
    if (slots_.empty()) return;
    std::size_t i = home(c);
    for (;; i = (i + 1) & mask()) {
      if (slots_[i] == nullptr) return;
      if (slots_[i]->c == c) break;
    }
    // Shift later members of the probe run back into the hole.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask(); slots_[j] != nullptr; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j]->c);
      // Movable into the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = nullptr;
    --count_;
  }
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  template <class F>
  void for_each(F&& f) const {
    for (Rec* r : slots_) {
      if (r != nullptr) f(r);
    }
  }

 private:
  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t home(const Completion* c) const noexcept {
    const auto v = reinterpret_cast<std::uintptr_t>(c) >> 3;
    return static_cast<std::size_t>((v * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  void place(Rec* rec) noexcept {
    std::size_t i = home(rec->c);
    while (slots_[i] != nullptr) i = (i + 1) & mask();
    slots_[i] = rec;
  }
  void grow() {
    std::vector<Rec*> old;
    old.swap(slots_);
    const std::size_t n = old.empty() ? 64 : old.size() * 2;
    slots_.assign(n, nullptr);
    shift_ = 64;
    for (std::size_t m = n; m > 1; m >>= 1) --shift_;
    for (Rec* r : old) {
      if (r != nullptr) place(r);
    }
  }

  std::vector<Rec*> slots_;
  std::size_t count_ = 0;
  unsigned shift_ = 64;
};

class EpollBackend final : public Backend {
 public:
  explicit EpollBackend(const EpollOptions& o)
      : max_events_(o.max_events == 0 ? 256 : o.max_events), events_(max_events_) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      throw std::system_error(errno, std::system_category(), "coring: epoll_create1 failed");
    }
  }
  ~EpollBackend() override { ::close(ep_); }

  BackendKind kind() const noexcept override { return BackendKind::epoll; }
  std::string describe() const override {
    return fmt::format("epoll (edge-triggered), max_events={}", max_events_);
  }

  void start(const IoRequest& req, Completion* c) override {
    Op* op = new_op();
    op->req = req;
    op->c = c;
    ops_.insert(op);
    submit_.push_back(op);
    ++in_flight_;
  }

  void cancel(Completion* c) override {
    Op* op = ops_.find(c);
    if (op == nullptr) return;  // finished already: its completion is queued
    if (cancellable(op)) finish(op, -ECANCELED);
  }

  void cancel_all() override {
    std::vector<Op*> all;
    all.reserve(ops_.size());
    ops_.for_each([&all](Op* op) {
      if (cancellable(op)) all.push_back(op);
    });
    for (Op* op : all) finish(op, -ECANCELED);
  }

  std::size_t poll(const Duration* timeout) override {
    run_submissions();
    run_retries();
    bool wait = true;
    int wait_ms = -1;
    timespec ts{};
    const timespec* tsp = nullptr;
    if (!ready_.empty() || !retry_.empty()) {
      // Something to deliver: look at epoll only now and then, so that a busy
      // loop still sees the other fds.
      if (parked_ == 0 || ++skipped_waits_ < kMaxSkippedWaits) wait = false;
      wait_ms = 0;
      tsp = &ts;
    } else if (timeout != nullptr) {
      const auto ns = std::max<std::int64_t>(0, std::chrono::nanoseconds(*timeout).count());
      ts.tv_sec = ns / 1'000'000'000;
      ts.tv_nsec = ns % 1'000'000'000;
      tsp = &ts;
      wait_ms = static_cast<int>(std::min<std::int64_t>((ns + 999'999) / 1'000'000, 1 << 30));
      if (ns == 0 && parked_ == 0) wait = false;
    }
    if (wait) {
      skipped_waits_ = 0;
      wait_for_events(tsp, wait_ms);
    }
    return deliver();
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }
  std::size_t pending_submissions() const noexcept override { return submit_.size(); }

  std::unique_ptr<BufferPool> make_buffer_pool(const BufferPoolOptions& options) override {
    return std::make_unique<EpollBufferPool>(options);
  }

  void forget_fd(int fd) noexcept override {
    FdState* s = state_of(fd);
    if (s == nullptr) return;
    drop_state(s, true);
  }

 private:
  struct FdState;
  struct Op {
    IoRequest req;
    Completion* c = nullptr;
    FdState* fd = nullptr;  // set while parked
    Op* prev = nullptr;
    Op* next = nullptr;
    EpollBufferPool* pool = nullptr;
    std::uint32_t received = 0;  // multishot recv: bytes so far
    FdState* state = nullptr;    // the fd's state once the op has looked at it
    std::uint8_t want = 0;       // kWantIn / kWantOut while parked
    bool connecting = false;     // connect: EINPROGRESS seen, waiting for writability
    bool queued = true;          // in the submission batch
    bool dead = false;           // finished while queued
  };
  struct FdState {
    bool live = false;  // in use (the slot of an fd we know)
    int fd = -1;
    std::uint32_t gen = 0;
    bool registered = false;
    bool pollable = true;  // false: a regular file (epoll refuses it)
    bool sticky = false;   // stays registered while it has no operation
    bool readable = false;
    bool writable = true;
    bool in_retry = false;
    bool nonblocking = false;  // O_NONBLOCK set (by us or already)
    bool hup = false;          // the peer hung up (EPOLLRDHUP/HUP/ERR seen)
    bool unseekable = false;   // pread/pwrite said ESPIPE: the offset is ignored
    std::int8_t stream = -1;   // a stream socket? (-1: not asked yet)
    std::uint32_t last_events = 0;
    Op* head = nullptr;
    Op* tail = nullptr;
  };

  // A close runs (at the next poll) whatever happens, as on io_uring: a
  // cancelled close would leak its fd.
  static bool cancellable(const Op* op) noexcept { return op->req.opcode != IoOpcode::close; }

  // ---- records ----
  Op* new_op() {
    if (op_free_.empty()) {
      constexpr std::size_t kChunk = 64;
      op_chunks_.push_back(std::make_unique<Op[]>(kChunk));
      op_free_.reserve(op_chunks_.size() * kChunk);
      for (std::size_t i = kChunk; i-- > 0;) op_free_.push_back(&op_chunks_.back()[i]);
    }
    Op* op = op_free_.back();
    op_free_.pop_back();
    *op = Op{};
    return op;
  }
  void recycle_op(Op* op) noexcept {
    op_free_.push_back(op);  // capacity reserved for every record of every chunk
  }

  static constexpr std::size_t kFdChunk = 256;
  FdState* state_of(int fd) const noexcept {
    if (fd < 0) return nullptr;
    const auto i = static_cast<std::size_t>(fd);
    if (i / kFdChunk >= fd_chunks_.size() || !fd_chunks_[i / kFdChunk]) return nullptr;
    FdState* s = &fd_chunks_[i / kFdChunk][i % kFdChunk];
    return s->live ? s : nullptr;
  }
  FdState* slot_for(int fd) {
    const auto i = static_cast<std::size_t>(fd);
    if (i / kFdChunk >= fd_chunks_.size()) fd_chunks_.resize(i / kFdChunk + 1);
    auto& chunk = fd_chunks_[i / kFdChunk];
    if (!chunk) chunk = std::make_unique<FdState[]>(kFdChunk);
    return &chunk[i % kFdChunk];
  }

  // The fd's state, registering it with epoll on first use. Returns null with
  // `err` set when the fd cannot be used (EBADF...).
  FdState* state_for(int fd, bool sticky, int& err) {
    if (fd < 0) {
      err = EBADF;
      return nullptr;
    }
    if (FdState* s = state_of(fd)) {
      s->sticky = s->sticky || sticky;
      return s;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    const std::uint32_t gen = ++next_gen_;
    ev.data.u64 = (static_cast<std::uint64_t>(gen) << 32) | static_cast<std::uint32_t>(fd);
    bool pollable = true;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      if (errno == EPERM) {
        pollable = false;  // a regular file or a directory: always "ready"
      } else if (errno != EEXIST) {
        err = errno;
        return nullptr;
      }
    }
    FdState* s = nullptr;
    try {
      s = slot_for(fd);
    } catch (...) {
      if (pollable) ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
      throw;
    }
    *s = FdState{};
    s->live = true;
    s->fd = fd;
    s->gen = gen;
    s->registered = pollable;
    s->pollable = pollable;
    s->sticky = sticky;
    return s;
  }

  // Removes the fd from epoll and forgets it; parked operations end with -ECANCELED.
  void drop_state(FdState* s, bool cancel_parked) noexcept {
    // Every op that looked at this fd ends (parked ones), or forgets it.
    while (Op* op = s->head) {
      if (cancel_parked) {
        op->state = nullptr;  // no release: the state is being dropped here
        finish(op, -ECANCELED);
      } else {
        unpark(op);
      }
    }
    if (s->registered) ::epoll_ctl(ep_, EPOLL_CTL_DEL, s->fd, nullptr);
    if (s->in_retry) {
      for (auto& r : retry_) {
        if (r == s) r = nullptr;
      }
    }
    s->live = false;
  }

  void maybe_release(FdState* s) noexcept {
    if (s->head == nullptr && !s->sticky) drop_state(s, false);
  }

  bool set_nonblocking(FdState* s) noexcept {
    if (s->nonblocking || !s->pollable) return true;
    const int fl = ::fcntl(s->fd, F_GETFL);
    if (fl < 0) return false;
    if ((fl & O_NONBLOCK) == 0 && ::fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) != 0) return false;
    s->nonblocking = true;
    return true;
  }

  // ---- parking ----
  void park(Op* op, FdState* s, std::uint8_t want) noexcept {
    op->want = want;
    if (op->fd == s) return;  // still parked from before
    op->fd = s;
    op->next = nullptr;
    op->prev = s->tail;
    if (s->tail != nullptr) {
      s->tail->next = op;
    } else {
      s->head = op;
    }
    s->tail = op;
    ++parked_;
  }
  void unpark(Op* op) noexcept {
    FdState* s = op->fd;
    if (s == nullptr) return;
    if (op->prev != nullptr) {
      op->prev->next = op->next;
    } else {
      s->head = op->next;
    }
    if (op->next != nullptr) {
      op->next->prev = op->prev;
    } else {
      s->tail = op->prev;
    }
    op->prev = op->next = nullptr;
    op->fd = nullptr;
    --parked_;
  }

  // ---- completions ----
  void complete(Op* op, int res, std::uint32_t flags) { ready_.push_back({op->c, res, flags}); }
  // Queues the final completion and frees the record (or, for an op still in
  // the submission batch, marks it dead for run_submissions to free).
  void finish(Op* op, int res, std::uint32_t flags = 0) noexcept {
    unpark(op);
    try {
      complete(op, res, flags);
    } catch (...) {
      std::terminate();  // out of memory for the queue: a completion must never be lost
    }
    ops_.erase(op->c);
    FdState* s = op->state;
    op->state = nullptr;
    if (op->queued) {
      op->dead = true;
    } else {
      recycle_op(op);
    }
    if (s != nullptr) maybe_release(s);
  }

  std::size_t deliver() {
    if (ready_.empty()) return 0;
    delivering_.swap(ready_);
    std::size_t n = 0;
    for (const Ready& r : delivering_) {
      if ((r.flags & completion::kMore) == 0) --in_flight_;
      r.c->on_complete(r.c, r.res, r.flags);
      ++n;
    }
    delivering_.clear();
    return n;
  }

  // ---- running operations ----
  void run_submissions() {
    if (submit_.empty()) return;
    running_.swap(submit_);
    for (Op* op : running_) {
      op->queued = false;
      if (op->dead) {
        recycle_op(op);  // cancelled before it ran
        continue;
      }
      first_try(op);
    }
    running_.clear();
  }

  void first_try(Op* op) {
    const IoRequest& r = op->req;
    int err = 0;
    switch (r.opcode) {
      case IoOpcode::nop:
        finish(op, 0);
        return;
      case IoOpcode::close: {
        if (FdState* s = state_of(r.fd)) drop_state(s, true);
        const int rc = ::close(r.fd);
        finish(op, rc == 0 ? 0 : -errno);
        return;
      }
      default:
        break;
    }
    const bool sticky = r.fd_managed || r.opcode == IoOpcode::recv || r.opcode == IoOpcode::send ||
                        r.opcode == IoOpcode::accept;
    FdState* s = state_for(r.fd, sticky, err);
    if (s == nullptr) {
      finish(op, -err);
      return;
    }
    op->state = s;
    if (r.opcode == IoOpcode::recv && r.buffers != nullptr) {
      op->pool = dynamic_cast<EpollBufferPool*>(r.buffers);
      if (op->pool == nullptr) {
        finish(op, -EINVAL);  // a pool of another backend
        return;
      }
    }
    if ((r.opcode == IoOpcode::recv && r.multishot && op->pool == nullptr) ||
        (r.opcode == IoOpcode::recv && r.buffers == nullptr && r.addr == nullptr && r.len != 0)) {
      finish(op, -EINVAL);
      return;
    }
    const bool needs_nonblocking = r.opcode == IoOpcode::read || r.opcode == IoOpcode::write ||
                                   r.opcode == IoOpcode::accept || r.opcode == IoOpcode::connect;
    if (needs_nonblocking && !set_nonblocking(s)) {
      finish(op, -errno);
      return;
    }
    if (r.opcode == IoOpcode::poll_add) {
      pollfd p{r.fd, static_cast<short>(r.len), 0};
      if (::poll(&p, 1, 0) > 0 && p.revents != 0) {
        if (!r.multishot) {
          finish(op, p.revents);
          return;
        }
        complete(op, p.revents, completion::kMore);
      } else {
        s->readable = s->readable && (r.len & POLLIN) == 0;
        s->writable = s->writable && (r.len & POLLOUT) == 0;
      }
      park(op, s,
           static_cast<std::uint8_t>(((r.len & (POLLIN | POLLPRI | POLLRDHUP)) != 0 ? kWantIn : 0) |
                                     ((r.len & POLLOUT) != 0 ? kWantOut : 0)));
      return;
    }
    attempt(op, s);
  }

  // Tries `op` on `s` (ready or not); parks it if the fd is not ready.
  void attempt(Op* op, FdState* s) {
    const IoRequest& r = op->req;
    switch (r.opcode) {
      case IoOpcode::recv:
        if (!s->readable) return park(op, s, kWantIn);
        return do_recv(op, s);
      case IoOpcode::accept:
        if (!s->readable) return park(op, s, kWantIn);
        return do_accept(op, s);
      case IoOpcode::read:
        if (s->pollable && !s->readable) return park(op, s, kWantIn);
        return do_rw(op, s, false);
      case IoOpcode::write:
        if (s->pollable && !s->writable) return park(op, s, kWantOut);
        return do_rw(op, s, true);
      case IoOpcode::send:
        if (!s->writable) return park(op, s, kWantOut);
        return do_send(op, s);
      case IoOpcode::connect:
        return do_connect(op, s);
      case IoOpcode::poll_add: {
        // Woken by an event: report what epoll said.
        const std::uint32_t ev = s->last_events;
        short revents = 0;
        if ((ev & EPOLLIN) != 0) revents |= POLLIN;
        if ((ev & EPOLLOUT) != 0) revents |= POLLOUT;
        if ((ev & EPOLLERR) != 0) revents |= POLLERR;
        if ((ev & EPOLLHUP) != 0) revents |= POLLHUP;
        if ((ev & EPOLLRDHUP) != 0) revents |= POLLRDHUP;
        if ((ev & EPOLLPRI) != 0) revents |= POLLPRI;
        revents = static_cast<short>(revents & (r.len | POLLERR | POLLHUP));
        if (revents == 0) return park(op, s, op->want);
        if (r.multishot) {
          complete(op, revents, completion::kMore);
          return park(op, s, op->want);
        }
        return finish(op, revents);
      }
      default:
        return finish(op, -EINVAL);
    }
  }

  void do_recv(Op* op, FdState* s) {
    const IoRequest& r = op->req;
    const int flags = static_cast<int>(r.op_flags) | MSG_DONTWAIT;
    for (unsigned i = 0; i < kMaxPerEvent; ++i) {
      std::uint16_t bid = 0;
      void* buf = r.addr;
      std::size_t len = r.len;
      if (op->pool != nullptr) {
        if (!op->pool->pop(bid)) return finish(op, -ENOBUFS);
        buf = op->pool->data(bid);
        len = op->pool->buffer_size();
        if (r.multishot && r.multishot_limit != 0) {
          len = std::min<std::size_t>(len, r.multishot_limit - op->received);
        }
      }
      const ssize_t n = ::recv(s->fd, buf, len, flags);
      if (n > 0) {
        // A stream socket that filled less than the buffer is drained: the
        // next byte brings a new edge (not so after a hang-up, nor for datagrams).
        if (static_cast<std::size_t>(n) < len && !s->hup && is_stream(s)) s->readable = false;
        const std::uint32_t bflags = op->pool != nullptr ? completion::with_buffer(bid) : 0;
        if (!r.multishot) return finish(op, static_cast<int>(n), bflags);
        op->received += static_cast<std::uint32_t>(n);
        if (r.multishot_limit != 0 && op->received >= r.multishot_limit) {
          return finish(op, static_cast<int>(n), bflags);
        }
        complete(op, static_cast<int>(n), bflags | completion::kMore);
        if (!s->readable) return park(op, s, kWantIn);
        continue;
      }
      if (op->pool != nullptr) op->pool->unpop(bid);
      if (n == 0) return finish(op, 0);  // EOF (or a zero-length recv)
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->readable = false;
        return park(op, s, kWantIn);
      }
      return finish(op, -errno);
    }
    retry_later(op, s, kWantIn);
  }

  bool is_stream(FdState* s) noexcept {
    if (s->stream < 0) {
      int type = 0;
      socklen_t len = sizeof type;
      s->stream =
          ::getsockopt(s->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM ? 1 : 0;
    }
    return s->stream == 1;
  }

  void do_accept(Op* op, FdState* s) {
    const IoRequest& r = op->req;
    for (unsigned i = 0; i < kMaxPerEvent; ++i) {
      const int fd = ::accept4(s->fd, static_cast<sockaddr*>(r.addr),
                               static_cast<socklen_t*>(r.addr2), static_cast<int>(r.op_flags));
      if (fd >= 0) {
        if (!r.multishot) return finish(op, fd);
        complete(op, fd, completion::kMore);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->readable = false;
        return park(op, s, kWantIn);
      }
      return finish(op, -errno);
    }
    retry_later(op, s, kWantIn);
  }

  void do_send(Op* op, FdState* s) {
    const IoRequest& r = op->req;
    for (;;) {
      const ssize_t n = ::send(s->fd, r.addr, r.len, static_cast<int>(r.op_flags) | MSG_DONTWAIT);
      if (n >= 0) {
        if (static_cast<std::size_t>(n) < r.len) s->writable = false;  // the buffer is full
        return finish(op, static_cast<int>(n));
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->writable = false;
        return park(op, s, kWantOut);
      }
      return finish(op, -errno);
    }
  }

  void do_rw(Op* op, FdState* s, bool write) {
    const IoRequest& r = op->req;
    for (;;) {
      ssize_t n;
      if (r.offset == ~0ULL || s->unseekable) {
        n = write ? ::write(s->fd, r.addr, r.len) : ::read(s->fd, r.addr, r.len);
      } else {
        const auto off = static_cast<off_t>(r.offset);
        n = write ? ::pwrite(s->fd, r.addr, r.len, off) : ::pread(s->fd, r.addr, r.len, off);
      }
      if (n >= 0) return finish(op, static_cast<int>(n));
      if (errno == EINTR) continue;
      if (errno == ESPIPE && !s->unseekable) {
        // A pipe, socket or eventfd: the offset means nothing (io_uring ignores
        // it too); read and write at the current position from now on.
        s->unseekable = true;
        continue;
      }
      if (s->pollable && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        (write ? s->writable : s->readable) = false;
        return park(op, s, write ? kWantOut : kWantIn);
      }
      return finish(op, -errno);
    }
  }

  void do_connect(Op* op, FdState* s) {
    const IoRequest& r = op->req;
    if (op->connecting) {
      if (!s->writable) return park(op, s, kWantOut);
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return finish(op, -err);
      // No error yet is not "connected": the event may be the one epoll
      // reported when the socket was registered, before connect(2). Ask again.
      if (::connect(s->fd, static_cast<const sockaddr*>(r.addr), r.len) == 0 || errno == EISCONN) {
        return finish(op, 0);
      }
      if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR) {
        s->writable = false;
        return park(op, s, kWantOut);
      }
      return finish(op, -errno);
    }
    for (;;) {
      if (::connect(s->fd, static_cast<const sockaddr*>(r.addr), r.len) == 0) {
        return finish(op, 0);
      }
      if (errno == EINTR) continue;
      if (errno == EINPROGRESS || errno == EAGAIN) {
        op->connecting = true;
        s->writable = false;
        return park(op, s, kWantOut);
      }
      return finish(op, -errno);
    }
  }

  // A multishot op used its share of one event: go on in the next poll().
  void retry_later(Op* op, FdState* s, std::uint8_t want) {
    park(op, s, want);
    if (!s->in_retry) {
      s->in_retry = true;
      retry_.push_back(s);
    }
  }

  void run_retries() {
    if (retry_.empty()) return;
    std::vector<FdState*> batch;
    batch.swap(retry_);
    for (FdState* s : batch) {
      if (s == nullptr) continue;
      s->in_retry = false;
      wake(s, kWantIn | kWantOut);
    }
  }

  // ---- readiness ----
  void wait_for_events(const timespec* ts, int ms) {
    int n;
    for (;;) {
      if (pwait2_) {
        n = ::epoll_pwait2(ep_, events_.data(), static_cast<int>(events_.size()), ts, nullptr);
        if (n < 0 && errno == ENOSYS) {
          pwait2_ = false;  // before Linux 5.11: millisecond timeouts
          continue;
        }
      } else {
        n = ::epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()), ms);
      }
      if (n >= 0) break;
      if (errno == EINTR) return;  // a signal: the loop comes back
      throw std::system_error(errno, std::system_category(), "coring: epoll_wait failed");
    }
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[static_cast<std::size_t>(i)];
      const int fd = static_cast<int>(ev.data.u64 & 0xffffffffU);
      const auto gen = static_cast<std::uint32_t>(ev.data.u64 >> 32);
      FdState* s = state_of(fd);
      if (s == nullptr || s->gen != gen) continue;  // closed since
      s->last_events = ev.events;
      if ((ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) s->hup = true;
      std::uint8_t which = 0;
      if ((ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) != 0) {
        s->readable = true;
        which |= kWantIn;
      }
      if ((ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) {
        s->writable = true;
        which |= kWantOut;
      }
      wake(s, which);
    }
  }

  // Tries the ops parked on `s` that wait for `which`, in order. An op tried
  // stays in its place if it parks again; finishing it may drop `s` (its last
  // op ended): the state then is back in the free list, not freed.
  void wake(FdState* s, std::uint8_t which) {
    const std::uint32_t gen = s->gen;
    Op* op = s->head;
    while (op != nullptr) {
      Op* next = op->next;
      if ((op->want & which) != 0 && (((op->want & kWantIn) != 0 && s->readable) ||
                                      ((op->want & kWantOut) != 0 && s->writable))) {
        attempt(op, s);
        if (state_of(s->fd) != s || s->gen != gen) return;
      }
      op = next;
    }
  }

  struct Ready {
    Completion* c;
    int res;
    std::uint32_t flags;
  };

  int ep_ = -1;
  unsigned max_events_;
  std::vector<epoll_event> events_;
  bool pwait2_ = true;
  CompletionTable<Op> ops_;
  std::vector<std::unique_ptr<Op[]>> op_chunks_;
  std::vector<Op*> op_free_;
  std::vector<Op*> submit_;
  std::vector<Op*> running_;
  std::vector<std::unique_ptr<FdState[]>> fd_chunks_;
  std::vector<FdState*> retry_;
  std::vector<Ready> ready_;
  std::vector<Ready> delivering_;
  std::uint32_t next_gen_ = 0;
  std::size_t in_flight_ = 0;
  std::size_t parked_ = 0;
  unsigned skipped_waits_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(const EpollOptions& options) {
  return std::make_unique<EpollBackend>(options);
}

}  // namespace coring
