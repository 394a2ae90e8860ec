// TcpStream: a connected TCP socket on the current EventLoop.
//
//   Connected c = co_await net::connect(Address::parse("127.0.0.1:15000"), 2s);
//   if (!c) { fmt::print("{}\n", c.error.message()); co_return; }
//   SendResult w = co_await c.stream.send_all(as_bytes(request));
//   for (;;) {
//     Received r = co_await c.stream.recv(5s);
//     if (!r) break;                       // EOF (r.eof()), timeout or error (r.error)
//     consume(r.data());                   // r.buffer goes back to the ring when r dies
//   }
//
// Receiving: see detail/stream_core.hpp. recv() hands out the next buffer the
// kernel filled, as a BufferLease: move it, keep it as long as needed (a send
// straight from it copies nothing); dropping it gives the buffer back to the
// loop's ring. A connection holds at most max_buffers() ring buffers, queued and
// leased together; beyond that its recv pauses until it gives some back.
//
// Sending: send_all() loops over short sends until every byte is out (each send
// with MSG_NOSIGNAL: a closed peer is an EPIPE value, never a SIGPIPE). The bytes
// stay the caller's and must stay alive until the co_await returns; nothing is
// copied or queued, so a connection's pending output is bounded by what its
// task holds: a peer that does not read stalls its task's send_all and, through
// the recv cap, its reads, while every other connection carries on.
//
// Outcomes are values: EOF, ECONNRESET, EPIPE and timeouts (std::errc::timed_out)
// come back in the result. Cancelling the task throws Cancelled at the co_await;
// a cancelled or timed-out recv loses nothing (queued data stays queued), a
// cancelled send reports how far it got when it completes first.
//
// One task may recv and another send on the same stream at once; two tasks must
// not recv at once (std::logic_error). A stream belongs to the loop it was made
// on, and must not be destroyed while a task is suspended in one of its
// operations. Destroying (or close()) closes the socket through the ring.
#pragma once

#include <sys/socket.h>

#include <coroutine>
#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "coring/net/address.hpp"
#include "coring/net/detail/stream_core.hpp"
#include "coring/net/detail/timed_op.hpp"

namespace coring::net {

// A received buffer on loan from the loop's buffer ring.
class BufferLease {
 public:
  BufferLease() noexcept = default;
  BufferLease(detail::StreamCore* core, std::byte* data, std::uint32_t len,
              std::uint16_t bid) noexcept
      : core_(core), data_(data), len_(len), bid_(bid) {}
  BufferLease(BufferLease&& o) noexcept
      : core_(std::exchange(o.core_, nullptr)), data_(o.data_), len_(o.len_), bid_(o.bid_) {}
  BufferLease& operator=(BufferLease&& o) noexcept {
    if (this != &o) {
      release();
      core_ = std::exchange(o.core_, nullptr);
      data_ = o.data_;
      len_ = o.len_;
      bid_ = o.bid_;
    }
    return *this;
  }
  ~BufferLease() { release(); }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return core_ != nullptr ? std::span<const std::byte>(data_, len_)
                            : std::span<const std::byte>();
  }
  [[nodiscard]] std::size_t size() const noexcept { return core_ != nullptr ? len_ : 0; }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size()};
  }
  // Gives the buffer back now.
  void release() noexcept {
    if (core_ != nullptr) std::exchange(core_, nullptr)->release(bid_, data_);
  }

 private:
  detail::StreamCore* core_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t len_ = 0;
  std::uint16_t bid_ = 0;
};

// What one recv() gives: data, or the end of the stream (EOF), or an error.
struct [[nodiscard]] Received {
  BufferLease buffer;
  std::error_code error;  // std::errc::timed_out, connection_reset, ...

  // True when data came.
  explicit operator bool() const noexcept { return !buffer.empty(); }
  // The peer shut down its sending side and everything before it was received.
  [[nodiscard]] bool eof() const noexcept { return buffer.empty() && !error; }
  [[nodiscard]] std::span<const std::byte> data() const noexcept { return buffer.bytes(); }
  [[nodiscard]] std::size_t size() const noexcept { return buffer.size(); }
};

struct [[nodiscard]] SendResult {
  std::size_t bytes = 0;  // sent, even when an error stopped the rest
  std::error_code error;
  explicit operator bool() const noexcept { return !error; }
};

class [[nodiscard]] RecvAwaiter : private detail::RecvWaiter {
 public:
  RecvAwaiter(detail::StreamCore* c, Duration t) noexcept {
    core = c;
    timeout = t;
  }
  RecvAwaiter(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(const RecvAwaiter&) = delete;

  bool await_ready() const noexcept { return core == nullptr || core->readable(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    ctx = context_of(h);
    handle = h;
    return suspend();
  }
  Received await_resume();

 private:
  bool suspend();
};

class [[nodiscard]] SendAllAwaiter : private Completion, private CancelSlot, private TimerNode {
 public:
  SendAllAwaiter(detail::StreamCore* core, std::span<const std::byte> bytes,
                 Duration timeout) noexcept;
  SendAllAwaiter(const SendAllAwaiter&) = delete;
  SendAllAwaiter& operator=(const SendAllAwaiter&) = delete;

  bool await_ready() const noexcept { return left_ == 0 || core_ == nullptr; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return suspend(h, context_of(h));
  }
  SendResult await_resume() const;

 private:
  bool suspend(std::coroutine_handle<> h, TaskContext* ctx);
  void start_send() noexcept;
  void finish() noexcept;
  static void completed(Completion* c, int res, std::uint32_t flags) noexcept;
  static void cancel_requested(CancelSlot* s) noexcept;
  static void timer_fired(TimerNode* t) noexcept;

  detail::StreamCore* core_;
  const std::byte* next_;
  std::size_t left_;
  std::size_t sent_ = 0;
  Duration timeout_;
  TaskContext* ctx_ = nullptr;
  std::coroutine_handle<> handle_;
  int err_ = 0;
  bool cancelled_ = false;
  bool timed_out_ = false;
  bool in_kernel_ = false;
};

class TcpStream {
 public:
  // No timeout: the operation waits as long as it takes.
  static constexpr Duration kNoTimeout{0};

  TcpStream() noexcept = default;
  // Adopts a connected socket `fd` on the current loop (throws without one).
  explicit TcpStream(int fd);
  TcpStream(detail::NetService& svc, int fd);
  TcpStream(TcpStream&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  TcpStream& operator=(TcpStream&& o) noexcept;
  ~TcpStream();

  [[nodiscard]] bool is_open() const noexcept { return core_ != nullptr; }
  [[nodiscard]] int native_handle() const noexcept { return core_ != nullptr ? core_->fd : -1; }

  // The next received buffer, EOF, or an error; std::errc::timed_out after
  // `timeout` (zero: none). A closed stream gives std::errc::bad_file_descriptor.
  RecvAwaiter recv(Duration timeout = kNoTimeout) noexcept { return {core_, timeout}; }

  // Sends every byte of `bytes` (see the header comment).
  SendAllAwaiter send_all(std::span<const std::byte> bytes,
                          Duration timeout = kNoTimeout) noexcept {
    return {core_, bytes, timeout};
  }
  SendAllAwaiter send_all(std::string_view text, Duration timeout = kNoTimeout) noexcept {
    return {core_, std::as_bytes(std::span<const char>(text.data(), text.size())), timeout};
  }

  // shutdown(2) at once (SHUT_WR: we are done sending; the peer reads EOF).
  std::error_code shutdown(int how = SHUT_WR) noexcept;

  // Closes through the ring and waits for it; the stream is closed afterwards
  // whatever the result. Returns 0 or -errno.
  detail::TimedOp close() noexcept;

  // Ring buffers this connection may hold, queued and leased together (>= 1).
  void set_max_buffers(std::uint32_t n) noexcept;
  [[nodiscard]] std::uint32_t max_buffers() const noexcept {
    return core_ != nullptr ? core_->max_buffers : 0;
  }
  [[nodiscard]] std::uint32_t buffers_held() const noexcept {
    return core_ != nullptr ? core_->buffers_held() : 0;
  }
  // Received items kept on the heap instead (a multishot run overshot the cap).
  [[nodiscard]] std::uint32_t buffers_spilled() const noexcept {
    return core_ != nullptr ? core_->spilled() : 0;
  }

  std::error_code set_nodelay(bool on) noexcept;
  [[nodiscard]] Address local_address() const;
  [[nodiscard]] Address peer_address() const;

 private:
  detail::StreamCore* core_ = nullptr;
};

struct [[nodiscard]] Connected {
  TcpStream stream;
  std::error_code error;  // connection_refused, timed_out, ...
  explicit operator bool() const noexcept { return !error; }
};

// Connects to `address` (timeout zero: none; the kernel's own SYN timeout then
// applies). Errors, including a timeout, come back in Connected::error.
Task<Connected> connect(Address address, Duration timeout = TcpStream::kNoTimeout);

}  // namespace coring::net
