// The errors of the actor module.
//
// - ActorClosed: a message was sent to an actor that was closed (close(),
//   stop()) or has ended. The message was not queued; the sender still knows
//   it was not delivered. Also what a sender waiting for room in a bounded
//   mailbox gets when the actor closes or ends meanwhile.
// - MailboxFull: send() (which never suspends) on a bounded mailbox that is
//   full. The message was not queued. `co_await ref.send_async(msg)` waits for
//   room; `ref.try_send(msg)` reports it without throwing.
// - ActorExit: the seed's ActorExit. Inbox::recv() throws it once the mailbox
//   is closed and drained; an actor whose task ends with it ended normally.
//   An actor may throw it itself to stop.
// - NoReply: an ask()'s request was dropped without a reply (the actor
//   ended, or destroyed the Reply without answering).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace coring {

namespace detail {
inline std::string actor_label(std::string_view name) {
  return name.empty() ? std::string("an actor") : "actor '" + std::string(name) + "'";
}
}  // namespace detail

class ActorClosed : public std::logic_error {
 public:
  ActorClosed(std::string_view actor, bool ended)
      : std::logic_error("coring: message to " + detail::actor_label(actor) +
                         (ended ? ", which has ended" : ", which was closed") +
                         ": it was not delivered") {}
};

class MailboxFull : public std::runtime_error {
 public:
  MailboxFull(std::string_view actor, std::size_t capacity)
      : std::runtime_error("coring: the mailbox of " + detail::actor_label(actor) +
                           " is full (capacity " + std::to_string(capacity) +
                           "): the message was not queued; co_await ref.send_async(msg) waits "
                           "for room, ref.try_send(msg) reports it without throwing") {}
};

class ActorExit : public std::exception {
 public:
  const char* what() const noexcept override {
    return "coring: the actor's mailbox is closed and drained (ActorExit)";
  }
};

class NoReply : public std::logic_error {
 public:
  explicit NoReply(std::string_view why)
      : std::logic_error("coring: no reply: " + std::string(why)) {}
};

}  // namespace coring
