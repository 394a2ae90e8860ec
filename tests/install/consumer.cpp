// Built against an installed coring by .ci/run: proves the CMake package works.
#include <fmt/core.h>
#include <coring/coring.hpp>

coring::Task<int> twice(int x) {
  co_await coring::sleep_for(std::chrono::milliseconds(1));
  co_return 2 * x;
}

int main() {
  const int v = coring::run(twice(21));
  fmt::print("installed coring says {}\n", v);
  return v == 42 ? 0 : 1;
}
