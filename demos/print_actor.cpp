// Seed recipe: defining an actor task (Python Cookbook 12.10) -- PrintActor,
// which prints every message it receives until it is closed.
//
// The seed's Actor is a thread with a Queue mailbox; close() sends the ActorExit
// sentinel, recv() raises it, and join() waits on an Event. In coring the actor
// is a task with an Inbox: close() marks the mailbox closed (no sentinel in the
// data), recv() throws coring::ActorExit once what was queued is drained, and the
// actor ends normally; join() waits for it and would rethrow what it threw.
//
// Run: ./print_actor
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <string>

#include "demo_options.hpp"

namespace {

coring::Task<void> print_actor(coring::Inbox<std::string> inbox) {
  for (;;) {
    std::string msg = co_await inbox.recv();  // ActorExit once closed and drained
    fmt::print("Got: {}\n", msg);
  }
}

coring::Task<void> main_task() {
  coring::ActorRef<std::string> p =
      coring::spawn_actor<std::string>({.name = "printer"}, print_actor);
  p.send("Hello");
  p.send("World");
  p.close();
  co_await p.join();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    demo::parse_time_scale(argc, argv);  // accepted like every demo's; nothing here sleeps
    coring::run(main_task());
  } catch (const std::exception& e) {
    fmt::print(stderr, "print_actor: {}\n", e.what());
    return 1;
  }
}
