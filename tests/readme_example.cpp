// The program shown in README.md, kept compiling and correct by the test suite.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>
using namespace std::chrono_literals;

namespace readme {

coring::Task<int> slow_double(int x) {
  co_await coring::sleep_for(10ms);
  co_return 2 * x;
}

coring::Task<int> main_task() {
  auto a = coring::spawn(slow_double(20));
  int b = co_await slow_double(1);
  auto c = co_await coring::with_timeout(1ms, slow_double(5));
  co_return co_await a + b + c.value_or(0);
}

}  // namespace readme

TEST_CASE("the README's first program prints 42", "[runtime][readme]") {
  CHECK(coring::run(readme::main_task()) == 42);
}
