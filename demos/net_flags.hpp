// Command-line handling shared by the network demos (echo_server, echo_client):
// "--flag value" and "--flag=value", numbers and durations checked with a
// one-line error, and the fd limit raised for many connections.
#pragma once

#include <fmt/core.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "coring/runtime/clock.hpp"

namespace demo {

// A bad command line: reported on one line, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::uint64_t parse_uint(std::string_view flag, const std::string& text, std::uint64_t lo,
                                std::uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || end == nullptr || *end != '\0' || errno == ERANGE ||
      v < lo || v > hi) {
    throw UsageError(
        fmt::format("bad {} value '{}': expected an integer from {} to {}", flag, text, lo, hi));
  }
  return v;
}

inline double parse_seconds(std::string_view flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e9) {
    throw UsageError(
        fmt::format("bad {} value '{}': expected seconds (a number >= 0, e.g. 2.5)", flag, text));
  }
  return v;
}

inline coring::Duration to_duration(double seconds) {
  return std::chrono::duration_cast<coring::Duration>(std::chrono::duration<double>(seconds));
}

// Walks argv one flag at a time:
//   demo::Flags f(argc, argv);
//   while (f.next()) { if (f.name() == "--port") port = f.value(); ... else f.unknown(); }
class Flags {
 public:
  Flags(int argc, char** argv) noexcept : argc_(argc), argv_(argv) {}

  bool next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    inline_value_ = false;
    if (const auto eq = name_.find('='); name_.rfind("--", 0) == 0 && eq != std::string::npos) {
      value_ = name_.substr(eq + 1);
      name_.resize(eq);
      inline_value_ = true;
    }
    return true;
  }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // The flag's value: after '=' or the next argument.
  std::string value() {
    if (inline_value_) return value_;
    if (i_ + 1 >= argc_) throw UsageError(fmt::format("{} needs a value", name_));
    return argv_[++i_];
  }
  // For a switch (no value).
  void no_value() const {
    if (inline_value_) throw UsageError(fmt::format("{} takes no value", name_));
  }
  [[noreturn]] void unknown() const {
    throw UsageError(fmt::format("unknown option '{}'", argv_[i_]));
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string name_;
  std::string value_;
  bool inline_value_ = false;
};

// Every connection is an fd: lift the soft RLIMIT_NOFILE (1024 on most systems)
// towards `want`, as far as the hard limit allows. Never lowers it.
inline void raise_fd_limit(std::size_t want) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
  rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
  (void)::setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace demo
