// The runtime module: tasks, the scheduler, the event loop, timers, I/O, cancellation.
#pragma once

#include "coring/runtime/backend.hpp"
#include "coring/runtime/cancel.hpp"
#include "coring/runtime/clock.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/frame_allocator.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/outcome.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/task_context.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/timer_queue.hpp"
#include "coring/runtime/with_timeout.hpp"
