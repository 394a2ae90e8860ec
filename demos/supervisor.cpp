// A supervisor (no seed recipe; built from the actor recipes): a parser actor
// answers requests with ask(), fails on bad input, and is restarted.
//
// The supervisor asks the parser for each line. When the parser throws, its
// pending ask() gets coring::NoReply, and watch() -- the awaitable form of
// watching an actor -- gives the failure with its exception. The supervisor
// then starts a new parser (at most three times) and goes on with the next
// line; the bad line is skipped, nothing else is lost.
//
// Run: ./supervisor
#include <fmt/core.h>
#include <coring/coring.hpp>

#include <charconv>
#include <stdexcept>
#include <string>
#include <vector>

#include "demo_options.hpp"

namespace {

using Parse = coring::Request<std::string, int>;

int parse_int(const std::string& s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    throw std::invalid_argument("invalid number '" + s + "'");
  }
  return v;
}

// Fails (throws out of the actor) on a line that is not a number.
coring::Task<void> parser(coring::Inbox<Parse> inbox, int generation) {
  fmt::print("parser {} started\n", generation);
  while (std::optional<Parse> req = co_await inbox.receive()) {
    const int v = parse_int(req->body);
    req->reply.set_value(v);
  }
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

coring::Task<void> supervise(std::vector<std::string> lines) {
  constexpr int kMaxRestarts = 3;
  int restarts = 0;
  coring::ActorRef<Parse> p = coring::spawn_actor<Parse>({.name = "parser"}, parser, 1);
  for (const std::string& line : lines) {
    try {
      const int v = co_await p.ask(line);
      fmt::print("parsed '{}' = {}\n", line, v);
      continue;
    } catch (const coring::NoReply&) {
      // the parser failed on this line: see below
    }
    const coring::Outcome<void> ended = co_await p.watch();
    if (ended.failed()) fmt::print("parser {} failed: {}\n", restarts + 1, describe(ended.error()));
    if (++restarts > kMaxRestarts) {
      fmt::print("supervisor: giving up after {} restarts\n", kMaxRestarts);
      co_return;
    }
    fmt::print("supervisor: restarting the parser (restart {} of {})\n", restarts, kMaxRestarts);
    p = coring::spawn_actor<Parse>({.name = "parser"}, parser, restarts + 1);
  }
  p.close();
  co_await p.join();
  fmt::print("supervisor: {} lines, {} restart(s)\n", lines.size(), restarts);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    demo::parse_time_scale(argc, argv);
    coring::run(supervise({"10", "20", "oops", "30", "4x", "40"}));
  } catch (const std::exception& e) {
    fmt::print(stderr, "supervisor: {}\n", e.what());
    return 1;
  }
}
