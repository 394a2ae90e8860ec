#include "coring/actor/worker.hpp"

#include <future>
#include <stdexcept>

#include "coring/runtime/join_handle.hpp"

namespace coring {

namespace detail {

void ResultStateBase::finish(std::unique_lock<std::mutex>& lock) noexcept {
  done = true;
  cv.notify_all();
  ResultWaiter* w = std::exchange(waiter, nullptr);
  if (w == nullptr) return;
  EventLoop* loop = waiter_loop;
  if (EventLoop::current() == loop) {
    lock.unlock();
    w->woken();  // the awaiting task is on this loop: schedule it
    return;
  }
  // Another loop: wake it through its post(). The waiter is put back while the
  // wake-up travels, so that its cancellation (or its frame going away) on its
  // own thread finds it and takes it out; the posted function then finds
  // nothing to wake. Posting under the lock keeps the loop alive: it cannot
  // destroy the waiter's frame (which takes this lock) before the post is in.
  waiter = w;
  try {
    loop->post([self = shared_from_this(), w] {
      std::unique_lock l(self->mutex);
      if (self->waiter != w) return;  // interrupted meanwhile
      self->waiter = nullptr;
      l.unlock();
      w->woken();
    });
  } catch (...) {
    waiter = nullptr;  // the loop is shutting down: its tasks are being unwound
  }
}

void ResultStateBase::wait_ready() {
  std::unique_lock lock(mutex);
  if (!done && std::this_thread::get_id() == worker_thread) {
    throw std::logic_error(
        "coring: Result::get() on the worker's own thread would wait forever; co_await the "
        "Result instead");
  }
  cv.wait(lock, [&] { return done; });
}

void throw_empty_result() {
  throw std::logic_error("coring: an empty Result (default-constructed or moved from)");
}

void ResultWaiter::throw_needs_loop() {
  throw std::logic_error(
      "coring: co_await on a Result needs a task on an EventLoop; use get() "
      "from a plain thread");
}

void ResultWaiter::throw_two_waiters() {
  throw std::logic_error("coring: two tasks await one Result at once");
}

}  // namespace detail

namespace {
using Job = std::unique_ptr<detail::WorkerJob>;

Task<void> worker_body(Inbox<Job> inbox) {
  while (std::optional<Job> job = co_await inbox.receive()) {
    co_await (*job)->run();
  }
}

Task<void> worker_main(ActorRef<Job> actor) {
  co_await actor.watch();
}
}  // namespace

Worker::Worker(std::string_view name) : name_(name) {
  std::promise<void> started;
  std::future<void> ready = started.get_future();
  thread_ = std::thread([this, &started] {
    bool signalled = false;
    try {
      EventLoop loop;
      loop_ = &loop;
      ActorOptions opts;
      opts.name = name_;
      opts.scheduler = &loop.scheduler();
      actor_ = spawn_actor<Job>(opts, worker_body);
      thread_id_ = std::this_thread::get_id();
      ActorRef<Job> watched = actor_;
      started.set_value();
      signalled = true;
      loop.run(worker_main(std::move(watched)));
      actor_ = ActorRef<Job>();
    } catch (...) {
      if (!signalled) {
        started.set_exception(std::current_exception());
      } else {
        std::terminate();  // the worker's loop failed: nothing could run its jobs any more
      }
    }
  });
  try {
    ready.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

Worker::~Worker() {
  join();
}

void Worker::enqueue(std::unique_ptr<detail::WorkerJob> job) {
  std::lock_guard lock(mutex_);
  if (closed_) throw ActorClosed(name_, false);
  detail::WorkerJob* raw = job.release();
  // The loop runs posted functions in order: jobs reach the mailbox in the
  // order they were submitted, and all of them before close()'s.
  loop_->post([this, raw] {
    Job j(raw);
    if (actor_.try_send(std::move(j)) != SendStatus::sent) {
      j->abandon(std::make_exception_ptr(ActorClosed(name_, true)));
    }
  });
}

void Worker::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  loop_->post([this] { actor_.close(); });
}

void Worker::join() {
  close();
  std::lock_guard lock(join_mutex_);
  if (thread_.joinable() && std::this_thread::get_id() != thread_id_) thread_.join();
}

}  // namespace coring
