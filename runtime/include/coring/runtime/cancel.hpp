// Cancellation: see task_context.hpp for the context a task runs in, and
// with_timeout.hpp for timeouts.
#pragma once

#include "coring/runtime/task_context.hpp"
