// ActorScheduler<Msg>: the seed's message-driven generator scheduler.
//
//   using Sched = coring::ActorScheduler<int>;
//   Sched::Actor printer(Sched& s) {
//     for (;;) fmt::print("Got: {}\n", co_await s.receive());
//   }
//   Sched::Actor counter(Sched& s, Sched::ActorId printer, Sched::ActorId self) {
//     for (;;) {
//       int n = co_await s.receive();
//       if (n == 0) co_return;
//       s.send(printer, n);
//       s.send(self, n - 1);
//     }
//   }
//   Sched sched;
//   auto p = sched.new_actor("printer", printer(sched));
//   auto c = sched.new_actor("counter", counter(sched, p, sched.next_id()));
//   sched.send("counter", 10000);
//   sched.run();
//
// An actor is a coroutine of type ActorScheduler<Msg>::Actor that only ever
// awaits receive() (anything else is a compile error: it has no loop to wait
// on; an actor that does I/O is an Actor<Msg> from spawn_actor). State: the
// actors by id and name, and one FIFO line of (actor, message) deliveries.
// - new_actor(name, actor): registers it and queues its start (the seed's
//   (actor, None)): the first delivery runs it to its first receive().
//   Returns its ActorId. A name already taken is a std::logic_error.
// - send(id, msg) / send(name, msg): queues a delivery; never runs anything
//   inline. send(id) is the fast path (no look-up); find(name) gives an id.
// - run(): delivers in FIFO order until no delivery is left; each delivery
//   resumes the actor with its message, and the actor runs until its next
//   receive() or its end. Returns the number of deliveries made to live actors
//   (starts included: the seed's program with count N makes 2N + 3).
//   Standalone: no event loop, no io_uring. run_async(batch) does the same as a
//   task on an EventLoop, yielding to the loop after every `batch` deliveries.
// - Never silently dropped: a message to an unknown name, or to an actor that
//   has ended, is counted per name -- undelivered() lists (name, count), the
//   total is undelivered_count(). (The seed drops both.)
// - An actor that throws ends; the others keep running. failures() lists
//   (name, exception); one never looked at is reported on stderr by the
//   destructor. An actor that returns (co_return) ends normally.
// Destruction frees every actor frame. Not thread-safe: one thread.
#pragma once

#include <fmt/core.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coring/runtime/frame_allocator.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

template <class Msg>
class ActorScheduler {
  static_assert(std::is_nothrow_move_constructible_v<Msg>, "messages must be nothrow-movable");

 public:
  struct ActorId {
    std::uint32_t index = 0;
    friend bool operator==(ActorId, ActorId) = default;
  };
  struct Undelivered {
    std::string name;
    std::uint64_t count = 0;
  };
  struct Failure {
    std::string name;
    std::exception_ptr error;
  };

  class Actor;
  class promise_type;

  // What `co_await sched.receive()` is (only inside an Actor).
  class [[nodiscard]] Receive {
   public:
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<promise_type> h) noexcept { promise_ = &h.promise(); }
    Msg await_resume() noexcept { return std::move(*promise_->slot_); }

   private:
    promise_type* promise_ = nullptr;
  };

  class promise_type {
   public:
    static void* operator new(std::size_t n) { return FrameAllocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
      FrameAllocator::deallocate(p, n);
    }
    Actor get_return_object() noexcept {
      return Actor(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error_ = std::current_exception(); }
    Receive await_transform(Receive r) noexcept { return r; }
    template <class A>
    A&& await_transform(A&& a) noexcept {
      static_assert(sizeof(A) == 0,
                    "an ActorScheduler actor only awaits receive(): it has no event loop to "
                    "wait on -- an actor that sleeps or does I/O is spawn_actor<Msg>(...)");
      return std::forward<A>(a);
    }

   private:
    friend class ActorScheduler;
    std::optional<Msg> slot_;  // the message being delivered
    std::exception_ptr error_;
  };

  // The coroutine type of an actor; owns its frame until new_actor() takes it.
  class [[nodiscard]] Actor {
   public:
    using promise_type = ActorScheduler::promise_type;
    Actor(Actor&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Actor& operator=(Actor&&) = delete;
    ~Actor() {
      if (h_) h_.destroy();
    }

   private:
    friend class ActorScheduler;
    friend class ActorScheduler::promise_type;
    explicit Actor(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    std::coroutine_handle<promise_type> h_;
  };

  ActorScheduler() = default;
  ActorScheduler(const ActorScheduler&) = delete;
  ActorScheduler& operator=(const ActorScheduler&) = delete;
  ~ActorScheduler() {
    for (Slot& s : actors_) {
      if (s.handle) s.handle.destroy();
    }
    for (const Failure& f : failures_) {
      if (!failures_seen_) report(f);
    }
  }

  // Inside an actor: `Msg m = co_await sched.receive();`
  Receive receive() noexcept { return {}; }

  // The id the next new_actor() will return (for an actor that sends to itself).
  [[nodiscard]] ActorId next_id() const noexcept {
    return {static_cast<std::uint32_t>(actors_.size())};
  }

  ActorId new_actor(std::string name, Actor actor) {
    if (by_name_.contains(name)) {
      throw std::logic_error("coring: ActorScheduler: an actor named '" + name + "' exists");
    }
    const ActorId id{static_cast<std::uint32_t>(actors_.size())};
    actors_.push_back(Slot{std::exchange(actor.h_, nullptr), name});
    by_name_.emplace(std::move(name), id);
    queue_.push(Delivery{id.index, std::nullopt});
    return id;
  }

  [[nodiscard]] std::optional<ActorId> find(std::string_view name) const {
    auto it = by_name_.find(std::string(name));
    if (it == by_name_.end()) return std::nullopt;
    return it->second;
  }

  [[gnu::always_inline]] void send(ActorId to, Msg m) {
    queue_.push(Delivery{to.index, std::move(m)});
  }
  void send(std::string_view name, Msg m) {
    if (std::optional<ActorId> id = find(name)) {
      send(*id, std::move(m));
    } else {
      count_undelivered(name);
    }
  }

  // See the header comment.
  std::uint64_t run() { return deliver(UINT64_MAX); }

  // Delivers at most `budget` messages; returns how many it delivered to live actors.
  std::uint64_t run_for(std::uint64_t budget) { return deliver(budget); }

  // run() as a task on an EventLoop: `batch` deliveries at a time, yielding to
  // the loop in between. Returns when no delivery is left.
  Task<std::uint64_t> run_async(std::uint64_t batch = 4096) {
    std::uint64_t total = deliver(batch);
    while (!queue_.empty()) {
      co_await yield_now();
      total += deliver(batch);
    }
    co_return total;
  }

  [[nodiscard]] bool idle() const noexcept { return queue_.empty(); }
  [[nodiscard]] std::size_t pending() const noexcept { return queue_.size(); }
  [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
  [[nodiscard]] std::size_t live_actors() const noexcept { return live_; }

  [[nodiscard]] std::uint64_t undelivered_count() const noexcept {
    std::uint64_t n = 0;
    for (const auto& [name, count] : undelivered_) n += count;
    return n;
  }
  [[nodiscard]] std::vector<Undelivered> undelivered() const {
    std::vector<Undelivered> out;
    for (const auto& [name, count] : undelivered_) out.push_back({name, count});
    return out;
  }
  [[nodiscard]] const std::vector<Failure>& failures() noexcept {
    failures_seen_ = true;
    return failures_;
  }

 private:
  struct Slot {
    std::coroutine_handle<promise_type> handle;  // null once ended
    std::string name;
  };
  struct Delivery {
    std::uint32_t actor;
    std::optional<Msg> msg;  // nullopt: the start
  };
  // FIFO ring of deliveries (power of two, grows by doubling; grow() kept out
  // of line so that push() stays small enough to inline into the actors).
  class Line {
   public:
    [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
    [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }
    [[gnu::always_inline]] void push(Delivery&& d) {
      if (tail_ - head_ == cap_) [[unlikely]]
        grow();
      buf_[tail_++ & mask_] = std::move(d);
    }
    Delivery& front() noexcept { return buf_[head_ & mask_]; }
    void pop() noexcept { ++head_; }

   private:
    [[gnu::noinline]] void grow() {
      const std::size_t cap = cap_ == 0 ? 256 : cap_ * 2;
      std::unique_ptr<Delivery[]> bigger(new Delivery[cap]);
      for (std::size_t i = head_; i != tail_; ++i) bigger[i - head_] = std::move(buf_[i & mask_]);
      tail_ -= head_;
      head_ = 0;
      buf_ = std::move(bigger);
      cap_ = cap;
      mask_ = cap - 1;
    }
    std::unique_ptr<Delivery[]> buf_;
    std::size_t cap_ = 0;
    std::size_t mask_ = 0;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
  };

  std::uint64_t deliver(std::uint64_t budget) {
    std::uint64_t n = 0;
    while (n < budget && !queue_.empty()) {
      Delivery& d = queue_.front();
      const std::uint32_t index = d.actor;
      Slot& s = actors_[index];
      const std::coroutine_handle<promise_type> h = s.handle;
      if (!h) [[unlikely]] {
        count_undelivered(s.name);
        queue_.pop();
        continue;
      }
      if (d.msg.has_value()) [[likely]] {
        h.promise().slot_.emplace(std::move(*d.msg));
      } else {
        ++live_;
      }
      queue_.pop();  // before resuming: the actor's sends may grow the line
      ++n;
      h.resume();
      if (h.done()) [[unlikely]]
        end(index);
    }
    delivered_ += n;
    return n;
  }
  void end(std::uint32_t index) {
    Slot& s = actors_[index];
    if (std::exception_ptr e = s.handle.promise().error_) failures_.push_back({s.name, e});
    s.handle.destroy();
    s.handle = nullptr;
    --live_;
  }
  void count_undelivered(std::string_view name) { ++undelivered_[std::string(name)]; }
  static void report(const Failure& f) {
    try {
      std::rethrow_exception(f.error);
    } catch (const std::exception& e) {
      fmt::print(stderr, "coring: ActorScheduler: actor '{}' failed: {}\n", f.name, e.what());
    } catch (...) {
      fmt::print(stderr, "coring: ActorScheduler: actor '{}' failed\n", f.name);
    }
  }

  std::vector<Slot> actors_;
  std::unordered_map<std::string, ActorId> by_name_;
  std::unordered_map<std::string, std::uint64_t> undelivered_;
  std::vector<Failure> failures_;
  Line queue_;
  std::uint64_t delivered_ = 0;
  std::size_t live_ = 0;
  bool failures_seen_ = false;
};

}  // namespace coring
