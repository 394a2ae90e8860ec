// ForwardingBackend for tests: coring::ForwardingBackend (see
// coring/runtime/forwarding_backend.hpp), named here with the rest of
// coring::testing. Derive from it to watch or change what a loop asks of its
// backend (CountingBackend, FaultBackend) and override only what you need.
#pragma once

#include "coring/runtime/forwarding_backend.hpp"

namespace coring::testing {
using ForwardingBackend = coring::ForwardingBackend;
}  // namespace coring::testing
