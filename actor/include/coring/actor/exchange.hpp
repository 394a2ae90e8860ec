// Exchange<T>: the seed's publish/subscribe Exchange, and get_exchange(name).
//
//   coring::Exchange<std::string>& exc = coring::get_exchange<std::string>("spam");
//   {
//     coring::Subscription sub = exc.subscribe(task_a, task_b);
//     exc.send("msg1");   // A and B get it, in the order they were attached
//   }                     // detached here, also when an exception leaves the scope
//   exc.send("msg3");     // nobody gets it
//
// Subscribers: an ActorRef<T> (held by reference count), or any object with
// a `send(const T&)` member (held by address: detach it before it goes --
// subscribe() does). State: the subscribers in attach order, each once.
// - attach(s): adds s (attaching one already there does nothing); returns
//   whether it was added. detach(s): removes it; returns whether it was there.
// - send(msg): gives msg to every subscriber attached when send started, in
//   attach order, and says what happened (Delivery). An actor subscriber that
//   has ended or was closed is detached (counted in `detached`), never crashed
//   on; one whose bounded mailbox is full misses this message (counted in
//   `full`). An exception thrown by a subscriber's send() (or by copying the
//   message for an actor) is rethrown once every other subscriber has had it. A subscriber's send()
//   may attach or detach: one attached then gets the next message, not this one; one detached gets
//   nothing more, not even the rest of this send (it may be detaching because it is going away).
// - subscribe(a, b, ...): attaches them and returns a Subscription that detaches
//   them when it is destroyed. An Exchange must outlive its Subscriptions.
// get_exchange<T>(name): the exchange of that name on this thread, created on
// first use (the seed's defaultdict); asking for one name with two message
// types is a std::logic_error. Exchanges are loop-local, like actors: not
// thread-safe.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "coring/actor/actor_ref.hpp"

namespace coring {

// What one Exchange::send did.
struct Delivery {
  std::size_t delivered = 0;  // subscribers that got the message
  std::size_t full = 0;       // actor subscribers whose bounded mailbox was full
  std::size_t detached = 0;   // actor subscribers found closed or ended, now detached
};

class ExchangeBase {
 public:
  virtual ~ExchangeBase() = default;
  [[nodiscard]] virtual const std::type_info& message_type() const noexcept = 0;
  virtual bool detach_id(const void* id) noexcept = 0;
};

class Subscription;

template <class T>
class Exchange final : public ExchangeBase {
 public:
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  bool attach(const ActorRef<T>& actor) {
    if (find(actor.id()) != nullptr) return false;
    Entry e;
    e.id = actor.id();
    e.actor = actor;
    subs_.push_back(std::move(e));
    return true;
  }
  template <class S>
  requires(!std::is_same_v<std::remove_cvref_t<S>, ActorRef<T>>) bool attach(S& subscriber) {
    static_assert(
        requires(S & s, const T& m) { s.send(m); },
        "Exchange<T>::attach: a subscriber needs a send(const T&) member");
    if (find(&subscriber) != nullptr) return false;
    Entry e;
    e.id = &subscriber;
    e.object = &subscriber;
    e.send = [](void* o, const T& m) { static_cast<S*>(o)->send(m); };
    subs_.push_back(std::move(e));
    return true;
  }
  bool detach(const ActorRef<T>& actor) noexcept { return detach_id(actor.id()); }
  template <class S>
  requires(!std::is_same_v<std::remove_cvref_t<S>, ActorRef<T>>) bool detach(
      S& subscriber) noexcept {
    return detach_id(&subscriber);
  }

  Delivery send(const T& msg) {
    Delivery d;
    std::exception_ptr first_error;
    ++sending_;
    const std::size_t n = subs_.size();  // those attached when send started
    for (std::size_t i = 0; i < n; ++i) {
      Entry& e = subs_[i];
      if (e.id == nullptr) continue;  // detached during this send
      try {
        if (e.actor) {
          switch (e.actor.try_send(msg)) {  // copies msg: the copy may throw
            case SendStatus::sent:
              ++d.delivered;
              break;
            case SendStatus::full:
              ++d.full;
              break;
            case SendStatus::closed:
              ++d.detached;
              e.id = nullptr;
              e.actor = ActorRef<T>();
              break;
          }
        } else {
          e.send(e.object, msg);
          ++d.delivered;
        }
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
    if (--sending_ == 0) compact();
    if (first_error) std::rethrow_exception(first_error);
    return d;
  }

  [[nodiscard]] std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const Entry& e : subs_) n += e.id != nullptr;
    return n;
  }

  template <class... S>
  [[nodiscard]] Subscription subscribe(S&... subscribers);

  [[nodiscard]] const std::type_info& message_type() const noexcept override { return typeid(T); }
  bool detach_id(const void* id) noexcept override {
    for (Entry& e : subs_) {
      if (e.id == id) {
        e.id = nullptr;
        e.actor = ActorRef<T>();
        if (sending_ == 0) compact();
        return true;
      }
    }
    return false;
  }

 private:
  struct Entry {
    const void* id = nullptr;  // null: detached, awaiting compaction
    ActorRef<T> actor;         // an actor subscriber
    void* object = nullptr;    // or a plain one
    void (*send)(void*, const T&) = nullptr;
  };
  Entry* find(const void* id) noexcept {
    for (Entry& e : subs_) {
      if (e.id == id) return &e;
    }
    return nullptr;
  }
  void compact() noexcept {
    std::erase_if(subs_, [](const Entry& e) { return e.id == nullptr; });
  }

  std::vector<Entry> subs_;
  int sending_ = 0;
};

// Detaches its subscribers from their exchange when destroyed (see subscribe()).
class [[nodiscard]] Subscription {
 public:
  Subscription() noexcept = default;
  Subscription(Subscription&& o) noexcept
      : exchange_(std::exchange(o.exchange_, nullptr)), ids_(std::move(o.ids_)) {}
  Subscription& operator=(Subscription&& o) noexcept {
    if (this != &o) {
      reset();
      exchange_ = std::exchange(o.exchange_, nullptr);
      ids_ = std::move(o.ids_);
    }
    return *this;
  }
  ~Subscription() { reset(); }
  // Detaches now.
  void reset() noexcept {
    if (exchange_ != nullptr) {
      for (const void* id : ids_) exchange_->detach_id(id);
    }
    exchange_ = nullptr;
    ids_.clear();
  }

 private:
  template <class>
  friend class Exchange;
  Subscription(ExchangeBase* x, std::vector<const void*> ids) noexcept
      : exchange_(x), ids_(std::move(ids)) {}
  ExchangeBase* exchange_ = nullptr;
  std::vector<const void*> ids_;  // those this subscription attached
};

template <class T>
template <class... S>
Subscription Exchange<T>::subscribe(S&... subscribers) {
  std::vector<const void*> ids;
  ids.reserve(sizeof...(S));
  try {
    auto one = [&](auto& s) {
      if (attach(s)) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(s)>, ActorRef<T>>) {
          ids.push_back(s.id());
        } else {
          ids.push_back(&s);
        }
      }
    };
    (one(subscribers), ...);
  } catch (...) {
    for (const void* id : ids) detach_id(id);
    throw;
  }
  return Subscription(this, std::move(ids));
}

namespace detail {
// The registry behind get_exchange (one per thread).
ExchangeBase* find_exchange(std::string_view name);
ExchangeBase& add_exchange(std::string_view name, std::unique_ptr<ExchangeBase> x);
[[noreturn]] void throw_exchange_type(std::string_view name, const std::type_info& has,
                                      const std::type_info& asked);
}  // namespace detail

template <class T>
Exchange<T>& get_exchange(std::string_view name) {
  ExchangeBase* x = detail::find_exchange(name);
  if (x == nullptr) x = &detail::add_exchange(name, std::make_unique<Exchange<T>>());
  if (x->message_type() != typeid(T))
    detail::throw_exchange_type(name, x->message_type(), typeid(T));
  return static_cast<Exchange<T>&>(*x);
}

}  // namespace coring
