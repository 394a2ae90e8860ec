// Seed recipe: publish/subscribe with an Exchange (Python Cookbook 12.11) --
// tasks A and B subscribe to the exchange "spam" for the scope of a `with`
// block, get 'msg1' and 'msg2', and nobody gets 'msg3' sent after it.
//
// coring::get_exchange<T>(name) gives the named exchange; subscribe() returns a
// Subscription that detaches its subscribers when the scope ends, also when an
// exception leaves it. Subscribers are actors (ActorRef<T>) or, as in the seed,
// any object with a send(const T&) member.
//
// Run: ./exchange
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <string>

#include "demo_options.hpp"

namespace {

// The seed's Task: prints what it is sent.
struct Subscriber {
  std::string name;
  void send(const std::string& msg) const { fmt::print("{} got: '{}'\n", name, msg); }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    demo::parse_time_scale(argc, argv);
    Subscriber task_a{"A"};
    Subscriber task_b{"B"};

    coring::Exchange<std::string>& exc = coring::get_exchange<std::string>("spam");
    {
      coring::Subscription sub = exc.subscribe(task_a, task_b);
      exc.send("msg1");
      exc.send("msg2");
    }
    exc.send("msg3");
  } catch (const std::exception& e) {
    fmt::print(stderr, "exchange: {}\n", e.what());
    return 1;
  }
}
