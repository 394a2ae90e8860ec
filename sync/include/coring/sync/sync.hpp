// The sync module: loop-local awaitable synchronisation primitives.
#pragma once

#include "coring/sync/event.hpp"
#include "coring/sync/wait_list.hpp"
