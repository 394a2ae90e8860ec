// select(): the first operation to complete wins, with its value; the losers
// are cancelled and lose nothing (items go back to their queue, received data
// stays queued, a join handle stays usable); cancelling the task cancels all.
//
// Never co_await inside a Catch macro (GCC 12 runs it twice): store first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "support/net_support.hpp"

using coring::Event;
using coring::JoinHandle;
using coring::Queue;
using coring::select;
using coring::Task;
using namespace std::chrono_literals;

namespace {

std::vector<int> drain(Queue<int>& q) {
  std::vector<int> out;
  while (auto v = q.try_pop()) out.push_back(*v);
  return out;
}

Task<void> push_later(Queue<int>& q, int v, int yields) {
  for (int i = 0; i < yields; ++i) co_await coring::yield_now();
  co_await q.push(v);
}

Task<int> value_after(coring::Duration d, int v) {
  co_await coring::sleep_for(d);
  co_return v;
}

}  // namespace

TEST_CASE("select: an operation ready at once wins, first in argument order", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    co_await b.push(2);
    co_await a.push(1);
    auto r = co_await select(a.pop(), b.pop());
    REQUIRE(r.index() == 0);
    CHECK(std::get<0>(r) == 1);
    CHECK(b.size() == 1);  // never looked at
    CHECK(a.waiting_poppers() == 0);
    CHECK(b.waiting_poppers() == 0);
  };
  coring::run(body());
}

TEST_CASE("select: the first to complete wins; the others are unparked", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b, c;
    auto pusher = coring::spawn(push_later(b, 7, 3));
    auto r = co_await select(a.pop(), b.pop(), c.pop());
    REQUIRE(r.index() == 1);
    CHECK(std::get<1>(r) == 7);
    CHECK(a.waiting_poppers() == 0);
    CHECK(c.waiting_poppers() == 0);
    co_await pusher;
    // The queues work on as before.
    co_await a.push(5);
    auto again = co_await select(c.pop(), a.pop());
    REQUIRE(again.index() == 1);
    CHECK(std::get<1>(again) == 5);
  };
  coring::run(body());
}

TEST_CASE("select: a timer wins over an idle queue, which keeps nothing parked", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    const auto t0 = coring::now();
    auto r = co_await select(q.pop(), coring::sleep_for(20ms));
    CHECK(r.index() == 1);
    CHECK(std::holds_alternative<std::monostate>(r));
    CHECK(coring::now() - t0 >= 20ms);
    CHECK(q.waiting_poppers() == 0);
    co_await q.push(3);  // goes to the store: no stale waiter takes it
    CHECK(q.size() == 1);
  };
  coring::run(body());
}

TEST_CASE("select: an operation's own timeout is a result that can win", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    auto r = co_await select(a.pop(10ms), b.pop());
    REQUIRE(r.index() == 0);
    CHECK_FALSE(std::get<0>(r).has_value());
    CHECK(b.waiting_poppers() == 0);
  };
  coring::run(body());
}

TEST_CASE("select: a loser handed an item before it was cancelled gives it back", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    // Both queues get an item in the same turn, while the select is parked on
    // both: each item is handed straight to a parked pop. One wins; the other
    // item must go back to the front of its queue, ahead of later ones.
    auto feeder = coring::spawn([](Queue<int>& qa, Queue<int>& qb) -> Task<void> {
      co_await coring::yield_now();
      co_await qa.push(1);
      co_await qb.push(2);
      co_await qb.push(3);  // stored behind the one handed over
    }(a, b));
    auto r = co_await select(a.pop(), b.pop());
    co_await feeder;
    REQUIRE(r.index() == 0);
    CHECK(std::get<0>(r) == 1);
    CHECK(drain(b) == std::vector<int>{2, 3});
    CHECK(a.empty());
  };
  coring::run(body());
}

TEST_CASE("select: a given-back item goes to the next waiting popper", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    auto feeder = coring::spawn([](Queue<int>& qa, Queue<int>& qb) -> Task<void> {
      co_await coring::yield_now();
      co_await qa.push(1);
      co_await qb.push(2);
    }(a, b));
    // A plain popper waits on b behind the select's pop.
    auto other = coring::spawn(
        [](Queue<int>& qb) -> Task<std::optional<int>> { co_return co_await qb.pop(); }(b));
    auto r = co_await select(a.pop(), b.pop());
    REQUIRE(r.index() == 0);
    co_await feeder;
    // b's item went to the select's pop first (it was the older waiter), came
    // back, and went on to the plain popper.
    auto got = co_await other;
    CHECK(got == 2);
    CHECK(b.empty());
  };
  coring::run(body());
}

TEST_CASE("select: many rounds over two queues lose and duplicate nothing", "[select]") {
  static constexpr int kItems = 3000;
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    auto feed = [](Queue<int>& q, int base) -> Task<void> {
      for (int i = 0; i < kItems; ++i) {
        co_await q.push(base + i);
        if (i % 3 == 0) co_await coring::yield_now();
      }
      q.close();
    };
    auto fa = coring::spawn(feed(a, 0));
    auto fb = coring::spawn(feed(b, 100000));
    std::vector<int> from_a, from_b;
    bool a_open = true, b_open = true;
    while (a_open && b_open) {
      auto r = co_await select(a.pop(), b.pop());
      if (r.index() == 0) {
        if (auto v = std::get<0>(r)) {
          from_a.push_back(*v);
        } else {
          a_open = false;
        }
      } else {
        if (auto v = std::get<1>(r)) {
          from_b.push_back(*v);
        } else {
          b_open = false;
        }
      }
    }
    while (auto v = co_await a.pop()) from_a.push_back(*v);
    while (auto v = co_await b.pop()) from_b.push_back(*v);
    co_await fa;
    co_await fb;
    REQUIRE(from_a.size() == kItems);
    REQUIRE(from_b.size() == kItems);
    for (int i = 0; i < kItems; ++i) {
      REQUIRE(from_a[static_cast<std::size_t>(i)] == i);  // in order, once each
      REQUIRE(from_b[static_cast<std::size_t>(i)] == 100000 + i);
    }
  };
  coring::run(body());
}

TEST_CASE("select: a join handle and a timer; the handle stays usable", "[select]") {
  auto body = []() -> Task<void> {
    JoinHandle<int> fast = coring::spawn(value_after(5ms, 11));
    auto r = co_await select(fast, coring::sleep_for(2s));
    REQUIRE(r.index() == 0);
    CHECK(std::get<0>(r) == 11);

    JoinHandle<int> slow = coring::spawn(value_after(50ms, 22));
    auto r2 = co_await select(slow, coring::sleep_for(5ms));
    CHECK(r2.index() == 1);
    CHECK_FALSE(slow.done());  // the join lost; the task runs on
    const int v = co_await slow;
    CHECK(v == 22);
  };
  coring::run(body());
}

TEST_CASE("select: an event wait wins; the event's waiters are gone after", "[select]") {
  auto body = []() -> Task<void> {
    Event e;
    Queue<int> q;
    auto setter = coring::spawn([](Event& ev) -> Task<void> {
      co_await coring::sleep_for(5ms);
      ev.set();
    }(e));
    auto r = co_await select(q.pop(), e.wait());
    CHECK(r.index() == 1);
    CHECK(q.waiting_poppers() == 0);
    co_await setter;
  };
  coring::run(body());
}

TEST_CASE("select: cancelling the task cancels every operation", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    bool after = false;
    auto waiter = coring::spawn([](Queue<int>& qa, Queue<int>& qb, bool& reached) -> Task<void> {
      auto r = co_await select(qa.pop(), qb.pop(), coring::sleep_for(10s));
      (void)r;
      reached = true;
    }(a, b, after));
    co_await coring::yield_now();
    CHECK(a.waiting_poppers() == 1);
    CHECK(b.waiting_poppers() == 1);
    waiter.cancel();
    auto out = co_await waiter.join();
    CHECK(out.cancelled());
    CHECK_FALSE(after);
    CHECK(a.waiting_poppers() == 0);
    CHECK(b.waiting_poppers() == 0);
    // Nothing of the select is left behind: pushes are stored.
    co_await a.push(1);
    CHECK(a.size() == 1);
  };
  coring::run(body());
}

TEST_CASE("select: a task cancelled before it selects never parks", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> q;
    auto waiter = coring::spawn([](Queue<int>& qq) -> Task<void> {
      auto r = co_await select(qq.pop(), coring::sleep_for(10s));
      (void)r;
    }(q));
    waiter.cancel();  // before it ran
    auto out = co_await waiter.join();
    CHECK(out.cancelled());
    CHECK(q.waiting_poppers() == 0);
  };
  coring::run(body());
}

TEST_CASE("select: a result that completed before the task's cancellation is kept", "[select]") {
  auto body = []() -> Task<void> {
    Queue<int> a, b;
    std::optional<int> got;
    auto waiter =
        coring::spawn([](Queue<int>& qa, Queue<int>& qb, std::optional<int>& out) -> Task<void> {
          auto r = co_await select(qa.pop(), qb.pop());
          if (r.index() == 0) out = std::get<0>(r);
          co_await coring::sleep_for(10s);  // the cancellation takes effect here
        }(a, b, got));
    co_await coring::yield_now();
    co_await a.push(9);  // handed to the select's pop, which completes...
    waiter.cancel();     // ...before the task runs again
    auto out = co_await waiter.join();
    CHECK(out.cancelled());
    CHECK(got == 9);  // the item was delivered, not lost
    CHECK(b.waiting_poppers() == 0);
  };
  coring::run(body());
}

TEST_CASE("select: a recv loser leaves the received data queued", "[select][net]") {
  auto body = []() -> Task<void> {
    auto listener = coring::net::TcpListener::bind(coring::net::Address::parse("127.0.0.1:0"));
    auto pair = co_await coring_test::make_pair(&listener);
    Queue<int> q;

    // The queue wins; the stream had nothing yet.
    co_await q.push(1);
    auto r = co_await select(pair.server.recv(), q.pop());
    REQUIRE(r.index() == 1);

    // Data and an item arrive in the same turn: whichever loses keeps it.
    const std::string hello = "hello";
    auto sent = co_await pair.client.send_all(hello);
    REQUIRE(sent);
    auto feeder = coring::spawn([](Queue<int>& qq) -> Task<void> {
      co_await coring::sleep_for(30ms);  // the bytes are surely in by then
      co_await qq.push(2);
    }(q));
    auto r2 = co_await select(q.pop(), pair.server.recv());
    co_await feeder;
    REQUIRE(r2.index() == 1);
    auto& got = std::get<1>(r2);
    REQUIRE(got);
    CHECK(got.buffer.as_string_view() == "hello");
    CHECK(drain(q) == std::vector<int>{2});

    // Now the socket loses to a ready item: its next data is still received.
    auto sent2 = co_await pair.client.send_all(std::string_view("world"));
    REQUIRE(sent2);
    co_await q.push(3);
    auto r3 = co_await select(q.pop(), pair.server.recv());
    REQUIRE(r3.index() == 0);
    auto rest = co_await pair.server.recv(2s);
    REQUIRE(rest);
    CHECK(rest.buffer.as_string_view() == "world");
  };
  coring::run(body());
}

TEST_CASE("select: a recv loser handed data gives it back to the stream", "[select][net]") {
  auto body = []() -> Task<void> {
    auto listener = coring::net::TcpListener::bind(coring::net::Address::parse("127.0.0.1:0"));
    auto pair = co_await coring_test::make_pair(&listener);
    Queue<int> q;
    int rounds_lost = 0;
    for (int round = 0; round < 20; ++round) {
      // Bytes go out on the socket, and a post() pushes an item into the
      // queue. The loop runs posted functions just before it polls, in the
      // same turn: the item is handed to the select's pop first, then the poll
      // hands the bytes to its recv -- which loses, data in hand, and must
      // give it back.
      auto feeder = coring::spawn([](Queue<int>& qq, int fd, int v) -> Task<void> {
        co_await coring::yield_now();
        const std::string text = "r" + std::to_string(v);
        REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size()));
        coring::EventLoop::current_or_throw().post([&qq, v] { (void)qq.try_push(v); });
      }(q, pair.client.native_handle(), round));
      auto r = co_await select(q.pop(), pair.server.recv());
      co_await feeder;
      std::string got;
      if (r.index() == 0) {
        CHECK(std::get<0>(r) == round);
        ++rounds_lost;
        auto rest = co_await pair.server.recv(2s);  // the bytes were not lost
        REQUIRE(rest);
        got = std::string(rest.buffer.as_string_view());
      } else {
        auto& rd = std::get<1>(r);
        REQUIRE(rd);
        got = std::string(rd.buffer.as_string_view());
        CHECK(drain(q) == std::vector<int>{round});
      }
      CHECK(got == "r" + std::to_string(round));
    }
    CHECK(rounds_lost == 20);  // the recv lost, data in hand, every round
  };
  coring::run(body());
}

TEST_CASE("select: an accept loser handed a connection gives it back", "[select][net]") {
  auto body = []() -> Task<void> {
    auto listener = coring::net::TcpListener::bind(coring::net::Address::parse("127.0.0.1:0"));
    Queue<int> q;
    std::vector<int> clients;
    int rounds_lost = 0;
    for (int round = 0; round < 10; ++round) {
      // A client connects, and a post() pushes an item: the item reaches the
      // select's pop before the loop's poll hands the connection to its accept
      // (see the recv case above), which must then give it back.
      auto feeder = coring::spawn([](Queue<int>& qq, coring::net::Address where,
                                     std::vector<int>& fds, int v) -> Task<void> {
        co_await coring::yield_now();
        fds.push_back(coring_test::raw_connect(where));
        coring::EventLoop::current_or_throw().post([&qq, v] { (void)qq.try_push(v); });
      }(q, listener.local_address(), clients, round));
      auto r = co_await select(q.pop(), listener.accept());
      co_await feeder;
      if (r.index() == 0) {
        ++rounds_lost;
        auto a = co_await listener.accept(2s);  // the connection was not lost
        REQUIRE(a);
        CHECK(a.stream.peer_address().port() != 0);
      } else {
        CHECK(std::get<1>(r));
        CHECK(drain(q) == std::vector<int>{round});
      }
    }
    CHECK(rounds_lost == 10);
    for (int fd : clients) ::close(fd);
  };
  coring::run(body());
}

TEST_CASE("select: two PollableQueues fed by threads and a socket lose nothing",
          "[select][pollable_queue]") {
  constexpr int kPerThread = 5000;
  auto body = []() -> Task<void> {
    coring::PollableQueue<int> q1, q2;
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    coring::net::TcpStream sock(fds[0]);
    // Two threads per queue, and one writing 1000 bytes to the socket in bits.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&q1, &q2, t] {
        auto& q = t < 2 ? q1 : q2;
        for (int i = 0; i < kPerThread; ++i) q.push(t * kPerThread + i);
      });
    }
    threads.emplace_back([fd = fds[1]] {
      for (int i = 0; i < 100; ++i) {
        const std::string bits(10, static_cast<char>('a' + i % 26));
        (void)::send(fd, bits.data(), bits.size(), MSG_NOSIGNAL);
        if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      ::close(fd);
    });
    std::thread closer([&threads, &q1, &q2] {
      for (std::size_t i = 0; i < 4; ++i) threads[i].join();
      q1.close();
      q2.close();
    });

    std::vector<int> seen;
    std::size_t bytes = 0;
    bool q1_open = true, q2_open = true, sock_open = true;
    while (q1_open && q2_open && sock_open) {
      auto r = co_await select(q1.pop(), q2.pop(), sock.recv());
      if (r.index() == 0) {
        if (auto v = std::get<0>(r)) {
          seen.push_back(*v);
        } else {
          q1_open = false;
        }
      } else if (r.index() == 1) {
        if (auto v = std::get<1>(r)) {
          seen.push_back(*v);
        } else {
          q2_open = false;
        }
      } else {
        auto& got = std::get<2>(r);
        if (got) {
          bytes += got.size();
        } else {
          sock_open = false;
        }
      }
    }
    while (auto v = co_await q1.pop()) seen.push_back(*v);
    while (auto v = co_await q2.pop()) seen.push_back(*v);
    while (sock_open) {
      auto got = co_await sock.recv();
      if (!got) break;
      bytes += got.size();
    }
    closer.join();
    threads.back().join();
    CHECK(bytes == 1000);
    REQUIRE(seen.size() == 4u * kPerThread);
    std::sort(seen.begin(), seen.end());
    for (int i = 0; i < 4 * kPerThread; ++i) REQUIRE(seen[static_cast<std::size_t>(i)] == i);
  };
  coring::run(body());
}

TEST_CASE("select: an operation that throws while starting stops the others first",
          "[select][net]") {
  auto body = []() -> Task<void> {
    auto listener = coring::net::TcpListener::bind(coring::net::Address::parse("127.0.0.1:0"));
    auto pair = co_await coring_test::make_pair(&listener);
    Queue<int> q;
    // Another task is in recv() on the stream: a second recv throws logic_error
    // when it starts -- after the select's pop was already parked.
    auto reader = coring::spawn([](coring::net::TcpStream& s) -> Task<void> {
      auto r = co_await s.recv(10s);
      (void)r;
    }(pair.server));
    co_await coring::yield_now();
    bool threw = false;
    try {
      auto r = co_await select(q.pop(), pair.server.recv());
      (void)r;
    } catch (const std::logic_error&) {
      threw = true;
    }
    CHECK(threw);
    CHECK(q.waiting_poppers() == 0);  // the pop was stopped before the exception came out
    co_await q.push(1);
    CHECK(q.size() == 1);
    reader.cancel();
    (void)co_await reader.join();
  };
  coring::run(body());
}
