// Helpers shared by the net test files: the names they use, a connected
// client/server pair, reads until a size or EOF, raw blocking sockets, polling
// until a condition holds, a run on a fresh loop checked for fd leaks, test
// data, heap/RSS measuring, sanitizer detection and an RLIMIT_NOFILE guard.
//
// Coroutine helpers take their parameters by value or by pointer, and never
// co_await inside a Catch macro (GCC 12 evaluates it twice).
#pragma once

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <coring/coring.hpp>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/test_support.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// From the sanitizer runtime (its header is not installed with GCC 12).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace coring_test {

using namespace std::chrono_literals;
using coring::Clock;
using coring::Duration;
using coring::EventLoop;
using coring::JoinHandle;
using coring::Task;
using coring::TimePoint;
using coring::net::Accepted;
using coring::net::Address;
using coring::net::BufferLease;
using coring::net::Connected;
using coring::net::EchoOptions;
using coring::net::EchoServer;
using coring::net::EchoStats;
using coring::net::Received;
using coring::net::SendResult;
using coring::net::TcpListener;
using coring::net::TcpStream;

namespace net = coring::net;

// ---- sanitizers, heap and RSS ----

#if defined(__SANITIZE_ADDRESS__)
inline constexpr int kSanitizer = 1;  // ASan (+UBSan)
#elif defined(__SANITIZE_THREAD__)
inline constexpr int kSanitizer = 2;  // TSan
#else
inline constexpr int kSanitizer = 0;
#endif
inline constexpr bool kSanitized = kSanitizer != 0;

// Bytes allocated from the heap and not freed (in a plain build, the main
// arena's).
inline std::size_t heap_in_use() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

inline std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0;
  std::size_t resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// ---- a whole test on a fresh loop ----

// Runs body() to its end on a fresh EventLoop and checks that nothing the run
// opened -- sockets, the loop's ring and eventfd -- is left open afterwards.
template <class Body>
void run_checking_fds(Body body) {
  const std::size_t fds = count_open_fds();
  {
    EventLoop loop;
    loop.run(body());
  }
  CHECK(count_open_fds() == fds);
}

// ---- time ----

inline std::uint64_t ms_since(TimePoint t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

// Polls `pred` every 2 ms until it holds (true) or `limit` passes (false).
template <class Pred>
Task<bool> eventually(Pred pred, Duration limit) {
  const TimePoint until = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > until) co_return false;
    co_await coring::sleep_for(2ms);
  }
  co_return true;
}

// ---- test data ----

// `n` letters that repeat only after a long stretch, different per `seed`.
inline std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + seed + i / 251) % 26);
  }
  return s;
}

inline std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t v = rng();
    for (int k = 0; k < 8 && i < n; ++k, ++i) {
      out[i] = static_cast<std::byte>(v & 0xff);
      v >>= 8;
    }
  }
  return out;
}

// ---- raw sockets ----

// close() on this socket sends RST instead of FIN.
inline bool set_linger_zero(int fd) {
  const linger l{1, 0};
  return ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0;
}

inline void set_buffers(int fd, int bytes) {
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

// A plain blocking client socket connected to `addr` (loopback connects complete
// in the kernel, so this never waits for the loop); SO_SNDBUF/SO_RCVBUF set to
// `buffers` when that is > 0.
inline int raw_connect(const Address& addr, int buffers = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (buffers > 0) set_buffers(fd, buffers);
  if (::connect(fd, addr.sockaddr_ptr(), addr.sockaddr_len()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sockets the current loop's NetService has open.
inline std::size_t loop_sockets() {
  return net::detail::NetService::of(EventLoop::current_or_throw()).sockets();
}

// Lowers RLIMIT_NOFILE's soft limit for its lifetime (or until restore()); the
// destructor puts the old limits back, also when a REQUIRE bails out of the test.
class NofileLimit {
 public:
  NofileLimit() { saved_ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0; }
  // Sets the soft limit to `soft` at once; ok() tells whether that worked.
  explicit NofileLimit(rlim_t soft) : NofileLimit() {
    rlimit low = saved_;
    low.rlim_cur = soft;
    lowered_ = ::setrlimit(RLIMIT_NOFILE, &low) == 0;
  }
  ~NofileLimit() { restore(); }
  NofileLimit(const NofileLimit&) = delete;
  NofileLimit& operator=(const NofileLimit&) = delete;

  // Sets the soft limit so that exactly `n` more fds can be opened: the kernel
  // refuses fd numbers >= the limit, so count the free numbers below it.
  bool leave_free(int n) {
    if (!saved_ok_) return false;
    int free_below = 0;
    int fd = 0;
    for (; free_below < n; ++fd) {
      if (static_cast<rlim_t>(fd) >= saved_.rlim_cur) return false;
      if (::fcntl(fd, F_GETFD) < 0) ++free_below;
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(fd);
    lowered_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    return lowered_;
  }

  void restore() {
    if (saved_ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    saved_ok_ = false;
    lowered_ = false;
  }
  [[nodiscard]] bool ok() const noexcept { return lowered_; }

 private:
  rlimit saved_{};
  bool saved_ok_ = false;
  bool lowered_ = false;
};

// ---- streams ----

struct Pair {
  TcpStream client;
  TcpStream server;
};

// A connected pair through `*listener`: the client end from net::connect, the
// server end from accept().
inline Task<Pair> make_pair(TcpListener* listener) {
  const Address where = listener->local_address();
  auto connecting = coring::spawn(net::connect(where, 5s));
  Accepted a = co_await listener->accept(5s);
  Connected c = co_await connecting;
  REQUIRE(a);
  REQUIRE(c);
  Pair p;
  p.client = std::move(c.stream);
  p.server = std::move(a.stream);
  co_return p;
}

inline Task<Accepted> accept_once(TcpListener* l, Duration timeout) {
  Accepted a = co_await l->accept(timeout);
  co_return a;
}

struct ReadResult {
  std::string data;
  bool eof = false;
  std::error_code error;
};

// Reads until `want` bytes have come (or EOF, or an error).
inline Task<ReadResult> read_until(TcpStream* s, std::size_t want, Duration timeout) {
  ReadResult out;
  while (out.data.size() < want) {
    Received r = co_await s->recv(timeout);
    if (r.error) {
      out.error = r.error;
      break;
    }
    if (r.eof()) {
      out.eof = true;
      break;
    }
    out.data.append(r.buffer.as_string_view());
  }
  co_return out;
}

// Reads until EOF or an error.
inline Task<ReadResult> read_to_end(TcpStream* s, Duration timeout) {
  return read_until(s, static_cast<std::size_t>(-1), timeout);
}

inline Task<SendResult> send_text(TcpStream* s, const std::string* text, Duration timeout) {
  SendResult w = co_await s->send_all(*text, timeout);
  co_return w;
}

// Sends `text` from `client`, reads it at `server`, sends it back and reads the
// echo at `client`; true when it came through both ways intact.
inline Task<bool> echo_through(TcpStream* client, TcpStream* server, std::string text) {
  SendResult w = co_await client->send_all(text, 2s);
  if (!w) co_return false;
  ReadResult at_server = co_await read_until(server, text.size(), 2s);
  if (at_server.data != text) co_return false;
  SendResult back = co_await server->send_all(at_server.data, 2s);
  if (!back) co_return false;
  ReadResult at_client = co_await read_until(client, text.size(), 2s);
  co_return at_client.data == text;
}

}  // namespace coring_test
