// The actor module: everything it offers (see docs/architecture.md, "actor/").
#pragma once

#include "coring/actor/actor_ref.hpp"
#include "coring/actor/actor_scheduler.hpp"
#include "coring/actor/errors.hpp"
#include "coring/actor/exchange.hpp"
#include "coring/actor/tagged.hpp"
#include "coring/actor/worker.hpp"
