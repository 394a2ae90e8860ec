// Seed recipe: polling multiple thread queues (Python Cookbook 12.13) -- a
// consumer thread select()s over three PollableQueues and prints "Got: <item>"
// for each item the main thread puts (1, 10, 'hello', 15).
//
// In coring the consumer is a task on an EventLoop of its own thread, and
// select.select() over sockets is coring::select() over awaitables: the pops of
// three PollableQueue<T>s (any thread pushes; the loop sleeps until then) and,
// as the recipe's point is that queues are waited on *alongside sockets*, a
// recv on a socket too. The main thread puts each item, then waits until it
// was printed before the next (the recipe relies on its consumer keeping up;
// waiting makes the order certain), then sends "ping" on the socket and closes
// it, which ends the consumer.
//
// A program with its own poll(2)/epoll loop would wait on q.fd() instead (the
// thread_pool demo does).
//
// Run: ./pollable_queue
#include <fmt/core.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <coring/coring.hpp>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "demo_options.hpp"

namespace {

struct Sources {
  coring::PollableQueue<int> q1;
  coring::PollableQueue<int> q2;
  coring::PollableQueue<std::string> q3;
  std::atomic<int> printed{0};
};

void got(Sources& s, const std::string& what) {
  fmt::print("Got: {}\n", what);
  std::fflush(stdout);
  s.printed.fetch_add(1);
  s.printed.notify_all();
}

coring::Task<void> consumer(Sources& s, int socket_fd) {
  coring::net::TcpStream sock(socket_fd);
  for (;;) {
    auto r = co_await coring::select(s.q1.pop(), s.q2.pop(), s.q3.pop(), sock.recv());
    switch (r.index()) {
      case 0:
        if (auto v = std::get<0>(r)) got(s, std::to_string(*v));
        break;
      case 1:
        if (auto v = std::get<1>(r)) got(s, std::to_string(*v));
        break;
      case 2:
        if (auto v = std::get<2>(r)) got(s, *v);
        break;
      default: {
        coring::net::Received& data = std::get<3>(r);
        if (!data) co_return;  // the main thread closed its end
        got(s, std::string(data.buffer.as_string_view()) + " (from the socket)");
      }
    }
  }
}

void wait_printed(Sources& s, int n) {
  for (int seen = s.printed.load(); seen < n; seen = s.printed.load()) s.printed.wait(seen);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    (void)demo::parse_time_scale(argc, argv);  // accepted for the tests; nothing sleeps here
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    std::perror("socketpair");
    return 1;
  }
  Sources s;
  std::thread t([&s, fd = fds[0]] { coring::run(consumer(s, fd)); });

  s.q1.push(1);
  wait_printed(s, 1);
  s.q2.push(10);
  wait_printed(s, 2);
  s.q3.push("hello");
  wait_printed(s, 3);
  s.q2.push(15);
  wait_printed(s, 4);

  const std::string ping = "ping";
  if (::send(fds[1], ping.data(), ping.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(ping.size())) {
    std::perror("send");
  }
  wait_printed(s, 5);
  ::close(fds[1]);  // EOF: the consumer returns
  t.join();
  return 0;
}
