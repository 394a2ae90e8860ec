// epoll_echo_server: the plain-epoll baseline for coring's echo-server benchmark.
//
// What it shows: how fast a TCP echo server on epoll can be when written by hand, with no
// coroutines, no runtime and no abstraction. It is what coring's epoll backend
// (runtime/include/coring/runtime/epoll_backend.hpp) is measured against, as
// uring_echo_server is for the io_uring backend: bench/run_net_bench.sh can run it in
// place of that one (URING_ECHO_SERVER=.../epoll_echo_server).
//
// Design: one thread, one epoll instance, non-blocking sockets throughout. The listening
// socket and a signalfd (SIGINT, SIGTERM) are registered edge-triggered; every accepted
// connection (accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC, TCP_NODELAY set as the liburing
// baseline does) is registered once, edge-triggered, for EPOLLIN | EPOLLOUT | EPOLLRDHUP,
// so a round trip costs no epoll_ctl. epoll_wait takes up to --max-events events at once.
// On input a connection reads into one buffer shared by all connections until EAGAIN, or
// until a read fills less than the buffer (a stream socket that gave less than asked is
// drained, and the next byte brings a new edge; not so once the peer hung up, when it
// reads on to EOF -- coring's epoll backend uses the same rule), and sends each chunk
// straight back (send with MSG_NOSIGNAL). What a short send leaves over
// goes to the connection's pending buffer, in order; later input is appended behind it and
// the whole is flushed on EPOLLOUT. With --max-pending bytes or more pending, a connection
// stops reading (back-pressure: a peer that sends without ever reading cannot grow the
// server's memory past max-pending + buffer-size per connection) and resumes once a flush
// brings it below the bound; as the registration is edge-triggered, the connection
// remembers that input may be left unread and reads it without waiting for a new edge.
// End of input (the peer shut down its write side) closes the connection once the pending
// data is sent; EPOLLERR / EPOLLHUP and send / recv errors (ECONNRESET, EPIPE, ...) close it
// at once. A pending buffer is freed when it drains, if it grew past 64 KiB, so a burst does
// not pin memory. Accept runs until EAGAIN; on EMFILE / ENFILE / ENOBUFS / ENOMEM it stops
// and retries when a connection closes or after 10 ms, whichever comes first, instead of
// spinning on a listening socket that stays readable. A closed connection's state is freed
// only after the batch of events it was closed in, so a stale event in that batch is
// recognised and dropped, never applied to a new connection that reuses the descriptor.
//
// Kernel: any Linux coring supports (epoll_create1, accept4, signalfd4: 2.6.27+;
// EPOLLRDHUP: 2.6.17+). No liburing.
//
// Run:   build/bench/bench/baselines/epoll_echo_server [--port 0] [--bind 127.0.0.1]
//            [--buffer-size 16384] [--max-pending 1048576] [--max-events 256]
// It prints "epoll_echo_server listening on 127.0.0.1:PORT" (flushed) and serves until
// SIGINT or SIGTERM (a signalfd in the epoll set), then exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// epoll_event.data.u64: one of these for the server's own descriptors, else a Conn pointer.
enum ServerTag : std::uint64_t { kListen = 0, kSignal = 1 };

constexpr std::size_t kKeepPendingCapacity =
    64 * 1024;                                     // larger pending buffers freed when drained
constexpr long kAcceptRetryNs = 10 * 1000 * 1000;  // after EMFILE and the like

struct Conn {
  int fd = -1;              // -1: closed, freed after the current batch of events
  bool eof = false;         // recv returned 0: close once pending is sent
  bool input_left = false;  // stopped reading (back-pressure) before EAGAIN
  // Bytes received but not yet sent back: pending[off, len).
  char* pending = nullptr;
  std::size_t off = 0;
  std::size_t len = 0;
  std::size_t cap = 0;

  [[nodiscard]] std::size_t pending_bytes() const { return len - off; }
};

struct Options {
  const char* bind = "127.0.0.1";
  unsigned port = 0;
  std::uint32_t buffer_size = 16 * 1024;
  std::uint32_t max_pending = 1024 * 1024;
  std::uint32_t max_events = 256;
};

struct Server {
  Options opt;
  int epoll_fd = -1;
  int listen_fd = -1;
  int signal_fd = -1;
  char* buf = nullptr;           // the read buffer, shared by every connection
  std::vector<Conn*> conns;      // by fd, for the shutdown
  std::vector<Conn*> graveyard;  // closed during this batch of events
  std::size_t open_conns = 0;
  bool accept_paused = false;  // out of descriptors or memory: retry later...
  bool fd_freed = false;       // ...when a connection closes (set by close_conn)
  timespec accept_retry_at{};  // ...or at this time, whichever comes first
  bool stop = false;
};

Server g;

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "epoll_echo_server: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

void* xrealloc(void* p, std::size_t n) {
  void* q = std::realloc(p, n);
  if (q == nullptr) die("realloc", ENOMEM);
  return q;
}

void close_conn(Conn* c) {
  if (c->fd < 0) return;
  close(c->fd);  // also drops it from the epoll set
  g.conns[c->fd] = nullptr;
  c->fd = -1;
  std::free(c->pending);
  c->pending = nullptr;
  c->off = c->len = c->cap = 0;
  --g.open_conns;
  g.graveyard.push_back(c);
  g.fd_freed = true;  // a descriptor came free: a paused accept is retried
}

// Appends `n` bytes behind what is already pending.
void append_pending(Conn* c, const char* data, std::size_t n) {
  if (c->len + n > c->cap) {
    if (c->off > 0) {  // make room by moving the unsent tail to the front first
      std::memmove(c->pending, c->pending + c->off, c->len - c->off);
      c->len -= c->off;
      c->off = 0;
    }
    if (c->len + n > c->cap) {
      std::size_t cap = c->cap == 0 ? g.opt.buffer_size : c->cap;
      while (cap < c->len + n) cap *= 2;
      c->pending = static_cast<char*>(xrealloc(c->pending, cap));
      c->cap = cap;
    }
  }
  std::memcpy(c->pending + c->len, data, n);
  c->len += n;
}

// Sends what is pending until it is all sent or the socket is full. False if the
// connection failed (it is then closed).
bool flush(Conn* c) {
  while (c->off < c->len) {
    ssize_t n = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (n > 0) {
      c->off += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;  // EPOLLOUT will tell when there is room again
    } else {
      close_conn(c);  // EPIPE, ECONNRESET, ...
      return false;
    }
  }
  c->off = c->len = 0;
  if (c->cap > kKeepPendingCapacity) {
    std::free(c->pending);
    c->pending = nullptr;
    c->cap = 0;
  }
  return true;
}

// Reads until EAGAIN or a short read (or end of input, or the pending bound) and echoes what
// it reads. `hup`: the peer hung up (read on to EOF; no further edge will come).
void on_readable(Conn* c, bool hup) {
  c->input_left = false;
  while (!c->eof) {
    if (c->pending_bytes() >= g.opt.max_pending) {
      c->input_left = true;  // resumed by on_writable once the peer reads
      return;
    }
    ssize_t n = recv(c->fd, g.buf, g.opt.buffer_size, 0);
    if (n > 0) {
      auto got = static_cast<std::size_t>(n);
      std::size_t sent = 0;
      if (c->pending_bytes() == 0) {  // else the socket is full: queue behind the rest
        ssize_t w = send(c->fd, g.buf, got, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR) w = send(c->fd, g.buf, got, MSG_NOSIGNAL);
        if (w >= 0) {
          sent = static_cast<std::size_t>(w);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          close_conn(c);
          return;
        }
      }
      if (sent < got) append_pending(c, g.buf + sent, got - sent);
      if (got < g.opt.buffer_size && !hup) return;  // drained: wait for the next edge
    } else if (n == 0) {
      c->eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else {
      close_conn(c);  // ECONNRESET and the like
      return;
    }
  }
  if (c->pending_bytes() == 0) close_conn(c);  // end of input, all echoed
}

void on_writable(Conn* c) {
  if (c->pending_bytes() == 0) return;
  if (!flush(c)) return;
  if (c->pending_bytes() == 0 && c->eof) {
    close_conn(c);
  } else if (c->input_left && c->pending_bytes() < g.opt.max_pending) {
    on_readable(c, true);  // no new edge will come for the input we left unread
  }
}

void on_conn_event(Conn* c, std::uint32_t events) {
  if (c->fd < 0) return;  // closed earlier in this batch
  if (events & (EPOLLERR | EPOLLHUP)) {
    close_conn(c);
    return;
  }
  if (events & EPOLLOUT) {
    on_writable(c);
    if (c->fd < 0) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP)) on_readable(c, (events & EPOLLRDHUP) != 0);
}

void pause_accept() {
  g.accept_paused = true;
  g.fd_freed = false;
  clock_gettime(CLOCK_MONOTONIC, &g.accept_retry_at);
  g.accept_retry_at.tv_nsec += kAcceptRetryNs;
  if (g.accept_retry_at.tv_nsec >= 1000000000L) {
    g.accept_retry_at.tv_nsec -= 1000000000L;
    ++g.accept_retry_at.tv_sec;
  }
}

void accept_all() {
  for (;;) {
    int fd = accept4(g.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        pause_accept();  // the backlog stays readable: do not spin on it
        return;
      }
      std::fprintf(stderr, "epoll_echo_server: accept: %s\n", std::strerror(err));
      if (err == EPROTO || err == EPERM || err == ENETDOWN || err == ENOPROTOOPT ||
          err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH || err == EOPNOTSUPP ||
          err == ENETUNREACH) {
        continue;  // a network error on that one connection (see accept(2))
      }
      pause_accept();
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new Conn;
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = reinterpret_cast<std::uintptr_t>(c);
    if (epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      int err = errno;
      std::fprintf(stderr, "epoll_echo_server: epoll_ctl: %s\n", std::strerror(err));
      close(fd);
      delete c;
      if (err == ENOMEM || err == ENOSPC) {
        pause_accept();
        return;
      }
      continue;
    }
    if (static_cast<std::size_t>(fd) >= g.conns.size()) g.conns.resize(fd * 2 + 64, nullptr);
    g.conns[fd] = c;
    ++g.open_conns;
    // Registering a socket that already holds data yields an EPOLLIN edge: nothing to read now.
  }
}

// epoll_wait timeout: -1, or the milliseconds (rounded up) until the accept retry.
int wait_timeout() {
  if (!g.accept_paused) return -1;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  long long ns = (g.accept_retry_at.tv_sec - now.tv_sec) * 1000000000LL +
                 (g.accept_retry_at.tv_nsec - now.tv_nsec);
  if (ns <= 0) return 0;
  return static_cast<int>((ns + 999999) / 1000000);
}

void on_signal() {
  signalfd_siginfo si{};
  for (;;) {
    ssize_t n = read(g.signal_fd, &si, sizeof si);
    if (n == static_cast<ssize_t>(sizeof si)) {
      g.stop = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EAGAIN: drained
  }
}

unsigned parse_uint(const char* flag, const char* value, unsigned long max) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v > max) {
    std::fprintf(stderr, "epoll_echo_server: bad value for %s: %s\n", flag, value);
    std::exit(2);
  }
  return static_cast<unsigned>(v);
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: epoll_echo_server [--port P] [--bind ADDR] [--buffer-size BYTES] "
               "[--max-pending BYTES] [--max-events N]\n"
               "  --port P            TCP port, 0 picks a free one (default 0)\n"
               "  --bind ADDR         IPv4 address to listen on (default 127.0.0.1)\n"
               "  --buffer-size B     bytes per recv, into the shared read buffer (default 16384)\n"
               "  --max-pending B     unsent bytes a connection may hold before it stops\n"
               "                      reading (default 1048576)\n"
               "  --max-events N      events per epoll_wait (default 256)\n");
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
    } else if (std::strcmp(a, "--buffer-size") == 0) {
      o.buffer_size = parse_uint(a, v, 1u << 30);
      if (o.buffer_size == 0) o.buffer_size = 1;
    } else if (std::strcmp(a, "--max-pending") == 0) {
      o.max_pending = parse_uint(a, v, 1u << 30);
      if (o.max_pending == 0) o.max_pending = 1;
    } else if (std::strcmp(a, "--max-events") == 0) {
      o.max_events = parse_uint(a, v, 1u << 20);
      if (o.max_events == 0) o.max_events = 1;
    } else {
      usage(stderr);
      std::exit(2);
    }
  }
  return o;
}

void add_server_fd(int fd, ServerTag tag) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = tag;
  if (epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl", errno);
}

void setup_listener() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(g.opt.port));
  if (inet_pton(AF_INET, g.opt.bind, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "epoll_echo_server: bad --bind address %s\n", g.opt.bind);
    std::exit(2);
  }
  g.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (g.listen_fd < 0) die("socket", errno);
  int one = 1;
  setsockopt(g.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(g.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind", errno);
  if (listen(g.listen_fd, SOMAXCONN) < 0) die("listen", errno);
  socklen_t len = sizeof addr;
  if (getsockname(g.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    die("getsockname", errno);
  }
  add_server_fd(g.listen_fd, kListen);
  char host[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
  std::printf("epoll_echo_server listening on %s:%u\n", host, ntohs(addr.sin_port));
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
  g.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (g.signal_fd < 0) die("signalfd", errno);

  g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (g.epoll_fd < 0) die("epoll_create1", errno);
  add_server_fd(g.signal_fd, kSignal);

  g.buf = static_cast<char*>(std::malloc(g.opt.buffer_size));
  if (g.buf == nullptr) die("malloc", ENOMEM);
  std::vector<epoll_event> events(g.opt.max_events);
  std::fprintf(stderr,
               "epoll_echo_server: edge-triggered epoll; %u-byte read buffer, %u bytes pending "
               "at most per connection, %u events per wait\n",
               g.opt.buffer_size, g.opt.max_pending, g.opt.max_events);

  setup_listener();

  while (!g.stop) {
    int n = epoll_wait(g.epoll_fd, events.data(), static_cast<int>(events.size()), wait_timeout());
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait", errno);
    }
    bool accept_now = false;
    for (int i = 0; i < n; ++i) {
      std::uint64_t data = events[i].data.u64;
      if (data == kListen) {
        accept_now = true;  // after the batch: closes in it may free descriptors
      } else if (data == kSignal) {
        on_signal();
      } else {
        on_conn_event(reinterpret_cast<Conn*>(data), events[i].events);
      }
    }
    for (Conn* c : g.graveyard) delete c;
    g.graveyard.clear();
    // Accept on a new edge of the listening socket, or to retry after a pause: as soon as
    // a connection closed, or once the retry time has come.
    if (accept_now || (g.accept_paused && (g.fd_freed || wait_timeout() == 0))) {
      g.accept_paused = false;
      accept_all();
    }
  }

  std::fprintf(stderr, "epoll_echo_server: stopping, %zu connections open\n", g.open_conns);
  for (Conn* c : g.conns) {
    if (c != nullptr) {
      close(c->fd);
      std::free(c->pending);
      delete c;
    }
  }
  close(g.listen_fd);
  close(g.signal_fd);
  close(g.epoll_fd);
  std::free(g.buf);
  return 0;
}
