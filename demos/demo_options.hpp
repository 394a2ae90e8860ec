// Command-line options shared by the demos: --time-scale=F multiplies every
// sleep of the recipe (1.0 reproduces the seed's timing; the tests use 0.01).
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace demo {

inline double parse_time_scale(int argc, char** argv) {
  double scale = 1.0;
  for (int i = 1; i < argc; ++i) {
    constexpr const char* kFlag = "--time-scale=";
    if (std::strncmp(argv[i], kFlag, std::strlen(kFlag)) == 0) {
      char* end = nullptr;
      scale = std::strtod(argv[i] + std::strlen(kFlag), &end);
      if (end == nullptr || *end != '\0' || !(scale >= 0.0)) {
        throw std::invalid_argument(std::string("bad --time-scale value: ") + argv[i]);
      }
    } else {
      throw std::invalid_argument(std::string("unknown option: ") + argv[i] +
                                  " (usage: [--time-scale=F])");
    }
  }
  return scale;
}

// `seconds` of the recipe, scaled.
inline std::chrono::nanoseconds scaled(double seconds, double scale) {
  return std::chrono::nanoseconds(static_cast<long long>(seconds * scale * 1e9));
}

}  // namespace demo
