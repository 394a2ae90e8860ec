// The umbrella header: everything coring offers.
#pragma once

#include "coring/runtime/runtime.hpp"
#include "coring/net/net.hpp"
#include "coring/sync/sync.hpp"
