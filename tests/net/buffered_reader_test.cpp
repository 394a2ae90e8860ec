// BufferedReader on real loopback sockets: lines split over many one-byte sends
// (TCP_NODELAY), many lines in one send, a line past its limit (clear error,
// nothing consumed), CRLF, EOF inside a line, read_exact across buffers, raw
// reads after lines, timeouts and cancellation that lose nothing, the one-read
// rule.
//
// Note: never write co_await inside a Catch assertion macro (GCC 12 evaluates it
// twice); every awaited value goes to a local first.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "support/net_support.hpp"

using namespace coring_test;
using coring::net::BufferedReader;

namespace {

// Sends `text` one byte per send_all (TCP_NODELAY: one segment each), giving
// the loop a turn after every byte so the reader sees them one by one.
Task<bool> send_bytewise(net::TcpStream* s, std::string text) {
  for (char c : text) {
    const std::string one(1, c);
    net::SendResult w = co_await s->send_all(one, 2s);
    if (!w) co_return false;
    co_await coring::sleep_for(0ms);
  }
  co_return true;
}

// Sends `text` in pieces of `piece` bytes, a loop turn between them.
Task<bool> send_in_pieces(net::TcpStream* s, std::string text, std::size_t piece) {
  for (std::size_t at = 0; at < text.size(); at += piece) {
    const std::string part = text.substr(at, piece);
    net::SendResult w = co_await s->send_all(part, 5s);
    if (!w) co_return false;
    co_await coring::sleep_for(0ms);
  }
  co_return true;
}

Task<net::ReadResult> read_line_of(BufferedReader* r, std::size_t max, Duration timeout) {
  net::ReadResult line = co_await r->read_line(max, timeout);
  co_return line;
}

}  // namespace

TEST_CASE("BufferedReader: lines split over one-byte sends come out whole",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    REQUIRE_FALSE(p.client.set_nodelay(true));
    const std::string text = "hello, world\r\nsecond line\n\nlast one here\n";
    auto sending = coring::spawn(send_bytewise(&p.client, text));

    BufferedReader in(p.server);
    std::vector<std::string> lines;
    for (int i = 0; i < 4; ++i) {
      net::ReadResult line = co_await in.read_line(100, 5s);
      CHECK(line);
      lines.emplace_back(line.data);
    }
    CHECK(lines == std::vector<std::string>{"hello, world", "second line", "", "last one here"});
    const bool sent = co_await sending;
    CHECK(sent);
    CHECK(in.buffered() == 0);

    (void)p.client.shutdown(SHUT_WR);
    net::ReadResult end = co_await in.read_line(100, 5s);
    CHECK(end.eof());
    CHECK_FALSE(end.partial());
    CHECK_FALSE(end.error);
    CHECK_FALSE(end);
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: many lines in one send, then a clean EOF", "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    std::string text;
    constexpr int kLines = 5000;  // ~60 KiB: several receive buffers
    for (int i = 0; i < kLines; ++i) text += "line number " + std::to_string(i) + "\n";
    net::SendResult w = co_await p.client.send_all(text, 5s);
    REQUIRE(w);
    (void)p.client.shutdown(SHUT_WR);

    BufferedReader in(p.server);
    int good = 0;
    for (int i = 0; i < kLines; ++i) {
      net::ReadResult line = co_await in.read_line(64, 5s);
      if (line && line.data == "line number " + std::to_string(i)) ++good;
    }
    CHECK(good == kLines);
    for (int i = 0; i < 2; ++i) {  // EOF stays EOF
      net::ReadResult end = co_await in.read_line(64, 5s);
      CHECK(end.eof());
    }
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: a line past max is message_size, consumes nothing, stays bounded",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const std::string longline(300, 'x');
    net::SendResult w = co_await p.client.send_all(longline + "\nok\n", 5s);
    REQUIRE(w);

    BufferedReader in(p.server);
    for (int i = 0; i < 2; ++i) {  // the reader stays usable: same error again
      net::ReadResult line = co_await in.read_line(100, 5s);
      CHECK_FALSE(line);
      CHECK(line.error == std::errc::message_size);
      CHECK(line.data.empty());
    }
    // Nothing was consumed: a larger limit reads the same line.
    net::ReadResult whole = co_await in.read_line(300, 5s);
    CHECK(whole);
    CHECK(whole.data == longline);
    net::ReadResult ok = co_await in.read_line(100, 5s);
    CHECK(ok.data == "ok");

    // A 1 MiB line with no end against max 1000: the error comes without the
    // reader buffering the megabyte (at most max + one receive buffer).
    const std::string huge = pattern(1 << 20, 7);
    auto sending = coring::spawn(send_text(&p.client, &huge, 10s));
    net::ReadResult too_long = co_await in.read_line(1000, 5s);
    CHECK(too_long.error == std::errc::message_size);
    CHECK(in.buffered() <= 1000 + 64 * 1024);
    // Skip the rest raw, with read_some.
    std::size_t skipped = 0;
    while (skipped < huge.size()) {
      net::ReadResult some = co_await in.read_some(BufferedReader::kNoLimit, 5s);
      if (!some) break;
      skipped += some.data.size();
    }
    CHECK(skipped == huge.size());
    net::SendResult sent = co_await sending;
    CHECK(sent);
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: CRLF and bare LF lines; read_until keeps other bytes",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    net::SendResult w = co_await p.client.send_all("a\r\nb\n\r\n\r\rc\nk1=v1;k2=v2\r;", 5s);
    REQUIRE(w);
    BufferedReader in(p.server);
    std::vector<std::string> lines;
    for (int i = 0; i < 4; ++i) {
      net::ReadResult line = co_await in.read_line(100, 5s);
      CHECK(line);
      lines.emplace_back(line.data);
    }
    // Only one "\r" right before the "\n" is dropped.
    CHECK(lines == std::vector<std::string>{"a", "b", "", "\r\rc"});
    net::ReadResult f1 = co_await in.read_until(';', 100, 5s);
    CHECK(f1.data == "k1=v1");
    net::ReadResult f2 = co_await in.read_until(';', 100, 5s);
    CHECK(f2.data == "k2=v2\r");  // read_until strips nothing
    CHECK(in.buffered() == 0);
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: EOF inside a line gives partial(), then eof()",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    REQUIRE_FALSE(p.client.set_nodelay(true));
    auto sending = coring::spawn(send_bytewise(&p.client, "full\npartial"));
    BufferedReader in(p.server);
    net::ReadResult full = co_await in.read_line(100, 5s);
    CHECK(full.data == "full");
    const bool sent = co_await sending;
    CHECK(sent);
    (void)p.client.shutdown(SHUT_WR);

    net::ReadResult last = co_await in.read_line(100, 5s);
    CHECK_FALSE(last);
    CHECK(last.partial());
    CHECK_FALSE(last.eof());
    CHECK_FALSE(last.error);
    CHECK(last.data == "partial");
    net::ReadResult end = co_await in.read_line(100, 5s);
    CHECK(end.eof());
    CHECK(end.data.empty());
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: read_exact across buffers, and short at EOF", "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    const std::string blob = pattern(100000, 3);
    auto sending = coring::spawn(send_in_pieces(&p.client, "HDR 100000\n" + blob + "tail", 777));

    BufferedReader in(p.server);
    net::ReadResult hdr = co_await in.read_line(100, 5s);
    CHECK(hdr.data == "HDR 100000");
    net::ReadResult body_bytes = co_await in.read_exact(100000, 5s);
    CHECK(body_bytes);
    CHECK(body_bytes.data.size() == blob.size());
    CHECK(body_bytes.data == blob);
    const bool sent = co_await sending;
    CHECK(sent);
    (void)p.client.shutdown(SHUT_WR);
    net::ReadResult tail = co_await in.read_exact(10, 5s);
    CHECK(tail.partial());
    CHECK(tail.data == "tail");
    net::ReadResult none = co_await in.read_exact(1, 5s);
    CHECK(none.eof());
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: after a line, read_some and take_buffered give the raw rest",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    net::SendResult w = co_await p.client.send_all("MODE raw\nabcdefghij", 5s);
    REQUIRE(w);
    BufferedReader in(p.server);
    net::ReadResult mode = co_await in.read_line(100, 5s);
    CHECK(mode.data == "MODE raw");
    // Raw reads from here on; the rest may still be on its way.
    std::string got;
    while (got.size() < 4) {
      net::ReadResult some = co_await in.read_some(4 - got.size(), 5s);
      if (!some) break;
      CHECK(some.data.size() <= 4);
      got.append(some.data);
    }
    CHECK(got == "abcd");
    got += in.take_buffered();
    CHECK(in.buffered() == 0);
    while (got.size() < 10) {
      net::ReadResult some = co_await in.read_some(BufferedReader::kNoLimit, 5s);
      if (!some) break;
      got.append(some.data);
    }
    CHECK(got == "abcdefghij");
    CHECK(in.buffered() == 0);
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: a timed-out or cancelled read loses no bytes",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    REQUIRE_FALSE(p.client.set_nodelay(true));
    BufferedReader in(p.server);

    net::SendResult w1 = co_await p.client.send_all("abc", 5s);
    REQUIRE(w1);
    const TimePoint t0 = Clock::now();
    net::ReadResult t = co_await in.read_line(100, 50ms);
    CHECK(t.error == std::errc::timed_out);
    CHECK(ms_since(t0) >= 45);
    CHECK(in.buffered() == 3);

    // with_timeout gives the same shape.
    net::ReadResult t2 = co_await coring::with_timeout(20ms, in.read_line(100));
    CHECK(t2.error == std::errc::timed_out);

    // A read cancelled mid-line: its bytes stay for the next read.
    auto reading = coring::spawn(read_line_of(&in, 100, coring::kNoTimeout));
    co_await coring::sleep_for(5ms);
    net::SendResult w2 = co_await p.client.send_all("def", 5s);
    REQUIRE(w2);
    auto six_buffered = [&] { return in.buffered() == 6; };  // read by the task to be cancelled
    const bool arrived = co_await eventually(six_buffered, 2s);
    CHECK(arrived);
    // A second reader meanwhile is refused.
    bool refused = false;
    try {
      net::ReadResult clash = co_await in.read_line(100, 10ms);
      (void)clash;
    } catch (const std::logic_error&) {
      refused = true;
    }
    CHECK(refused);
    reading.cancel();
    coring::Outcome<net::ReadResult> o = co_await reading.join();
    CHECK(o.cancelled());

    net::SendResult w3 = co_await p.client.send_all("ghi\n", 5s);
    REQUIRE(w3);
    net::ReadResult line = co_await in.read_line(100, 5s);
    CHECK(line);
    CHECK(line.data == "abcdefghi");
  };
  coring::run(body());
}

TEST_CASE("BufferedReader: destroyed under a suspended read, the read throws logic_error",
          "[net][buffered_reader]") {
  auto body = []() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::loopback_v4(0));
    Pair p = co_await make_pair(&listener);
    auto in = std::make_unique<BufferedReader>(p.server);
    auto reading = coring::spawn(read_line_of(in.get(), 100, 5s));
    co_await coring::sleep_for(5ms);
    in.reset();  // a bug, reported on stderr
    net::SendResult w = co_await p.client.send_all("wake\n", 5s);
    REQUIRE(w);
    coring::Outcome<net::ReadResult> o = co_await reading.join();
    REQUIRE(o.failed());
    bool logic_error = false;
    try {
      std::rethrow_exception(o.error());
    } catch (const std::logic_error&) {
      logic_error = true;
    }
    CHECK(logic_error);
  };
  coring::run(body());
}
