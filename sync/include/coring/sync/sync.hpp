// The sync module: loop-local awaitable synchronisation primitives, and
// PollableQueue, the one thread-safe queue between threads and loops.
#pragma once

#include "coring/sync/barrier.hpp"
#include "coring/sync/condition.hpp"
#include "coring/sync/event.hpp"
#include "coring/sync/latch.hpp"
#include "coring/sync/lock_all.hpp"
#include "coring/sync/mutex.hpp"
#include "coring/sync/pollable_queue.hpp"
#include "coring/sync/priority_queue.hpp"
#include "coring/sync/queue.hpp"
#include "coring/sync/semaphore.hpp"
#include "coring/sync/task_local.hpp"
#include "coring/sync/wait_list.hpp"
