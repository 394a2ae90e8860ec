// Actors (spawn_actor, Inbox, ActorRef): per-sender order, close after drain,
// sends to closed and ended actors, failures (join rethrows, others run on, an
// unobserved failure on stderr), control not blocked by a full mailbox
// (close/stop with parked senders, MailboxFull, backpressure order,
// with_timeout on send_async), watch/on_exit and a small supervisor, an actor
// sending to itself, cancellation (stop -- parked, already woken, by itself --,
// receive timeouts, cancelled receivers, a helper's receive when the actor
// ends), misuse (two receivers, an Inbox not taken by value), a million actors,
// and leaks (frames, fds, the actor's state).
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::ActorClosed;
using coring::ActorOptions;
using coring::ActorRef;
using coring::Event;
using coring::FrameAllocator;
using coring::Inbox;
using coring::JoinHandle;
using coring::MailboxFull;
using coring::SendStatus;
using coring::spawn_actor;
using coring::Task;

using namespace coring_test;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

ActorOptions bounded(std::size_t capacity) {
  ActorOptions o;
  o.capacity = capacity;
  return o;
}
ActorOptions on_scheduler(coring::TaskScheduler& s) {
  ActorOptions o;
  o.scheduler = &s;
  return o;
}

// Yields until `a` has ended (bounded: a bug must fail the test, not hang it).
template <class M>
Task<void> until_done(const ActorRef<M>& a) {
  for (int i = 0; i < 10000 && !a.done(); ++i) co_await coring::yield_now();
}

// Yields `n` times: lets every ready task run to its next suspension point.
Task<void> settle(int n = 4) {
  for (int i = 0; i < n; ++i) co_await coring::yield_now();
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "?";
  }
}

std::size_t occurrences(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (std::size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

// ---- actor bodies ----

// Receives until closed and drained; records every message, then `*ended`.
Task<void> collector(Inbox<int> inbox, std::vector<int>* got, bool* ended) {
  while (std::optional<int> m = co_await inbox.receive()) {
    if (got != nullptr) got->push_back(*m);
  }
  if (ended != nullptr) *ended = true;
}

// The seed's shape: recv() until it throws ActorExit.
Task<void> recv_collector(Inbox<int> inbox, std::vector<int>* got) {
  for (;;) {
    const int m = co_await inbox.recv();
    got->push_back(m);
  }
}

// Waits for `gate` before it receives anything (a mailbox that fills up).
Task<void> gated_collector(Inbox<int> inbox, Event* gate, std::vector<int>* got) {
  co_await gate->wait();
  while (std::optional<int> m = co_await inbox.receive()) got->push_back(*m);
}

// Throws on `bad`; records the others.
Task<void> fail_on(Inbox<int> inbox, int bad, std::vector<int>* got) {
  while (std::optional<int> m = co_await inbox.receive()) {
    if (*m == bad) throw std::runtime_error("bad message " + std::to_string(bad));
    if (got != nullptr) got->push_back(*m);
  }
}

using Tagged = std::pair<int, int>;  // (sender, sequence number)

Task<void> pair_collector(Inbox<Tagged> inbox, std::vector<Tagged>* got) {
  while (std::optional<Tagged> m = co_await inbox.receive()) {
    got->push_back(*m);
    co_await coring::yield_now();  // a slow receiver: the mailbox fills
  }
}

// ---- sender tasks ----

// co_await send_async(v): "sent" or "closed".
Task<std::string> send_async_status(ActorRef<int> to, int v) {
  try {
    co_await to.send_async(v);
    co_return "sent";
  } catch (const ActorClosed&) {
    co_return "closed";
  }
}

struct Unwound {
  int* count;
  ~Unwound() { ++*count; }
};

}  // namespace

// ---- order ----

TEST_CASE("each sender's messages arrive in the order it sent them", "[actor][order]") {
  const std::size_t capacity = GENERATE(std::size_t{0}, std::size_t{3});
  INFO("capacity " << capacity);
  constexpr int kSenders = 4;
  constexpr int kEach = 60;
  std::vector<Tagged> got;
  coring::run([&]() -> Task<void> {
    ActorRef<Tagged> a = spawn_actor<Tagged>(bounded(capacity), pair_collector, &got);
    std::vector<JoinHandle<void>> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.push_back(coring::spawn([](ActorRef<Tagged> to, int id, bool bounded) -> Task<void> {
        for (int i = 0; i < kEach; ++i) {
          if (bounded || i % 2 == 0) {
            co_await to.send_async(Tagged{id, i});
          } else {
            to.send(Tagged{id, i});
          }
          if (i % (id + 1) == 0) co_await coring::yield_now();  // interleave differently
        }
      }(a, s, capacity != 0)));
    }
    for (auto& h : senders) co_await h;
    a.close();
    co_await a.join();
  }());
  REQUIRE(got.size() == static_cast<std::size_t>(kSenders * kEach));
  std::vector<int> next(kSenders, 0);
  int switches = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto [sender, seq] = got[i];
    REQUIRE(sender >= 0);
    REQUIRE(sender < kSenders);
    REQUIRE(seq == next[static_cast<std::size_t>(sender)]);  // this sender's order
    ++next[static_cast<std::size_t>(sender)];
    if (i > 0 && got[i - 1].first != sender) ++switches;
  }
  CHECK(switches > kSenders);  // the senders were really interleaved
}

// ---- close ----

TEST_CASE("close: what was queued is received, then receive() gives nullopt and the actor ends",
          "[actor][close]") {
  std::vector<int> got;
  bool ended = false;
  bool closed_at_once = false;
  bool done_at_once = true;
  std::size_t queued_at_close = 0;
  bool returned = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(collector, &got, &ended);
    for (int i = 1; i <= 5; ++i) a.send(i);
    queued_at_close = a.queued();
    a.close();
    a.close();  // idempotent
    closed_at_once = a.closed();
    done_at_once = a.done();
    co_await a.join();  // does not throw
    const coring::Outcome<void> o = co_await a.watch();
    returned = o.has_value();
  }());
  CHECK(queued_at_close == 5);
  CHECK(closed_at_once);
  CHECK_FALSE(done_at_once);
  CHECK(got == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(ended);
  CHECK(returned);
}

TEST_CASE("close wakes an actor parked in receive() with nullopt; messages sent before come first",
          "[actor][close]") {
  std::vector<int> got;
  bool ended = false;
  std::size_t undelivered = 99;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(collector, &got, &ended);
    co_await settle();  // parked in receive()
    a.send(7);          // handed to the parked receiver
    a.send(8);          // queued
    a.close();
    co_await a.join();
    undelivered = a.undelivered();
  }());
  CHECK(got == std::vector<int>{7, 8});
  CHECK(ended);
  CHECK(undelivered == 0);
}

TEST_CASE("recv() throws ActorExit once closed and drained; the actor ends normally",
          "[actor][close]") {
  std::vector<int> got;
  bool returned = false;
  std::string err;
  {
    StderrCapture cap;
    coring::run([&]() -> Task<void> {
      ActorRef<int> a = spawn_actor<int>(ActorOptions{.name = "recv-er"}, recv_collector, &got);
      a.send(1);
      a.send(2);
      co_await settle();
      a.send(3);
      a.close();
      co_await a.join();  // ActorExit is a normal end: nothing rethrown
      const coring::Outcome<void> o = co_await a.watch();
      returned = o.has_value();
    }());
    err = cap.finish();
  }
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(returned);
  CHECK(err.find("recv-er") == std::string::npos);  // not reported as a failure
}

TEST_CASE("send after close throws ActorClosed; try_send gives closed and leaves the message",
          "[actor][close]") {
  std::vector<int> got;
  coring::run([&]() -> Task<void> {
    ActorRef<std::string> a = spawn_actor<std::string>([](Inbox<std::string> inbox) -> Task<void> {
      while (std::optional<std::string> m = co_await inbox.receive()) {
      }
    });
    a.send("queued");
    a.close();
    CHECK_THROWS_AS(a.send("late"), ActorClosed);
    std::string msg = "payload";
    const SendStatus st = a.try_send(std::move(msg));
    CHECK(st == SendStatus::closed);
    CHECK(msg == "payload");  // untouched
    const std::string copy = "copy";
    CHECK(a.try_send(copy) == SendStatus::closed);
    bool async_closed = false;
    try {
      co_await a.send_async("async");
    } catch (const ActorClosed&) {
      async_closed = true;
    }
    CHECK(async_closed);
    CHECK(a.queued() == 1);  // only the message sent before close
    co_await a.join();
    CHECK(a.undelivered() == 0);  // "queued" was received
  }());
}

TEST_CASE("a message to an ended actor throws ActorClosed naming it", "[actor][close]") {
  std::string what;
  SendStatus st = SendStatus::sent;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(ActorOptions{.name = "short-lived"},
                                       [](Inbox<int>) -> Task<void> { co_return; });
    co_await a.join();
    CHECK(a.done());
    CHECK(a.closed());
    try {
      a.send(1);
    } catch (const ActorClosed& e) {
      what = e.what();
    }
    st = a.try_send(2);
  }());
  CHECK_THAT(what, Catch::Contains("short-lived"));
  CHECK(st == SendStatus::closed);
}

TEST_CASE("send never runs the actor inline: a parked receiver is scheduled", "[actor][order]") {
  std::vector<int> got;
  std::size_t right_after_send = 99;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(collector, &got, nullptr);
    co_await settle();  // parked in receive()
    a.send(1);
    right_after_send = got.size();
    co_await settle();
    CHECK(got == std::vector<int>{1});
    a.close();
    co_await a.join();
  }());
  CHECK(right_after_send == 0);
}

TEST_CASE("the mailbox keeps FIFO order as it wraps around and grows", "[actor][order]") {
  std::vector<int> got;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, Event* g, std::vector<int>* out) -> Task<void> {
          while (std::optional<int> m = co_await inbox.receive()) {
            out->push_back(*m);
            if (out->size() == 2) co_await g->wait();  // leaves the rest queued
          }
        },
        &gate, &got);
    for (int i = 0; i < 3; ++i) a.send(i);
    co_await settle();  // it took 0 and 1: the ring's head has moved on
    REQUIRE(got.size() == 2);
    for (int i = 3; i < 40; ++i) a.send(i);  // wraps, then grows (several times)
    CHECK(a.queued() == 38);
    gate.set();
    a.close();
    co_await a.join();
  }());
  REQUIRE(got.size() == 40);
  for (int i = 0; i < 40; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("try_receive takes without waiting and admits the oldest parked sender",
          "[actor][backpressure]") {
  std::vector<std::optional<int>> taken;
  std::vector<std::string> statuses;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(
        bounded(1),
        [](Inbox<int> inbox, Event* g, std::vector<std::optional<int>>* out) -> Task<void> {
          out->push_back(inbox.try_receive());  // empty: nullopt
          co_await g->wait();
          out->push_back(inbox.try_receive());  // 1, admitting 2
          out->push_back(inbox.try_receive());  // 2, admitting 3
          co_await coring::yield_now();
          out->push_back(inbox.try_receive());  // 3
          out->push_back(inbox.try_receive());  // nothing
        },
        &gate, &taken);
    co_await settle();
    a.send(1);
    std::vector<JoinHandle<std::string>> senders;
    for (int i = 2; i <= 3; ++i) {
      senders.push_back(coring::spawn(send_async_status(a, i)));
      co_await coring::yield_now();
    }
    gate.set();
    for (auto& sd : senders) statuses.push_back(co_await sd);
    co_await a.join();
  }());
  REQUIRE(taken.size() == 5);
  CHECK_FALSE(taken[0].has_value());
  CHECK(taken[1] == 1);
  CHECK(taken[2] == 2);
  CHECK(taken[3] == 3);
  CHECK_FALSE(taken[4].has_value());
  CHECK(statuses == std::vector<std::string>{"sent", "sent"});
}

TEST_CASE("senders parked for room get ActorClosed when the actor ends without closing",
          "[actor][backpressure]") {
  std::vector<std::string> statuses;
  std::uint64_t undelivered = 0;
  coring::run([&]() -> Task<void> {
    Event quit;
    ActorRef<int> a = spawn_actor<int>(
        bounded(1),
        [](Inbox<int>, Event* q) -> Task<void> {
          co_await q->wait();  // returns without receiving anything
        },
        &quit);
    a.send(1);
    std::vector<JoinHandle<std::string>> senders;
    for (int i = 0; i < 2; ++i) senders.push_back(coring::spawn(send_async_status(a, 10 + i)));
    co_await settle();
    quit.set();
    for (auto& sd : senders) statuses.push_back(co_await sd);
    co_await a.join();
    undelivered = a.undelivered();
  }());
  CHECK(statuses == std::vector<std::string>{"closed", "closed"});
  CHECK(undelivered == 1);  // only the one that was queued
}

// ---- failures ----

TEST_CASE("join rethrows the actor's exception; other actors keep running", "[actor][failure]") {
  std::vector<int> got_a;
  std::vector<int> got_b;
  std::string what1;
  std::string what2;
  std::uint64_t undelivered = 0;
  bool closed_after = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(fail_on, 3, &got_a);
    ActorRef<int> b = spawn_actor<int>(collector, &got_b, nullptr);
    for (int i = 1; i <= 4; ++i) a.send(i);  // 4 is still queued when a fails on 3
    b.send(10);
    try {
      co_await a.join();
    } catch (const std::runtime_error& e) {
      what1 = e.what();
    }
    try {
      co_await a.join();  // any number of joins: each rethrows
    } catch (const std::runtime_error& e) {
      what2 = e.what();
    }
    undelivered = a.undelivered();
    closed_after = a.closed();
    CHECK_THROWS_AS(a.send(5), ActorClosed);
    b.send(11);  // b runs on
    b.close();
    co_await b.join();
  }());
  CHECK(what1 == "bad message 3");
  CHECK(what2 == "bad message 3");
  CHECK(got_a == std::vector<int>{1, 2});
  CHECK(undelivered == 1);
  CHECK(closed_after);
  CHECK(got_b == std::vector<int>{10, 11});
}

TEST_CASE("concurrent joiners and watchers all see the failure", "[actor][failure]") {
  int rethrown = 0;
  int watched_failed = 0;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int>, Event* g) -> Task<void> {
          co_await g->wait();
          throw std::logic_error("late failure");
        },
        &gate);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) {
      hs.push_back(coring::spawn([](ActorRef<int> x, int* n) -> Task<void> {
        try {
          co_await x.join();
        } catch (const std::logic_error&) {
          ++*n;
        }
      }(a, &rethrown)));
      hs.push_back(coring::spawn([](ActorRef<int> x, int* n) -> Task<void> {
        const coring::Outcome<void> o = co_await x.watch();
        if (o.failed() && what_of(o.error()) == "late failure") ++*n;
      }(a, &watched_failed)));
    }
    co_await settle();
    gate.set();
    for (auto& h : hs) co_await h;
  }());
  CHECK(rethrown == 3);
  CHECK(watched_failed == 3);
}

TEST_CASE("an unobserved failure is reported on stderr when the last reference goes",
          "[actor][failure]") {
  std::string before_drop;
  std::string at_drop;
  bool done = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(ActorOptions{.name = "doomed"}, fail_on, 1, nullptr);
    ActorRef<int> copy = a;
    a.send(1);
    {
      StderrCapture cap;
      co_await until_done(a);
      done = a.done();
      a = ActorRef<int>();  // not the last reference
      before_drop = cap.finish();
    }
    {
      StderrCapture cap;
      copy = ActorRef<int>();  // the last one
      at_drop = cap.finish();
    }
  }());
  REQUIRE(done);
  CHECK(before_drop.find("doomed") == std::string::npos);
  CHECK_THAT(at_drop, Catch::Contains("doomed") && Catch::Contains("bad message 1"));
  CHECK(occurrences(at_drop, "bad message 1") == 1);
}

TEST_CASE("an actor that fails after its last reference went is reported when it ends",
          "[actor][failure]") {
  std::string err;
  {
    StderrCapture cap;
    coring::run([&]() -> Task<void> {
      {
        ActorRef<int> a =
            spawn_actor<int>(ActorOptions{.name = "orphan"}, [](Inbox<int>) -> Task<void> {
              co_await coring::yield_now();
              throw std::runtime_error("orphan failed");
            });
      }  // dropped before it ran
      co_await settle(8);
    }());
    err = cap.finish();
  }
  CHECK_THAT(err, Catch::Contains("orphan") && Catch::Contains("orphan failed"));
}

TEST_CASE("a failure looked at by join, watch or on_exit is not reported", "[actor][failure]") {
  const int how = GENERATE(0, 1, 2);
  INFO("observed by " << (how == 0 ? "join" : how == 1 ? "watch" : "on_exit"));
  std::string err;
  bool observed = false;
  {
    StderrCapture cap;
    coring::run([&]() -> Task<void> {
      ActorRef<int> a = spawn_actor<int>(ActorOptions{.name = "observed"}, fail_on, 1, nullptr);
      a.send(1);
      if (how == 0) {
        try {
          co_await a.join();
        } catch (const std::runtime_error&) {
          observed = true;
        }
      } else if (how == 1) {
        const coring::Outcome<void> o = co_await a.watch();
        observed = o.failed();
      } else {
        a.on_exit([&](const coring::Outcome<void>& o) { observed = o.failed(); });
        co_await until_done(a);
      }
    }());
    err = cap.finish();
  }
  CHECK(observed);
  CHECK(err.find("observed") == std::string::npos);
}

// ---- control is never blocked by a full mailbox ----

TEST_CASE("a full bounded mailbox: send throws MailboxFull, try_send gives full",
          "[actor][backpressure]") {
  std::vector<int> got;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(bounded(2), gated_collector, &gate, &got);
    CHECK(a.capacity() == 2);
    a.send(1);
    CHECK(a.try_send(2) == SendStatus::sent);
    CHECK(a.queued() == 2);
    CHECK_THROWS_AS(a.send(3), MailboxFull);
    CHECK(a.try_send(4) == SendStatus::full);
    CHECK(a.queued() == 2);  // neither was queued
    gate.set();
    co_await settle();
    CHECK(a.queued() == 0);
    a.send(5);  // room again
    a.close();
    co_await a.join();
  }());
  CHECK(got == std::vector<int>{1, 2, 5});
}

TEST_CASE("close() on a full mailbox takes effect at once; parked senders get ActorClosed",
          "[actor][backpressure]") {
  std::vector<int> got;
  std::vector<std::string> statuses;
  bool closed_at_once = false;
  std::size_t queued_after_close = 0;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(bounded(2), gated_collector, &gate, &got);
    a.send(1);
    a.send(2);
    std::vector<JoinHandle<std::string>> senders;
    for (int i = 0; i < 3; ++i) senders.push_back(coring::spawn(send_async_status(a, 10 + i)));
    co_await settle();
    REQUIRE(a.queued() == 2);
    for (auto& s : senders) REQUIRE_FALSE(s.done());  // parked for room
    a.close();
    closed_at_once = a.closed();
    queued_after_close = a.queued();
    for (auto& s : senders) statuses.push_back(co_await s);
    gate.set();
    co_await a.join();
  }());
  CHECK(closed_at_once);
  CHECK(queued_after_close == 2);
  CHECK(statuses == std::vector<std::string>{"closed", "closed", "closed"});
  CHECK(got == std::vector<int>{1, 2});  // the queued ones drained, none of the refused
}

TEST_CASE(
    "stop() on a full mailbox: discards the queue (counted), cancels the actor, parked "
    "senders get ActorClosed",
    "[actor][backpressure]") {
  std::vector<int> got;
  std::vector<std::string> statuses;
  std::size_t discarded = 0;
  std::uint64_t undelivered = 0;
  bool cancelled = false;
  bool closed_at_once = false;
  int unwound = 0;
  coring::run([&]() -> Task<void> {
    Event gate;  // never set: the actor stays parked on it
    ActorRef<int> a = spawn_actor<int>(
        bounded(2),
        [](Inbox<int> inbox, Event* g, std::vector<int>* out, int* dtors) -> Task<void> {
          Unwound guard{dtors};
          co_await g->wait();
          while (std::optional<int> m = co_await inbox.receive()) out->push_back(*m);
        },
        &gate, &got, &unwound);
    a.send(1);
    a.send(2);
    std::vector<JoinHandle<std::string>> senders;
    for (int i = 0; i < 3; ++i) senders.push_back(coring::spawn(send_async_status(a, 10 + i)));
    co_await settle();
    REQUIRE(a.queued() == 2);
    discarded = a.stop();
    closed_at_once = a.closed();
    undelivered = a.undelivered();
    CHECK(a.queued() == 0);
    CHECK(a.stop() == 0);  // again: nothing left
    for (auto& s : senders) statuses.push_back(co_await s);
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
    co_await a.join();  // a stopped actor joins normally
    CHECK(a.undelivered() == 2);
  }());
  CHECK(discarded == 2);
  CHECK(undelivered == 2);
  CHECK(closed_at_once);
  CHECK(statuses == std::vector<std::string>{"closed", "closed", "closed"});
  CHECK(cancelled);
  CHECK(unwound == 1);
  CHECK(got.empty());
}

TEST_CASE("stop() on an actor parked in receive() unwinds it: it is not handed nullopt",
          "[actor][cancel]") {
  bool after_receive = false;
  bool cancelled = false;
  int unwound = 0;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, bool* after, int* dtors) -> Task<void> {
          Unwound guard{dtors};
          std::optional<int> m = co_await inbox.receive();
          *after = true;
          (void)m;
        },
        &after_receive, &unwound);
    co_await settle();
    CHECK(a.stop() == 0);
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
  }());
  CHECK(cancelled);
  CHECK_FALSE(after_receive);
  CHECK(unwound == 1);
}

TEST_CASE("stop() an actor that was already woken: it gets the handed message, then is unwound",
          "[actor][cancel]") {
  // stop(): "the actor's task is cancelled (unwound at its suspension point,
  // RAII runs)"; a message handed before is still given to it. Its next
  // receive() must not hand it nullopt (it would run on past its loop and end
  // as returned).
  std::vector<int> got;
  bool after_loop = false;
  bool cancelled = false;
  bool returned = false;
  int unwound = 0;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, std::vector<int>* out, bool* after, int* dtors) -> Task<void> {
          Unwound guard{dtors};
          while (std::optional<int> m = co_await inbox.receive()) out->push_back(*m);
          *after = true;
        },
        &got, &after_loop, &unwound);
    co_await settle();  // parked in receive()
    a.send(1);          // handed over: the actor is scheduled
    a.stop();
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
    returned = o.has_value();
  }());
  CHECK(got == std::vector<int>{1});
  CHECK(unwound == 1);
  CHECK_FALSE(after_loop);
  CHECK(cancelled);
  CHECK_FALSE(returned);
}

TEST_CASE("an actor that stops itself is unwound at its next receive()", "[actor][cancel]") {
  std::vector<int> got;
  bool after_loop = false;
  bool cancelled = false;
  std::uint64_t undelivered = 0;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, std::vector<int>* out, bool* after) -> Task<void> {
          while (std::optional<int> m = co_await inbox.receive()) {
            out->push_back(*m);
            if (*m == 2) inbox.self().stop();
          }
          *after = true;
        },
        &got, &after_loop);
    for (int i = 1; i <= 4; ++i) a.send(i);
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
    undelivered = a.undelivered();
  }());
  CHECK(got == std::vector<int>{1, 2});
  CHECK(undelivered == 2);
  CHECK_FALSE(after_loop);
  CHECK(cancelled);
}

TEST_CASE("stop() an actor sleeping in its body: unwound at its suspension point, RAII runs",
          "[actor][cancel]") {
  bool after_sleep = false;
  bool cancelled = false;
  int unwound = 0;
  coring::Duration elapsed{};
  coring::run([&]() -> Task<void> {
    const auto t0 = coring::Clock::now();
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int>, bool* after, int* dtors) -> Task<void> {
          Unwound guard{dtors};
          co_await coring::sleep_for(1h);
          *after = true;
        },
        &after_sleep, &unwound);
    co_await settle();
    a.stop();
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
    elapsed = coring::Clock::now() - t0;
  }());
  CHECK(cancelled);
  CHECK_FALSE(after_sleep);
  CHECK(unwound == 1);
  CHECK(elapsed < 60s);
}

TEST_CASE("stop() before the actor started: its body never runs", "[actor][cancel]") {
  bool ran = false;
  bool cancelled = false;
  std::size_t discarded = 0;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int>, bool* r) -> Task<void> {
          *r = true;
          co_return;
        },
        &ran);
    a.send(1);
    discarded = a.stop();
    const coring::Outcome<void> o = co_await a.watch();
    cancelled = o.cancelled();
  }());
  CHECK_FALSE(ran);
  CHECK(cancelled);
  CHECK(discarded == 1);
}

TEST_CASE("send_async waits for room; waiting senders are admitted in the order they came",
          "[actor][backpressure]") {
  std::vector<int> got;
  std::size_t max_queued = 0;
  std::vector<std::string> statuses;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(
        bounded(1),
        [](Inbox<int> inbox, Event* g, std::vector<int>* out, std::size_t* maxq) -> Task<void> {
          co_await g->wait();
          while (std::optional<int> m = co_await inbox.receive()) {
            *maxq = std::max(*maxq, inbox.queued());
            out->push_back(*m);
            co_await coring::yield_now();
          }
        },
        &gate, &got, &max_queued);
    co_await a.send_async(0);  // room: does not wait
    std::vector<JoinHandle<std::string>> senders;
    for (int i = 1; i <= 4; ++i) {
      senders.push_back(coring::spawn(send_async_status(a, i)));
      co_await coring::yield_now();  // each parks before the next one starts
    }
    for (auto& s : senders) REQUIRE_FALSE(s.done());
    CHECK(a.queued() == 1);
    gate.set();
    for (auto& s : senders) statuses.push_back(co_await s);
    a.close();
    co_await a.join();
  }());
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(max_queued <= 1);
  CHECK(statuses == std::vector<std::string>(4, "sent"));
}

TEST_CASE(
    "joiners and parked senders wait together: room admits senders in order, close "
    "wakes only the senders, the end wakes the joiners",
    "[actor][backpressure][watch]") {
  std::vector<int> got;
  std::vector<std::string> order;
  coring::run([&]() -> Task<void> {
    Event gate;
    Event finish;
    ActorRef<int> a = spawn_actor<int>(
        bounded(1),
        [](Inbox<int> inbox, Event* g, Event* f, std::vector<int>* out) -> Task<void> {
          co_await g->wait();
          for (int i = 0; i < 2; ++i) {
            std::optional<int> m = co_await inbox.receive();
            if (m) out->push_back(*m);
          }
          co_await f->wait();
          while (std::optional<int> m = co_await inbox.receive()) out->push_back(*m);
        },
        &gate, &finish, &got);
    a.send(1);
    std::vector<JoinHandle<void>> tasks;
    auto joiner = [](ActorRef<int> x, std::vector<std::string>* log,
                     std::string name) -> Task<void> {
      const coring::Outcome<void> o = co_await x.watch();
      log->push_back(name + (o.has_value() ? ":returned" : ":other"));
    };
    auto sender = [](ActorRef<int> x, std::vector<std::string>* log, int v) -> Task<void> {
      const std::string st = co_await send_async_status(x, v);
      log->push_back(std::to_string(v) + ":" + st);
    };
    // Interleaved in the one wait list: joiner, sender 2, joiner, sender 3, sender 4.
    tasks.push_back(coring::spawn(joiner(a, &order, "j1")));
    co_await coring::yield_now();
    tasks.push_back(coring::spawn(sender(a, &order, 2)));
    co_await coring::yield_now();
    tasks.push_back(coring::spawn(joiner(a, &order, "j2")));
    co_await coring::yield_now();
    tasks.push_back(coring::spawn(sender(a, &order, 3)));
    co_await coring::yield_now();
    tasks.push_back(coring::spawn(sender(a, &order, 4)));
    co_await settle();
    CHECK(order.empty());
    gate.set();  // takes 1 (admits 2), then 2 (admits 3); waits on `finish`
    co_await settle(8);
    CHECK(order == std::vector<std::string>{"2:sent", "3:sent"});
    a.close();  // 4 is refused; the joiners still wait
    co_await settle(8);
    CHECK(order == std::vector<std::string>{"2:sent", "3:sent", "4:closed"});
    finish.set();  // drains 3, ends: the joiners wake, in order
    for (auto& t : tasks) co_await t;
  }());
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(order ==
        std::vector<std::string>{"2:sent", "3:sent", "4:closed", "j1:returned", "j2:returned"});
}

TEST_CASE("with_timeout(d, send_async(m)) gives false on a full mailbox and queues nothing",
          "[actor][backpressure]") {
  std::vector<int> got;
  bool first = true;
  bool second = false;
  bool third = false;
  std::size_t queued_after_timeout = 0;
  std::size_t timers_after = 1;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(bounded(1), gated_collector, &gate, &got);
    a.send(1);
    first = co_await coring::with_timeout(10ms, a.send_async(2));
    queued_after_timeout = a.queued();
    timers_after = coring::EventLoop::current()->timers().size();
    // A send that gets room before its timeout is admitted.
    auto waiting = coring::spawn([](ActorRef<int> to) -> Task<bool> {
      co_return co_await coring::with_timeout(30s, to.send_async(3));
    }(a));
    co_await settle();
    gate.set();
    second = co_await waiting;
    third = co_await coring::with_timeout(30s, a.send_async(4));  // room now
    a.close();
    co_await a.join();
  }());
  CHECK_FALSE(first);
  CHECK(queued_after_timeout == 1);
  CHECK(timers_after == 0);
  CHECK(second);
  CHECK(third);
  CHECK(got == std::vector<int>{1, 3, 4});
}

TEST_CASE("a cancelled send_async did not queue its message", "[actor][backpressure][cancel]") {
  std::vector<int> got;
  bool cancelled = false;
  coring::run([&]() -> Task<void> {
    Event gate;
    ActorRef<int> a = spawn_actor<int>(bounded(1), gated_collector, &gate, &got);
    a.send(1);
    auto parked = coring::spawn(send_async_status(a, 2));
    auto behind = coring::spawn(send_async_status(a, 3));
    co_await settle();
    parked.cancel();
    const coring::Outcome<std::string> o = co_await parked.join();
    cancelled = o.cancelled();
    gate.set();
    const std::string st = co_await behind;  // the next waiter takes the room
    CHECK(st == "sent");
    a.close();
    co_await a.join();
  }());
  CHECK(cancelled);
  CHECK(got == std::vector<int>{1, 3});
}

// ---- watch, on_exit, supervision ----

TEST_CASE("watch gives the outcome: returned, failed with its error, cancelled after stop()",
          "[actor][watch]") {
  bool returned = false;
  bool ret_not_failed = false;
  bool failed = false;
  std::string error;
  bool cancelled = false;
  bool cancelled_error_null = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> ok = spawn_actor<int>(collector, nullptr, nullptr);
    ActorRef<int> bad = spawn_actor<int>(fail_on, 0, nullptr);
    ActorRef<int> stopped = spawn_actor<int>(collector, nullptr, nullptr);
    ok.close();
    bad.send(0);
    co_await settle();
    stopped.stop();
    const coring::Outcome<void> o1 = co_await ok.watch();
    returned = o1.has_value();
    ret_not_failed = !o1.failed() && !o1.cancelled() && o1.error() == nullptr;
    const coring::Outcome<void> o2 = co_await bad.watch();
    failed = o2.failed() && !o2.has_value() && !o2.cancelled();
    if (o2.error()) error = what_of(o2.error());
    const coring::Outcome<void> o3 = co_await stopped.watch();
    cancelled = o3.cancelled() && !o3.has_value() && !o3.failed();
    cancelled_error_null = o3.error() == nullptr;
  }());
  CHECK(returned);
  CHECK(ret_not_failed);
  CHECK(failed);
  CHECK(error == "bad message 0");
  CHECK(cancelled);
  CHECK(cancelled_error_null);
}

TEST_CASE("on_exit callbacks run once, in order, when the actor ends; registered after, at once",
          "[actor][watch]") {
  std::vector<std::string> calls;
  bool ran_at_once = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(fail_on, 5, nullptr);
    a.on_exit([&](const coring::Outcome<void>& o) {
      calls.push_back(std::string("first:") + (o.failed() ? what_of(o.error()) : "not failed"));
    });
    a.on_exit([&](const coring::Outcome<void>& o) {
      calls.push_back(std::string("second:") + (o.failed() ? "failed" : "not failed"));
    });
    co_await settle();
    CHECK(calls.empty());  // not ended yet
    a.send(5);
    co_await until_done(a);
    CHECK(calls.size() == 2);
    a.on_exit([&](const coring::Outcome<void>& o) {
      calls.push_back(std::string("late:") + (o.failed() ? "failed" : "not failed"));
    });
    ran_at_once = calls.size() == 3;
    co_await settle();
  }());
  CHECK(ran_at_once);
  CHECK(calls == std::vector<std::string>{"first:bad message 5", "second:failed", "late:failed"});
}

namespace {

struct Notice {
  int generation;
  bool failed;
};

// A worker: records (generation, message); fails on a negative message.
Task<void> supervised_worker(Inbox<int> inbox, int generation, std::vector<Tagged>* log) {
  while (std::optional<int> m = co_await inbox.receive()) {
    if (*m < 0) throw std::runtime_error("negative message");
    log->emplace_back(generation, *m);
  }
}

// Starts a worker and restarts it (up to `max_restarts` times) when its
// on_exit callback reports a failure; ends when the worker ends normally.
Task<void> supervisor(Inbox<Notice> inbox, ActorRef<int>* current, std::vector<Tagged>* log,
                      int* restarts, int max_restarts) {
  const ActorRef<Notice> me = inbox.self();
  int generation = 0;
  auto start = [&] {
    ++generation;
    *current = spawn_actor<int>(supervised_worker, generation, log);
    current->on_exit([sup = me, gen = generation](const coring::Outcome<void>& o) mutable {
      (void)sup.try_send(Notice{gen, o.failed()});
    });
  };
  start();
  while (std::optional<Notice> n = co_await inbox.receive()) {
    if (!n->failed) break;
    if (*restarts == max_restarts) throw std::runtime_error("too many restarts");
    ++*restarts;
    start();
  }
}

}  // namespace

TEST_CASE("on_exit sends a message to a supervisor, which restarts a failing worker",
          "[actor][watch][supervisor]") {
  std::vector<Tagged> log;
  int restarts = 0;
  bool sup_returned = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> worker;
    ActorRef<Notice> sup = spawn_actor<Notice>(supervisor, &worker, &log, &restarts, 3);
    co_await settle();
    REQUIRE(worker);
    worker.send(1);
    worker.send(-1);  // the first worker fails
    for (int i = 0; i < 1000 && restarts < 1; ++i) co_await coring::yield_now();
    REQUIRE(restarts == 1);
    worker.send(2);
    worker.send(-2);  // the second one too
    for (int i = 0; i < 1000 && restarts < 2; ++i) co_await coring::yield_now();
    REQUIRE(restarts == 2);
    worker.send(3);
    worker.close();  // the third ends normally: the supervisor ends
    const coring::Outcome<void> o = co_await sup.watch();
    sup_returned = o.has_value();
    worker = ActorRef<int>();
  }());
  CHECK(restarts == 2);
  CHECK(sup_returned);
  CHECK(log == std::vector<Tagged>{{1, 1}, {2, 2}, {3, 3}});
}

// ---- self ----

TEST_CASE("an actor sends to itself through inbox.self()", "[actor][self]") {
  std::vector<int> got;
  bool same = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, std::vector<int>* out) -> Task<void> {
          ActorRef<int> me = inbox.self();
          while (std::optional<int> m = co_await inbox.receive()) {
            out->push_back(*m);
            if (*m == 0) {
              me.close();
            } else {
              me.send(*m - 1);
            }
          }
        },
        &got);
    a.send(5);
    const coring::Outcome<void> o = co_await a.watch();
    CHECK(o.has_value());
    same = a == a;
  }());
  CHECK(got == std::vector<int>{5, 4, 3, 2, 1, 0});
  CHECK(same);
}

TEST_CASE("inbox.self() is the same actor as the spawner's reference", "[actor][self]") {
  bool equal = false;
  bool other_differs = false;
  coring::run([&]() -> Task<void> {
    ActorRef<int> seen;
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, ActorRef<int>* out) -> Task<void> {
          *out = inbox.self();
          co_return;
        },
        &seen);
    ActorRef<int> b = spawn_actor<int>(collector, nullptr, nullptr);
    co_await a.join();
    equal = static_cast<bool>(seen) && seen == a;
    other_differs = !(seen == b);
    b.close();
    co_await b.join();
  }());
  CHECK(equal);
  CHECK(other_differs);
}

// ---- receive: timeouts, cancellation, misuse ----

TEST_CASE("receive(timeout) that times out gives nullopt with closed() false; the actor goes on",
          "[actor][cancel][timeout]") {
  bool timed_out = false;
  bool closed_then = true;
  std::optional<int> in_time;
  std::optional<int> after_close;
  bool closed_at_end = false;
  coring::Duration waited{};
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, bool* to, bool* closed, std::optional<int>* got,
           std::optional<int>* last, bool* closed_end, coring::Duration* w) -> Task<void> {
          const auto t0 = coring::Clock::now();
          std::optional<int> m = co_await inbox.receive(15ms);
          *w = coring::Clock::now() - t0;
          *to = !m.has_value();
          *closed = inbox.closed();
          *got = co_await inbox.receive(30s);   // a message comes in time
          *last = co_await inbox.receive(30s);  // closed meanwhile: nullopt at once
          *closed_end = inbox.closed();
        },
        &timed_out, &closed_then, &in_time, &after_close, &closed_at_end, &waited);
    co_await coring::sleep_for(60ms);
    a.send(42);
    co_await settle();
    a.close();
    co_await a.join();
  }());
  CHECK(timed_out);
  CHECK_FALSE(closed_then);
  CHECK(waited >= 15ms);
  CHECK(in_time == 42);
  CHECK_FALSE(after_close.has_value());
  CHECK(closed_at_end);
}

TEST_CASE("a message queued when receive(timeout) is called is taken at once", "[actor][timeout]") {
  std::optional<int> got;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, std::optional<int>* out) -> Task<void> {
          *out = co_await inbox.receive(0ms);
        },
        &got);
    a.send(9);
    co_await a.join();
  }());
  CHECK(got == 9);
}

TEST_CASE("a second task receiving from one Inbox at once is a std::logic_error",
          "[actor][misuse]") {
  bool second_threw = false;
  std::optional<int> helper_got;
  std::optional<int> own_after;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, bool* threw, std::optional<int>* hg,
           std::optional<int>* own) -> Task<void> {
          auto helper = coring::spawn([](Inbox<int>& in, std::optional<int>* out) -> Task<void> {
            *out = co_await in.receive();
          }(inbox, hg));
          co_await coring::yield_now();  // the helper is parked in receive()
          try {
            std::optional<int> m = co_await inbox.receive();
            (void)m;
          } catch (const std::logic_error&) {
            *threw = true;
          }
          inbox.self().send(1);  // goes to the helper, still the receiver
          co_await helper;
          inbox.self().send(2);
          *own = co_await inbox.receive();  // one receiver again: fine
        },
        &second_threw, &helper_got, &own_after);
    co_await a.join();
  }());
  CHECK(second_threw);
  CHECK(helper_got == 1);
  CHECK(own_after == 2);
}

TEST_CASE("a cancelled receive() takes nothing; a message handed before the cancel is kept",
          "[actor][cancel]") {
  bool helper_cancelled = false;
  std::optional<int> helper_got;
  std::optional<int> own;
  bool handed_cancelled = false;
  bool past_next_suspension = false;
  std::optional<int> handed_got;
  std::size_t queued_after = 99;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, bool* hc, std::optional<int>* hg, std::optional<int>* own_out,
           bool* hc2, bool* past, std::optional<int>* hg2, std::size_t* qa) -> Task<void> {
          // 1. A receiver cancelled while parked takes nothing.
          auto h1 = coring::spawn([](Inbox<int>& in, std::optional<int>* out) -> Task<void> {
            *out = co_await in.receive();
          }(inbox, hg));
          co_await coring::yield_now();
          h1.cancel();
          const coring::Outcome<void> o1 = co_await h1.join();
          *hc = o1.cancelled();
          inbox.self().send(7);
          *own_out = co_await inbox.receive();
          // 2. A message handed to a receiver that is then cancelled is given to it;
          //    the task stops at its next suspension point.
          auto h2 =
              coring::spawn([](Inbox<int>& in, std::optional<int>* out, bool* p) -> Task<void> {
                *out = co_await in.receive();
                co_await coring::yield_now();
                *p = true;
              }(inbox, hg2, past));
          co_await coring::yield_now();
          inbox.self().send(8);  // handed over
          h2.cancel();
          const coring::Outcome<void> o2 = co_await h2.join();
          *hc2 = o2.cancelled();
          *qa = inbox.queued();
        },
        &helper_cancelled, &helper_got, &own, &handed_cancelled, &past_next_suspension, &handed_got,
        &queued_after);
    co_await a.join();
  }());
  CHECK(helper_cancelled);
  CHECK_FALSE(helper_got.has_value());
  CHECK(own == 7);
  CHECK(handed_cancelled);
  CHECK(handed_got == 8);
  CHECK_FALSE(past_next_suspension);
  CHECK(queued_after == 0);
}

namespace {
// (No `while (co_await x)` with a bare co_await as the condition in these
// bodies: GCC 12 then destroys an unconstructed temporary when the frame is
// destroyed before it started; `while (auto m = co_await x)` is fine.)
Task<void> takes_rvalue_inbox(Inbox<int>&& inbox) {
  while (std::optional<int> m = co_await inbox.receive()) {
  }
}
Task<void> takes_const_inbox(const Inbox<int>& inbox) {
  (void)inbox.queued();
  co_return;
}
Task<void> helper_by_value(Inbox<int> inbox) {
  (void)co_await inbox.receive();
}
}  // namespace

TEST_CASE("spawn_actor with a function not taking its Inbox by value is a std::logic_error",
          "[actor][misuse]") {
  // (An `Inbox<Msg>&` parameter does not compile: the static_assert in spawn_actor.)
  const auto frames_before = FrameAllocator::live_frames();
  std::string what_rvalue;
  bool const_threw = false;
  coring::run([&]() -> Task<void> {
    try {
      ActorRef<int> a = spawn_actor<int>(takes_rvalue_inbox);
      (void)a;
    } catch (const std::logic_error& e) {
      what_rvalue = e.what();
    }
    try {
      ActorRef<int> a = spawn_actor<int>(takes_const_inbox);
      (void)a;
    } catch (const std::logic_error&) {
      const_threw = true;
    }
    co_await settle();
  }());
  CHECK_THAT(what_rvalue, Catch::Contains("by value"));
  CHECK(const_threw);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("moving the Inbox out of the actor's frame is a std::logic_error", "[actor][misuse]") {
  bool threw = false;
  std::optional<int> still_works;
  coring::run([&]() -> Task<void> {
    ActorRef<int> a = spawn_actor<int>(
        [](Inbox<int> inbox, bool* t, std::optional<int>* sw) -> Task<void> {
          try {
            co_await helper_by_value(std::move(inbox));
          } catch (const std::logic_error&) {
            *t = true;
          }
          *sw = co_await inbox.receive();  // the inbox stayed here
        },
        &threw, &still_works);
    a.send(3);
    co_await a.join();
  }());
  CHECK(threw);
  CHECK(still_works == 3);
}

TEST_CASE("spawn_actor with no scheduler on this thread is a std::logic_error", "[actor][misuse]") {
  const auto frames_before = FrameAllocator::live_frames();
  REQUIRE(coring::TaskScheduler::current() == nullptr);
  CHECK_THROWS_AS(spawn_actor<int>(collector, nullptr, nullptr), std::logic_error);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("an actor's name appears in its reference", "[actor][misuse]") {
  std::string before;
  std::string after;
  std::string unnamed = "x";
  coring::run([&]() -> Task<void> {
    ActorOptions o;
    o.name = "named-one";
    ActorRef<int> a = spawn_actor<int>(o, collector, nullptr, nullptr);
    ActorRef<int> b = spawn_actor<int>(collector, nullptr, nullptr);
    before = std::string(a.name());
    unnamed = std::string(b.name());
    a.close();
    b.close();
    co_await a.join();
    co_await b.join();
    after = std::string(a.name());
  }());
  CHECK(before == "named-one");
  CHECK(after == "named-one");
  CHECK(unnamed.empty());
}

TEST_CASE("a helper parked in receive() when the actor ends is woken with nullopt",
          "[actor][cancel]") {
  // Once the actor has ended its mailbox is closed: a receive() gives nullopt,
  // also one a helper task had parked (ActorCoreBase::drain_on_end wakes it).
  // A reference kept past the loop keeps the actor's state alive, so that a
  // receiver wrongly left parked fails the test instead of touching freed memory.
  ActorRef<int> keep;
  bool helper_done = false;
  std::optional<int> helper_got = 123;
  {
    coring::EventLoop loop;
    loop.run([&]() -> Task<void> {
      JoinHandle<void> helper;
      keep = spawn_actor<int>(
          [](Inbox<int> inbox, JoinHandle<void>* h, std::optional<int>* out) -> Task<void> {
            *h = coring::spawn([](Inbox<int>& in, std::optional<int>* o) -> Task<void> {
              *o = co_await in.receive();
            }(inbox, out));
            co_await coring::yield_now();  // the helper parks in receive()
            throw std::runtime_error("the actor fails, its helper still waiting");
          },
          &helper, &helper_got);
      const coring::Outcome<void> o = co_await keep.watch();
      CHECK(o.failed());
      co_await settle();
      helper_done = helper.done();
      if (!helper_done) {
        helper.cancel();
        (void)co_await helper.join();
      }
    }());
  }
  keep = ActorRef<int>();
  CHECK(helper_done);
  CHECK_FALSE(helper_got.has_value());
}

TEST_CASE("an empty ActorRef: no actor, sends are a std::logic_error", "[actor][misuse]") {
  ActorRef<int> empty;
  CHECK_FALSE(empty);
  CHECK(empty.closed());
  CHECK(empty.done());
  CHECK(empty.queued() == 0);
  CHECK(empty.stop() == 0);
  empty.close();  // no-op
  CHECK_THROWS_AS(empty.send(1), std::logic_error);
  CHECK(empty == ActorRef<int>());
}

// ---- schedulers ----

TEST_CASE("actors on a bare TaskScheduler (no EventLoop)", "[actor][scheduler]") {
  std::vector<int> got_a;
  std::vector<int> got_b;
  bool a_ended = false;
  bool b_ended = false;
  coring::TaskScheduler sched;
  ActorRef<int> a;
  {
    coring::TaskScheduler::CurrentGuard guard(&sched);
    a = spawn_actor<int>(collector, &got_a, &a_ended);  // the current scheduler
  }
  ActorRef<int> b = spawn_actor<int>(on_scheduler(sched), collector, &got_b, &b_ended);
  CHECK(sched.live_tasks() == 2);
  auto driver = sched.spawn([](ActorRef<int> x, ActorRef<int> y) -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      x.send(i);
      co_await y.send_async(10 + i);
      co_await coring::yield_now();
    }
    x.close();
    y.close();
    co_await x.join();
    co_await y.join();
  }(a, b));
  sched.run();
  CHECK(driver.done());
  CHECK(a.done());
  CHECK(b.done());
  CHECK(got_a == std::vector<int>{0, 1, 2});
  CHECK(got_b == std::vector<int>{10, 11, 12});
  CHECK(a_ended);
  CHECK(b_ended);
  CHECK(sched.live_tasks() == 0);
}

TEST_CASE("an actor still alive when its loop goes ends as cancelled; on_exit runs",
          "[actor][scheduler]") {
  const auto frames_before = FrameAllocator::live_frames();
  ActorRef<int> kept;
  bool exit_cancelled = false;
  int exits = 0;
  {
    coring::EventLoop loop;
    loop.run([&]() -> Task<void> {
      kept = spawn_actor<int>(collector, nullptr, nullptr);
      kept.on_exit([&](const coring::Outcome<void>& o) {
        ++exits;
        exit_cancelled = o.cancelled();
      });
      kept.send(1);
      co_await settle();  // parked in receive()
    }());
    CHECK_FALSE(kept.done());
  }
  CHECK(kept.done());
  CHECK(kept.closed());
  CHECK(exits == 1);
  CHECK(exit_cancelled);
  CHECK_THROWS_AS(kept.send(2), ActorClosed);
  kept = ActorRef<int>();
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

// ---- scale and leaks ----

TEST_CASE("a million actors each receive one message", "[actor][scale]") {
  constexpr int kActors = kSanitized ? 100'000 : 1'000'000;
  const auto frames_before = FrameAllocator::live_frames();
  std::int64_t sum = 0;
  std::size_t ended = 0;
  std::size_t live_while_parked = 0;
  coring::run([&]() -> Task<void> {
    std::vector<ActorRef<int>> refs;
    refs.reserve(kActors);
    for (int i = 0; i < kActors; ++i) {
      refs.push_back(spawn_actor<int>(
          [](Inbox<int> inbox, std::int64_t* s) -> Task<void> {
            std::optional<int> m = co_await inbox.receive();
            if (m) *s += *m;
          },
          &sum));
    }
    co_await coring::yield_now();  // every actor starts and parks in receive()
    live_while_parked = static_cast<std::size_t>(FrameAllocator::live_frames() - frames_before);
    for (int i = 0; i < kActors; ++i) refs[static_cast<std::size_t>(i)].send(1);
    for (ActorRef<int>& r : refs) co_await r.join();
    for (const ActorRef<int>& r : refs) ended += r.done() ? 1 : 0;
  }());
  CHECK(live_while_parked >= static_cast<std::size_t>(kActors));
  CHECK(sum == kActors);
  CHECK(ended == static_cast<std::size_t>(kActors));
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

namespace {
// An exception that counts its live instances: the actor's state keeps the
// exception of a failed actor, so it goes only when that state is freed.
struct Counted : std::runtime_error {
  static inline int live = 0;
  Counted() : std::runtime_error("counted") { ++live; }
  Counted(const Counted& o) : std::runtime_error(o) { ++live; }
  ~Counted() override { --live; }
};

// A message that counts its live instances.
struct Tracked {
  static inline int live = 0;
  int v = 0;
  explicit Tracked(int x) : v(x) { ++live; }
  Tracked(const Tracked& o) : v(o.v) { ++live; }
  Tracked(Tracked&& o) noexcept : v(o.v) { ++live; }
  ~Tracked() { --live; }
};
}  // namespace

TEST_CASE("ended actors with their references dropped leave no frame, fd, message or state",
          "[actor][leak]") {
  const auto frames_before = FrameAllocator::live_frames();
  const std::size_t fds_before = count_open_fds();
  int counted_while_held = 0;
  coring::run([&]() -> Task<void> {
    // Ended every way: returned, failed (joined), stopped with a backlog, closed with one.
    ActorRef<Tracked> ret =
        spawn_actor<Tracked>([](Inbox<Tracked> in) -> Task<void> { (void)co_await in.receive(); });
    ActorRef<int> failed = spawn_actor<int>([](Inbox<int>) -> Task<void> {
      co_await coring::yield_now();
      throw Counted();
    });
    Event never;
    ActorRef<Tracked> stopped = spawn_actor<Tracked>(
        [](Inbox<Tracked>, Event* g) -> Task<void> { co_await g->wait(); }, &never);
    ActorRef<Tracked> drained = spawn_actor<Tracked>([](Inbox<Tracked> in) -> Task<void> {
      while (std::optional<Tracked> m = co_await in.receive()) co_await coring::sleep_for(1ms);
    });
    ret.send(Tracked(1));
    for (int i = 0; i < 10; ++i) stopped.send(Tracked(i));
    for (int i = 0; i < 10; ++i) drained.send(Tracked(i));
    drained.close();
    co_await settle();
    stopped.stop();
    co_await ret.join();
    try {
      co_await failed.join();
    } catch (const Counted&) {
    }
    co_await stopped.join();
    co_await drained.join();
    counted_while_held = Counted::live;  // kept for another join
    CHECK(Tracked::live == 0);           // every message received or discarded
  }());
  CHECK(counted_while_held >= 1);
  CHECK(Counted::live == 0);  // the failed actor's state went with its last reference
  CHECK(Tracked::live == 0);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
  REQUIRE(count_open_fds() == fds_before);
}

namespace {
// Copies throw while `fail` is set; moves never do (messages must be nothrow-movable).
struct Fragile {
  static inline bool fail = false;
  int v = 0;
  explicit Fragile(int x) : v(x) {}
  Fragile(const Fragile& o) : v(o.v) {
    if (fail) throw std::runtime_error("copy failed");
  }
  Fragile(Fragile&& o) noexcept : v(o.v) {}
  Fragile& operator=(const Fragile&) = default;
  Fragile& operator=(Fragile&&) noexcept = default;
};
}  // namespace

TEST_CASE("a send whose copy throws leaves a parked receiver parked: the next send reaches it",
          "[actor][send]") {
  std::vector<int> got;
  bool threw = false;
  coring::run([&]() -> Task<void> {
    ActorRef<Fragile> a = spawn_actor<Fragile>(
        [](Inbox<Fragile> inbox, std::vector<int>* out) -> Task<void> {
          while (std::optional<Fragile> m = co_await inbox.receive()) out->push_back(m->v);
        },
        &got);
    co_await coring::yield_now();  // parked in receive()
    const Fragile one(1);
    Fragile::fail = true;
    try {
      a.send(one);  // the copy into the receiver throws
    } catch (const std::runtime_error&) {
      threw = true;
    }
    Fragile::fail = false;
    a.send(Fragile(2));
    a.close();
    co_await a.join();
  }());
  CHECK(threw);
  CHECK(got == std::vector<int>{2});
}
