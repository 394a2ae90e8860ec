// Actors: a task with a mailbox (the seed's Actor, ActorExit, send/recv/close/join).
//
//   coring::Task<void> printer(coring::Inbox<std::string> inbox) {
//     while (std::optional<std::string> msg = co_await inbox.receive())
//       fmt::print("Got: {}\n", *msg);
//   }
//   coring::ActorRef<std::string> p = coring::spawn_actor<std::string>(printer);
//   p.send("Hello");
//   p.close();            // ends it after what is queued (the seed's ActorExit)
//   co_await p.join();    // rethrows what the actor threw
//
// The actor is a spawned task; its body takes its Inbox<Msg> *by value* (the
// inbox lives in the actor's frame: when that frame goes, the actor has ended)
// and whatever else spawn_actor passes after it. An ActorRef is a counted
// reference to the actor: copy it freely, send through any copy.
//
// State of an actor: open -> closed -> ended (returned, failed or cancelled).
// - send(msg) never suspends: the message goes straight to the actor if it is
//   waiting in receive() (scheduled, never run inline), else into the mailbox.
//   On a closed or ended actor it throws ActorClosed; on a full bounded mailbox
//   MailboxFull. A message is never dropped silently: it is queued, or the
//   sender gets an exception or a status.
// - try_send(msg): the same without exceptions (SendStatus); the message is
//   left untouched unless it was sent.
// - co_await send_async(msg): waits for room in a bounded mailbox
//   (backpressure; FIFO among waiting senders); throws ActorClosed if the actor
//   closes or ends meanwhile. with_timeout(d, ref.send_async(m)) gives false
//   when `d` passed first (the message was not queued).
// - Per sender, messages arrive in the order they were sent.
// - close(): no more sends; the actor receives what was queued, then receive()
//   gives std::nullopt (recv() throws ActorExit). stop(): close() without the
//   drain -- queued messages are discarded (counted in undelivered(), and
//   returned) and the actor's task is cancelled (unwound at its suspension
//   point, RAII runs). Neither needs room in the mailbox nor waits behind a
//   full one: control never queues behind data.
// - join(): waits for the end; rethrows the actor's exception (an actor that
//   ended with ActorExit, or was stopped, joins normally). watch(): waits the
//   same way and gives an Outcome<void> (returned / failed / cancelled), never
//   throwing. on_exit(fn): fn(outcome) is called when it ends (at once if it
//   has) -- how a supervisor learns by message: fn sends it one.
//   Any number of tasks may join or watch one actor.
// - ask(req) / ask(req, timeout): sends Request<Req, Rep>{req, reply} and waits
//   for the actor's reply.set_value(v) / set_exception(e) (see Reply). With a
//   timeout it gives std::optional<Rep> (std::nullopt: timed out); a timed-out
//   or cancelled ask unlinks itself from its Reply, so nothing is left behind
//   and a late reply is dropped (Reply::set_value returns false). A request the
//   actor drops without answering (it ended, failed, or destroyed the Reply)
//   gives NoReply.
// Inside the actor, on its Inbox: co_await receive() -> std::optional<Msg>
// (nullopt once closed and drained); receive(timeout) (nullopt also on
// timeout: closed() tells which); co_await recv() -> Msg, throwing ActorExit
// once closed and drained (the seed's shape); try_receive(); self() for a
// reference to itself (an actor may send to itself). One task receives at a
// time (a second concurrent receive() is a std::logic_error).
//
// An actor that throws ends; the exception is kept for join()/watch()/on_exit
// and, if nobody ever looks at it, reported on stderr when the last reference
// goes (as for a detached task). Other actors keep running.
// Cancel-safety: a cancelled receive() takes nothing; a message handed to a
// receiver that is then cancelled is still given to it (the task stops at its
// next suspension point). A cancelled send_async() did not queue its message.
// Threading: an actor and every ActorRef to it stay on one loop's thread
// (references are counted without atomics). Messages must be nothrow-movable.
// Destruction: the actor frees its state when it has ended and the last
// ActorRef is gone.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "coring/actor/detail/actor_core.hpp"
#include "coring/actor/detail/message_ring.hpp"
#include "coring/actor/errors.hpp"
#include "coring/runtime/join_handle.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/scheduler.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/with_timeout.hpp"
#include "coring/sync/wait_list.hpp"

namespace coring {

template <class Msg>
class ActorRef;
template <class Msg>
class Inbox;
template <class Rep>
class Reply;

// What ask() sends: the request and where its reply goes. A message type that
// takes requests holds Request<Req, Rep> (alone, or as a std::variant alternative).
template <class Req, class Rep>
struct Request {
  Req body;
  Reply<Rep> reply;
};

struct ActorOptions {
  std::string_view name = {};          // in errors, reports and task dumps
  std::size_t capacity = 0;            // mailbox bound; 0: unbounded
  TaskScheduler* scheduler = nullptr;  // null: the current thread's
};

enum class SendStatus : std::uint8_t { sent, full, closed };

namespace detail {

template <class Msg>
class ReceiveOp;
template <class Msg>
class SendOp;
template <class Msg, class Req, class Rep>
class AskOp;
[[noreturn]] void throw_two_receivers();
[[noreturn]] void throw_empty_ref();

template <class Msg>
class ActorCore final : public ActorCoreBase {
  static_assert(std::is_nothrow_move_constructible_v<Msg>,
                "actor messages must be nothrow-movable (they move through the mailbox)");

 public:
  explicit ActorCore(std::size_t capacity) : ring_(capacity) {}

  [[nodiscard]] std::size_t queued() const noexcept { return ring_.size(); }
  [[nodiscard]] std::size_t capacity() const noexcept { return ring_.limit(); }
  [[nodiscard]] bool full() const noexcept { return ring_.full(); }

  template <class U>
  [[gnu::always_inline]] inline void send(U&& m) {
    if (closed_) [[unlikely]]
      throw_closed();
    if (receiver_ != nullptr) {
      hand(std::forward<U>(m));
    } else if (full()) [[unlikely]] {
      throw_full(ring_.limit());
    } else {
      ring_.emplace(std::forward<U>(m));
    }
  }
  template <class U>
  SendStatus try_send(U&& m) {
    if (closed_) return SendStatus::closed;
    if (receiver_ != nullptr) {
      hand(std::forward<U>(m));
    } else if (full()) {
      return SendStatus::full;
    } else {
      ring_.emplace(std::forward<U>(m));
    }
    return SendStatus::sent;
  }

  void close() noexcept;
  std::size_t stop() noexcept {
    cancel_task();  // first: a parked receive() is interrupted (unwound), not handed nullopt
    close();
    const std::size_t n = ring_.clear();
    count_undelivered(n);
    return n;
  }

  // Requires a stored message: takes it, admitting the oldest waiting sender's.
  Msg take();

 private:
  friend class ReceiveOp<Msg>;
  friend class SendOp<Msg>;
  template <class, class, class>
  friend class AskOp;

  template <class U>
  void hand(U&& m);
  // The end wakes every waiter (senders, joiners) in ActorCoreBase::on_task_end.
  std::size_t drain_on_end() noexcept override {
    closed_ = true;
    // A task other than the actor left parked in receive() (the actor's own
    // receive went with its frame) gets nullopt, and a reference that keeps
    // the core alive until its receive is gone.
    if (ReceiveOp<Msg>* r = std::exchange(receiver_, nullptr)) {
      add_ref();
      r->holds_ref_ = true;
      r->woken();
    }
    return ring_.clear();
  }
  // The oldest send_async() waiting for room (they park among the joiners).
  SendOp<Msg>* first_sender() const noexcept;
  void wake_senders() noexcept;

  ReceiveOp<Msg>* receiver_ = nullptr;  // the actor, parked in receive()
  MessageRing<Msg> ring_;               // with the mailbox's bound
};

// co_await inbox.receive(): see the header comment.
template <class Msg>
class [[nodiscard]] ReceiveOp : public Operation {
 public:
  static constexpr bool kSelectable = false;     // see Operation::kSelectable
  static constexpr bool kReportsTimeout = true;  // a message that came meanwhile is still taken

  explicit ReceiveOp(ActorCore<Msg>& c) noexcept : core_(&c) {}
  ReceiveOp(ReceiveOp&& o) noexcept : Operation(std::move(o)), core_(o.core_) {}  // not yet awaited
  [[gnu::always_inline]] ~ReceiveOp() {
    if (core_->receiver_ == this) [[unlikely]]
      core_->receiver_ = nullptr;  // frame destroyed while parked
    if (holds_ref_) [[unlikely]]
      release_core(core_);
  }

  [[gnu::always_inline]] bool await_ready() const noexcept { return !core_->ring_.empty(); }
  template <class P>
  [[gnu::always_inline]] bool await_suspend(std::coroutine_handle<P> h) {
    if (core_->receiver_ != nullptr) [[unlikely]]
      throw_two_receivers();
    // Through prepare() even when the mailbox is closed: a task that was
    // cancelled (stop()) is unwound here instead of being handed nullopt.
    if (!prepare<&ReceiveOp::interrupt>(h, WaitKind::mailbox_receive, core_)) {
      return suspend_cancelled();
    }
    if (core_->closed_) [[unlikely]] {
      (void)complete_by_transfer();  // closed and drained: nullopt, at once
      return false;
    }
    core_->receiver_ = this;
    start_timeout();
    return true;
  }
  [[gnu::always_inline]] std::optional<Msg> await_resume() {
    if (!msg_.has_value() && !core_->ring_.empty()) msg_.emplace(core_->take());
    return std::move(msg_);
  }

 private:
  friend class ActorCore<Msg>;
  // Called with receiver_ already cleared.
  void woken() noexcept { complete(false); }
  static bool interrupt(Operation* op) noexcept {
    auto* self = static_cast<ReceiveOp*>(op);
    if (self->core_->receiver_ == self) self->core_->receiver_ = nullptr;
    return true;
  }

  [[gnu::noinline]] static void release_core(ActorCore<Msg>* c) noexcept { c->release(); }

  ActorCore<Msg>* core_;
  std::optional<Msg> msg_;  // handed over by a send while parked
  bool holds_ref_ = false;  // woken by the actor's end: keeps the core until it goes
};

// co_await inbox.recv(): the message, or ActorExit once closed and drained.
template <class Msg>
class [[nodiscard]] RecvOp : public ReceiveOp<Msg> {
 public:
  using ReceiveOp<Msg>::ReceiveOp;
  Msg await_resume() {
    std::optional<Msg> m = ReceiveOp<Msg>::await_resume();
    if (!m.has_value()) throw ActorExit();
    return std::move(*m);
  }
};

// co_await ref.send_async(msg): see the header comment.
template <class Msg>
class [[nodiscard]] SendOp : public WaitOp {
 public:
  static constexpr bool kSelectable = false;  // see Operation::kSelectable
  template <class U>
  SendOp(ActorCore<Msg>& c, U&& m) : core_(&c), msg_(std::forward<U>(m)) {}
  SendOp(SendOp&& o) noexcept : WaitOp(std::move(o)), core_(o.core_), msg_(std::move(o.msg_)) {}
  ~SendOp() {
    if (holds_ref_) {
      unlink();  // before the core (and its list) may go
      core_->release();
    }
  }

  bool await_ready() {
    if (core_->closed_) return true;  // await_resume throws ActorClosed
    if (core_->receiver_ != nullptr) {
      core_->hand(std::move(msg_));
    } else if (!core_->full()) {
      core_->ring_.emplace(std::move(msg_));
    } else {
      return false;
    }
    admitted_ = true;
    return true;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    core_->add_ref();  // the core outlives the wait, whoever drops their references
    holds_ref_ = true;
    core_->senders_may_wait_ = true;
    return park(core_->waiters(), h, WaitKind::mailbox_send, core_);
  }
  void await_resume() const {
    check();
    if (!admitted_ && !timed_out()) core_->throw_closed();
  }

 private:
  friend class ActorCore<Msg>;
  ActorCore<Msg>* core_;
  Msg msg_;
  bool admitted_ = false;
  bool holds_ref_ = false;
};

// join() (Rethrow) and watch(): wait for the actor's end.
template <bool Rethrow>
class [[nodiscard]] EndOp : public WaitOp {
 public:
  explicit EndOp(ActorCoreBase& c) noexcept : core_(&c) {}
  EndOp(EndOp&& o) noexcept : WaitOp(std::move(o)), core_(o.core_) {}
  ~EndOp() {
    if (holds_ref_) {
      unlink();
      core_->release();
    }
  }
  bool await_ready() const noexcept { return core_->ended(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    core_->add_ref();
    holds_ref_ = true;
    return park(core_->waiters(), h, WaitKind::join, core_);
  }
  auto await_resume() {
    check();
    if constexpr (Rethrow) {
      core_->mark_observed();
      if (core_->end() == TaskEnd::failed) std::rethrow_exception(core_->error());
    } else {
      return core_->outcome();
    }
  }

 private:
  ActorCoreBase* core_;
  bool holds_ref_ = false;
};

template <class Rep>
class ReplySlot : public Operation {
 protected:
  friend class coring::Reply<Rep>;
  ReplySlot() noexcept = default;
  ReplySlot(ReplySlot&& o) noexcept : Operation(std::move(o)) {}
  ~ReplySlot() { unlink_reply(); }
  inline void unlink_reply() noexcept;
  // The Reply answered (or was dropped); it already let go of this slot.
  void fulfilled() noexcept {
    reply_ = nullptr;
    if (armed_) complete(false);
  }

  Reply<Rep>* reply_ = nullptr;
  std::optional<Rep> value_;
  std::exception_ptr error_;
  bool armed_ = false;  // suspended, waiting for the reply
};

// The message type's Request<Req, Rep> alternative: its Rep (void if none).
template <class Msg, class Req>
struct reply_of {
  using type = void;
};
template <class Req, class Rep>
struct reply_of<Request<Req, Rep>, Req> {
  using type = Rep;
};
template <class... Ts, class Req>
struct reply_of<std::variant<Ts...>, Req> {
  template <class... Rs>
  struct first_non_void {
    using type = void;
  };
  template <class R, class... Rs>
  struct first_non_void<R, Rs...> {
    using type = std::conditional_t<std::is_void_v<R>, typename first_non_void<Rs...>::type, R>;
  };
  using type = typename first_non_void<typename reply_of<Ts, Req>::type...>::type;
};

template <class Msg, class Req, class Rep>
class [[nodiscard]] AskOp : public ReplySlot<Rep> {
 public:
  AskOp(ActorCore<Msg>& target, Req req) : target_(&target), req_(std::move(req)) {
    target_->add_ref();
  }
  AskOp(AskOp&& o) noexcept
      : ReplySlot<Rep>(std::move(o)),
        target_(std::exchange(o.target_, nullptr)),
        req_(std::move(o.req_)) {}
  ~AskOp() {
    this->unlink_reply();
    if (target_ != nullptr) target_->release();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    try {
      target_->send(Msg(Request<Req, Rep>{std::move(req_), Reply<Rep>(this)}));
    } catch (...) {
      this->unlink_reply();
      this->error_ = std::current_exception();  // ActorClosed, MailboxFull: not NoReply
      return false;                             // resumes at once; await_resume rethrows
    }
    if (!this->template prepare<&AskOp::interrupt>(h, WaitKind::reply, target_)) {
      this->unlink_reply();
      return this->suspend_cancelled();
    }
    this->armed_ = true;
    this->start_timeout();
    return true;
  }
  Rep await_resume() {
    if (this->error_) std::rethrow_exception(this->error_);
    return std::move(*this->value_);
  }

 private:
  static bool interrupt(Operation* op) noexcept {
    static_cast<AskOp*>(op)->unlink_reply();  // a late reply finds nobody
    return true;
  }
  ActorCore<Msg>* target_;
  Req req_;
};

}  // namespace detail

// The answering side of an ask(): held by the actor in the Request it received.
// Movable, not copyable; answered at most once. A Reply destroyed without an
// answer gives the asker NoReply.
template <class Rep>
class Reply {
 public:
  Reply(Reply&& o) noexcept : slot_(std::exchange(o.slot_, nullptr)), uncaught_(o.uncaught_) {
    if (slot_ != nullptr) slot_->reply_ = this;
  }
  Reply& operator=(Reply&&) = delete;
  Reply(const Reply&) = delete;
  ~Reply() {
    if (slot_ != nullptr) {
      detail::ReplySlot<Rep>* s = std::exchange(slot_, nullptr);
      s->error_ = std::make_exception_ptr(
          NoReply(std::uncaught_exceptions() > uncaught_
                      ? "the actor failed while it held the request"
                      : "the request was dropped without an answer (the actor ended, was "
                        "stopped, or let the Reply go)"));
      s->fulfilled();
    }
  }

  // The asker still waits (false once it timed out, was cancelled, or got an answer).
  [[nodiscard]] bool wanted() const noexcept { return slot_ != nullptr; }
  // Answers; returns false (dropping `v`) when nobody waits any more.
  bool set_value(Rep v) {
    if (slot_ == nullptr) return false;
    detail::ReplySlot<Rep>* s = std::exchange(slot_, nullptr);
    s->value_.emplace(std::move(v));
    s->fulfilled();
    return true;
  }
  bool set_exception(std::exception_ptr e) {
    if (slot_ == nullptr) return false;
    detail::ReplySlot<Rep>* s = std::exchange(slot_, nullptr);
    s->error_ = std::move(e);
    s->fulfilled();
    return true;
  }
  // Answers with f()'s value, or with the exception it threw.
  template <class F>
  bool respond(F&& f) {
    if (slot_ == nullptr) return false;
    try {
      return set_value(std::invoke(std::forward<F>(f)));
    } catch (...) {
      return set_exception(std::current_exception());
    }
  }

 private:
  template <class, class, class>
  friend class detail::AskOp;
  friend class detail::ReplySlot<Rep>;
  explicit Reply(detail::ReplySlot<Rep>* s) noexcept : slot_(s) { s->reply_ = this; }

  detail::ReplySlot<Rep>* slot_;
  int uncaught_ = std::uncaught_exceptions();
};

template <class Rep>
void detail::ReplySlot<Rep>::unlink_reply() noexcept {
  if (reply_ != nullptr) {
    reply_->slot_ = nullptr;
    reply_ = nullptr;
  }
}

// The actor's own end of its mailbox; see the header comment.
template <class Msg>
class Inbox {
 public:
  Inbox(Inbox&& o) : core_(std::exchange(o.core_, nullptr)) {
    if (core_ != nullptr && core_->pinned_) [[unlikely]] {
      o.core_ = std::exchange(core_, nullptr);
      throw std::logic_error(
          "coring: an actor's Inbox stays in the actor's frame; pass it to helpers by reference");
    }
  }
  Inbox& operator=(Inbox&&) = delete;
  Inbox(const Inbox&) = delete;
  ~Inbox() {
    if (core_ != nullptr) {
      if (core_->pinned_) core_->on_task_end();  // the actor's frame is going: it ended
      core_->release();
    }
  }

  detail::ReceiveOp<Msg> receive() noexcept { return detail::ReceiveOp<Msg>(*core_); }
  // receive() giving up after `timeout` (std::nullopt; closed() tells which).
  detail::ReceiveOp<Msg> receive(Duration timeout) noexcept {
    detail::ReceiveOp<Msg> op(*core_);
    op.set_timeout(timeout);
    return op;
  }
  detail::RecvOp<Msg> recv() noexcept { return detail::RecvOp<Msg>(*core_); }
  std::optional<Msg> try_receive() {
    if (core_->queued() == 0) return std::nullopt;
    return core_->take();
  }
  [[nodiscard]] ActorRef<Msg> self() const noexcept { return ActorRef<Msg>(core_); }
  [[nodiscard]] std::size_t queued() const noexcept { return core_->queued(); }
  [[nodiscard]] bool closed() const noexcept { return core_->closed(); }

 private:
  template <class M, class F, class... A>
  friend ActorRef<M> spawn_actor(ActorOptions, F&&, A&&...);
  explicit Inbox(detail::ActorCore<Msg>* c) noexcept : core_(c) { c->add_ref(); }
  detail::ActorCore<Msg>* core_;
};

template <class Msg>
class ActorRef {
 public:
  using message_type = Msg;

  ActorRef() noexcept = default;
  ActorRef(const ActorRef& o) noexcept : core_(o.core_) {
    if (core_ != nullptr) core_->add_ref();
  }
  ActorRef(ActorRef&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  ActorRef& operator=(ActorRef o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~ActorRef() {
    if (core_ != nullptr) core_->release();
  }

  [[nodiscard]] explicit operator bool() const noexcept { return core_ != nullptr; }
  friend bool operator==(const ActorRef& a, const ActorRef& b) noexcept {
    return a.core_ == b.core_;
  }

  [[gnu::always_inline]] void send(const Msg& m) { core().send(m); }
  [[gnu::always_inline]] void send(Msg&& m) { core().send(std::move(m)); }
  [[nodiscard]] SendStatus try_send(const Msg& m) { return core().try_send(m); }
  [[nodiscard]] SendStatus try_send(Msg&& m) { return core().try_send(std::move(m)); }
  detail::SendOp<Msg> send_async(Msg m) { return detail::SendOp<Msg>(core(), std::move(m)); }

  void close() noexcept {
    if (core_ != nullptr) core_->close();
  }
  std::size_t stop() noexcept { return core_ != nullptr ? core_->stop() : 0; }

  detail::EndOp<true> join() { return detail::EndOp<true>(core()); }
  detail::EndOp<false> watch() { return detail::EndOp<false>(core()); }
  void on_exit(std::function<void(const Outcome<void>&)> fn) { core().on_exit(std::move(fn)); }

  // ask<Rep>(req): Rep may be left out when Msg holds exactly one Request<Req, Rep>.
  template <class Rep = void, class Req>
  auto ask(Req req) {
    using R = std::conditional_t<std::is_void_v<Rep>,
                                 typename detail::reply_of<Msg, std::decay_t<Req>>::type, Rep>;
    static_assert(!std::is_void_v<R>,
                  "ask(req): the message type holds no Request<Req, Rep> for this Req; "
                  "name the reply type (ask<Rep>(req)) or add the alternative");
    static_assert(std::is_constructible_v<Msg, Request<std::decay_t<Req>, R>&&>,
                  "ask(req): the message type cannot be made from Request<Req, Rep>");
    return detail::AskOp<Msg, std::decay_t<Req>, R>(core(), std::move(req));
  }
  template <class Rep = void, class Req>
  auto ask(Req req, Duration timeout) {
    return with_timeout(timeout, ask<Rep>(std::move(req)));
  }

  [[nodiscard]] bool closed() const noexcept { return core_ == nullptr || core_->closed(); }
  [[nodiscard]] bool done() const noexcept { return core_ == nullptr || core_->ended(); }
  [[nodiscard]] std::size_t queued() const noexcept { return core_ ? core_->queued() : 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return core_ ? core_->capacity() : 0; }
  [[nodiscard]] std::uint32_t undelivered() const noexcept {
    return core_ ? core_->undelivered() : 0;
  }
  [[nodiscard]] std::string_view name() const noexcept {
    return core_ ? core_->name() : std::string_view();
  }
  // Identity, for containers of references (Exchange).
  [[nodiscard]] const void* id() const noexcept { return core_; }

 private:
  friend class Inbox<Msg>;
  template <class M, class F, class... A>
  friend ActorRef<M> spawn_actor(ActorOptions, F&&, A&&...);
  explicit ActorRef(detail::ActorCore<Msg>* c) noexcept : core_(c) { c->add_ref(); }
  [[gnu::always_inline]] detail::ActorCore<Msg>& core() const {
    if (core_ == nullptr) [[unlikely]]
      detail::throw_empty_ref();
    return *core_;
  }
  detail::ActorCore<Msg>* core_ = nullptr;
};

// Starts an actor: fn(Inbox<Msg>, args...) must return Task<void> and take the
// Inbox by value. The task is spawned on the current thread's scheduler (or
// options.scheduler) and starts when the scheduler next runs.
template <class Msg, class F, class... A>
ActorRef<Msg> spawn_actor(ActorOptions options, F&& fn, A&&... args) {
  static_assert(std::is_invocable_r_v<Task<void>, F, Inbox<Msg>, A...>,
                "spawn_actor<Msg>(fn, args...): fn must be callable as "
                "fn(coring::Inbox<Msg>, args...) and return coring::Task<void>");
  TaskScheduler& sched = options.scheduler != nullptr ? *options.scheduler : current_scheduler();
  auto* core = new detail::ActorCore<Msg>(options.capacity);
  ActorRef<Msg> ref(core);
  Inbox<Msg> inbox(core);
  Task<void> body = std::invoke(std::forward<F>(fn), std::move(inbox), std::forward<A>(args)...);
  if (inbox.core_ != nullptr) {
    throw std::logic_error(
        "coring: spawn_actor: the actor function must take its Inbox<Msg> by value (it lives "
        "in the actor's frame and tells when the actor ends)");
  }
  core->task() = sched.spawn(std::move(body), options.name);
  core->pinned_ = true;
  return ref;
}
template <class Msg, class F, class... A>
ActorRef<Msg> spawn_actor(F&& fn, A&&... args) {
  return spawn_actor<Msg>(ActorOptions{}, std::forward<F>(fn), std::forward<A>(args)...);
}

// ---- ActorCore ----

template <class Msg>
template <class U>
[[gnu::always_inline]] inline void detail::ActorCore<Msg>::hand(U&& m) {
  ReceiveOp<Msg>* r = receiver_;
  r->msg_.emplace(std::forward<U>(m));  // first: a copy that throws changes nothing
  receiver_ = nullptr;
  r->woken();
}

template <class Msg>
detail::SendOp<Msg>* detail::ActorCore<Msg>::first_sender() const noexcept {
  WaitNode* n = const_cast<ActorCore*>(this)->waiters().find_first([](const WaitNode& w) {
    return static_cast<const WaitOp&>(w).target().kind == WaitKind::mailbox_send;
  });
  return static_cast<SendOp<Msg>*>(static_cast<WaitOp*>(n));
}

template <class Msg>
void detail::ActorCore<Msg>::wake_senders() noexcept {
  while (SendOp<Msg>* s = first_sender()) waiters().wake(*s);  // they throw ActorClosed
  senders_may_wait_ = false;
}

template <class Msg>
Msg detail::ActorCore<Msg>::take() {
  Msg m = ring_.take();
  if (senders_may_wait_) [[unlikely]] {
    if (SendOp<Msg>* s = first_sender()) {
      ring_.emplace(std::move(s->msg_));
      s->admitted_ = true;  // recorded before the wake
      waiters().wake(*s);
    } else {
      senders_may_wait_ = false;
    }
  }
  return m;
}

template <class Msg>
void detail::ActorCore<Msg>::close() noexcept {
  if (closed_) return;
  closed_ = true;
  if (ReceiveOp<Msg>* r = std::exchange(receiver_, nullptr)) r->woken();  // gets nullopt
  if (senders_may_wait_) wake_senders();
}

}  // namespace coring
