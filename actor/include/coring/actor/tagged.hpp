// Tagged messages: the seed's TaggedActor (`tag, *payload = recv()` then
// `getattr(self, 'do_' + tag)(*payload)`) without strings. A message is a
// std::variant of message types; dispatch() calls the one handler that takes
// the alternative it holds.
//
//   struct A { int x; };
//   struct B { int x, y; };
//   using Msg = std::variant<A, B>;
//   while (auto m = co_await inbox.receive())
//     coring::dispatch(*m, [](const A& a) { fmt::print("Running A {}\n", a.x); },
//                          [](const B& b) { fmt::print("Running B {} {}\n", b.x, b.y); });
//
// Checked at compile time: every alternative needs a handler. A missing one
// fails to compile with "coring::dispatch: no handler for a message type", in
// an instantiation of detail::handler_for<Handlers, T> that names the type T.
// Handlers may also be one object with an operator() (or member functions
// wrapped in lambdas) per type. All handlers return the same type; when they
// return a Task, `co_await coring::dispatch(...)` runs the chosen one (the
// handlers, captures included, are kept alive until it has run). With GCC 12,
// name such handlers before the co_await: a capturing lambda written as a
// temporary inside a co_await expression is destroyed twice (a compiler bug;
// see docs/architecture.md).
// The alternative is passed as the variant's value category (an rvalue
// variant hands handlers an rvalue, so they can take the message by value).
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "coring/runtime/task.hpp"

namespace coring {

namespace detail {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

template <class H, class T>
struct handler_for {
  static_assert(std::is_invocable_v<H&, T>,
                "coring::dispatch: no handler for a message type -- the type is the second "
                "template argument of this handler_for<Handlers, T>");
  static constexpr bool value = true;
};

template <class H, class Ref, class V>
struct qualified_all_handled;
template <class H, class Ref, class... Ts>
struct qualified_all_handled<H, Ref, std::variant<Ts...>> {
  template <class T>
  using q = std::conditional_t<
      std::is_lvalue_reference_v<Ref>,
      std::conditional_t<std::is_const_v<std::remove_reference_t<Ref>>, const T&, T&>, T&&>;
  static constexpr bool value = (handler_for<H, q<Ts>>::value && ...);
};

}  // namespace detail

namespace detail {
template <class T>
inline constexpr bool is_dispatch_task_v = false;
template <class T>
inline constexpr bool is_dispatch_task_v<Task<T>> = true;

// Handlers that return a Task: the task runs when awaited, after dispatch()
// returned, and a lambda coroutine refers to its closure (its captures): so
// the handlers are kept in this frame until the chosen task has run. `msg` is
// the caller's, alive for the whole `co_await dispatch(...)` expression.
template <class R, class H, class Variant>
R run_task_handler(H h, Variant&& msg) {
  co_return co_await std::visit(h, std::forward<Variant>(msg));
}
}  // namespace detail

// Calls the handler for the alternative `msg` holds; returns what it returns.
template <class Variant, class... Handlers>
decltype(auto) dispatch(Variant&& msg, Handlers&&... handlers) {
  using V = std::remove_cvref_t<Variant>;
  auto h = detail::Overloaded{std::forward<Handlers>(handlers)...};
  static_assert(detail::qualified_all_handled<decltype(h), Variant&&, V>::value);
  using R = decltype(std::visit(h, std::forward<Variant>(msg)));
  if constexpr (detail::is_dispatch_task_v<std::remove_cvref_t<R>>) {
    return detail::run_task_handler<std::remove_cvref_t<R>>(std::move(h),
                                                            std::forward<Variant>(msg));
  } else {
    return std::visit(h, std::forward<Variant>(msg));
  }
}

}  // namespace coring
