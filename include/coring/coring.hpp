// The umbrella header: everything coring offers.
#pragma once

#include "coring/runtime/runtime.hpp"
