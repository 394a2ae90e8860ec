// PollableQueue<T>: the one thread-safe primitive of sync/ -- a FIFO queue that
// any thread pushes into and a task on an EventLoop pops from (the seed's
// PollableQueue, on an eventfd instead of a socketpair).
//
// State: the items (a consumer-side batch `out_` and a producer-side vector
// `in_`, so a consumer takes a whole batch per lock of the producers' lock),
// `capacity_` (0: unbounded), `closed_`, the tasks parked in pop() or
// push_async(), and the optional eventfd of fd().
// Invariants: a pop task is parked only while no item is stored; a push task
// or thread waits only while the queue is full and open. Order is FIFO over all
// producers: items are stored in the order their pushes took the producers' lock.
//
// Producers (any thread):
// - push(v) / emplace(args...): stores v, or hands it straight to the oldest
//   parked pop task. On a full bounded queue it blocks the calling thread until
//   there is room (a loop thread may not block: there it throws
//   std::logic_error -- use try_push() or co_await push_async()).
// - try_push(v): false (v untouched) when the queue is full.
// - co_await push_async(v) (a task on an EventLoop): waits for room, as a task.
// - All of them throw QueueClosed once the queue is closed (try_push too).
// Consumers:
// - co_await pop() (a task on an EventLoop): the oldest item; suspends while
//   the queue is empty; std::nullopt once the queue is closed *and* drained.
//   co_await pop(d): std::nullopt also when `d` passed first (closed() tells
//   which); an item pushed as the timeout fired is still taken.
// - try_pop() (any thread): the oldest item, or std::nullopt if none is stored.
// - close() (any thread, idempotent): wakes every parked task (pop tasks get
//   std::nullopt once drained, push tasks and blocked threads QueueClosed) and
//   makes fd() readable for good.
//
// Waking a task: a push that finds a pop task parked records the item in the
// task's awaiter and wakes it on its own loop -- directly when the pusher runs
// on that loop, else by posting to the loop (EventLoop::post, whose notifier
// writes the loop's eventfd only if the loop is asleep). So a pop task costs
// no system call at all while items keep coming, and one eventfd write per
// wake-up of a sleeping loop; a burst that arrives while it sleeps is taken in
// one batch after one wake-up.
//
// fd(): an eventfd, created on the first call (a queue whose fd() is never
// asked for has none and never writes one). From then on it is readable from
// the first push after a pop or try_pop found the queue empty (or right away,
// if items are stored when fd() is first called), until a pop or try_pop
// finds the queue empty again, which resets it; close() makes it readable for
// good. So a thread with its own poll/epoll loop drains with try_pop() until
// std::nullopt, then polls fd(): it never sleeps while an item is stored, and
// a burst costs one eventfd write. It may wake spuriously (another consumer
// took the item). It is meant for consumers that are not coring tasks: a pop
// task finding the queue empty resets it too, so mixing both costs writes.
//
// Cancel-safety (through the Operation base, runtime/operation.hpp): a pop
// task cancelled (or timed out) while parked unlinks itself and takes nothing.
// Once an item was handed to it, it is no longer parked: the task gets it (a
// cancellation takes effect at its next suspension point), or, if the awaiter
// is a loser of select(), put_back() returns it to the front of the queue
// (which may then hold one item more than its capacity). PopAwaiter's
// await_ready() is side-effect free; await_suspend() takes or parks. A
// frame destroyed while its item is on the way (loop shutdown) puts it back
// too. A cancelled push_async unlinks itself and its item is not enqueued.
//
// Destruction: the queue must outlive the threads that use it. A task still
// parked in it when it is destroyed is reported on stderr and woken with
// std::logic_error (as WaitList does); destroy it on that task's loop thread or
// after the consumers are done. Threads blocked in push() must be gone.
//
// Thread-safety: every member may be called from any thread, except pop(),
// push_async() (a task on an EventLoop) and the awaiters themselves.
// Counters (stats()): items pushed, tasks woken by a post to their loop or
// directly (the waker ran on their loop), eventfd writes of fd(), pushes that
// blocked a thread.
//
// Implementation notes: two locks (detail::SpinLock), always taken
// consumer-side first: `out_` (consumers) and `in_` (producers). A push is one
// lock of the producers' lock and a vector push_back (about 7 ns of the
// producer's CPU); a consumer takes a whole batch by swapping the two vectors,
// so it takes the producers' lock once per batch, and a pop costs the
// consumers' lock (about 15 ns in all). Nothing is allocated once the vectors
// have grown. Waking a parked task on another loop is the one slow path,
// taken only when the consumer ran dry: the waiter is queued under the
// producers' lock and posted to its loop after the lock is released (the
// woken loop's first act is to take it); until then `posting_` keeps the
// waiter's frame, and so its loop, alive: a frame that leaves the queue
// (forget(), at loop shutdown) waits for posts under way. A bounded queue publishes how many items
// consumers hold (`out_count_`); a producer that waits for room says so (`blocked_`) and a consumer
// that frees room looks (both seq_cst: store then load on each side, so one sees the other).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/sync/queue.hpp"

namespace coring {

struct PollableQueueStats {
  std::uint64_t pushed = 0;          // items pushed (stored or handed over)
  std::uint64_t remote_wakeups = 0;  // tasks woken by a post to their loop
  std::uint64_t local_wakeups = 0;   // tasks woken directly (the waker ran on their loop)
  std::uint64_t fd_writes = 0;       // eventfd writes for fd()
  std::uint64_t blocked_pushes = 0;  // push() calls that waited for room
};

namespace detail {
// The queue's two locks: held for a few instructions (a push_back, a swap of
// two vectors), so a waiter spins a little (pause) and then yields its time
// slice, instead of sleeping in a futex at once as std::mutex does; unlocking
// is one store. (With std::mutex a push cost about twice the producer's CPU,
// 13-18 ns instead of 7-9: docs/benchmarks.md.)
class SpinLock {
 public:
  void lock() noexcept {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> locked_{false};
};

// Where a pop awaiter keeps its item: a hand-made optional, written and read
// back field by field. (A std::optional member, written by emplace() and then
// copied whole into await_resume's result, stalled store forwarding once more
// per pop: the consumer's CPU per pop went from about 19 to 15.5 ns.)
template <class T>
class ItemSlot {
 public:
  ItemSlot() noexcept {}
  ItemSlot(const ItemSlot&) = delete;
  ItemSlot& operator=(const ItemSlot&) = delete;
  ~ItemSlot() { reset(); }
  [[nodiscard]] bool full() const noexcept { return full_; }
  template <class U>
  void put(U&& u) {
    ::new (static_cast<void*>(&v_)) T(std::forward<U>(u));
    full_ = true;
  }
  // Empties the slot into an optional.
  std::optional<T> take() {
    std::optional<T> r(std::in_place, std::move(v_));
    reset();
    return r;
  }
  T& get() noexcept { return v_; }
  void reset() noexcept {
    if (full_) {
      v_.~T();
      full_ = false;
    }
  }

 private:
  union {
    T v_;
  };
  bool full_ = false;
};

// The eventfd of PollableQueue::fd() (sync/src/pollable_queue.cpp).
int pq_make_eventfd();                    // throws std::system_error
void pq_signal_eventfd(int fd) noexcept;  // counter += 1
void pq_reset_eventfd(int fd) noexcept;   // counter = 0
void pq_close_eventfd(int fd) noexcept;
void pq_report_destroyed(std::size_t waiters) noexcept;
[[noreturn]] void pq_throw_loop_push();
[[noreturn]] void pq_throw_needs_loop();
}  // namespace detail

template <class T>
class PollableQueue {
  static_assert(std::is_move_constructible_v<T> && std::is_move_assignable_v<T>,
                "PollableQueue items must be movable");

  class Waiter;
  using Lock = detail::SpinLock;

 public:
  using value_type = T;
  class PopAwaiter;
  class PushAwaiter;

  explicit PollableQueue(std::size_t capacity = 0) : capacity_(capacity) {}
  PollableQueue(const PollableQueue&) = delete;
  PollableQueue& operator=(const PollableQueue&) = delete;
  ~PollableQueue();

  // ---- producers (any thread) ----
  void push(const T& v) { (void)put(v, true); }
  void push(T&& v) { (void)put(std::move(v), true); }
  template <class... A>
  void emplace(A&&... args) {
    (void)put(T(std::forward<A>(args)...), true);
  }
  [[nodiscard]] bool try_push(const T& v) { return put(v, false); }
  [[nodiscard]] bool try_push(T&& v) { return put(std::move(v), false); }
  PushAwaiter push_async(const T& v) { return PushAwaiter(*this, v); }
  PushAwaiter push_async(T&& v) { return PushAwaiter(*this, std::move(v)); }

  // ---- consumers ----
  PopAwaiter pop() noexcept { return PopAwaiter(*this); }
  PopAwaiter pop(Duration timeout) noexcept {
    PopAwaiter a(*this);
    a.set_timeout(timeout);
    return a;
  }
  [[nodiscard]] std::optional<T> try_pop() {
    std::optional<T> v;
    {
      std::lock_guard out(out_mutex_);
      if (!take_locked(v)) {
        std::lock_guard in(in_mutex_);
        if (!refill_locked()) return v;
        take_locked(v);
      }
    }
    after_take();  // every take: a producer waiting for room must hear of it
    return v;
  }

  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept {
    return closed_flag_.load(std::memory_order_acquire);
  }

  // Items stored (a snapshot; not counting items on their way to a task).
  [[nodiscard]] std::size_t size() const {
    std::lock_guard out(out_mutex_);
    std::lock_guard in(in_mutex_);
    return out_.size() - out_head_ + in_.size();
  }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  // See the header comment. Throws std::system_error if no eventfd can be made.
  [[nodiscard]] int fd();
  [[nodiscard]] PollableQueueStats stats() const {
    std::lock_guard in(in_mutex_);
    return stats_;
  }
  // Tasks parked in pop() (a snapshot).
  [[nodiscard]] std::size_t waiting_poppers() const {
    std::lock_guard in(in_mutex_);
    return poppers_.size();
  }

 private:
  // ---- intrusive lists of waiters (guarded by in_mutex_) ----
  struct List {
    Waiter* head = nullptr;
    Waiter* tail = nullptr;
    [[nodiscard]] bool empty() const noexcept { return head == nullptr; }
    [[nodiscard]] std::size_t size() const noexcept {
      std::size_t n = 0;
      for (Waiter* w = head; w != nullptr; w = w->next_) ++n;
      return n;
    }
    void push_back(Waiter* w) noexcept {
      w->prev_ = tail;
      w->next_ = nullptr;
      (tail != nullptr ? tail->next_ : head) = w;
      tail = w;
    }
    void remove(Waiter* w) noexcept {
      (w->prev_ != nullptr ? w->prev_->next_ : head) = w->next_;
      (w->next_ != nullptr ? w->next_->prev_ : tail) = w->prev_;
    }
    Waiter* pop_front() noexcept {
      Waiter* w = head;
      if (w != nullptr) remove(w);
      return w;
    }
  };

  // What pop tasks and push tasks share: a parked operation woken on its own
  // loop. States (guarded by in_mutex_ while the queue lives): idle (not
  // parked), parked (in poppers_/pushers_), delivering (taken out of the line
  // with its result recorded; in delivering_, a post to its loop on the way),
  // done (the wake-up reached the loop).
  class Waiter : public Operation {
   protected:
    enum class State : std::uint8_t { idle, parked, delivering, done };
    explicit Waiter(PollableQueue& q) noexcept : queue_(&q) {}
    Waiter(Waiter&& o) noexcept : Operation(std::move(o)), queue_(o.queue_) {}
    ~Waiter() = default;
    // For the derived destructors: only a pending operation can be parked or
    // on its way (loop shutdown frees such frames); it leaves the queue's lists.
    void leave() noexcept {
      if (this->pending() && queue_ != nullptr) queue_->forget(this);
    }

    // Parks in `line` with `in_mutex_` held: prepare() and link. Returns
    // false when the task was cancelled before (its unwinder is scheduled).
    template <class P>
    bool park_locked(List& line, std::coroutine_handle<P> h, WaitKind kind) {
      loop_ = EventLoop::current();
      if (loop_ == nullptr) detail::pq_throw_needs_loop();
      if (!prepare<&Waiter::interrupt>(h, kind, queue_)) return false;
      state_ = State::parked;
      line_ = &line;
      line.push_back(this);
      start_timeout();  // its timer is loop-local: fires after the locks are released
      return true;
    }
    [[noreturn]] void throw_broken() const { coring::throw_broken("PollableQueue"); }

    PollableQueue* queue_;  // null once the queue was destroyed under a parked waiter
    EventLoop* loop_ = nullptr;
    State state_ = State::idle;
    bool broken_ = false;

   private:
    friend class PollableQueue;
    // Loop thread: the operation was cancelled or timed out.
    static bool interrupt(Operation* op) noexcept {
      auto* self = static_cast<Waiter*>(op);
      PollableQueue* q = self->queue_;
      if (q == nullptr) return false;  // broken: its wake-up is on the way
      std::lock_guard in(q->in_mutex_);
      if (self->state_ != State::parked) return false;  // its result is on the way
      self->line_->remove(self);
      if (self->line_ == &q->pushers_) q->blocked_.fetch_sub(1, std::memory_order_seq_cst);
      self->state_ = State::idle;
      return true;
    }
    // Loop thread: the posted wake-up arrived.
    void delivered() noexcept {
      if (PollableQueue* q = queue_) {
        std::lock_guard in(q->in_mutex_);
        q->delivering_.remove(this);
        state_ = State::done;
      } else {
        state_ = State::done;
      }
      complete(false);
    }
    void complete_here() noexcept { complete(false); }

    Waiter* prev_ = nullptr;
    Waiter* next_ = nullptr;
    Waiter* post_next_ = nullptr;  // in the queue's to-post chain
    List* line_ = nullptr;
  };

 public:
  class [[nodiscard]] PopAwaiter : public Waiter {
   public:
    static constexpr bool kReportsTimeout = true;  // a late item is still taken
    explicit PopAwaiter(PollableQueue& q) noexcept : Waiter(q) {}
    PopAwaiter(PopAwaiter&& o) noexcept : Waiter(std::move(o)) {}
    ~PopAwaiter() { this->leave(); }

    // Side-effect free: await_suspend looks and takes under the locks (so
    // select() can ask every awaiter first).
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      PollableQueue& q = *this->queue_;
      {
        std::lock_guard out(q.out_mutex_);
        if (!q.take_locked(item_)) {
          std::lock_guard in(q.in_mutex_);
          if (q.refill_locked()) {
            q.take_locked(item_);
          } else if (q.closed_) {
            return false;
          } else {
            // Parked, or cancelled before it could park (its unwinder is
            // scheduled): suspend either way.
            (void)this->park_locked(q.poppers_, h, WaitKind::queue_pop);
            return true;
          }
        }
      }
      q.after_take();
      return false;
    }
    // The item; std::nullopt once the queue is closed and drained, or when the
    // timeout passed with nothing to take (closed() tells which).
    std::optional<T> await_resume() {
      if (this->broken_) this->throw_broken();
      if (item_.full()) return item_.take();
      if (this->queue_ == nullptr) return std::nullopt;
      return this->queue_->try_pop();  // timed out, or closed: one more look
    }
    // For select(): this awaiter lost, after an item was handed to it; the
    // item goes back to the front of the queue (to a parked pop task, if one
    // waits). No-op when it holds nothing.
    void put_back() noexcept {
      if (!item_.full()) return;
      if (this->queue_ != nullptr) this->queue_->put_front(std::move(item_.get()));
      item_.reset();
    }
    [[nodiscard]] bool holds_item() const noexcept { return item_.full(); }

   private:
    friend class PollableQueue;
    detail::ItemSlot<T> item_;  // taken, or handed over while parked
  };

  class [[nodiscard]] PushAwaiter : public Waiter {
   public:
    static constexpr bool kSelectable = false;  // see Operation::kSelectable
    template <class U>
    PushAwaiter(PollableQueue& q, U&& v) : Waiter(q), value_(std::forward<U>(v)) {}
    PushAwaiter(PushAwaiter&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : Waiter(std::move(o)), value_(std::move(o.value_)) {}
    ~PushAwaiter() { this->leave(); }

    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      PollableQueue& q = *this->queue_;
      std::unique_lock in(q.in_mutex_);
      if (q.closed_) return false;  // await_resume throws
      if (q.store_locked(std::move(value_))) {
        admitted_ = true;
        q.unlock_and_post(in);
        return false;
      }
      // Say it waits before looking again (see the implementation notes).
      q.blocked_.fetch_add(1, std::memory_order_seq_cst);
      if (q.store_locked(std::move(value_))) {
        q.blocked_.fetch_sub(1, std::memory_order_seq_cst);
        admitted_ = true;
        q.unlock_and_post(in);
        return false;
      }
      if (!this->park_locked(q.pushers_, h, WaitKind::queue_push)) {
        // Cancelled before it parked: its unwinder is scheduled.
        q.blocked_.fetch_sub(1, std::memory_order_seq_cst);
      }
      return true;
    }
    // Returns once the item went in; QueueClosed if the queue was closed first.
    // A timed-out push (with_timeout) leaves the item in the awaiter.
    void await_resume() const {
      if (this->broken_) this->throw_broken();
      if (!admitted_ && !this->timed_out()) throw QueueClosed("PollableQueue");
    }

   private:
    friend class PollableQueue;
    T value_;
    bool admitted_ = false;
  };

 private:
  // Requires out_mutex_: moves the oldest consumer-side item into `v`.
  template <class Slot>  // std::optional<T> or detail::ItemSlot<T>
  bool take_locked(Slot& v) {
    if (out_head_ == out_.size()) return false;
    if constexpr (std::is_same_v<Slot, std::optional<T>>) {
      v.emplace(std::move(out_[out_head_++]));
    } else {
      v.put(std::move(out_[out_head_++]));
    }
    if (capacity_ != 0) publish_out_count();
    return true;
  }
  // Requires both locks and an exhausted consumer-side batch: takes the
  // producers' items as the next batch. False if there were none (a consumer
  // found the queue empty: fd() resets).
  bool refill_locked() {
    out_.clear();
    out_head_ = 0;
    if (in_.empty()) {
      if (fd_ >= 0 && !closed_) {
        fd_armed_ = true;
        if (fd_signalled_) {
          detail::pq_reset_eventfd(fd_);
          fd_signalled_ = false;
        }
      }
      return false;
    }
    out_.swap(in_);
    if (capacity_ != 0) publish_out_count();
    return true;
  }
  // After a take, with no lock held: a bounded queue tells waiting pushers.
  void after_take() {
    if (capacity_ != 0 && blocked_.load(std::memory_order_seq_cst) > 0) admit_pushers();
  }
  // Requires out_mutex_.
  void publish_out_count() noexcept {
    out_count_.store(out_.size() - out_head_, std::memory_order_seq_cst);
  }
  // Requires in_mutex_.
  [[nodiscard]] bool full_locked() const noexcept {
    return capacity_ != 0 && in_.size() + out_count_.load(std::memory_order_seq_cst) >= capacity_;
  }

  // Requires in_mutex_ and an open queue: hands v to a parked pop task or
  // stores it; false (v untouched) if the queue is full.
  template <class U>
  bool store_locked(U&& v) {
    if (!poppers_.empty()) {
      auto* w = static_cast<PopAwaiter*>(poppers_.pop_front());
      w->item_.put(std::forward<U>(v));  // recorded before the wake-up
      ++stats_.pushed;
      wake_locked(w);
      return true;
    }
    if (full_locked()) return false;
    in_.push_back(std::forward<U>(v));
    ++stats_.pushed;
    if (fd_armed_) signal_fd_locked();
    return true;
  }

  template <class U>
  bool put(U&& v, bool block) {
    std::unique_lock in(in_mutex_);
    if (closed_) throw QueueClosed("PollableQueue");
    if (store_locked(std::forward<U>(v))) {
      unlock_and_post(in);
      return true;
    }
    if (!block) return false;
    if (EventLoop::current() != nullptr) detail::pq_throw_loop_push();
    ++stats_.blocked_pushes;
    blocked_.fetch_add(1, std::memory_order_seq_cst);
    try {
      for (;;) {
        if (closed_) throw QueueClosed("PollableQueue");
        if (store_locked(std::forward<U>(v))) break;
        not_full_.wait(in);
      }
    } catch (...) {
      blocked_.fetch_sub(1, std::memory_order_seq_cst);
      throw;
    }
    blocked_.fetch_sub(1, std::memory_order_seq_cst);
    unlock_and_post(in);
    return true;
  }

  // A consumer freed room: wake blocked threads and admit parked push tasks.
  void admit_pushers() {
    std::unique_lock in(in_mutex_);
    while (!pushers_.empty() && !closed_) {
      auto* w = static_cast<PushAwaiter*>(pushers_.head);
      if (!poppers_.empty() || !full_locked()) {
        pushers_.remove(w);
        (void)store_locked(std::move(w->value_));
        w->admitted_ = true;  // recorded before the wake-up
        blocked_.fetch_sub(1, std::memory_order_seq_cst);
        wake_locked(w);
      } else {
        break;
      }
    }
    not_full_.notify_all();
    unlock_and_post(in);
  }

  // Requires in_mutex_; `w` was taken out of its line with its result
  // recorded. Wakes it on its loop (see the header comment).
  void wake_locked(Waiter* w) noexcept {
    if (EventLoop::current() == w->loop_) {
      w->state_ = Waiter::State::done;
      ++stats_.local_wakeups;
      w->complete_here();
      return;
    }
    w->state_ = Waiter::State::delivering;
    ++stats_.remote_wakeups;
    if (w->queue_ != nullptr) delivering_.push_back(w);
    // Posted once the lock is released (unlock_and_post): a post may write the
    // loop's eventfd, and the woken task must not find the lock still held.
    w->post_next_ = nullptr;
    (to_post_tail_ != nullptr ? to_post_tail_->post_next_ : to_post_head_) = w;
    to_post_tail_ = w;
    posting_.fetch_add(1, std::memory_order_relaxed);
  }
  // Releases `in` (in_mutex_), then posts the wake-ups wake_locked queued.
  // Invariant: nothing is queued while the lock is free. Until the posts are
  // made, `posting_` keeps the waiters' frames -- and so their loops -- alive
  // (forget() waits for it).
  void unlock_and_post(std::unique_lock<Lock>& in) noexcept {
    Waiter* chain = std::exchange(to_post_head_, nullptr);
    to_post_tail_ = nullptr;
    in.unlock();
    post_chain(chain);
  }
  void post_chain(Waiter* chain) noexcept {
    if (chain == nullptr) return;
    std::size_t n = 0;
    while (chain != nullptr) {
      Waiter* w = chain;
      chain = w->post_next_;  // read first: once posted, `w` may be gone
      ++n;
      try {
        w->loop_->post([w] { w->delivered(); });
      } catch (...) {
        // The loop is shutting down: it frees the frame without running posted
        // functions, and the frame's destructor gives the item back (forget()).
      }
    }
    posting_.fetch_sub(n, std::memory_order_release);
  }

  // Requires in_mutex_.
  void signal_fd_locked() noexcept {
    fd_armed_ = false;
    if (!fd_signalled_) {
      detail::pq_signal_eventfd(fd_);
      fd_signalled_ = true;
      ++stats_.fd_writes;
    }
  }

  // An item a pop task held goes back to the front.
  void put_front(T&& v) noexcept {
    std::unique_lock out(out_mutex_);
    std::unique_lock in(in_mutex_);
    if (!poppers_.empty()) {
      auto* w = static_cast<PopAwaiter*>(poppers_.pop_front());
      w->item_.put(std::move(v));
      wake_locked(w);
      Waiter* chain = std::exchange(to_post_head_, nullptr);
      to_post_tail_ = nullptr;
      in.unlock();
      out.unlock();
      post_chain(chain);
      return;
    }
    if (out_head_ > 0) {
      out_[--out_head_] = std::move(v);
    } else {
      out_.insert(out_.begin(), std::move(v));
    }
    if (capacity_ != 0) publish_out_count();
    if (fd_armed_) signal_fd_locked();
  }

  // A waiter's frame is being destroyed while pending (loop shutdown).
  void forget(Waiter* w) noexcept {
    std::optional<T> back;
    {
      std::unique_lock in(in_mutex_);
      // A post for `w` may be under way on another thread: let it end first.
      while (posting_.load(std::memory_order_acquire) != 0) {
        in.unlock();
        std::this_thread::yield();
        in.lock();
      }
      if (w->state_ == Waiter::State::parked) {
        w->line_->remove(w);
        if (w->line_ == &pushers_) blocked_.fetch_sub(1, std::memory_order_seq_cst);
      } else if (w->state_ == Waiter::State::delivering) {
        delivering_.remove(w);
        if (w->line_ == &poppers_) {
          auto* p = static_cast<PopAwaiter*>(w);
          if (p->item_.full()) back = p->item_.take();
        }
      }
      w->state_ = Waiter::State::idle;
    }
    if (back.has_value()) put_front(std::move(*back));
  }

  // ---- consumer side (out_mutex_) ----
  mutable Lock out_mutex_;
  std::vector<T> out_;  // the batch being consumed: [out_head_, size()) are items
  std::size_t out_head_ = 0;

  // ---- producer side (in_mutex_), on its own cache line ----
  alignas(64) mutable Lock in_mutex_;
  std::vector<T> in_;
  List poppers_;
  List pushers_;
  List delivering_;
  Waiter* to_post_head_ = nullptr;  // woken, to be posted once the lock is released
  Waiter* to_post_tail_ = nullptr;
  std::condition_variable_any not_full_;  // threads blocked in push()
  PollableQueueStats stats_;
  int fd_ = -1;
  bool fd_armed_ = false;      // the next push writes the eventfd
  bool fd_signalled_ = false;  // the eventfd counter is not 0
  bool closed_ = false;

  // ---- shared atomics ----
  alignas(64) std::atomic<std::size_t> out_count_{0};  // bounded: items consumers hold
  std::atomic<std::size_t> blocked_{0};                // threads and tasks waiting for room
  std::atomic<bool> closed_flag_{false};
  std::atomic<std::size_t> posting_{0};  // wake-ups queued or being posted
  const std::size_t capacity_;
};

template <class T>
void PollableQueue<T>::close() noexcept {
  std::unique_lock in(in_mutex_);
  if (closed_) return;
  closed_ = true;
  closed_flag_.store(true, std::memory_order_release);
  while (Waiter* w = poppers_.pop_front()) wake_locked(w);
  while (Waiter* w = pushers_.pop_front()) {
    blocked_.fetch_sub(1, std::memory_order_seq_cst);
    wake_locked(w);
  }
  not_full_.notify_all();
  if (fd_ >= 0) signal_fd_locked();
  unlock_and_post(in);
}

template <class T>
int PollableQueue<T>::fd() {
  std::lock_guard out(out_mutex_);
  std::lock_guard in(in_mutex_);
  if (fd_ < 0) {
    fd_ = detail::pq_make_eventfd();
    if (closed_ || !in_.empty() || out_head_ != out_.size()) {
      signal_fd_locked();
    } else {
      fd_armed_ = true;
    }
  }
  return fd_;
}

template <class T>
PollableQueue<T>::~PollableQueue() {
  std::size_t parked = 0;
  {
    std::unique_lock in(in_mutex_);
    for (List* line : {&poppers_, &pushers_}) {
      while (Waiter* w = line->pop_front()) {
        ++parked;
        w->broken_ = true;
        w->queue_ = nullptr;  // it must not touch the queue again
        wake_locked(w);
      }
    }
    while (Waiter* w = delivering_.pop_front()) w->queue_ = nullptr;
    unlock_and_post(in);
  }
  while (posting_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  if (parked > 0) detail::pq_report_destroyed(parked);
  if (fd_ >= 0) detail::pq_close_eventfd(fd_);
}

}  // namespace coring
