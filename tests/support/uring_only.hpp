// For the tests of io_uring itself (ring modes, CQ overflow, provided-buffer
// rings, the kernel's set-up): CORING_IO_URING_ONLY() at the top of such a test
// skips it, saying so, on the epoll pass of the suite (CORING_BACKEND=epoll: it
// ran on io_uring in the first pass) and where io_uring cannot be set up at all
// (a seccomp profile, the sysctl), so the suite passes there too.
#pragma once

#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

namespace coring_test {

// Empty when io_uring tests should run here; else why not.
inline const std::string& why_no_io_uring() {
  static const std::string why = [] {
    const char* env = std::getenv("CORING_BACKEND");
    if (env != nullptr && std::strcmp(env, "epoll") == 0) {
      return std::string("CORING_BACKEND=epoll");
    }
    try {
      (void)coring::make_uring_backend(coring::UringOptions{});
    } catch (const std::system_error& e) {
      if (coring::uring_unavailable(e.code().value())) return std::string(e.what());
    }
    return std::string();
  }();
  return why;
}

}  // namespace coring_test

#define CORING_IO_URING_ONLY()                                               \
  do {                                                                       \
    if (!coring_test::why_no_io_uring().empty()) {                           \
      SUCCEED("io_uring only, skipped: " << coring_test::why_no_io_uring()); \
      return;                                                                \
    }                                                                        \
  } while (false)
