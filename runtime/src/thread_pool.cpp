#include "coring/runtime/thread_pool.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <exception>

namespace coring {

namespace {
thread_local const ThreadPool* tls_worker_of = nullptr;
}  // namespace

ThreadPool::ThreadPool(std::size_t threads, std::size_t max_queued) : max_queued_(max_queued) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  } catch (...) {
    shutdown(PendingWork::drop);  // joins the ones started
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (on_worker_thread()) {
    fmt::print(stderr, "coring: a ThreadPool destroyed by one of its own jobs\n");
    std::terminate();
  }
  shutdown(PendingWork::run);
}

bool ThreadPool::closed() const noexcept {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool ThreadPool::on_worker_thread() const noexcept {
  return tls_worker_of == this;
}

ThreadPoolStats ThreadPool::stats() const noexcept {
  ThreadPoolStats s;
  s.threads = workers_.size();
  {
    std::lock_guard lock(mutex_);
    s.queued = queued_;
  }
  s.running = running_.load(std::memory_order_relaxed);
  s.completed = completed_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  return s;
}

void ThreadPool::enqueue(detail::PoolJob* job, bool wait_for_room) {
  std::unique_lock lock(mutex_);
  if (max_queued_ != 0 && queued_ >= max_queued_ && !closed_) {
    if (!wait_for_room) {
      throw ThreadPoolFull("coring: the ThreadPool's queue is full (max_queued " +
                           std::to_string(max_queued_) + ")");
    }
    ++room_waiters_;
    room_cv_.wait(lock, [this] { return closed_ || queued_ < max_queued_; });
    --room_waiters_;
  }
  if (closed_) throw ThreadPoolClosed("coring: the ThreadPool is shut down");
  job->next = nullptr;
  if (tail_ == nullptr) {
    head_ = job;
  } else {
    tail_->next = job;
  }
  tail_ = job;
  ++queued_;
  const bool wake = idle_ > 0;
  lock.unlock();
  if (wake) work_cv_.notify_one();
}

void ThreadPool::work() noexcept {
  tls_worker_of = this;
  std::unique_lock lock(mutex_);
  for (;;) {
    while (head_ == nullptr && !closed_) {
      ++idle_;
      work_cv_.wait(lock);
      --idle_;
    }
    if (head_ == nullptr) return;  // closed and drained
    detail::PoolJob* job = head_;
    head_ = job->next;
    if (head_ == nullptr) tail_ = nullptr;
    --queued_;
    const bool room = room_waiters_ > 0;
    running_.fetch_add(1, std::memory_order_relaxed);
    lock.unlock();
    if (room) room_cv_.notify_one();
    detail::tls_job_skipped = false;
    job->run(job);
    running_.fetch_sub(1, std::memory_order_relaxed);
    if (!detail::tls_job_skipped) completed_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
  }
}

void ThreadPool::shutdown(PendingWork pending) {
  if (on_worker_thread()) {
    throw std::logic_error("coring: ThreadPool::shutdown called from one of the pool's own jobs");
  }
  detail::PoolJob* dropped = nullptr;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (pending == PendingWork::drop) {
      dropped = head_;
      head_ = tail_ = nullptr;
      queued_ = 0;
    }
  }
  work_cv_.notify_all();
  room_cv_.notify_all();
  while (dropped != nullptr) {
    detail::PoolJob* next = dropped->next;
    dropped_.fetch_add(1, std::memory_order_relaxed);
    dropped->drop(dropped);
    dropped = next;
  }
  std::lock_guard join_lock(join_mutex_);
  if (joined_) return;
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  joined_ = true;
}

ThreadPool& default_thread_pool() {
  static ThreadPool pool;
  return pool;
}

// ---- offload ----

namespace detail {

OffloadJobBase::OffloadJobBase(LoopInbox* box) noexcept : inbox(box) {
  box->add_ref();
  release_node = [](InboxNode* n) noexcept { static_cast<OffloadJobBase*>(n)->release(); };
}
OffloadJobBase::~OffloadJobBase() {
  inbox->release();
}

void OffloadJobBase::finish() noexcept {
  inbox->push(this);
}

}  // namespace detail

}  // namespace coring
