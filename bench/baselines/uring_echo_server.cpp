// uring_echo_server: the plain-liburing baseline for coring's echo-server benchmark.
//
// What it shows: how fast a TCP echo server on io_uring can be when written by hand, with
// no coroutines, no runtime and no abstraction: one thread, one ring, a multishot accept, one
// multishot recv per connection drawing from a provided-buffer ring, and sends made straight
// from the received buffer. coring's demos/echo_server is measured against it
// (bench/run_net_bench.sh): the issue asks coring for at least 0.95x its round trips/s and
// at most 1.05x its CPU per round trip.
//
// It is correct, not only fast: each connection keeps an ordered queue of received buffers
// and has at most one send in flight; a short send re-sends the rest; a buffer goes back to
// the ring only once fully sent. End of input (the peer shut down its write side) closes the
// connection after the queued data is sent; an error (ECONNRESET, EPIPE, ...) closes it at
// once. A recv ended by ENOBUFS (every buffer in use) is re-armed when buffers come back; a
// connection with --max-queued buffers waiting to be sent stops reading (its recv is
// cancelled) until the queue drains. That bound is loose: one multishot recv can take many
// buffers in a burst before the cancel lands, so a few clients that send without ever
// reading can still hold every buffer, stalling the others until they read or disconnect.
// Fine for a benchmark; a production server would bound it harder.
//
// Kernel: 6.0+ (multishot recv, provided-buffer rings, IORING_SETUP_SINGLE_ISSUER); 6.1+ for
// IORING_SETUP_DEFER_TASKRUN, without which it falls back to a plain ring. liburing 2.3
// (Debian 12) is enough: it has no io_uring_setup_buf_ring, so the buffer ring is mmap()ed
// here and registered with io_uring_register_buf_ring.
//
// Run:   build/bench/bench/baselines/uring_echo_server [--port 0] [--bind 127.0.0.1]
//            [--buffers 1024] [--buffer-size 16384] [--max-queued 64]
// It prints "uring_echo_server listening on 127.0.0.1:PORT" (flushed) and serves until
// SIGINT or SIGTERM (a signalfd read through the ring), then exits 0.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// user_data: one of the small constants of ServerOp for the server-wide operations, or a
// Conn pointer (8-byte aligned) with a ConnOp in its low 3 bits.
enum ServerOp : std::uint64_t {
  kIgnore = 0,       // cancels, whose completions need no handling
  kAccept = 1,       // the multishot accept
  kSignal = 2,       // the signalfd read
  kAcceptRetry = 3,  // the timeout before re-arming accept after EMFILE and the like
};
enum ConnOp : std::uint64_t { kRecv = 1, kSend = 2 };
constexpr std::uint64_t kOpMask = 7;

constexpr std::uint16_t kBufferGroup = 1;

struct Conn {
  int fd = -1;
  std::int32_t head = -1;  // first queued buffer id (the one being sent), -1: queue empty
  std::int32_t tail = -1;  // last queued buffer id
  std::uint32_t sent = 0;  // bytes of `head` already sent
  std::uint32_t queued = 0;
  bool recv_armed = false;      // a multishot recv is in flight
  bool cancel_pending = false;  // a cancel of that recv is in flight
  bool send_inflight = false;
  bool eof = false;      // the peer shut down its write side
  bool closing = false;  // closes once no operation is in flight
  bool starved = false;  // in g.starved: waits for a free buffer to re-arm its recv
};

struct Options {
  const char* bind = "127.0.0.1";
  unsigned port = 0;
  std::uint32_t buffers = 1024;
  std::uint32_t buffer_size = 16 * 1024;
  std::uint32_t max_queued = 64;
};

struct Server {
  io_uring ring{};
  Options opt;
  io_uring_buf_ring* br = nullptr;
  std::size_t br_bytes = 0;
  char* bufs = nullptr;
  std::size_t bufs_bytes = 0;
  int mask = 0;
  std::vector<std::int32_t> next;  // per buffer id: the next queued buffer of its connection
  std::vector<std::uint32_t> len;  // per buffer id: bytes received into it
  std::uint32_t held = 0;          // buffers named by a CQE and not recycled yet
  int pending_recycle = 0;         // added to the ring, not yet made visible (advance)
  std::vector<Conn*> conns;        // by fd
  std::vector<Conn*> starved;
  std::size_t open_conns = 0;
  int listen_fd = -1;
  int signal_fd = -1;
  signalfd_siginfo siginfo{};
  __kernel_timespec retry_delay{0, 10 * 1000 * 1000};
  bool stop = false;
};

Server g;

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "uring_echo_server: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

io_uring_sqe* get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&g.ring);
  while (sqe == nullptr) {  // submission queue full: hand it to the kernel and retry
    int ret = io_uring_submit(&g.ring);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) die("io_uring_submit", -ret);
    sqe = io_uring_get_sqe(&g.ring);
  }
  return sqe;
}

std::uint64_t tag(Conn* c, std::uint64_t op) {
  return reinterpret_cast<std::uintptr_t>(c) | op;
}

void arm_accept() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_multishot_accept(sqe, g.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, kAccept);
}

void arm_signal() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, g.signal_fd, &g.siginfo, sizeof g.siginfo, 0);
  io_uring_sqe_set_data64(sqe, kSignal);
}

void cancel(std::uint64_t user_data) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, kIgnore);
}

char* buffer(std::int32_t bid) {
  return g.bufs + static_cast<std::size_t>(bid) * g.opt.buffer_size;
}

// Hands buffer `bid` back to the kernel; visible after flush_recycled().
void recycle(std::int32_t bid) {
  io_uring_buf_ring_add(g.br, buffer(bid), g.opt.buffer_size, static_cast<unsigned short>(bid),
                        g.mask, g.pending_recycle++);
  --g.held;
}

void arm_recv(Conn* c) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, tag(c, kRecv));
  c->recv_armed = true;
}

// Re-arms the recv of `c` if it should be reading and is not: not after end of input or
// while closing, not while its send queue is full, and not while no buffer is free (it
// then waits in g.starved until one is recycled).
void maybe_arm_recv(Conn* c) {
  if (c->recv_armed || c->eof || c->closing || c->starved || c->queued >= g.opt.max_queued) return;
  if (g.held >= g.opt.buffers) {
    c->starved = true;
    g.starved.push_back(c);
    return;
  }
  arm_recv(c);
}

void flush_recycled() {
  if (g.pending_recycle > 0) {
    io_uring_buf_ring_advance(g.br, g.pending_recycle);
    g.pending_recycle = 0;
  }
  while (!g.starved.empty() && g.held < g.opt.buffers) {
    Conn* c = g.starved.back();
    g.starved.pop_back();
    c->starved = false;
    maybe_arm_recv(c);
  }
}

void send_next(Conn* c) {
  if (c->send_inflight || c->head < 0) return;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_send(sqe, c->fd, buffer(c->head) + c->sent, g.len[c->head] - c->sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, tag(c, kSend));
  c->send_inflight = true;
}

// Frees `c` once closing and no operation of it is in flight.
void try_finish(Conn* c) {
  if (!c->closing || c->recv_armed || c->send_inflight) return;
  for (std::int32_t bid = c->head; bid >= 0;) {
    std::int32_t next = g.next[bid];
    recycle(bid);
    bid = next;
  }
  g.conns[c->fd] = nullptr;
  close(c->fd);
  --g.open_conns;
  delete c;
}

void start_close(Conn* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->starved) {
    for (auto& s : g.starved) {
      if (s == c) {
        s = g.starved.back();
        g.starved.pop_back();
        break;
      }
    }
    c->starved = false;
  }
  if (c->recv_armed && !c->cancel_pending) {
    cancel(tag(c, kRecv));
    c->cancel_pending = true;
  }
  if (c->send_inflight) cancel(tag(c, kSend));
  try_finish(c);
}

void on_accept(int res, unsigned flags) {
  if (res >= 0) {
    int one = 1;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (static_cast<std::size_t>(res) >= g.conns.size()) g.conns.resize(res * 2 + 64, nullptr);
    Conn* c = new Conn;
    c->fd = res;
    g.conns[res] = c;
    ++g.open_conns;
    arm_recv(c);
  } else if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED) {
    std::fprintf(stderr, "uring_echo_server: accept: %s\n", std::strerror(-res));
  }
  if (!(flags & IORING_CQE_F_MORE)) {
    if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
      io_uring_sqe* sqe = get_sqe();  // out of descriptors: retry in 10 ms, do not spin
      io_uring_prep_timeout(sqe, &g.retry_delay, 0, 0);
      io_uring_sqe_set_data64(sqe, kAcceptRetry);
    } else {
      arm_accept();
    }
  }
}

void on_recv(Conn* c, int res, unsigned flags) {
  bool more = flags & IORING_CQE_F_MORE;
  if (!more) {
    c->recv_armed = false;
    c->cancel_pending = false;
  }
  bool has_buffer = flags & IORING_CQE_F_BUFFER;
  auto bid = static_cast<std::int32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  if (has_buffer) ++g.held;
  if (c->closing || res <= 0) {
    if (has_buffer) recycle(bid);
    if (c->closing) {
      try_finish(c);  // may free c
      return;
    }
  }
  if (res > 0) {
    if (!has_buffer) {  // cannot happen with IOSQE_BUFFER_SELECT
      start_close(c);
      return;
    }
    g.len[bid] = static_cast<std::uint32_t>(res);
    g.next[bid] = -1;
    if (c->tail >= 0) {
      g.next[c->tail] = bid;
    } else {
      c->head = bid;
      c->sent = 0;
    }
    c->tail = bid;
    ++c->queued;
    send_next(c);
    if (more && c->queued >= g.opt.max_queued && !c->cancel_pending) {
      cancel(tag(c, kRecv));  // back-pressure: stop reading until the queue drains
      c->cancel_pending = true;
    }
    if (!more) maybe_arm_recv(c);
  } else if (res == -ENOBUFS || res == -ECANCELED) {
    if (!more) maybe_arm_recv(c);  // waits in g.starved if no buffer is free
  } else if (res == 0) {
    c->eof = true;  // close once the queued data is sent
    if (c->head < 0 && !c->send_inflight) start_close(c);
  } else {
    start_close(c);  // ECONNRESET and the like
  }
}

void on_send(Conn* c, int res) {
  c->send_inflight = false;
  if (c->closing) {
    try_finish(c);
    return;
  }
  if (res <= 0) {
    if (res == -EINTR || res == -EAGAIN) {
      send_next(c);
    } else {
      start_close(c);  // EPIPE, ECONNRESET, ...
    }
    return;
  }
  c->sent += static_cast<std::uint32_t>(res);
  if (c->sent == g.len[c->head]) {  // else a short send: send_next sends the rest
    std::int32_t bid = c->head;
    c->head = g.next[bid];
    if (c->head < 0) c->tail = -1;
    c->sent = 0;
    --c->queued;
    recycle(bid);
  }
  if (c->head >= 0) {
    send_next(c);
  } else if (c->eof) {
    start_close(c);
    return;
  }
  maybe_arm_recv(c);  // resumes reading after back-pressure
}

void handle(io_uring_cqe* cqe) {
  std::uint64_t data = io_uring_cqe_get_data64(cqe);
  int res = cqe->res;
  if (data < 8) {
    switch (data) {
      case kAccept:
        on_accept(res, cqe->flags);
        break;
      case kAcceptRetry:
        arm_accept();
        break;
      case kSignal:
        if (res == static_cast<int>(sizeof g.siginfo)) {
          g.stop = true;
        } else {
          arm_signal();
        }
        break;
      default:
        break;
    }
    return;
  }
  Conn* c = reinterpret_cast<Conn*>(data & ~std::uint64_t{kOpMask});
  if ((data & kOpMask) == kRecv) {
    on_recv(c, res, cqe->flags);
  } else {
    on_send(c, res);
  }
}

unsigned parse_uint(const char* flag, const char* value, unsigned long max) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v > max) {
    std::fprintf(stderr, "uring_echo_server: bad value for %s: %s\n", flag, value);
    std::exit(2);
  }
  return static_cast<unsigned>(v);
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: uring_echo_server [--port P] [--bind ADDR] [--buffers N] "
               "[--buffer-size BYTES] [--max-queued N]\n"
               "  --port P          TCP port, 0 picks a free one (default 0)\n"
               "  --bind ADDR       IPv4 address to listen on (default 127.0.0.1)\n"
               "  --buffers N       provided buffers, a power of two <= 32768 (default 1024)\n"
               "  --buffer-size B   bytes per buffer (default 16384)\n"
               "  --max-queued N    buffers a connection may have waiting to be sent before\n"
               "                    it stops reading (default 64)\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0) {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      usage(stderr);
      std::exit(2);
    }
    const char* v = argv[++i];
    if (std::strcmp(a, "--port") == 0) {
      o.port = parse_uint(a, v, 65535);
    } else if (std::strcmp(a, "--bind") == 0) {
      o.bind = v;
    } else if (std::strcmp(a, "--buffers") == 0) {
      o.buffers = parse_uint(a, v, 32768);
      if (o.buffers == 0 || (o.buffers & (o.buffers - 1)) != 0) {
        std::fprintf(stderr, "uring_echo_server: --buffers must be a power of two\n");
        std::exit(2);
      }
    } else if (std::strcmp(a, "--buffer-size") == 0) {
      o.buffer_size = parse_uint(a, v, 1u << 30);
      if (o.buffer_size == 0) o.buffer_size = 1;
    } else if (std::strcmp(a, "--max-queued") == 0) {
      o.max_queued = parse_uint(a, v, 1u << 20);
      if (o.max_queued == 0) o.max_queued = 1;
    } else {
      usage(stderr);
      std::exit(2);
    }
  }
  return o;
}

void setup_ring() {
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = 16384;
  int ret = io_uring_queue_init_params(4096, &g.ring, &p);
  const char* mode = "single-issuer, defer-taskrun";
  if (ret == -EINVAL) {  // a kernel before 6.1
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 16384;
    ret = io_uring_queue_init_params(4096, &g.ring, &p);
    mode = "plain";
  }
  if (ret < 0) die("io_uring_queue_init_params", -ret);
  std::fprintf(stderr, "uring_echo_server: ring %s; %u buffers of %u bytes\n", mode, g.opt.buffers,
               g.opt.buffer_size);
}

void setup_buffers() {
  long page = sysconf(_SC_PAGESIZE);
  std::size_t bytes = g.opt.buffers * sizeof(io_uring_buf);
  g.br_bytes = (bytes + page - 1) / page * page;
  void* mem = mmap(nullptr, g.br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap (buffer ring)", errno);
  g.br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
  reg.ring_entries = g.opt.buffers;
  reg.bgid = kBufferGroup;
  int ret = io_uring_register_buf_ring(&g.ring, &reg, 0);
  if (ret < 0) die("io_uring_register_buf_ring (needs Linux 5.19+)", -ret);
  io_uring_buf_ring_init(g.br);

  g.bufs_bytes = static_cast<std::size_t>(g.opt.buffers) * g.opt.buffer_size;
  mem = mmap(nullptr, g.bufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap (buffers)", errno);
  g.bufs = static_cast<char*>(mem);
  g.mask = io_uring_buf_ring_mask(g.opt.buffers);
  g.next.assign(g.opt.buffers, -1);
  g.len.assign(g.opt.buffers, 0);
  g.held = g.opt.buffers;  // recycle() below hands each one to the kernel
  for (std::uint32_t bid = 0; bid < g.opt.buffers; ++bid) recycle(static_cast<std::int32_t>(bid));
  io_uring_buf_ring_advance(g.br, g.pending_recycle);
  g.pending_recycle = 0;
}

void setup_listener() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(g.opt.port));
  if (inet_pton(AF_INET, g.opt.bind, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "uring_echo_server: bad --bind address %s\n", g.opt.bind);
    std::exit(2);
  }
  g.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (g.listen_fd < 0) die("socket", errno);
  int one = 1;
  setsockopt(g.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(g.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind", errno);
  if (listen(g.listen_fd, SOMAXCONN) < 0) die("listen", errno);
  socklen_t len = sizeof addr;
  if (getsockname(g.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    die("getsockname", errno);
  }
  char host[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
  std::printf("uring_echo_server listening on %s:%u\n", host, ntohs(addr.sin_port));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  g.opt = parse(argc, argv);

  rlimit rl{};  // many connections: raise the descriptor limit to the hard limit
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) die("sigprocmask", errno);
  g.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (g.signal_fd < 0) die("signalfd", errno);

  setup_ring();
  setup_buffers();
  setup_listener();
  arm_signal();
  arm_accept();

  while (!g.stop) {
    int ret = io_uring_submit_and_wait(&g.ring, 1);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
      die("io_uring_submit_and_wait", -ret);
    }
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&g.ring, head, cqe) {
      handle(cqe);
      ++seen;
    }
    io_uring_cq_advance(&g.ring, seen);
    flush_recycled();
  }

  std::fprintf(stderr, "uring_echo_server: stopping, %zu connections open\n", g.open_conns);
  io_uring_queue_exit(&g.ring);  // cancels and waits for everything in flight
  for (Conn* c : g.conns) {
    if (c != nullptr) {
      close(c->fd);
      delete c;
    }
  }
  close(g.listen_fd);
  close(g.signal_fd);
  munmap(g.bufs, g.bufs_bytes);
  munmap(g.br, g.br_bytes);
  return 0;
}
