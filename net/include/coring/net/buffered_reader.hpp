// BufferedReader: lines, delimited records and exact byte counts read from a
// TcpStream, over the loop's receive buffers.
//
//   net::BufferedReader in(stream);
//   for (;;) {
//     net::ReadResult line = co_await in.read_line(4096, 5s);
//     if (!line) break;                    // eof(), partial(), or error (see below)
//     handle(line.data);                   // a view: valid until the next call on `in`
//   }
//
// State. The reader keeps what it received but has not handed out yet: at most
// one BufferLease (a ring buffer, read in place) and one owned std::string for
// bytes that had to be joined across buffers. The unread bytes are the string's,
// then the lease's, in stream order. buffered() counts them; read_some() and
// take_buffered() hand them out raw, so a protocol can read a header by lines
// and then its payload in bulk.
//
// Results are values (ReadResult), like TcpStream::recv(): data, or a clean end
// of stream (eof()), or the stream ending inside a record (partial(): `data`
// holds the bytes that came before the end, and the next read gives eof()), or
// an error: std::errc::timed_out, connection_reset, bad_file_descriptor (the
// stream is closed), and std::errc::message_size for a line longer than `max`.
//
// Cost and lifetime. A line that lies inside one received buffer is returned as
// a view into that buffer: no copy. A line split across buffers is joined in the
// reader's string (one copy of its bytes). Either way `data` is valid until the
// next call on the reader (any read_*, take_buffered) or the reader's
// destruction; copy it into a std::string to keep it.
//
// Limits. read_until/read_line never hold more than `max` bytes of a line: past
// that they stop with std::errc::message_size and consume nothing, so the reader
// stays usable -- read again with a larger max, skip ahead with read_some(), or
// close the stream. read_exact(n) holds up to n bytes: n is its limit (pass a
// length you have checked).
//
// Timeouts. Each read takes an optional timeout for the whole call (however many
// receives it needs); past it the result is std::errc::timed_out.
//
// Cancel-safety. A read that is cancelled (its task unwound) or times out loses
// nothing: the bytes received so far stay buffered, in order, for the next read.
// Other errors also consume nothing. The reader does not consume EOF: after
// eof() or partial() every read gives eof() again.
//
// Destruction and thread-safety. The reader refers to its stream, which must
// outlive it and stay where it is (not moved from) while the reader is used.
// Destroying the reader gives its lease back and drops what was buffered.
// Destroying it while a read of it is suspended is a bug that is reported: a
// message on stderr, and the suspended read throws std::logic_error when it
// resumes instead of touching the freed reader (cancel such a read first). Loop thread only, like
// the stream. One read at a time: a second read while one is in progress throws std::logic_error.
// Sending on the stream meanwhile is fine (a reader only reads). Do not call stream().recv() while
// the reader holds bytes (buffered() > 0): they would be skipped.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "coring/net/tcp_stream.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

// What one read of a BufferedReader gives (see the header comment).
struct [[nodiscard]] ReadResult {
  std::string_view data;  // the record; valid until the next call on the reader
  std::error_code error;  // timed_out, message_size, connection_reset, ...
  bool ended = false;     // the stream ended (EOF) before a whole record came

  // How a read that timed out reports (see with_timeout).
  static ReadResult timed_out() {
    ReadResult r;
    r.error = std::make_error_code(std::errc::timed_out);
    return r;
  }

  // A whole record came.
  explicit operator bool() const noexcept { return !error && !ended; }
  // The stream ended cleanly: nothing was left unread.
  [[nodiscard]] bool eof() const noexcept { return ended && data.empty(); }
  // The stream ended inside a record: `data` is what came before the end.
  [[nodiscard]] bool partial() const noexcept { return ended && !data.empty(); }
};

class BufferedReader;

namespace detail {

// One read request and how far a search for its delimiter has got.
struct ReadRequest {
  enum class Kind : unsigned char { until, exact, some };
  Kind kind = Kind::until;
  char delim = '\n';
  bool strip_cr = false;    // read_line: drop a "\r" before the "\n"
  std::size_t limit = 0;    // until: max line bytes; exact: n; some: max bytes
  std::size_t scanned = 0;  // joined bytes already searched for `delim`
  Duration timeout = kNoTimeout;
};

// What a suspended read and its reader know of each other (see ~BufferedReader).
struct ReadInProgress {
  BufferedReader* reader;
  ~ReadInProgress();
};

}  // namespace detail

// co_await of a read: completes without suspending (and without a task frame)
// when the buffered bytes already hold the record; otherwise runs the reads in
// a task awaited in place.
class [[nodiscard]] ReadAwaiter {
 public:
  ReadAwaiter(ReadAwaiter&&) noexcept = default;

  bool await_ready() {
    if (ready_in_lease()) return true;
    return await_ready_slow();
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    return slow_.operator co_await().await_suspend(h);
  }
  ReadResult await_resume() {
    if (slow_.valid()) return slow_.operator co_await().await_resume();
    return result_;
  }

 private:
  friend class BufferedReader;
  ReadAwaiter(BufferedReader* r, detail::ReadRequest req) noexcept : reader_(r), req_(req) {}

  // The common case inline: a line inside the lease, nothing joined before it.
  inline bool ready_in_lease() noexcept;
  bool await_ready_slow();

  BufferedReader* reader_;
  detail::ReadRequest req_;
  ReadResult result_;
  Task<ReadResult> slow_;
};

class BufferedReader {
 public:
  static constexpr std::size_t kDefaultMaxLine = 64 * 1024;
  static constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

  explicit BufferedReader(TcpStream& stream) noexcept : stream_(&stream) {}
  BufferedReader(const BufferedReader&) = delete;
  BufferedReader& operator=(const BufferedReader&) = delete;
  ~BufferedReader();

  // The next line without its "\n" and without a "\r" before it. A line longer
  // than `max` bytes (before the "\n") gives std::errc::message_size.
  ReadAwaiter read_line(std::size_t max = kDefaultMaxLine, Duration timeout = kNoTimeout) noexcept {
    return ReadAwaiter(this, {detail::ReadRequest::Kind::until, '\n', true, max, 0, timeout});
  }
  // The bytes up to `delim`, without it; std::errc::message_size past `max`.
  ReadAwaiter read_until(char delim, std::size_t max = kDefaultMaxLine,
                         Duration timeout = kNoTimeout) noexcept {
    return ReadAwaiter(this, {detail::ReadRequest::Kind::until, delim, false, max, 0, timeout});
  }
  // Exactly `n` bytes (partial() if the stream ends first).
  ReadAwaiter read_exact(std::size_t n, Duration timeout = kNoTimeout) noexcept {
    return ReadAwaiter(this, {detail::ReadRequest::Kind::exact, '\0', false, n, 0, timeout});
  }
  // Whatever comes next, at most `max` bytes (>= 1): the buffered bytes if
  // there are any, else one receive. Copies nothing.
  ReadAwaiter read_some(std::size_t max = kNoLimit, Duration timeout = kNoTimeout) noexcept {
    return ReadAwaiter(this, {detail::ReadRequest::Kind::some, '\0', false, max, 0, timeout});
  }

  // Bytes received and not handed out yet.
  [[nodiscard]] std::size_t buffered() const noexcept {
    return (joined_.size() - joined_off_) + (lease_.size() - lease_off_);
  }
  // Hands every buffered byte out (a copy) and empties the reader; what comes
  // next is read from the stream. Throws std::logic_error during a read.
  std::string take_buffered();

  [[nodiscard]] TcpStream& stream() noexcept { return *stream_; }

 private:
  friend class ReadAwaiter;
  friend struct detail::ReadInProgress;

  // Starts a call: frees what the previous call handed out; throws
  // std::logic_error if a read is in progress.
  void begin();
  // Completes `req` from the buffered bytes if they hold it (true, with `out`);
  // else moves the lease's bytes into joined_ and returns false.
  bool take(detail::ReadRequest& req, ReadResult& out);
  // The end of the stream (or an error) with `req` unfinished.
  ReadResult finish_at_end(const detail::ReadRequest& req);
  Task<ReadResult> read_slow(detail::ReadRequest req);

  TcpStream* stream_;
  std::string joined_;  // bytes joined across buffers; unread from joined_off_
  std::size_t joined_off_ = 0;
  BufferLease lease_;  // the last buffer received; unread from lease_off_
  std::size_t lease_off_ = 0;
  bool eof_ = false;                        // the stream ended
  detail::ReadInProgress* busy_ = nullptr;  // the read in progress (suspended), if any
};

inline bool ReadAwaiter::ready_in_lease() noexcept {
  BufferedReader& r = *reader_;
  if (req_.kind != detail::ReadRequest::Kind::until || r.busy_ != nullptr || !r.joined_.empty()) {
    return false;
  }
  const std::span<const std::byte> bytes = r.lease_.bytes();
  const char* p = reinterpret_cast<const char*>(bytes.data()) + r.lease_off_;
  const std::size_t n = bytes.size() - r.lease_off_;
  const std::size_t window = req_.limit < n ? req_.limit + 1 : n;
  const void* at = window == 0 ? nullptr : std::memchr(p, req_.delim, window);
  if (at == nullptr) return false;
  std::size_t len = static_cast<std::size_t>(static_cast<const char*>(at) - p);
  r.lease_off_ += len + 1;
  if (req_.strip_cr && len != 0 && p[len - 1] == '\r') --len;
  result_.data = std::string_view(p, len);
  return true;
}

}  // namespace coring::net
