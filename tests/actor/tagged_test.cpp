// dispatch(): the handler for the alternative a variant holds is called, with
// the variant's value category (an rvalue variant hands over rvalues: move-only
// messages work), its result returned; handlers returning Task<void> are
// co_awaited; one object with several operator()s; the seed's TaggedActor as
// an actor. (A missing handler is a compile error: not testable here.)
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates
// it twice); the result goes to a variable first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using coring::ActorRef;
using coring::Inbox;
using coring::spawn_actor;
using coring::Task;

namespace {

struct A {
  int x;
};
struct B {
  int x;
  int y;
};
struct C {
  std::string s;
};
using Msg = std::variant<A, B, C>;

// Which overload a handler got: its value category.
struct Categories {
  std::vector<std::string>* log;
  void operator()(A&) const { log->push_back("A&"); }
  void operator()(const A&) const { log->push_back("const A&"); }
  void operator()(A&&) const { log->push_back("A&&"); }
  void operator()(B&) const { log->push_back("B&"); }
  void operator()(const B&) const { log->push_back("const B&"); }
  void operator()(B&&) const { log->push_back("B&&"); }
  void operator()(C&) const { log->push_back("C&"); }
  void operator()(const C&) const { log->push_back("const C&"); }
  void operator()(C&&) const { log->push_back("C&&"); }
};

}  // namespace

TEST_CASE("dispatch calls the handler for the type the variant holds, with its value",
          "[actor][tagged]") {
  std::vector<std::string> log;
  const std::vector<Msg> msgs{A{1}, B{2, 3}, C{"hi"}, A{4}, C{"yo"}, B{5, 6}};
  for (const Msg& m : msgs) {
    coring::dispatch(
        m, [&](const A& a) { log.push_back("A " + std::to_string(a.x)); },
        [&](const B& b) { log.push_back("B " + std::to_string(b.x) + " " + std::to_string(b.y)); },
        [&](const C& c) { log.push_back("C " + c.s); });
  }
  CHECK(log == std::vector<std::string>{"A 1", "B 2 3", "C hi", "A 4", "C yo", "B 5 6"});
}

TEST_CASE("dispatch returns the handler's result", "[actor][tagged]") {
  auto area = [](const Msg& m) {
    return coring::dispatch(
        m, [](const A& a) { return a.x; }, [](const B& b) { return b.x * b.y; },
        [](const C& c) { return static_cast<int>(c.s.size()); });
  };
  CHECK(area(A{7}) == 7);
  CHECK(area(B{3, 4}) == 12);
  CHECK(area(C{"hello"}) == 5);
}

TEST_CASE("dispatch passes the variant's value category: lvalue, const, rvalue",
          "[actor][tagged]") {
  std::vector<std::string> log;
  Msg a = A{1};
  Msg b = B{1, 2};
  const Msg c = C{"c"};
  coring::dispatch(a, Categories{&log});
  coring::dispatch(b, Categories{&log});
  coring::dispatch(c, Categories{&log});
  coring::dispatch(std::move(a), Categories{&log});
  coring::dispatch(Msg(C{"tmp"}), Categories{&log});
  CHECK(log == std::vector<std::string>{"A&", "B&", "const C&", "A&&", "C&&"});
}

TEST_CASE("an rvalue variant hands a move-only message to a by-value handler", "[actor][tagged]") {
  using Owned = std::variant<std::unique_ptr<int>, std::string>;
  Owned m = std::make_unique<int>(41);
  std::unique_ptr<int> taken;
  std::string text;
  coring::dispatch(
      std::move(m), [&](std::unique_ptr<int> p) { taken = std::move(p); },
      [&](std::string s) { text = std::move(s); });
  REQUIRE(taken != nullptr);
  CHECK(*taken == 41);
  CHECK(std::get<std::unique_ptr<int>>(m) == nullptr);  // moved out of the variant
  CHECK(text.empty());
}

TEST_CASE("handlers may modify the message through an lvalue variant", "[actor][tagged]") {
  Msg m = B{1, 2};
  coring::dispatch(
      m, [](A& a) { a.x = 0; }, [](B& b) { b.y += 40; }, [](C& c) { c.s.clear(); });
  CHECK(std::get<B>(m).y == 42);
}

namespace {
// Where the capture-free Task handlers below write (they capture nothing).
std::vector<std::string>* g_task_log = nullptr;
}  // namespace

TEST_CASE("handlers returning Task<void> are co_awaited through dispatch", "[actor][tagged]") {
  std::vector<std::string> log;
  g_task_log = &log;
  coring::run([]() -> Task<void> {
    const std::vector<Msg> msgs{A{1}, B{2, 3}, C{"z"}};
    for (const Msg& m : msgs) {
      co_await coring::dispatch(
          m,
          [](const A& a) -> Task<void> {
            co_await coring::sleep_for(1ms);
            g_task_log->push_back("A after sleep " + std::to_string(a.x));
          },
          [](const B& b) -> Task<void> {
            co_await coring::yield_now();
            g_task_log->push_back("B after yield " + std::to_string(b.x + b.y));
          },
          [](const C& c) -> Task<void> {
            g_task_log->push_back("C " + c.s);
            co_return;
          });
      g_task_log->push_back("next");
    }
  }());
  g_task_log = nullptr;
  CHECK(log == std::vector<std::string>{"A after sleep 1", "next", "B after yield 5", "next", "C z",
                                        "next"});
}

namespace {
// A capture that says whether it is still alive: its destructor overwrites it
// (volatile: the store is not optimised away).
struct Canary {
  volatile int v = 42;
  Canary() = default;
  Canary(const Canary& o) noexcept : v(o.v) {}
  ~Canary() { v = -1; }
};
int g_seen = 0;
std::string g_text;
}  // namespace

TEST_CASE("Task handlers that capture: the captures live until the chosen task has run",
          "[actor][tagged]") {
  // A lambda coroutine reaches its captures through its closure object, so the
  // handlers given to dispatch() must live until `co_await dispatch(...)` has
  // run the chosen task (tagged.hpp: "the handlers, captures included, are kept
  // alive until it has run"). A closure destroyed too early shows as a wrong
  // value (the canary), or a freed string (ASan).
  g_seen = 0;
  g_text.clear();
  coring::run([]() -> Task<void> {
    const Canary canary;
    const std::string tag = "a tag long enough to live on the heap, not in the object";
    const Msg m = B{2, 3};
    // Named handlers: GCC 12 may destroy a non-trivially destructible
    // temporary of a co_await expression twice, so none is written inline.
    auto on_a = [canary](const A&) -> Task<void> {
      g_seen = canary.v;
      co_return;
    };
    auto on_b = [canary, tag](const B& b) -> Task<void> {
      co_await coring::yield_now();
      g_seen = canary.v;
      g_text = tag + " " + std::to_string(b.x + b.y);
    };
    auto on_c = [canary](const C&) -> Task<void> {
      g_seen = canary.v;
      co_return;
    };
    co_await coring::dispatch(m, on_a, on_b, on_c);
  }());
  CHECK(g_seen == 42);
  CHECK(g_text == "a tag long enough to live on the heap, not in the object 5");
}

namespace {

// The seed's TaggedActor: one handler per message type, as members.
class Runner {
 public:
  explicit Runner(std::vector<std::string>* log) : log_(log) {}
  void do_a(const A& a) { log_->push_back("Running A " + std::to_string(a.x)); }
  void do_b(const B& b) {
    log_->push_back("Running B " + std::to_string(b.x) + " " + std::to_string(b.y));
  }
  Task<void> do_c(C c) {
    co_await coring::yield_now();
    log_->push_back("Running C " + c.s);
  }

 private:
  std::vector<std::string>* log_;
};

Task<void> tagged_actor(Inbox<Msg> inbox, std::vector<std::string>* log) {
  Runner r(log);
  while (std::optional<Msg> m = co_await inbox.receive()) {
    if (std::holds_alternative<C>(*m)) {
      co_await r.do_c(std::get<C>(std::move(*m)));
    } else {
      coring::dispatch(
          *m, [&](const A& a) { r.do_a(a); }, [&](const B& b) { r.do_b(b); },
          [&](const C&) { log->push_back("unreachable"); });
    }
  }
}

}  // namespace

TEST_CASE("a tagged actor dispatches each message to its handler, in order", "[actor][tagged]") {
  std::vector<std::string> log;
  coring::run([&]() -> Task<void> {
    ActorRef<Msg> a = spawn_actor<Msg>(tagged_actor, &log);
    a.send(A{1});
    a.send(B{2, 3});
    a.send(C{"spam"});
    a.send(A{4});
    a.close();
    co_await a.join();
  }());
  CHECK(log ==
        std::vector<std::string>{"Running A 1", "Running B 2 3", "Running C spam", "Running A 4"});
}
