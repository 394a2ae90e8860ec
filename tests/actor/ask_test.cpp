// ask(): request/reply with an actor -- the reply, several askers at once,
// deduced and named reply types, ask with a timeout (nothing left behind: the
// callee's Reply is no longer wanted and set_value returns false), a cancelled
// asker, NoReply when the request is dropped (the callee fails, ends, is
// stopped, or lets the Reply go), set_exception / respond(fn) throwing, and
// asks to closed, ended or full actors.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using coring::ActorClosed;
using coring::ActorOptions;
using coring::ActorRef;
using coring::Event;
using coring::FrameAllocator;
using coring::Inbox;
using coring::JoinHandle;
using coring::NoReply;
using coring::Request;
using coring::spawn_actor;
using coring::Task;

namespace {

using Double = Request<int, int>;

Task<void> settle(int n = 4) {
  for (int i = 0; i < n; ++i) co_await coring::yield_now();
}

// Answers every request with twice its body.
Task<void> doubler(Inbox<Double> inbox) {
  while (std::optional<Double> req = co_await inbox.receive()) {
    req->reply.set_value(req->body * 2);
  }
}

// Takes one request and keeps it until `release` is set, then reports what
// its Reply says (wanted, and whether a late set_value was taken).
struct HeldReport {
  bool wanted_on_receipt = false;
  bool wanted_later = true;
  bool late_set_value = true;
  bool late_set_exception = true;
};
Task<void> holder(Inbox<Double> inbox, Event* release, HeldReport* out) {
  std::optional<Double> req = co_await inbox.receive();
  if (!req) co_return;
  out->wanted_on_receipt = req->reply.wanted();
  co_await release->wait();
  out->wanted_later = req->reply.wanted();
  out->late_set_value = req->reply.set_value(99);
  out->late_set_exception =
      req->reply.set_exception(std::make_exception_ptr(std::runtime_error("late")));
}

struct CustomError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

TEST_CASE("ask gets the actor's reply", "[actor][ask]") {
  std::vector<int> answers;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>(doubler);
    for (int i = 0; i < 5; ++i) {
      const int v = co_await a.ask(i);
      answers.push_back(v);
    }
    const int named = co_await a.ask<int>(50);  // the reply type named
    answers.push_back(named);
    a.close();
    co_await a.join();
  }());
  CHECK(answers == std::vector<int>{0, 2, 4, 6, 8, 100});
}

TEST_CASE("several tasks ask one actor at once; each gets its own answer", "[actor][ask]") {
  constexpr int kAskers = 8;
  std::vector<int> got(kAskers, -1);
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>(doubler);
    std::vector<JoinHandle<void>> askers;
    for (int i = 0; i < kAskers; ++i) {
      askers.push_back(coring::spawn([](ActorRef<Double> to, int x, int* out) -> Task<void> {
        for (int k = 0; k < x % 3; ++k) co_await coring::yield_now();
        *out = co_await to.ask(x);
      }(a, i + 1, &got[static_cast<std::size_t>(i)])));
    }
    for (auto& h : askers) co_await h;
    a.close();
    co_await a.join();
  }());
  for (int i = 0; i < kAskers; ++i) CHECK(got[static_cast<std::size_t>(i)] == 2 * (i + 1));
}

namespace {
struct Deposit {
  int amount;
};
using Balance = Request<std::monostate, int>;
using Describe = Request<std::string, std::string>;
using Account = std::variant<Deposit, Balance, Describe>;

Task<void> account(Inbox<Account> inbox) {
  int balance = 0;
  while (std::optional<Account> m = co_await inbox.receive()) {
    coring::dispatch(
        std::move(*m), [&](Deposit d) { balance += d.amount; },
        [&](Balance b) { b.reply.set_value(balance); },
        [&](Describe d) { d.reply.set_value(d.body + "=" + std::to_string(balance)); });
  }
}
}  // namespace

TEST_CASE("ask on a variant message type: the reply type follows the request", "[actor][ask]") {
  int balance = 0;
  std::string described;
  coring::run([&]() -> Task<void> {
    ActorRef<Account> acct = spawn_actor<Account>(account);
    acct.send(Deposit{30});
    acct.send(Deposit{12});
    balance = co_await acct.ask(std::monostate{});
    described = co_await acct.ask(std::string("balance"));
    acct.close();
    co_await acct.join();
  }());
  CHECK(balance == 42);
  CHECK(described == "balance=42");
}

TEST_CASE("ask with a timeout: the value in time, std::nullopt after; nothing left behind",
          "[actor][ask][timeout]") {
  const auto frames_before = FrameAllocator::live_frames();
  std::optional<int> in_time;
  std::optional<int> late;
  HeldReport report;
  std::size_t timers_after = 1;
  bool holder_returned = false;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> quick = spawn_actor<Double>(doubler);
    in_time = co_await quick.ask(21, 30s);
    quick.close();
    co_await quick.join();

    Event release;
    ActorRef<Double> slow = spawn_actor<Double>(holder, &release, &report);
    late = co_await slow.ask(1, 20ms);
    timers_after = coring::EventLoop::current()->timers().size();
    release.set();
    const coring::Outcome<void> o = co_await slow.watch();
    holder_returned = o.has_value();
  }());
  CHECK(in_time == 42);
  CHECK_FALSE(late.has_value());
  CHECK(timers_after == 0);
  CHECK(report.wanted_on_receipt);
  CHECK_FALSE(report.wanted_later);    // the asker gave up: nobody waits
  CHECK_FALSE(report.late_set_value);  // the late answer is dropped
  CHECK_FALSE(report.late_set_exception);
  CHECK(holder_returned);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}

TEST_CASE("a cancelled asker unlinks itself: the callee's Reply is no longer wanted",
          "[actor][ask][cancel]") {
  HeldReport report;
  bool cancelled = false;
  bool after_ask = false;
  coring::run([&]() -> Task<void> {
    Event release;
    ActorRef<Double> a = spawn_actor<Double>(holder, &release, &report);
    auto asker = coring::spawn([](ActorRef<Double> to, bool* after) -> Task<void> {
      const int v = co_await to.ask(5);
      (void)v;
      *after = true;
    }(a, &after_ask));
    co_await settle();
    asker.cancel();
    const coring::Outcome<void> o = co_await asker.join();
    cancelled = o.cancelled();
    release.set();
    co_await a.join();
  }());
  CHECK(cancelled);
  CHECK_FALSE(after_ask);
  CHECK(report.wanted_on_receipt);
  CHECK_FALSE(report.wanted_later);
  CHECK_FALSE(report.late_set_value);
}

TEST_CASE("a reply is given once: a second set_value returns false", "[actor][ask]") {
  int got = 0;
  bool first = false;
  bool second = true;
  bool wanted_after = true;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>(
        [](Inbox<Double> inbox, bool* f, bool* s, bool* w) -> Task<void> {
          std::optional<Double> req = co_await inbox.receive();
          *f = req->reply.set_value(7);
          *w = req->reply.wanted();
          *s = req->reply.set_value(8);
        },
        &first, &second, &wanted_after);
    got = co_await a.ask(0);
    co_await a.join();
  }());
  CHECK(got == 7);
  CHECK(first);
  CHECK_FALSE(wanted_after);
  CHECK_FALSE(second);
}

TEST_CASE("the Reply may be moved and answered later by another task", "[actor][ask]") {
  int got = 0;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>([](Inbox<Double> inbox) -> Task<void> {
      std::vector<JoinHandle<void>> helpers;
      while (std::optional<Double> req = co_await inbox.receive()) {
        helpers.push_back(coring::spawn([](Double r) -> Task<void> {
          co_await coring::sleep_for(2ms);
          r.reply.set_value(r.body + 1000);
        }(std::move(*req))));
      }
      for (auto& h : helpers) co_await h;
    });
    got = co_await a.ask(1);
    a.close();
    co_await a.join();
  }());
  CHECK(got == 1001);
}

TEST_CASE("ask to an actor that fails while holding the request gives NoReply",
          "[actor][ask][failure]") {
  bool no_reply = false;
  std::string actor_error;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>([](Inbox<Double> inbox) -> Task<void> {
      std::optional<Double> req = co_await inbox.receive();
      if (req && req->body < 0) throw std::domain_error("negative");
    });
    try {
      const int v = co_await a.ask(-1);
      (void)v;
    } catch (const NoReply&) {
      no_reply = true;
    }
    try {
      co_await a.join();
    } catch (const std::domain_error& e) {
      actor_error = e.what();
    }
  }());
  CHECK(no_reply);
  CHECK(actor_error == "negative");
}

TEST_CASE("NoReply when the request is dropped: the Reply let go, the actor ended or was stopped",
          "[actor][ask][failure]") {
  int no_replies = 0;
  int answered = 0;
  coring::run([&]() -> Task<void> {
    // 1. Received, and the Reply destroyed without an answer; the actor goes on.
    ActorRef<Double> dropper = spawn_actor<Double>([](Inbox<Double> inbox) -> Task<void> {
      while (std::optional<Double> req = co_await inbox.receive()) {
        if (req->body != 0) req->reply.set_value(req->body);
      }
    });
    try {
      (void)co_await dropper.ask(0);
    } catch (const NoReply&) {
      ++no_replies;
    }
    const int v = co_await dropper.ask(3);  // still running
    if (v == 3) ++answered;
    dropper.close();
    co_await dropper.join();

    // 2. Still queued when the actor returned.
    Event go;
    ActorRef<Double> quitter =
        spawn_actor<Double>([](Inbox<Double>, Event* g) -> Task<void> { co_await g->wait(); }, &go);
    auto asker = coring::spawn([](ActorRef<Double> to) -> Task<bool> {
      try {
        (void)co_await to.ask(1);
      } catch (const NoReply&) {
        co_return true;
      }
      co_return false;
    }(quitter));
    co_await settle();
    go.set();
    const bool r2 = co_await asker;
    if (r2) ++no_replies;
    CHECK(quitter.undelivered() == 1);

    // 3. Still queued when the actor was stopped.
    Event never;
    ActorRef<Double> stopped = spawn_actor<Double>(
        [](Inbox<Double>, Event* g) -> Task<void> { co_await g->wait(); }, &never);
    auto asker3 = coring::spawn([](ActorRef<Double> to) -> Task<bool> {
      try {
        (void)co_await to.ask(1);
      } catch (const NoReply&) {
        co_return true;
      }
      co_return false;
    }(stopped));
    co_await settle();
    CHECK(stopped.stop() == 1);
    const bool r3 = co_await asker3;
    if (r3) ++no_replies;
  }());
  CHECK(no_replies == 3);
  CHECK(answered == 1);
}

TEST_CASE("set_exception and a throwing respond(fn) give the asker that exception",
          "[actor][ask][failure]") {
  std::string via_set_exception;
  std::string via_respond;
  int respond_value = 0;
  bool actor_returned = false;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>([](Inbox<Double> inbox) -> Task<void> {
      while (std::optional<Double> req = co_await inbox.receive()) {
        if (req->body == 1) {
          req->reply.set_exception(std::make_exception_ptr(CustomError("refused")));
        } else if (req->body == 2) {
          req->reply.respond([&]() -> int { throw CustomError("respond threw"); });
        } else {
          req->reply.respond([&] { return req->body * 10; });
        }
      }
    });
    try {
      (void)co_await a.ask(1);
    } catch (const CustomError& e) {
      via_set_exception = e.what();
    }
    try {
      (void)co_await a.ask(2);
    } catch (const CustomError& e) {
      via_respond = e.what();
    }
    respond_value = co_await a.ask(3);
    a.close();
    const coring::Outcome<void> o = co_await a.watch();
    actor_returned = o.has_value();  // answering with an exception is not failing
  }());
  CHECK(via_set_exception == "refused");
  CHECK(via_respond == "respond threw");
  CHECK(respond_value == 30);
  CHECK(actor_returned);
}

TEST_CASE("ask to a closed or ended actor throws ActorClosed; to a full one MailboxFull",
          "[actor][ask][close]") {
  bool closed_threw = false;
  bool ended_threw = false;
  bool full_threw = false;
  bool timed_closed_threw = false;
  coring::run([&]() -> Task<void> {
    ActorRef<Double> a = spawn_actor<Double>(doubler);
    a.close();
    try {
      (void)co_await a.ask(1);
    } catch (const ActorClosed&) {
      closed_threw = true;
    }
    try {
      (void)co_await a.ask(1, 1s);
    } catch (const ActorClosed&) {
      timed_closed_threw = true;
    }
    co_await a.join();
    try {
      (void)co_await a.ask(1);
    } catch (const ActorClosed&) {
      ended_threw = true;
    }

    Event never;
    ActorOptions opts;
    opts.capacity = 1;
    ActorRef<Double> full = spawn_actor<Double>(
        opts, [](Inbox<Double>, Event* g) -> Task<void> { co_await g->wait(); }, &never);
    auto first = coring::spawn([](ActorRef<Double> to) -> Task<void> {
      try {
        (void)co_await to.ask(1);
      } catch (const NoReply&) {
      }
    }(full));
    co_await settle();
    REQUIRE(full.queued() == 1);
    try {
      (void)co_await full.ask(2);
    } catch (const coring::MailboxFull&) {
      full_threw = true;
    }
    full.stop();
    co_await first;
  }());
  CHECK(closed_threw);
  CHECK(timed_closed_threw);
  CHECK(ended_threw);
  CHECK(full_threw);
}

TEST_CASE("asks leave no frame behind, answered, timed out or dropped", "[actor][ask][leak]") {
  const auto frames_before = FrameAllocator::live_frames();
  int outcomes = 0;
  coring::run([&]() -> Task<void> {
    Event release;
    HeldReport report;
    ActorRef<Double> slow = spawn_actor<Double>(holder, &release, &report);
    ActorRef<Double> quick = spawn_actor<Double>(doubler);
    for (int i = 0; i < 100; ++i) {
      const int v = co_await quick.ask(i);
      if (v == 2 * i) ++outcomes;
    }
    const std::optional<int> t = co_await slow.ask(1, 1ms);
    if (!t) ++outcomes;
    release.set();
    quick.close();
    co_await quick.join();
    co_await slow.join();
  }());
  CHECK(outcomes == 101);
  REQUIRE(FrameAllocator::live_frames() == frames_before);
}
