// Seed recipe: a hand-made thread pool on a Queue (Python Cookbook 12.7) --
// echo_server(addr, nworkers) starts nworkers threads that each take a
// (client_sock, client_addr) job from a queue.Queue, print "Got connection
// from", echo until EOF, print "Client closed connection" and close; the
// accepting loop puts every connection in the queue.
//
// Here the jobs go through a coring::PollableQueue<Job>, and the workers are
// plain OS threads doing blocking recv/send, as in the seed. A worker that
// finds the queue empty waits with poll(2) on the queue's fd() (readable from
// the next push on, see pollable_queue.hpp) -- the queue's way into a program
// with its own poll loop. The seed's workers are daemon threads that never
// stop; here close() is the sentinel: a worker whose try_pop() finds the queue
// closed and drained leaves.
//
// To be self-contained the demo also runs the clients: --clients=M
// connections one after the other (each sends a line, checks the echo,
// half-closes and waits for the server to close), so the output is the same
// on every run. Clients are numbered instead of printing their ephemeral port.
//
// Run: ./thread_pool [--workers=N] [--clients=M] [--time-scale=F]
#include <arpa/inet.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <coring/coring.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "demo_options.hpp"

namespace {

struct Job {
  int sock = -1;
  int client = 0;  // which client, in the order they connected
};

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::system_category(), what);
}

// The next job, waiting on the queue's eventfd when there is none; nullopt
// once the queue is closed and drained (the sentinel).
std::optional<Job> next_job(coring::PollableQueue<Job>& q) {
  const int fd = q.fd();
  for (;;) {
    // Look at closed() first: a push then close() between the two would
    // otherwise end this worker with a job still queued.
    const bool was_closed = q.closed();
    if (auto job = q.try_pop()) return job;
    if (was_closed) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) fail("poll");
  }
}

void echo_client(coring::PollableQueue<Job>& q) {
  while (auto job = next_job(q)) {
    fmt::print("Got connection from client {}\n", job->client);
    std::fflush(stdout);
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(job->sock, buf, sizeof buf, 0);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w =
            ::send(job->sock, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
    }
    fmt::print("Client closed connection\n");
    std::fflush(stdout);
    ::close(job->sock);
  }
}

int listen_on_loopback(std::uint16_t& port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket");
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
  if (::listen(s, 128) != 0) fail("listen");
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return s;
}

// One client: sends a line, checks the echo, half-closes, waits for the close.
bool run_client(std::uint16_t port, int n) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("connect");
  const std::string line = fmt::format("hello from client {}\n", n);
  bool ok = ::send(s, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
  std::string echoed;
  char buf[256];
  while (ok && echoed.size() < line.size()) {
    const ssize_t r = ::recv(s, buf, sizeof buf, 0);
    if (r <= 0) break;
    echoed.append(buf, static_cast<std::size_t>(r));
  }
  ok = ok && echoed == line;
  ::shutdown(s, SHUT_WR);
  while (::recv(s, buf, sizeof buf, 0) > 0) {
  }
  ::close(s);
  if (!ok) fmt::print(stderr, "thread_pool: client {} got a wrong echo\n", n);
  return ok;
}

int int_flag(const char* arg, const char* name, int& out) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return 0;
  out = std::atoi(arg + n);
  if (out <= 0) throw std::invalid_argument(std::string("bad value: ") + arg);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int nworkers = 4;
    int nclients = 5;
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
      if (!int_flag(argv[i], "--workers=", nworkers) &&
          !int_flag(argv[i], "--clients=", nclients)) {
        rest.push_back(argv[i]);
      }
    }
    (void)demo::parse_time_scale(static_cast<int>(rest.size()), rest.data());

    std::uint16_t port = 0;
    const int listener = listen_on_loopback(port);
    fmt::print("Echo server running at ('127.0.0.1', a free port) with {} workers\n", nworkers);
    std::fflush(stdout);
    coring::PollableQueue<Job> q;
    std::vector<std::thread> workers;
    for (int n = 0; n < nworkers; ++n) workers.emplace_back(echo_client, std::ref(q));

    bool all_ok = true;
    std::thread clients([&] {
      for (int n = 1; n <= nclients; ++n) all_ok = run_client(port, n) && all_ok;
    });
    for (int n = 1; n <= nclients; ++n) {
      const int s = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (s < 0) fail("accept");
      q.push(Job{s, n});
    }
    clients.join();
    q.close();  // the sentinel: every worker leaves once the queue is drained
    for (auto& w : workers) w.join();
    ::close(listener);
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "thread_pool: {}\n", e.what());
    return 1;
  }
}
