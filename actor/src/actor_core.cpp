#include "coring/actor/detail/actor_core.hpp"

#include <fmt/core.h>

#include <cstdio>
#include <exception>
#include <stdexcept>
#include <utility>

#include "coring/actor/actor_ref.hpp"
#include "coring/actor/errors.hpp"

namespace coring::detail {

namespace {
std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}
bool is_actor_exit(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const ActorExit&) {
    return true;
  } catch (...) {
    return false;
  }
}
}  // namespace

ActorCoreBase::~ActorCoreBase() {
  if (ended_ && end_ == TaskEnd::failed && !observed_) {
    fmt::print(stderr, "coring: {} failed and nobody joined or watched it: {}\n",
               actor_label(name()), describe(error()));
    std::fflush(stderr);
  }
  while (ExitNode* n = callbacks_) {
    callbacks_ = n->next;
    delete n;
  }
}

void ActorCoreBase::on_task_end() noexcept {
  ended_ = true;
  closed_ = true;
  if (task_.done()) {
    const Outcome<void> o = task_.outcome();
    end_ = o.end();
    if (o.failed() && is_actor_exit(o.error())) {
      end_ = TaskEnd::returned;  // the seed's ActorExit: a normal end
    }
  } else {
    end_ = TaskEnd::cancelled;  // freed unfinished (scheduler shutdown)
  }
  count_undelivered(drain_on_end());
  waiters_.wake_all();
  run_exit_callbacks();
}

void ActorCoreBase::on_exit(ExitFn fn) {
  if (ended_) {
    observed_ = true;
    fn(outcome());
    return;
  }
  // Appended: callbacks run in the order they were registered.
  auto* node = new ExitNode{std::move(fn), nullptr};
  ExitNode** tail = &callbacks_;
  while (*tail != nullptr) tail = &(*tail)->next;
  *tail = node;
}

void ActorCoreBase::run_exit_callbacks() noexcept {
  if (callbacks_ != nullptr) observed_ = true;
  while (ExitNode* n = callbacks_) {
    callbacks_ = n->next;
    try {
      n->fn(outcome());
    } catch (const std::exception& e) {
      fmt::print(stderr, "coring: an on_exit callback of {} threw: {}\n", actor_label(name()),
                 e.what());
    } catch (...) {
      fmt::print(stderr, "coring: an on_exit callback of {} threw\n", actor_label(name()));
    }
    delete n;
  }
}

void ActorCoreBase::throw_closed() const {
  throw ActorClosed(name(), ended_);
}

void ActorCoreBase::throw_full(std::size_t capacity) const {
  throw MailboxFull(name(), capacity);
}

void throw_empty_ref() {
  throw std::logic_error("coring: use of an empty ActorRef");
}

void throw_two_receivers() {
  throw std::logic_error(
      "coring: two tasks receive from one actor's Inbox at once; only the actor receives");
}

}  // namespace coring::detail
