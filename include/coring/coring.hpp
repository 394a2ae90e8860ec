// The umbrella header: everything coring offers.
#pragma once

#include "coring/actor/actor.hpp"
#include "coring/net/net.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/sync/sync.hpp"
