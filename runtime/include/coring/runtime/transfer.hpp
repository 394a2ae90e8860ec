// Symmetric transfer, with a trampoline where the compiler cannot tail-call.
//
// `co_await task` and a task's return to its awaiter are symmetric transfers:
// await_suspend returns the next coroutine's handle. The standard wants that to
// run in constant stack, but GCC only emits the tail call with sibling-call
// optimisation, and never under AddressSanitizer or ThreadSanitizer. There a
// 100,000-deep await chain would overflow the stack. So in those builds the
// target is parked in a thread-local slot and await_suspend returns
// noop_coroutine(); the resume loop of the scheduler (resume_chain) picks it up.
// Every coring coroutine is resumed through resume_chain, so both forms behave
// the same: no trip through the ready queue, no stack growth.
#pragma once

#include <coroutine>
#include <utility>

#ifndef CORING_TRAMPOLINE
#if defined(__clang__)
#define CORING_TRAMPOLINE 0  // clang guarantees the tail call (musttail)
#elif !defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORING_TRAMPOLINE 1
#else
#define CORING_TRAMPOLINE 0
#endif
#endif

namespace coring::detail {

inline thread_local std::coroutine_handle<> tls_next_transfer;

// What an await_suspend returns to transfer control to `target`.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> target) noexcept {
#if CORING_TRAMPOLINE
  tls_next_transfer = target;
  return std::noop_coroutine();
#else
  return target;
#endif
}

// Resumes `h`, then every transfer it parked, until the chain suspends for real.
inline void resume_chain(std::coroutine_handle<> h) {
  h.resume();
  while (tls_next_transfer) std::exchange(tls_next_transfer, {}).resume();
}

}  // namespace coring::detail
