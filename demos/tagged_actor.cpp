// Seed recipe: TaggedActor (Python Cookbook 12.10) -- messages are tuples whose
// first element names the handler: ('A', 1) runs do_A(1), ('B', 2, 3) do_B(2, 3).
//
// In coring the tag is the message's type: the mailbox carries a std::variant,
// and coring::dispatch() calls the one handler that takes the alternative it
// holds. No string look-up happens at run time, and leaving a handler out is a
// compile error that names the message type.
//
// Run: ./tagged_actor
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <variant>

#include "demo_options.hpp"

namespace {

struct A {
  int x;
};
struct B {
  int x;
  int y;
};
using Tagged = std::variant<A, B>;

struct TaggedHandlers {
  void operator()(const A& m) const { fmt::print("Running A {}\n", m.x); }          // do_A
  void operator()(const B& m) const { fmt::print("Running B {} {}\n", m.x, m.y); }  // do_B
};

coring::Task<void> tagged_actor(coring::Inbox<Tagged> inbox) {
  while (std::optional<Tagged> msg = co_await inbox.receive()) {
    coring::dispatch(*msg, TaggedHandlers{});
  }
}

coring::Task<void> main_task() {
  coring::ActorRef<Tagged> a = coring::spawn_actor<Tagged>({.name = "tagged"}, tagged_actor);
  a.send(A{1});
  a.send(B{2, 3});
  a.close();
  co_await a.join();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    demo::parse_time_scale(argc, argv);
    coring::run(main_task());
  } catch (const std::exception& e) {
    fmt::print(stderr, "tagged_actor: {}\n", e.what());
    return 1;
  }
}
