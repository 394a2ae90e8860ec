// Exchange<T>: delivery in attach order, attach/detach results, subscribe()'s
// guard (scope exit and exceptions), actor subscribers that ended or are full
// (Delivery), get_exchange by name and type, a throwing plain subscriber (the
// others still get the message; the exception comes after), and changes made
// by a subscriber during a send.
//
// get_exchange's registry lives as long as the thread: each test uses names of
// its own.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using coring::ActorRef;
using coring::Delivery;
using coring::Event;
using coring::Exchange;
using coring::Inbox;
using coring::spawn_actor;
using coring::Subscription;
using coring::Task;

namespace {

using Log = std::vector<std::string>;

// A plain subscriber: records "<id>:<msg>".
struct Recorder {
  std::string id;
  Log* log;
  void send(const std::string& m) { log->push_back(id + ":" + m); }
};

// A plain subscriber that throws (after recording that it was called).
struct Thrower {
  std::string id;
  Log* log;
  void send(const std::string& m) {
    log->push_back(id + ":" + m);
    throw std::runtime_error("subscriber " + id + " failed");
  }
};

Task<void> string_collector(Inbox<std::string> inbox, Log* got) {
  while (std::optional<std::string> m = co_await inbox.receive()) got->push_back(*m);
}

}  // namespace

TEST_CASE("send delivers to every subscriber in the order they were attached",
          "[actor][exchange]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Recorder b{"b", &log};
  Recorder c{"c", &log};
  CHECK(exc.attach(c));
  CHECK(exc.attach(a));
  CHECK(exc.attach(b));
  CHECK(exc.size() == 3);
  const Delivery d = exc.send("m1");
  CHECK(d.delivered == 3);
  CHECK(d.full == 0);
  CHECK(d.detached == 0);
  exc.send("m2");
  CHECK(log == Log{"c:m1", "a:m1", "b:m1", "c:m2", "a:m2", "b:m2"});
}

TEST_CASE("attach twice does nothing; detach says whether it was attached", "[actor][exchange]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Recorder b{"b", &log};
  CHECK(exc.attach(a));
  CHECK_FALSE(exc.attach(a));
  CHECK(exc.attach(b));
  CHECK(exc.size() == 2);
  CHECK(exc.send("x").delivered == 2);
  CHECK(log == Log{"a:x", "b:x"});  // once each
  CHECK(exc.detach(a));
  CHECK_FALSE(exc.detach(a));
  log.clear();
  CHECK(exc.send("y").delivered == 1);
  CHECK(log == Log{"b:y"});
  CHECK(exc.attach(a));  // back, now after b
  log.clear();
  exc.send("z");
  CHECK(log == Log{"b:z", "a:z"});
}

TEST_CASE("actor subscribers: attached once (by identity), delivered in attach order",
          "[actor][exchange]") {
  Log got_a;
  Log got_b;
  bool twice = true;
  bool copy_twice = true;
  bool detached = false;
  bool detached_again = true;
  coring::run([&]() -> Task<void> {
    Exchange<std::string> exc;
    ActorRef<std::string> a = spawn_actor<std::string>(string_collector, &got_a);
    ActorRef<std::string> b = spawn_actor<std::string>(string_collector, &got_b);
    CHECK(exc.attach(a));
    twice = exc.attach(a);
    ActorRef<std::string> a_copy = a;
    copy_twice = exc.attach(a_copy);  // the same actor
    CHECK(exc.attach(b));
    const Delivery d1 = exc.send("one");
    CHECK(d1.delivered == 2);
    detached = exc.detach(a_copy);
    detached_again = exc.detach(a);
    const Delivery d2 = exc.send("two");
    CHECK(d2.delivered == 1);
    a.close();
    b.close();
    co_await a.join();
    co_await b.join();
  }());
  CHECK_FALSE(twice);
  CHECK_FALSE(copy_twice);
  CHECK(detached);
  CHECK_FALSE(detached_again);
  CHECK(got_a == Log{"one"});
  CHECK(got_b == Log{"one", "two"});
}

TEST_CASE("subscribe() detaches its subscribers at scope exit", "[actor][exchange][subscribe]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Recorder b{"b", &log};
  {
    Subscription sub = exc.subscribe(a, b);
    CHECK(exc.size() == 2);
    exc.send("in");
  }
  CHECK(exc.size() == 0);
  const Delivery d = exc.send("out");
  CHECK(d.delivered == 0);
  CHECK(log == Log{"a:in", "b:in"});
}

TEST_CASE("subscribe() detaches its subscribers when an exception leaves the scope",
          "[actor][exchange][subscribe]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Recorder b{"b", &log};
  bool caught = false;
  try {
    Subscription sub = exc.subscribe(a, b);
    exc.send("before");
    throw std::runtime_error("leaving");
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught);
  CHECK(exc.size() == 0);
  exc.send("after");
  CHECK(log == Log{"a:before", "b:before"});
}

TEST_CASE("a Subscription detaches once: moved, reset, and only what it attached",
          "[actor][exchange][subscribe]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Recorder b{"b", &log};
  Recorder pre{"pre", &log};
  CHECK(exc.attach(pre));
  Subscription outer;
  {
    Subscription inner = exc.subscribe(a, pre, b);  // `pre` was attached before
    outer = std::move(inner);
  }  // the moved-from one detaches nothing
  CHECK(exc.size() == 3);
  outer.reset();
  CHECK(exc.size() == 1);  // `pre` stays: this subscription did not attach it
  exc.send("m");
  CHECK(log == Log{"pre:m"});
  outer.reset();  // again: nothing
  CHECK(exc.size() == 1);
}

TEST_CASE("subscribe() with actors and plain subscribers together",
          "[actor][exchange][subscribe]") {
  Log log;
  Log got;
  coring::run([&]() -> Task<void> {
    Exchange<std::string> exc;
    ActorRef<std::string> actor = spawn_actor<std::string>(string_collector, &got);
    Recorder r{"r", &log};
    {
      Subscription sub = exc.subscribe(actor, r);
      const Delivery d = exc.send("both");
      CHECK(d.delivered == 2);
    }
    const Delivery d2 = exc.send("none");
    CHECK(d2.delivered == 0);
    actor.close();
    co_await actor.join();
  }());
  CHECK(log == Log{"r:both"});
  CHECK(got == Log{"both"});
}

TEST_CASE("an ended or closed actor subscriber is detached and counted, never crashed on",
          "[actor][exchange]") {
  Log got_live;
  Delivery d1;
  Delivery d2;
  std::size_t size_after = 99;
  coring::run([&]() -> Task<void> {
    Exchange<std::string> exc;
    ActorRef<std::string> ended = spawn_actor<std::string>(string_collector, nullptr);
    ActorRef<std::string> closed = spawn_actor<std::string>(string_collector, nullptr);
    ActorRef<std::string> live = spawn_actor<std::string>(string_collector, &got_live);
    exc.attach(ended);
    exc.attach(closed);
    exc.attach(live);
    ended.close();
    co_await ended.join();
    ended = ActorRef<std::string>();  // the exchange holds the only reference
    closed.close();
    d1 = exc.send("a");
    size_after = exc.size();
    d2 = exc.send("b");
    live.close();
    co_await live.join();
    co_await closed.join();
  }());
  CHECK(d1.delivered == 1);
  CHECK(d1.detached == 2);
  CHECK(size_after == 1);
  CHECK(d2.delivered == 1);
  CHECK(d2.detached == 0);
  CHECK(got_live == Log{"a", "b"});
}

TEST_CASE("a full bounded actor subscriber misses the message, counted in Delivery.full",
          "[actor][exchange]") {
  Log got_small;
  Log got_big;
  Delivery d1;
  Delivery d2;
  std::size_t size_after = 0;
  coring::run([&]() -> Task<void> {
    Exchange<std::string> exc;
    Event gate;
    coring::ActorOptions one;
    one.capacity = 1;
    ActorRef<std::string> small = spawn_actor<std::string>(
        one,
        [](Inbox<std::string> inbox, Event* g, Log* out) -> Task<void> {
          co_await g->wait();
          while (std::optional<std::string> m = co_await inbox.receive()) out->push_back(*m);
        },
        &gate, &got_small);
    ActorRef<std::string> big = spawn_actor<std::string>(string_collector, &got_big);
    exc.attach(small);
    exc.attach(big);
    d1 = exc.send("first");
    d2 = exc.send("second");  // small is full
    size_after = exc.size();
    gate.set();
    small.close();
    big.close();
    co_await small.join();
    co_await big.join();
  }());
  CHECK(d1.delivered == 2);
  CHECK(d1.full == 0);
  CHECK(d2.delivered == 1);
  CHECK(d2.full == 1);
  CHECK(d2.detached == 0);
  CHECK(size_after == 2);  // still attached
  CHECK(got_small == Log{"first"});
  CHECK(got_big == Log{"first", "second"});
}

TEST_CASE("get_exchange: one name, one object; another type for the name is a logic_error",
          "[actor][exchange][registry]") {
  Exchange<std::string>& x1 = coring::get_exchange<std::string>("exchange_test.same");
  Exchange<std::string>& x2 = coring::get_exchange<std::string>("exchange_test.same");
  Exchange<std::string>& other = coring::get_exchange<std::string>("exchange_test.other");
  CHECK(&x1 == &x2);
  CHECK(&x1 != &other);
  CHECK_THROWS_AS(coring::get_exchange<int>("exchange_test.same"), std::logic_error);
  Exchange<int>& ints = coring::get_exchange<int>("exchange_test.ints");
  CHECK_THROWS_AS(coring::get_exchange<std::string>("exchange_test.ints"), std::logic_error);
  CHECK(&coring::get_exchange<int>("exchange_test.ints") == &ints);
  // State is kept between look-ups.
  Log log;
  Recorder r{"r", &log};
  {
    Subscription sub = x1.subscribe(r);
    coring::get_exchange<std::string>("exchange_test.same").send("via name");
  }
  CHECK(log == Log{"r:via name"});
  CHECK(x2.size() == 0);
}

TEST_CASE("get_exchange is per thread", "[actor][exchange][registry]") {
  Exchange<std::string>* here = &coring::get_exchange<std::string>("exchange_test.per_thread");
  Exchange<std::string>* there = nullptr;
  Exchange<std::string>* there_again = nullptr;
  bool other_type_ok = false;
  std::thread t([&] {
    there = &coring::get_exchange<std::string>("exchange_test.per_thread");
    there_again = &coring::get_exchange<std::string>("exchange_test.per_thread");
    // A name used with another type on another thread is a different exchange.
    (void)coring::get_exchange<int>("exchange_test.same_other_thread");
    other_type_ok = true;
  });
  t.join();
  (void)coring::get_exchange<std::string>("exchange_test.same_other_thread");
  CHECK(there != nullptr);
  CHECK(there == there_again);
  CHECK(there != here);
  CHECK(other_type_ok);
}

TEST_CASE("a throwing plain subscriber: the others still get the message, then it is rethrown",
          "[actor][exchange]") {
  Log log;
  Exchange<std::string> exc;
  Recorder a{"a", &log};
  Thrower t1{"t1", &log};
  Recorder b{"b", &log};
  Thrower t2{"t2", &log};
  Recorder c{"c", &log};
  exc.attach(a);
  exc.attach(t1);
  exc.attach(b);
  exc.attach(t2);
  exc.attach(c);
  std::string what;
  try {
    exc.send("m");
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  CHECK(what == "subscriber t1 failed");  // the first one
  CHECK(log == Log{"a:m", "t1:m", "b:m", "t2:m", "c:m"});
  CHECK(exc.size() == 5);  // nobody detached
  log.clear();
  exc.detach(t1);
  exc.detach(t2);
  const Delivery d = exc.send("n");
  CHECK(d.delivered == 3);
  CHECK(log == Log{"a:n", "b:n", "c:n"});
}

namespace {
// Attaches `newcomer` to `exc` the first time it gets a message.
struct Attacher {
  Exchange<std::string>* exc;
  Recorder* newcomer;
  Log* log;
  void send(const std::string& m) {
    log->push_back("attacher:" + m);
    exc->attach(*newcomer);
  }
};
// Detaches `victim` from `exc` when it gets a message.
struct Detacher {
  Exchange<std::string>* exc;
  Recorder* victim;
  Log* log;
  void send(const std::string& m) {
    log->push_back("detacher:" + m);
    exc->detach(*victim);
  }
};
}  // namespace

TEST_CASE("a subscriber attached during a send gets the next message, not this one",
          "[actor][exchange]") {
  Log log;
  Exchange<std::string> exc;
  Recorder newcomer{"new", &log};
  Attacher att{&exc, &newcomer, &log};
  Recorder after{"after", &log};
  exc.attach(att);
  exc.attach(after);
  const Delivery d1 = exc.send("1");
  CHECK(d1.delivered == 2);
  CHECK(exc.size() == 3);
  exc.send("2");
  CHECK(log == Log{"attacher:1", "after:1", "attacher:2", "after:2", "new:2"});
}

TEST_CASE("a subscriber detached during a send gets nothing more, not even this message",
          "[actor][exchange]") {
  // "one detached gets nothing more, not even the rest of this send (it may be
  // detaching because it is going away)".
  Log log;
  Exchange<std::string> exc;
  Recorder victim{"victim", &log};
  Recorder before{"before", &log};
  Detacher det{&exc, &victim, &log};
  exc.attach(before);
  exc.attach(det);
  exc.attach(victim);
  const Delivery d1 = exc.send("1");
  CHECK(d1.delivered == 2);
  CHECK(exc.size() == 2);
  const Delivery d2 = exc.send("2");
  CHECK(d2.delivered == 2);
  CHECK(log == Log{"before:1", "detacher:1", "before:2", "detacher:2"});
  // Detaching one that already got this message changes only the next send.
  log.clear();
  exc.attach(victim);  // now after the detacher
  Detacher det_back{&exc, &before, &log};
  exc.detach(det);
  exc.attach(det_back);  // order: before, victim, det_back
  exc.send("3");
  exc.send("4");
  CHECK(log == Log{"before:3", "victim:3", "detacher:3", "victim:4", "detacher:4"});
}
