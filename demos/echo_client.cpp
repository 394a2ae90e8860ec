// Seed recipe: the thread pool echo server (Python Cookbook 12.7) -- this is the
// other side: a load generator for echo_server, written with coring itself.
//
// Load mode: N connections, one task each, every one keeping D messages of B
// random bytes in flight, checking every echoed byte against what it sent (in
// order) and timing each message from its send to the arrival of the last byte
// of its echo. After --warmup seconds it counts for --duration seconds, then the
// connections drain and shut down cleanly, and one line is printed:
//   echo_client connections=N size=B depth=D seconds=S round_trips=R rt_per_s=X
//     mb_per_s=Y p50_us=A p99_us=B p999_us=C errors=E
// Exit status 0 iff errors == 0 (no failed connection, no mismatched byte).
//
// Idle mode: opens N connections that never send (connecting 200 at a time),
// prints "idle N connections open", holds them, closes them.
//
// Run: ./echo_client --host 127.0.0.1 --port P --connections N --size B
//        --duration SECONDS --depth D [--warmup SECONDS]
//      ./echo_client --host H --port P --idle N --hold SECONDS
#include <fmt/core.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <coring/coring.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <vector>
#include "net_flags.hpp"

namespace {

namespace net = coring::net;
using coring::Clock;
using coring::TimePoint;
using namespace std::chrono_literals;

constexpr std::string_view kUsage =
    "usage: echo_client --host H --port P [--connections N] [--size B] [--duration SECONDS]\n"
    "                   [--depth D] [--warmup SECONDS]\n"
    "       echo_client --host H --port P --idle N --hold SECONDS\n"
    "  --host H              server address or name (default 127.0.0.1)\n"
    "  --port P              server port (required)\n"
    "  --connections N       concurrent connections, one task each (default 1)\n"
    "  --size B              bytes per message (default 64)\n"
    "  --duration SECONDS    how long to measure (default 5)\n"
    "  --depth D             messages in flight per connection (default 1)\n"
    "  --warmup SECONDS      run that long before measuring (default 0.5)\n"
    "  --idle N              open N connections that never send...\n"
    "  --hold SECONDS        ...and hold them that long\n";

constexpr std::size_t kConnectBatch = 200;  // connects in flight at once
constexpr coring::Duration kConnectTimeout = 10s;
constexpr coring::Duration kIoTimeout = 10s;  // no echo for that long: the connection failed
// Up to this many bytes in flight per connection, one task sends and receives
// (a send never waits for long: the socket buffers on both sides and the
// server's pending allowance hold that much). Beyond it a connection gets a
// sender task of its own, so that a long send cannot keep it from reading the
// echoes the server is blocked on.
constexpr std::size_t kSingleTaskLimit = 128 * 1024;

struct Config {
  std::string host = "127.0.0.1";
  long port = -1;
  std::size_t connections = 1;
  std::size_t size = 64;
  std::size_t depth = 1;
  double duration = 5;
  double warmup = 0.5;
  std::size_t idle = 0;
  double hold = -1;
  bool idle_mode = false;
  bool load_flags = false;  // a load-mode flag was given
  bool help = false;
  net::Address address;
};

// Accepts "--flag value" and "--flag=value".
Config parse_config(int argc, char** argv) {
  Config c;
  demo::Flags f(argc, argv);
  while (f.next()) {
    const std::string& arg = f.name();
    if (arg == "--help" || arg == "-h") {
      c.help = true;
    } else if (arg == "--host") {
      c.host = f.value();
    } else if (arg == "--port") {
      c.port = static_cast<long>(demo::parse_uint(arg, f.value(), 1, 65535));
    } else if (arg == "--connections") {
      c.connections = demo::parse_uint(arg, f.value(), 1, 1'000'000);
      c.load_flags = true;
    } else if (arg == "--size") {
      c.size = demo::parse_uint(arg, f.value(), 1, std::uint64_t{64} << 20);
      c.load_flags = true;
    } else if (arg == "--depth") {
      c.depth = demo::parse_uint(arg, f.value(), 1, 1'000'000);
      c.load_flags = true;
    } else if (arg == "--duration") {
      c.duration = demo::parse_seconds(arg, f.value());
      c.load_flags = true;
    } else if (arg == "--warmup") {
      c.warmup = demo::parse_seconds(arg, f.value());
      c.load_flags = true;
    } else if (arg == "--idle") {
      c.idle = demo::parse_uint(arg, f.value(), 1, 1'000'000);
      c.idle_mode = true;
    } else if (arg == "--hold") {
      c.hold = demo::parse_seconds(arg, f.value());
      c.idle_mode = true;
    } else {
      f.unknown();
    }
  }
  if (c.help) return c;
  if (c.port < 0) throw demo::UsageError("--port is required");
  if (c.idle_mode) {
    if (c.load_flags)
      throw demo::UsageError("--idle/--hold cannot be combined with the load options");
    if (c.idle == 0 || c.hold < 0)
      throw demo::UsageError("idle mode needs both --idle N and --hold SECONDS");
  } else if (c.size * c.depth > (std::size_t{1} << 30)) {
    throw demo::UsageError("--size x --depth must stay within 1 GiB per connection");
  }
  return c;
}

// Log-linear latency histogram (HdrHistogram's layout): values below 128 exact,
// above that 64 buckets per power of two, so a bucket's midpoint is within
// 1/128 (< 0.8%) of any value in it. Fixed size (3776 counters), any duration.
class LatencyHistogram {
 public:
  void record(std::uint64_t v) noexcept {
    ++counts_[index(v)];
    ++total_;
  }
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
  // The value at quantile q (0..1]: the midpoint of the bucket holding the
  // ceil(q * total)-th smallest value; 0 when empty.
  [[nodiscard]] double quantile(double q) const noexcept {
    if (total_ == 0) return 0;
    const auto rank = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return midpoint(i);
    }
    return midpoint(kBuckets - 1);
  }

 private:
  static constexpr unsigned kSubBits = 7;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;  // 128
  static constexpr std::uint64_t kHalf = kSub / 2;                     // 64
  static constexpr std::size_t kBuckets = kSub + (64 - kSubBits) * kHalf;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < kSub) return v;
    const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - kSubBits;  // >= 1
    return kSub + (shift - 1) * kHalf + ((v >> shift) - kHalf);
  }
  static double midpoint(std::size_t i) noexcept {
    if (i < kSub) return static_cast<double>(i);
    const std::size_t shift = (i - kSub) / kHalf + 1;
    const std::uint64_t mantissa = (i - kSub) % kHalf + kHalf;
    const double width = std::ldexp(1.0, static_cast<int>(shift));
    return static_cast<double>(mantissa) * width + (width - 1) / 2;
  }

  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(kBuckets);
  std::uint64_t total_ = 0;
};

// splitmix64: fast, and good enough to make every message's bytes distinct.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

enum class Phase { warmup, measuring, stopping };

// The whole run's state, shared by every connection (one loop: no locking).
struct Run {
  explicit Run(const Config& c) : cfg(c), unsettled(c.connections) {}

  void fail(std::size_t id, std::string_view what) {
    ++errors;
    if (++reported <= kMaxReported) {
      fmt::print(stderr, "echo_client: connection {}: {}\n", id, what);
    } else if (reported == kMaxReported + 1) {
      fmt::print(stderr, "echo_client: (further errors not shown)\n");
    }
  }
  // A connection connected or failed to.
  void settle() {
    if (--unsettled == 0) settled.set();
  }

  static constexpr int kMaxReported = 5;
  const Config& cfg;
  Phase phase = Phase::warmup;
  TimePoint t0{};
  TimePoint t1{};
  LatencyHistogram latency_ns;
  std::uint64_t round_trips = 0;  // messages echoed while measuring
  std::uint64_t bytes = 0;        // bytes echoed back while measuring
  std::uint64_t errors = 0;       // connections that failed (mismatch included)
  int reported = 0;
  std::size_t unsettled;
  coring::Event settled;  // every connection connected or failed
  coring::Semaphore connect_slots{kConnectBatch};
};

// One connection's messages. Message k lives in slot k % depth from the moment
// it is generated until its echo has been checked; message k + depth reuses the
// slot, and is generated only after message k was checked.
struct Conn {
  Conn(Run& r, std::size_t i)
      : run(r),
        id(i),
        size(r.cfg.size),
        depth(r.cfg.depth),
        slots(std::make_unique<std::byte[]>(size * depth)),
        sent_at(std::make_unique<TimePoint[]>(depth)),
        rng{0x243f6a8885a308d3ULL ^ (i * 0x9e3779b97f4a7c15ULL)} {}

  [[nodiscard]] std::byte* slot(std::uint64_t k) const noexcept {
    return slots.get() + (k % depth) * size;
  }

  // Fills message `sent` with fresh random bytes and stamps it.
  void generate_next(TimePoint now) noexcept {
    std::byte* p = slot(sent);
    for (std::size_t i = 0; i < size; i += 8) {
      const std::uint64_t v = rng.next();
      std::memcpy(p + i, &v, std::min<std::size_t>(8, size - i));
    }
    sent_at[sent % depth] = now;
    ++sent;
  }

  // Checks received bytes against the messages in flight, in order. Counts the
  // messages it completes; false (the connection failed) on a mismatch.
  bool check(std::span<const std::byte> data, TimePoint now, std::size_t& completed) {
    while (!data.empty()) {
      if (verified == sent) {
        run.fail(id, fmt::format("received {} bytes more than were sent", data.size()));
        return false;
      }
      const std::byte* want = slot(verified) + matched;
      const std::size_t n = std::min(size - matched, data.size());
      if (std::memcmp(want, data.data(), n) != 0) {
        std::size_t at = 0;
        while (want[at] == data[at]) ++at;
        run.fail(id,
                 fmt::format("echo mismatch in message {} at byte {}: sent 0x{:02x}, got 0x{:02x}",
                             verified, matched + at, static_cast<unsigned>(want[at]),
                             static_cast<unsigned>(data[at])));
        return false;
      }
      matched += n;
      data = data.subspan(n);
      if (matched == size) {
        matched = 0;
        if (run.phase == Phase::measuring) {
          ++run.round_trips;
          const auto rt = now - sent_at[verified % depth];
          run.latency_ns.record(static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(rt).count()));
        }
        ++verified;
        ++completed;
      }
    }
    return true;
  }

  Run& run;
  std::size_t id;
  std::size_t size;
  std::size_t depth;
  std::unique_ptr<std::byte[]> slots;
  std::unique_ptr<TimePoint[]> sent_at;
  Rng rng;
  std::uint64_t sent = 0;      // messages generated (and sent or being sent)
  std::uint64_t verified = 0;  // messages whose echo was checked in full
  std::size_t matched = 0;     // bytes of message `verified` checked so far
  // Split mode (a sender task of its own):
  coring::Semaphore credits{0};  // messages the sender may send
  bool stop_sending = false;
  std::error_code send_error;
};

std::string recv_failure(const net::Received& r) {
  return r.eof() ? std::string("the server closed the connection before echoing everything")
                 : fmt::format("recv: {}", r.error.message());
}

// One task sends and receives: after each received buffer, the messages it
// completed are replaced by as many new ones, sent together. Returns true when
// the run stopped and every message sent was echoed and checked.
coring::Task<bool> pump_inline(Conn& c, net::TcpStream& stream) {
  Run& run = c.run;
  std::size_t to_send = c.depth;
  for (;;) {
    if (to_send != 0) {
      const std::uint64_t first = c.sent;
      const TimePoint now = Clock::now();
      for (std::size_t i = 0; i < to_send; ++i) c.generate_next(now);
      // Consecutive messages sit in consecutive slots, wrapping around at most once.
      const std::size_t head_msgs = std::min<std::size_t>(to_send, c.depth - first % c.depth);
      const std::span<const std::byte> head(c.slot(first), head_msgs * c.size);
      net::SendResult w = co_await stream.send_all(head);
      if (w && head_msgs < to_send) {
        const std::span<const std::byte> tail(c.slots.get(), (to_send - head_msgs) * c.size);
        w = co_await stream.send_all(tail);
      }
      if (!w) {
        run.fail(c.id, fmt::format("send: {}", w.error.message()));
        co_return false;
      }
      to_send = 0;
    }
    net::Received r = co_await stream.recv(kIoTimeout);
    if (!r) {
      run.fail(c.id, recv_failure(r));
      co_return false;
    }
    const TimePoint now = Clock::now();
    if (run.phase == Phase::measuring) run.bytes += r.size();
    std::size_t completed = 0;
    if (!c.check(r.data(), now, completed)) co_return false;
    r.buffer.reset();  // back to the ring before we wait again
    if (run.phase == Phase::stopping) {
      if (c.verified == c.sent) co_return true;  // drained
    } else {
      to_send = completed;
    }
  }
}

coring::Task<void> send_messages(Conn* c, net::TcpStream* stream) {
  for (;;) {
    co_await c->credits.acquire();
    if (c->stop_sending) break;
    const std::uint64_t k = c->sent;
    c->generate_next(Clock::now());
    const std::span<const std::byte> msg(c->slot(k), c->size);
    const net::SendResult w = co_await stream->send_all(msg);
    if (!w) {
      c->send_error = w.error;
      (void)stream->shutdown(SHUT_RDWR);  // wakes the receiver
      break;
    }
  }
}

// Big pipelines: a sender task of its own sends a message whenever the receiver
// (this task) has checked one; same result as pump_inline.
coring::Task<bool> pump_split(Conn& c, net::TcpStream& stream) {
  Run& run = c.run;
  c.credits.release(c.depth);
  coring::JoinHandle<void> sender = coring::spawn(send_messages(&c, &stream), "echo sender");
  bool ok = true;
  for (;;) {
    net::Received r = co_await stream.recv(kIoTimeout);
    if (!r) {
      run.fail(c.id,
               c.send_error ? fmt::format("send: {}", c.send_error.message()) : recv_failure(r));
      ok = false;
      break;
    }
    const TimePoint now = Clock::now();
    if (run.phase == Phase::measuring) run.bytes += r.size();
    std::size_t completed = 0;
    if (!c.check(r.data(), now, completed)) {
      ok = false;
      break;
    }
    r.buffer.reset();
    if (run.phase == Phase::stopping) {
      if (!c.stop_sending) {
        c.stop_sending = true;
        c.credits.release(1);  // the sender sees stop_sending and ends
      }
      if (c.verified == c.sent) break;  // no message is in flight, none will be
    } else {
      c.credits.release(completed);
    }
  }
  if (!ok) {
    c.stop_sending = true;
    c.credits.release(1);
    (void)stream.shutdown(SHUT_RDWR);  // a sender stuck in send_all gets EPIPE
  }
  co_await sender;
  co_return ok;
}

// Shuts our side down and waits for the server's: it echoes what is left,
// shuts down its side, and we read EOF.
coring::Task<bool> close_cleanly(Run& run, std::size_t id, net::TcpStream& stream) {
  if (const std::error_code ec = stream.shutdown(SHUT_WR)) {
    run.fail(id, fmt::format("shutdown: {}", ec.message()));
    co_return false;
  }
  net::Received r = co_await stream.recv(kIoTimeout);
  if (!r.eof()) {
    run.fail(id, r ? std::string("bytes after the last echo") : recv_failure(r));
    co_return false;
  }
  (void)co_await stream.close();
  co_return true;
}

coring::Task<void> connection(Run* run, std::size_t id) {
  co_await run->connect_slots.acquire();
  net::Connected c = co_await net::connect(run->cfg.address, kConnectTimeout);
  run->connect_slots.release();
  run->settle();
  if (!c) {
    run->fail(id, fmt::format("connect to {}: {}", run->cfg.address, c.error.message()));
    co_return;
  }
  net::TcpStream stream = std::move(c.stream);
  (void)stream.set_nodelay(true);
  Conn conn(*run, id);
  bool ok = false;
  if (conn.size * conn.depth <= kSingleTaskLimit) {
    ok = co_await pump_inline(conn, stream);
  } else {
    ok = co_await pump_split(conn, stream);
  }
  if (ok) (void)co_await close_cleanly(*run, id, stream);
}

coring::Task<void> drive(Run* run) {
  co_await run->settled.wait();  // warm-up starts once every connection is up
  co_await coring::sleep_for(demo::to_duration(run->cfg.warmup));
  run->t0 = Clock::now();
  run->phase = Phase::measuring;
  co_await coring::sleep_for(demo::to_duration(run->cfg.duration));
  run->t1 = Clock::now();
  run->phase = Phase::stopping;
}

coring::Task<int> load_main(Config cfg) {
  Run run(cfg);
  std::vector<coring::JoinHandle<void>> tasks;
  tasks.reserve(cfg.connections);
  for (std::size_t i = 0; i < cfg.connections; ++i) {
    tasks.push_back(coring::spawn(connection(&run, i), "echo connection"));
  }
  coring::JoinHandle<void> driver = coring::spawn(drive(&run), "driver");
  for (coring::JoinHandle<void>& t : tasks) co_await t;
  // Every connection failed before the run ended: stop the clock now.
  driver.cancel();
  (void)co_await driver.join();  // stopped, or ended on its own
  if (run.phase == Phase::measuring) run.t1 = Clock::now();
  const double seconds =
      run.phase == Phase::warmup ? 0.0 : std::chrono::duration<double>(run.t1 - run.t0).count();
  const double per_s = seconds > 0 ? 1.0 / seconds : 0.0;
  fmt::print(
      "echo_client connections={} size={} depth={} seconds={:.3f} round_trips={} rt_per_s={:.0f} "
      "mb_per_s={:.2f} p50_us={:.1f} p99_us={:.1f} p999_us={:.1f} errors={}\n",
      cfg.connections, cfg.size, cfg.depth, seconds, run.round_trips,
      static_cast<double>(run.round_trips) * per_s, static_cast<double>(run.bytes) * per_s / 1e6,
      run.latency_ns.quantile(0.50) / 1e3, run.latency_ns.quantile(0.99) / 1e3,
      run.latency_ns.quantile(0.999) / 1e3, run.errors);
  std::fflush(stdout);
  co_return run.errors == 0 ? 0 : 1;
}

coring::Task<int> idle_main(Config cfg) {
  std::vector<net::TcpStream> streams;
  streams.reserve(cfg.idle);
  std::size_t failed = 0;
  std::string why;
  for (std::size_t base = 0; base < cfg.idle; base += kConnectBatch) {
    const std::size_t n = std::min(kConnectBatch, cfg.idle - base);
    std::vector<coring::JoinHandle<net::Connected>> batch;
    batch.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back(coring::spawn(net::connect(cfg.address, kConnectTimeout), "connect"));
    }
    for (coring::JoinHandle<net::Connected>& h : batch) {
      net::Connected c = co_await h;
      if (c) {
        streams.push_back(std::move(c.stream));
      } else {
        if (failed++ == 0) why = c.error.message();
      }
    }
  }
  if (failed != 0) {
    fmt::print(stderr, "echo_client: {} of {} connections to {} failed: {}\n", failed, cfg.idle,
               cfg.address, why);
  } else {
    fmt::print("idle {} connections open\n", streams.size());
    std::fflush(stdout);
    co_await coring::sleep_for(demo::to_duration(cfg.hold));
  }
  for (net::TcpStream& s : streams) (void)co_await s.close();
  co_return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  try {
    cfg = parse_config(argc, argv);
    if (cfg.help) {
      fmt::print("{}", kUsage);
      return 0;
    }
    // Numeric hosts are parsed; names go through getaddrinfo, before the loop runs.
    cfg.address = net::Address::resolve(cfg.host, static_cast<std::uint16_t>(cfg.port));
  } catch (const demo::UsageError& e) {
    fmt::print(stderr, "echo_client: {} (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // AddressError
    fmt::print(stderr, "echo_client: {}\n", e.what());
    return 2;
  }
  demo::raise_fd_limit((cfg.idle_mode ? cfg.idle : cfg.connections) + 64);
  try {
    coring::EventLoop loop;  // throws std::system_error when io_uring is unavailable
    return cfg.idle_mode ? loop.run(idle_main(cfg)) : loop.run(load_main(cfg));
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_client: {}\n", e.what());
    return 1;
  }
}
