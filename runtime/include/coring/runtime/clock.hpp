#pragma once

#include <chrono>

namespace coring {
using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;
}  // namespace coring
