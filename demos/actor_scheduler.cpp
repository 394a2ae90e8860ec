// Seed recipe: the generator ActorScheduler (Python Cookbook 12.12) -- a
// printer actor and a counter actor that sends the printer n and itself n - 1,
// counting down from 10,000, driven by a message queue, not by threads.
//
// The generators become coroutines of type ActorScheduler<int>::Actor, and
// `msg = yield` becomes `co_await sched.receive()`. new_actor() queues the
// actor's start (the seed's (actor, None)), run() delivers until no message is
// left, standalone: no event loop, no io_uring. The counter sends by ActorId,
// found once (the seed looks the name up on every send).
//
// Run: ./actor_scheduler [--count N] [--quiet]
//   --quiet prints only `messages=M seconds=S msgs_per_s=R` (M counts every
//   delivery to a live actor, the two starts included: 2N + 3 for a count of N).
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using Sched = coring::ActorScheduler<std::int64_t>;

Sched::Actor printer(Sched& sched, bool quiet) {
  for (;;) {
    std::int64_t msg = co_await sched.receive();
    if (!quiet) fmt::print("Got: {}\n", msg);
  }
}

Sched::Actor counter(Sched& sched) {
  const Sched::ActorId to_printer = *sched.find("printer");
  const Sched::ActorId self = *sched.find("counter");
  for (;;) {
    std::int64_t n = co_await sched.receive();
    if (n == 0) break;
    sched.send(to_printer, n);
    sched.send(self, n - 1);
  }
}

int usage(const char* argv0) {
  fmt::print(stderr, "usage: {} [--count N] [--quiet]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t count = 10000;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--count" && i + 1 < argc) {
      char* end = nullptr;
      count = std::strtoll(argv[++i], &end, 10);
      if (end == nullptr || *end != '\0' || count < 0) return usage(argv[0]);
    } else if (arg.rfind("--time-scale=", 0) == 0) {
      // accepted like every demo's; nothing here sleeps
    } else {
      return usage(argv[0]);
    }
  }

  Sched sched;
  sched.new_actor("printer", printer(sched, quiet));
  sched.new_actor("counter", counter(sched));
  sched.send("counter", count);
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t messages = sched.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (quiet) {
    fmt::print("messages={} seconds={:.6f} msgs_per_s={:.0f}\n", messages, seconds,
               seconds > 0 ? static_cast<double>(messages) / seconds : 0.0);
  }
  return 0;
}
