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
// come back in the result; so does a timeout given by with_timeout. Cancelling
// the task unwinds it at the co_await; a cancelled or timed-out recv loses
// nothing (queued data stays queued), a timed-out send reports exactly how
// many bytes went out.
//
// One task may recv and another send on the same stream at once; two tasks must
// not recv at once (std::logic_error). A stream belongs to the loop it was made
// on. Destroying it (or close()) closes the socket through the ring; a task
// parked in recv() then gets std::errc::bad_file_descriptor at once, and a
// send_all in flight is cancelled and gets the same error with the count of
// bytes that went out. An awaiter must be awaited before its stream is closed.
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
#include "coring/runtime/io.hpp"
#include "coring/runtime/operation.hpp"

namespace coring::net {

// A received buffer on loan from the loop's buffer ring; given back when the
// lease is destroyed or reset().
class BufferLease {
 public:
  BufferLease() noexcept = default;
  BufferLease(BufferLease&& o) noexcept
      : core_(std::exchange(o.core_, nullptr)), data_(o.data_), len_(o.len_), bid_(o.bid_) {}
  BufferLease& operator=(BufferLease&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = std::exchange(o.core_, nullptr);
      data_ = o.data_;
      len_ = o.len_;
      bid_ = o.bid_;
    }
    return *this;
  }
  ~BufferLease() { reset(); }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return core_ != nullptr ? std::span<const std::byte>(data_, len_)
                            : std::span<const std::byte>();
  }
  [[nodiscard]] std::size_t size() const noexcept { return core_ != nullptr ? len_ : 0; }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size()};
  }
  // Gives the buffer back now (idempotent).
  void reset() noexcept {
    if (core_ != nullptr) std::exchange(core_, nullptr)->give_back(bid_, data_);
  }

 private:
  friend class RecvAwaiter;
  BufferLease(detail::StreamCore* core, std::byte* data, std::uint32_t len,
              std::uint16_t bid) noexcept
      : core_(core), data_(data), len_(len), bid_(bid) {}

  detail::StreamCore* core_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t len_ = 0;
  std::uint16_t bid_ = 0;
};

// What one recv() gives: data, or the end of the stream (EOF), or an error.
struct [[nodiscard]] Received {
  BufferLease buffer;
  std::error_code error;  // std::errc::timed_out, connection_reset, ...

  // How a recv that timed out reports (see with_timeout).
  static Received timed_out() {
    Received r;
    r.error = std::make_error_code(std::errc::timed_out);
    return r;
  }

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
  // How a send that timed out reports (see with_timeout).
  static SendResult timed_out() {
    SendResult r;
    r.error = std::make_error_code(std::errc::timed_out);
    return r;
  }
};

// recv(): the next received buffer, EOF or an error (see the header comment).
class [[nodiscard]] RecvAwaiter : public detail::RecvOp {
 public:
  RecvAwaiter(RecvAwaiter&&) noexcept = default;

  bool await_ready() const noexcept { return core == nullptr || core->readable(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    core->check_can_park();
    if (!prepare_recv(h)) return suspend_cancelled();
    core->park(this);
    start_timeout();
    return true;
  }
  Received await_resume();
  // For select() (runtime/select.hpp): this recv lost after data was handed
  // to it; the data goes back to the front of the stream's queue.
  void put_back() noexcept {
    if (filled && status == detail::StreamCore::kData) {
      filled = false;
      core->unpop(data, len, bid);
    }
  }

 private:
  friend class TcpStream;
  explicit RecvAwaiter(detail::StreamCore* c) noexcept : RecvOp(c) {}
};

// send_all(): one operation over every short send (see the header comment).
class [[nodiscard]] SendAllAwaiter : public Operation, private Completion {
 public:
  static constexpr bool kSelectable = false;     // see Operation::kSelectable
  static constexpr bool kReportsTimeout = true;  // with the count of bytes that went out
  SendAllAwaiter(SendAllAwaiter&& o) noexcept;
  ~SendAllAwaiter();

  bool await_ready() const noexcept { return left_ == 0 || core_ == nullptr; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!core_->can_send()) {
      err_ = EBADF;  // closed: nothing to wait for
      return false;
    }
    if (!prepare<&SendAllAwaiter::interrupt_send>(h, WaitKind::send, core_)) {
      return suspend_cancelled();
    }
    start();
    start_timeout();
    return true;
  }
  SendResult await_resume() const;

 private:
  friend class TcpStream;
  friend class detail::StreamCore;
  SendAllAwaiter(detail::StreamCore* core, std::span<const std::byte> bytes) noexcept;
  void start() noexcept;
  void send_next() noexcept;
  // The stream is being closed under this send: stop, and report EBADF.
  void stream_closed() noexcept;
  static void completed(Completion* c, int res, std::uint32_t flags) noexcept;
  static bool interrupt_send(Operation* op) noexcept;

  detail::StreamCore* core_;
  const std::byte* next_;
  std::size_t left_;
  std::size_t sent_ = 0;
  int err_ = 0;
  bool in_kernel_ = false;
  bool closed_ = false;  // the stream was closed under this send
  // The core's list of sends in flight.
  SendAllAwaiter* prev_ = nullptr;
  SendAllAwaiter* next_send_ = nullptr;
  bool linked_ = false;
};

// close(): closes through the ring; std::error_code of the close(2).
class [[nodiscard]] CloseAwaiter : public IoAwaiter {
 public:
  explicit CloseAwaiter(const IoRequest& r) noexcept : IoAwaiter(r, WaitKind::close) {}
  CloseAwaiter(CloseAwaiter&&) noexcept = default;
  std::error_code await_resume() const { return IoAwaiter::await_resume().error(); }
};

class TcpStream {
 public:
  // No timeout: the operation waits as long as it takes.
  static constexpr Duration kNoTimeout = coring::kNoTimeout;

  TcpStream() noexcept = default;
  // Adopts a connected socket `fd` on the current loop (throws without one).
  explicit TcpStream(int fd);
  TcpStream(TcpStream&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  TcpStream& operator=(TcpStream&& o) noexcept;
  ~TcpStream();

  [[nodiscard]] bool is_open() const noexcept { return core_ != nullptr; }
  [[nodiscard]] int native_handle() const noexcept { return core_ != nullptr ? core_->fd : -1; }

  // The next received buffer, EOF, or an error; std::errc::timed_out after
  // `timeout`. A closed stream gives std::errc::bad_file_descriptor.
  RecvAwaiter recv(Duration timeout = kNoTimeout) noexcept {
    RecvAwaiter a(core_);
    if (timeout != kNoTimeout) a.set_timeout(timeout);
    return a;
  }

  // Sends every byte of `bytes` (see the header comment); std::errc::timed_out
  // after `timeout`, with the count of bytes that went out.
  SendAllAwaiter send_all(std::span<const std::byte> bytes,
                          Duration timeout = kNoTimeout) noexcept {
    SendAllAwaiter a(core_, bytes);
    if (timeout != kNoTimeout) a.set_timeout(timeout);
    return a;
  }
  SendAllAwaiter send_all(std::string_view text, Duration timeout = kNoTimeout) noexcept {
    return send_all(std::as_bytes(std::span<const char>(text.data(), text.size())), timeout);
  }

  // shutdown(2) at once (SHUT_WR: we are done sending; the peer reads EOF).
  std::error_code shutdown(int how = SHUT_WR) noexcept;

  // Closes through the ring and waits for it; the stream is closed afterwards
  // whatever the result (the error is close(2)'s, usually none).
  CloseAwaiter close() noexcept;

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
  friend class AcceptAwaiter;
  TcpStream(detail::NetService& svc, int fd);
  detail::StreamCore* core_ = nullptr;
};

struct [[nodiscard]] Connected {
  TcpStream stream;
  std::error_code error;  // connection_refused, timed_out, ...
  explicit operator bool() const noexcept { return !error; }
  // How a connect that timed out reports (see with_timeout).
  static Connected timed_out() {
    Connected c;
    c.error = std::make_error_code(std::errc::timed_out);
    return c;
  }
};

// Connects to `address` (without a timeout the kernel's own SYN timeout
// applies). Errors, including a timeout, come back in Connected::error.
Task<Connected> connect(Address address, Duration timeout = TcpStream::kNoTimeout);

}  // namespace coring::net
