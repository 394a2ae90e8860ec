#include "coring/runtime/loop_group.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <optional>

namespace coring {

namespace {
// How the threads report their start to the constructor.
struct StartLine {
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t reported = 0;
  std::vector<std::exception_ptr> errors;
};
}  // namespace

LoopGroup::LoopGroup(std::size_t loops, LoopOptions options) : options_(std::move(options)) {
  if (loops == 0) loops = std::max(1u, std::thread::hardware_concurrency());
  slots_.reserve(loops);
  for (std::size_t i = 0; i < loops; ++i) slots_.push_back(std::make_unique<Slot>());
  StartLine line;
  line.errors.resize(loops);
  std::size_t started = 0;
  std::exception_ptr thread_error;
  for (std::size_t i = 0; i < loops; ++i) {
    try {
      slots_[i]->thread = std::thread([this, i, &line] {
        Slot& s = *slots_[i];
        std::optional<EventLoop> loop;
        try {
          loop.emplace(options_);
          if (i == 0) describe_ = loop->describe();
        } catch (...) {
          std::lock_guard lock(line.mutex);
          line.errors[i] = std::current_exception();
          ++line.reported;
          line.cv.notify_all();
          return;
        }
        {
          std::lock_guard lock(s.mutex);
          s.loop = &*loop;
          s.id = std::this_thread::get_id();
        }
        {
          std::lock_guard lock(line.mutex);
          ++line.reported;
          line.cv.notify_all();
        }
        // `line` may be gone from here on.
        run_slot(s, *loop);
        loop.reset();  // unwinds its tasks: their submit_to results report TaskCancelled
      });
      ++started;
    } catch (...) {
      thread_error = std::current_exception();
      break;
    }
  }
  {
    std::unique_lock lock(line.mutex);
    line.cv.wait(lock, [&] { return line.reported == started; });
  }
  std::string failure;
  if (thread_error) {
    failure = fmt::format("coring: LoopGroup could not start the thread of loop {}", started);
  }
  for (std::size_t i = 0; i < started && failure.empty(); ++i) {
    if (!line.errors[i]) continue;
    try {
      std::rethrow_exception(line.errors[i]);
    } catch (const std::exception& e) {
      failure = fmt::format("coring: LoopGroup could not start loop {}: {}", i, e.what());
    } catch (...) {
      failure = fmt::format("coring: LoopGroup could not start loop {}", i);
    }
  }
  if (!failure.empty()) {
    slots_.resize(started);  // the threads that exist
    stop();
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            failure);
  }
}

LoopGroup::~LoopGroup() {
  try {
    stop();
  } catch (const std::exception& e) {
    fmt::print(stderr, "coring: ~LoopGroup: {}\n", e.what());
    std::terminate();
  }
}

LoopGroup::Slot& LoopGroup::slot(std::size_t i) const {
  if (i >= slots_.size()) {
    throw std::out_of_range(
        fmt::format("coring: LoopGroup has {} loops, no loop {}", slots_.size(), i));
  }
  return *slots_[i];
}

void LoopGroup::run_slot(Slot& s, EventLoop& loop) noexcept {
  try {
    loop.run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "coring: a LoopGroup loop stopped on an error: {}\n", e.what());
  }
  detail::GroupCall* pending = nullptr;
  {
    std::lock_guard lock(s.mutex);
    s.closed = true;  // from here on nobody posts to (or stops) this loop
    pending = s.head;
    s.head = s.tail = nullptr;
  }
  while (pending != nullptr) {
    detail::GroupCall* next = pending->next_call;
    pending->abort(pending);
    pending = next;
  }
}

void LoopGroup::stop() {
  const auto self = std::this_thread::get_id();
  for (auto& s : slots_) {
    std::lock_guard lock(s->mutex);
    if (s->id == self) {
      throw std::logic_error("coring: LoopGroup::stop() on one of the group's own loops");
    }
    s->stopping = true;
    if (!s->closed && s->loop != nullptr) s->loop->stop();
  }
  std::lock_guard join_lock(join_mutex_);
  if (joined_) return;
  for (auto& s : slots_) {
    if (s->thread.joinable()) s->thread.join();
  }
  joined_ = true;
}

void LoopGroup::enqueue(Slot& s, detail::GroupCall* call) {
  std::lock_guard lock(s.mutex);
  if (s.closed || s.stopping) throw LoopGroupStopped("coring: submit_to on a stopped LoopGroup");
  call->next_call = nullptr;
  if (s.tail == nullptr) {
    s.head = call;
  } else {
    s.tail->next_call = call;
  }
  s.tail = call;
  if (s.drain_posted) return;
  s.drain_posted = true;
  s.loop->post([&s] { drain(s); });  // the loop is alive: it closes `s` under the mutex first
}

void LoopGroup::drain(Slot& s) noexcept {
  detail::GroupCall* calls = nullptr;
  {
    std::lock_guard lock(s.mutex);
    calls = s.head;
    s.head = s.tail = nullptr;
    s.drain_posted = false;
  }
  while (calls != nullptr) {
    detail::GroupCall* next = calls->next_call;
    calls->start(calls);
    calls = next;
  }
}

}  // namespace coring
