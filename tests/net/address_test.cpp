// Address: parsing (and its error messages), formatting, sockaddr conversion,
// equality, and resolve() limited to names that never leave this machine
// ("localhost" from /etc/hosts, and the reserved ".invalid" TLD of RFC 6761).
#include <catch2/catch.hpp>
#include <coring/net/address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

#include <fmt/format.h>

using Catch::Contains;
using coring::net::Address;
using coring::net::AddressError;

namespace {

sockaddr_in raw_v4(const Address& a) {
  REQUIRE(a.is_v4());
  REQUIRE(a.sockaddr_len() == sizeof(sockaddr_in));
  sockaddr_in sin;
  std::memcpy(&sin, a.sockaddr_ptr(), sizeof sin);
  return sin;
}

sockaddr_in6 raw_v6(const Address& a) {
  REQUIRE(a.is_v6());
  REQUIRE(a.sockaddr_len() == sizeof(sockaddr_in6));
  sockaddr_in6 sin6;
  std::memcpy(&sin6, a.sockaddr_ptr(), sizeof sin6);
  return sin6;
}

// Closes the socket even when a REQUIRE bails out of the test.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

static_assert(std::is_base_of_v<std::invalid_argument, AddressError>);

TEST_CASE("Address: IPv4 text round-trips and lands in the sockaddr", "[net][address]") {
  const Address a = Address::parse("127.0.0.1:15000");
  CHECK(a.family() == AF_INET);
  CHECK(a.port() == 15000);
  CHECK(a.host() == "127.0.0.1");
  CHECK(a.to_string() == "127.0.0.1:15000");

  const sockaddr_in sin = raw_v4(a);
  CHECK(sin.sin_family == AF_INET);
  CHECK(sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  CHECK(sin.sin_port == htons(15000));

  for (const char* text : {"0.0.0.0:0", "255.255.255.255:65535", "10.1.2.3:80", "1.2.3.4:080"}) {
    INFO(text);
    const Address b = Address::parse(text);
    CHECK(b.is_v4());
    CHECK(Address::parse(b.to_string()) == b);
  }
  CHECK(Address::parse("255.255.255.255:65535").to_string() == "255.255.255.255:65535");
  // A leading zero in a port is still decimal (no octal for ports).
  CHECK(Address::parse("1.2.3.4:080").port() == 80);
}

TEST_CASE("Address: port is stored in network byte order", "[net][address]") {
  // 258 = 0x0102: the first byte on the wire must be 0x01.
  const Address a = Address::parse("1.2.3.4:258");
  const sockaddr_in sin = raw_v4(a);
  unsigned char bytes[2];
  std::memcpy(bytes, &sin.sin_port, 2);
  CHECK(bytes[0] == 0x01);
  CHECK(bytes[1] == 0x02);
  CHECK(a.port() == 258);

  const unsigned char expected_addr[4] = {1, 2, 3, 4};
  CHECK(std::memcmp(&sin.sin_addr, expected_addr, 4) == 0);
}

TEST_CASE("Address: IPv6 text round-trips in brackets", "[net][address]") {
  const Address a = Address::parse("[::1]:8080");
  CHECK(a.family() == AF_INET6);
  CHECK(a.port() == 8080);
  CHECK(a.host() == "::1");
  CHECK(a.to_string() == "[::1]:8080");
  const sockaddr_in6 sin6 = raw_v6(a);
  CHECK(sin6.sin6_family == AF_INET6);
  CHECK(std::memcmp(&sin6.sin6_addr, &in6addr_loopback, sizeof(in6_addr)) == 0);
  CHECK(sin6.sin6_port == htons(8080));
  CHECK(sin6.sin6_scope_id == 0);

  CHECK(Address::parse("[::]:0").to_string() == "[::]:0");
  CHECK(Address::parse("[2001:db8::1]:443").to_string() == "[2001:db8::1]:443");
  // Output is canonical (RFC 5952), not an echo of the input.
  CHECK(Address::parse("[2001:DB8:0:0:0:0:0:1]:80").to_string() == "[2001:db8::1]:80");
  CHECK(Address::parse("[::ffff:1.2.3.4]:80").to_string() == "[::ffff:1.2.3.4]:80");
  CHECK(Address::parse("[::ffff:1.2.3.4]:80").is_v6());
}

TEST_CASE("Address: IPv6 zone is kept, printed numerically and parsed back", "[net][address]") {
  const Address a = Address::parse("[fe80::1%2]:80");
  CHECK(raw_v6(a).sin6_scope_id == 2);
  CHECK(a.host() == "fe80::1%2");
  CHECK(a.to_string() == "[fe80::1%2]:80");
  CHECK(Address::parse(a.to_string()) == a);
  CHECK(a != Address::parse("[fe80::1]:80"));
  CHECK(a != Address::parse("[fe80::1%3]:80"));

  // "lo" exists on every Linux machine; its index is whatever the kernel says.
  const Address lo = Address::parse("[fe80::1%lo]:80");
  CHECK(raw_v6(lo).sin6_scope_id != 0);
}

TEST_CASE("Address: host and port given apart", "[net][address]") {
  CHECK(Address::parse("127.0.0.1", 80) == Address::parse("127.0.0.1:80"));
  CHECK(Address::parse("::1", 80) == Address::parse("[::1]:80"));
  CHECK(Address::parse("[::1]", 80) == Address::parse("[::1]:80"));
  CHECK(Address::parse("0.0.0.0", 65535).to_string() == "0.0.0.0:65535");
  CHECK(Address::parse("fe80::1%7", 1).to_string() == "[fe80::1%7]:1");
}

TEST_CASE("Address: parse errors quote the input and say what is wrong", "[net][address]") {
  CHECK_THROWS_AS(Address::parse("256.1.1.1:80"), AddressError);
  CHECK_THROWS_AS(Address::parse("256.1.1.1:80"), std::invalid_argument);

  CHECK_THROWS_WITH(Address::parse("256.1.1.1:80"),
                    Contains("\"256.1.1.1:80\": octet 256 is out of range 0-255"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.1000:80"), Contains("octet 1000 is out of range 0-255"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.99999999999999999999:80"),
                    Contains("octet 99999999999999999999 is out of range 0-255"));
  CHECK_THROWS_WITH(Address::parse("010.0.0.1:80"), Contains("octet \"010\" has a leading zero"));
  CHECK_THROWS_WITH(Address::parse("1.2.3:80"),
                    Contains("\"1.2.3\" is not a valid IPv4 address (expected four"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.4.5:80"),
                    Contains("\"1.2.3.4.5\" is not a valid IPv4 address"));
  CHECK_THROWS_WITH(Address::parse("1..3.4:80"), Contains("\"1..3.4\" has an empty octet"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.4.:80"), Contains("has an empty octet"));

  CHECK_THROWS_WITH(Address::parse("127.0.0.1"),
                    Contains("\"127.0.0.1\": missing port (expected host:port)"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:"),
                    Contains("\"127.0.0.1:\": missing port after ':'"));
  CHECK_THROWS_WITH(Address::parse("[::1]"), Contains("\"[::1]\": missing port"));
  CHECK_THROWS_WITH(Address::parse("[::1]:"), Contains("missing port after ':'"));
  CHECK_THROWS_WITH(Address::parse("::1"), Contains("\"::1\": missing port"));
  CHECK_THROWS_WITH(Address::parse(":80"), Contains("\":80\": missing host before ':'"));

  CHECK_THROWS_WITH(Address::parse("127.0.0.1:70000"),
                    Contains("\"127.0.0.1:70000\": port 70000 is out of range 0-65535"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:65536"),
                    Contains("port 65536 is out of range 0-65535"));
  // 2^64 + 80 and 2^64 + 1: a parser that wraps around would accept these.
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:18446744073709551696"),
                    Contains("port 18446744073709551696 is out of range"));
  CHECK_THROWS_WITH(Address::parse("1.18446744073709551617.1.1:80"),
                    Contains("octet 18446744073709551617 is out of range"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:123456789012345678901234567890"),
                    Contains("port 123456789012345678901234567890 is out of range"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:8x"),
                    Contains("\"127.0.0.1:8x\": port \"8x\" is not a decimal number"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:-1"),
                    Contains("port \"-1\" is not a decimal number"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:+80"),
                    Contains("port \"+80\" is not a decimal number"));
  CHECK_THROWS_WITH(Address::parse("[::1]:http"),
                    Contains("port \"http\" is not a decimal number"));

  CHECK_THROWS_WITH(
      Address::parse("::1:80"),
      Contains("\"::1:80\": IPv6 address with a port must be in brackets, e.g. \"[::1]:80\""));
  CHECK_THROWS_WITH(Address::parse("2001:db8::1:443"),
                    Contains("must be in brackets, e.g. \"[2001:db8::1]:443\""));
  CHECK_THROWS_WITH(Address::parse("1:2:zz:80"), Contains("\"1:2:zz:80\": not a valid address"));

  CHECK_THROWS_WITH(Address::parse("example.com:80"),
                    Contains("\"example.com:80\": \"example.com\" is not a numeric IPv4 or IPv6 "
                             "address (use Address::resolve for host names)"));
  CHECK_THROWS_WITH(Address::parse("localhost:80"), Contains("use Address::resolve"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.4x:80"),
                    Contains("\"1.2.3.4x\" is not a numeric IPv4 or IPv6 address"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.4/8:80"),
                    Contains("\"1.2.3.4/8\" is not a valid IPv4 or IPv6 address"));

  CHECK_THROWS_WITH(Address::parse(""), Contains("\"\": empty address"));
  CHECK_THROWS_WITH(Address::parse("[::1:80"),
                    Contains("\"[::1:80\": missing closing bracket ']'"));
  CHECK_THROWS_WITH(Address::parse("::1]:80"), Contains("misplaced bracket"));
  CHECK_THROWS_WITH(Address::parse("1.2.3.4[:80"), Contains("misplaced bracket"));
  CHECK_THROWS_WITH(Address::parse("[::1]80"), Contains("unexpected \"80\" after ']'"));
  CHECK_THROWS_WITH(Address::parse("[]:80"), Contains("missing IPv6 address inside brackets"));
  CHECK_THROWS_WITH(Address::parse("[::g]:80"),
                    Contains("\"[::g]:80\": \"::g\" is not a valid IPv6 address"));
  CHECK_THROWS_WITH(Address::parse("[1.2.3.4]:80"),
                    Contains("\"1.2.3.4\" is an IPv4 address; brackets are for IPv6 only"));
  CHECK_THROWS_WITH(Address::parse("[fe80::1%]:80"), Contains("empty IPv6 zone"));
  CHECK_THROWS_WITH(Address::parse("[fe80::1%no-such-if0]:80"),
                    Contains("unknown network interface \"no-such-if0\""));
  CHECK_THROWS_WITH(Address::parse("[fe80::1%4294967296]:80"),
                    Contains("IPv6 zone 4294967296 is out of range"));

  CHECK_THROWS_WITH(Address::parse(" 127.0.0.1:80"),
                    Contains("\" 127.0.0.1:80\": leading or trailing whitespace"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:80 "), Contains("leading or trailing whitespace"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:80\n"),
                    Contains("\"127.0.0.1:80\\n\": leading or trailing whitespace"));
  CHECK_THROWS_WITH(Address::parse("127.0.0.1: 80"), Contains("port \" 80\" is not a decimal"));
  CHECK_THROWS_WITH(Address::parse(std::string_view("1.2.3.4:8\0", 10)),
                    Contains("contains a NUL character"));
}

TEST_CASE("Address: two-argument parse errors name the host", "[net][address]") {
  CHECK_THROWS_WITH(Address::parse("", 80), Contains("\"\": empty host"));
  CHECK_THROWS_WITH(Address::parse("256.0.0.1", 80), Contains("octet 256 is out of range 0-255"));
  CHECK_THROWS_WITH(Address::parse("[::1", 80), Contains("missing closing bracket"));
  CHECK_THROWS_WITH(Address::parse("[::1]:80", 80),
                    Contains("unexpected \":80\" after ']' (the port is passed separately)"));
  CHECK_THROWS_WITH(Address::parse(" ::1", 80), Contains("leading or trailing whitespace"));
  CHECK_THROWS_WITH(Address::parse("1:2:zz", 80),
                    Contains("\"1:2:zz\": \"1:2:zz\" is not a valid IPv6 address"));
  CHECK_THROWS_WITH(Address::parse("example.com", 80),
                    Contains("is not a numeric IPv4 or IPv6 address (use Address::resolve"));
  // With host and port apart, a host that still carries a v4 port is an error.
  CHECK_THROWS_WITH(Address::parse("127.0.0.1:80", 80), Contains("not a valid IPv6 address"));
}

TEST_CASE("Address: try_parse returns nullopt with parse's message", "[net][address]") {
  std::string error = "untouched";
  const std::optional<Address> ok = Address::try_parse("10.0.0.1:9", &error);
  REQUIRE(ok.has_value());
  CHECK(*ok == Address::parse("10.0.0.1:9"));

  for (const char* bad : {"256.1.1.1:80", "127.0.0.1", "::1:80", "", "[::1:80", "a.b:1"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(Address::try_parse(bad, &error).has_value());
    std::string thrown;
    try {
      (void)Address::parse(bad);
    } catch (const AddressError& e) {
      thrown = e.what();
    }
    CHECK_FALSE(error.empty());
    CHECK(error == thrown);
  }

  // A null error pointer is allowed.
  CHECK_FALSE(Address::try_parse("nonsense").has_value());
  CHECK(Address::try_parse("[::1]:1").has_value());
}

TEST_CASE("Address: resolve of localhost comes from /etc/hosts as IPv4", "[net][address]") {
  // Where /etc/hosts also maps localhost to ::1 (the Debian default), this
  // also checks that IPv4 is preferred.
  const Address a = Address::resolve("localhost", 80);
  CHECK(a == Address::parse("127.0.0.1:80"));
  CHECK(a.to_string() == "127.0.0.1:80");
}

TEST_CASE("Address: resolve of a numeric host does not look it up", "[net][address]") {
  CHECK(Address::resolve("10.0.0.1", 8080) == Address::parse("10.0.0.1:8080"));
  CHECK(Address::resolve("::1", 1) == Address::parse("[::1]:1"));
  CHECK(Address::resolve("[::1]", 2) == Address::parse("[::1]:2"));
  // A malformed numeric host gets parse()'s precise message, not a DNS error.
  CHECK_THROWS_WITH(Address::resolve("256.1.1.1", 80), Contains("octet 256 is out of range"));
  CHECK_THROWS_WITH(Address::resolve("", 80), Contains("empty host"));
}

TEST_CASE("Address: resolve of an unknown name throws naming the host", "[net][address]") {
  // ".invalid" is reserved (RFC 6761) and never resolves; on this machine the
  // lookup fails in milliseconds. The reason text comes from gai_strerror and
  // varies with the resolver setup, so only its presence is checked.
  try {
    (void)Address::resolve("no-such-host.invalid", 80);
    FAIL("resolve of a .invalid name succeeded");
  } catch (const AddressError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Contains("cannot resolve host \"no-such-host.invalid\": "));
    CHECK(what.size() > std::string("cannot resolve host \"no-such-host.invalid\": ").size());
  }
}

TEST_CASE("Address: from_sockaddr reads what getsockname reports", "[net][address]") {
  Fd sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  REQUIRE(sock.fd >= 0);
  const Address want = Address::loopback_v4(0);
  REQUIRE(::bind(sock.fd, want.sockaddr_ptr(), want.sockaddr_len()) == 0);

  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  const Address got = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  CHECK(got.is_v4());
  CHECK(got.host() == "127.0.0.1");
  CHECK(got.port() != 0);
  CHECK(got.port() == ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port));
  CHECK(got == Address::loopback_v4(got.port()));
}

TEST_CASE("Address: from_sockaddr of an IPv6 socket", "[net][address]") {
  Fd sock{::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  const Address want = Address::loopback_v6(0);
  if (sock.fd < 0 || ::bind(sock.fd, want.sockaddr_ptr(), want.sockaddr_len()) != 0) {
    WARN("IPv6 loopback unavailable here (errno " << errno << "); skipping");
    return;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  const Address got = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  CHECK(got.is_v6());
  CHECK(got.port() != 0);
  CHECK(got.to_string() == fmt::format("[::1]:{}", got.port()));
}

TEST_CASE("Address: from_sockaddr rejects other families and short lengths", "[net][address]") {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  CHECK(Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), sizeof ss).family() ==
        AF_UNSPEC);
  CHECK(Address::from_sockaddr(nullptr, 0).family() == AF_UNSPEC);

  const Address v4 = Address::parse("1.2.3.4:5");
  CHECK(Address::from_sockaddr(v4.sockaddr_ptr(), v4.sockaddr_len()) == v4);
  CHECK(Address::from_sockaddr(v4.sockaddr_ptr(), v4.sockaddr_len() - 1).family() == AF_UNSPEC);
  const Address v6 = Address::parse("[::1]:5");
  CHECK(Address::from_sockaddr(v6.sockaddr_ptr(), v6.sockaddr_len()) == v6);
  CHECK(Address::from_sockaddr(v6.sockaddr_ptr(), sizeof(sockaddr_in)).family() == AF_UNSPEC);
}

TEST_CASE("Address: unspecified, factories and with_port", "[net][address]") {
  const Address none;
  CHECK(none.family() == AF_UNSPEC);
  CHECK_FALSE(none.is_v4());
  CHECK_FALSE(none.is_v6());
  CHECK(none.port() == 0);
  CHECK(none.sockaddr_len() == 0);
  CHECK(none.to_string() == "unspecified");
  CHECK(none.with_port(80).family() == AF_UNSPEC);
  CHECK(none.with_port(80).port() == 0);

  CHECK(Address::loopback_v4(80) == Address::parse("127.0.0.1:80"));
  CHECK(Address::loopback_v6(80) == Address::parse("[::1]:80"));
  CHECK(Address::any_v4(81) == Address::parse("0.0.0.0:81"));
  CHECK(Address::any_v6(82) == Address::parse("[::]:82"));
  CHECK(Address::loopback_v4().port() == 0);

  const Address a = Address::parse("10.0.0.1:1");
  const Address b = a.with_port(65535);
  CHECK(b == Address::parse("10.0.0.1:65535"));
  CHECK(a.port() == 1);  // with_port copies
  CHECK(Address::parse("[fe80::1%2]:1").with_port(2) == Address::parse("[fe80::1%2]:2"));
}

TEST_CASE("Address: equality compares family, address, port", "[net][address]") {
  const Address a = Address::parse("127.0.0.1:80");
  CHECK(a == Address::parse("127.0.0.1:80"));
  CHECK(a != Address::parse("127.0.0.1:81"));
  CHECK(a != Address::parse("127.0.0.2:80"));
  CHECK(a != Address::parse("[::ffff:127.0.0.1]:80"));
  CHECK(a != Address());
  CHECK(Address() == Address());

  const Address b = Address::parse("[2001:db8::1]:80");
  CHECK(b == Address::parse("[2001:db8:0::1]:80"));
  CHECK(b != Address::parse("[2001:db8::2]:80"));
  CHECK(b != Address::parse("[2001:db8::1]:81"));
}

TEST_CASE("Address: fmt formatting", "[net][address]") {
  CHECK(fmt::format("{}", Address::parse("127.0.0.1:80")) == "127.0.0.1:80");
  CHECK(fmt::format("{}", Address::parse("[::1]:80")) == "[::1]:80");
  CHECK(fmt::format("{}", Address()) == "unspecified");
  CHECK(fmt::format("peer {} closed", Address::parse("[fe80::1%2]:7")) ==
        "peer [fe80::1%2]:7 closed");
  // Only "{}" is accepted; a literal spec is a compile error, a runtime one throws.
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:>12}"), Address()), fmt::format_error);
}
