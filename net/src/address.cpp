#include "coring/net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

#include <fmt/format.h>

namespace coring::net {
namespace {

// Parsing works on error strings rather than exceptions so that try_parse() and
// parse() share one code path and report byte-for-byte the same message.
using Error = std::string;

// "{:?}" escapes quotes and control characters, so a stray '\n' or '"' in the
// input shows up in the message instead of mangling it.
std::string quoted(std::string_view s) {
  return fmt::format("{:?}", s);
}

Error fail(std::string_view input, std::string_view problem) {
  return fmt::format("{}: {}", quoted(input), problem);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool all_digits(std::string_view s) {
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return !s.empty();
}

// Accumulates at most up to `limit + 1`, so arbitrarily long digit strings
// cannot overflow; callers compare against `limit`.
std::uint64_t saturating_decimal(std::string_view digits, std::uint64_t limit) {
  std::uint64_t value = 0;
  for (char c : digits) {
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
    if (value > limit) return limit + 1;
  }
  return value;
}

Address from_v4(const in_addr& addr, std::uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr = addr;
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
}

Address from_v6(const in6_addr& addr, std::uint32_t scope_id, std::uint16_t port) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_addr = addr;
  sin6.sin6_scope_id = scope_id;
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
}

// Reads through memcpy: sockaddr_storage is not declared as sockaddr_in, so a
// copy keeps clear of aliasing questions at no measurable cost.
sockaddr_in as_v4(const sockaddr* sa) {
  sockaddr_in sin;
  std::memcpy(&sin, sa, sizeof sin);
  return sin;
}
sockaddr_in6 as_v6(const sockaddr* sa) {
  sockaddr_in6 sin6;
  std::memcpy(&sin6, sa, sizeof sin6);
  return sin6;
}

Error parse_port(std::string_view input, std::string_view text, std::uint16_t* port) {
  if (text.empty()) return fail(input, "missing port after ':'");
  if (!all_digits(text)) {
    return fail(input, fmt::format("port {} is not a decimal number", quoted(text)));
  }
  constexpr std::uint64_t kMax = 65535;
  if (saturating_decimal(text, kMax) > kMax) {
    return fail(input, fmt::format("port {} is out of range 0-65535", text));
  }
  *port = static_cast<std::uint16_t>(saturating_decimal(text, kMax));
  return {};
}

// Own checks before inet_pton so the message can say which octet is wrong;
// leading zeros are refused because inet_aton() and friends read them as octal,
// so "010.0.0.1" means 8.0.0.1 to some tools and 10.0.0.1 to others.
Error parse_v4(std::string_view input, std::string_view host, in_addr* out) {
  int count = 0;
  std::string_view rest = host;
  while (true) {
    const auto dot = rest.find('.');
    const std::string_view octet = rest.substr(0, dot);
    ++count;
    if (octet.empty()) return fail(input, fmt::format("{} has an empty octet", quoted(host)));
    if (count <= 4) {
      if (saturating_decimal(octet, 255) > 255) {
        return fail(input, fmt::format("octet {} is out of range 0-255", octet));
      }
      if (octet.size() > 1 && octet[0] == '0') {
        return fail(input, fmt::format("octet {} has a leading zero (octal is not accepted)",
                                       quoted(octet)));
      }
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (count != 4) {
    return fail(input, fmt::format("{} is not a valid IPv4 address (expected four decimal "
                                   "octets a.b.c.d)",
                                   quoted(host)));
  }
  const std::string text(host);
  if (::inet_pton(AF_INET, text.c_str(), out) != 1) {
    return fail(input, fmt::format("{} is not a valid IPv4 address", quoted(host)));
  }
  return {};
}

// Accepts an optional zone ("fe80::1%2", "fe80::1%eth0"), which inet_pton does
// not: link-local addresses are meaningless without one.
Error parse_v6(std::string_view input, std::string_view host, in6_addr* out,
               std::uint32_t* scope_id) {
  *scope_id = 0;
  const auto percent = host.find('%');
  const std::string_view bare = host.substr(0, percent);
  const std::string text(bare);
  if (::inet_pton(AF_INET6, text.c_str(), out) != 1) {
    return fail(input, fmt::format("{} is not a valid IPv6 address", quoted(host)));
  }
  if (percent == std::string_view::npos) return {};
  const std::string_view zone = host.substr(percent + 1);
  if (zone.empty()) return fail(input, "empty IPv6 zone after '%'");
  if (all_digits(zone)) {
    constexpr std::uint64_t kMax = 0xffffffff;
    if (saturating_decimal(zone, kMax) > kMax) {
      return fail(input, fmt::format("IPv6 zone {} is out of range", zone));
    }
    *scope_id = static_cast<std::uint32_t>(saturating_decimal(zone, kMax));
    return {};
  }
  const std::string name(zone);
  const unsigned index = zone.size() < IF_NAMESIZE ? ::if_nametoindex(name.c_str()) : 0;
  if (index == 0) {
    return fail(input, fmt::format("unknown network interface {} in IPv6 zone", quoted(zone)));
  }
  *scope_id = index;
  return {};
}

bool valid_v6(std::string_view host) {
  in6_addr addr;
  std::uint32_t scope;
  return parse_v6({}, host, &addr, &scope).empty();
}

enum class HostKind { kIPv4, kIPv6, kName, kOther };

// Decides which parser owns a host so that e.g. "256.1.1.1" gets the octet
// message rather than being mistaken for a name (and sent to DNS by resolve).
HostKind classify(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return HostKind::kIPv6;
  bool digits_and_dots = true;
  bool name_chars = true;
  for (char c : host) {
    if (!is_digit(c) && c != '.') digits_and_dots = false;
    if (!is_digit(c) && !is_alpha(c) && c != '.' && c != '-' && c != '_') name_chars = false;
  }
  if (digits_and_dots) return HostKind::kIPv4;
  if (name_chars) return HostKind::kName;
  return HostKind::kOther;
}

// A bare host (no brackets, no port) as found in either parse() form.
Error parse_unbracketed_host(std::string_view input, std::string_view host, std::uint16_t port,
                             Address* out) {
  switch (classify(host)) {
    case HostKind::kIPv4: {
      in_addr addr;
      if (auto err = parse_v4(input, host, &addr); !err.empty()) return err;
      *out = from_v4(addr, port);
      return {};
    }
    case HostKind::kIPv6: {
      in6_addr addr;
      std::uint32_t scope_id;
      if (auto err = parse_v6(input, host, &addr, &scope_id); !err.empty()) return err;
      *out = from_v6(addr, scope_id, port);
      return {};
    }
    case HostKind::kName:
      return fail(input, fmt::format("{} is not a numeric IPv4 or IPv6 address (use "
                                     "Address::resolve for host names)",
                                     quoted(host)));
    case HostKind::kOther:
      break;
  }
  return fail(input, fmt::format("{} is not a valid IPv4 or IPv6 address", quoted(host)));
}

Error parse_bracketed_host(std::string_view input, std::string_view inner, std::uint16_t port,
                           Address* out) {
  if (inner.empty()) return fail(input, "missing IPv6 address inside brackets");
  if (inner.find(':') == std::string_view::npos) {
    // Usually an IPv4 address someone bracketed out of habit; say so.
    in_addr v4;
    if (classify(inner) == HostKind::kIPv4 && parse_v4(input, inner, &v4).empty()) {
      return fail(input,
                  fmt::format("{} is an IPv4 address; brackets are for IPv6 only", quoted(inner)));
    }
  }
  in6_addr addr;
  std::uint32_t scope_id;
  if (auto err = parse_v6(input, inner, &addr, &scope_id); !err.empty()) return err;
  *out = from_v6(addr, scope_id, port);
  return {};
}

Error check_common(std::string_view input, std::string_view what) {
  if (input.empty()) return fail(input, fmt::format("empty {}", what));
  if (is_space(input.front()) || is_space(input.back())) {
    return fail(input, "leading or trailing whitespace");
  }
  if (input.find('\0') != std::string_view::npos) return fail(input, "contains a NUL character");
  const auto open = input.find('[');
  if ((open != std::string_view::npos && open != 0) ||
      (open == std::string_view::npos && input.find(']') != std::string_view::npos)) {
    return fail(input, "misplaced bracket (only an IPv6 address goes in brackets, \"[v6]\")");
  }
  return {};
}

Error parse_host_and_port(std::string_view input, Address* out) {
  if (auto err = check_common(input, "address (expected host:port)"); !err.empty()) return err;

  if (input.front() == '[') {
    const auto close = input.find(']');
    if (close == std::string_view::npos) return fail(input, "missing closing bracket ']'");
    const std::string_view inner = input.substr(1, close - 1);
    const std::string_view after = input.substr(close + 1);
    if (after.empty()) {
      return fail(input, fmt::format("missing port (expected \"[{}]:port\")", inner));
    }
    if (after.front() != ':') {
      return fail(input, fmt::format("unexpected {} after ']' (expected ':port')", quoted(after)));
    }
    std::uint16_t port = 0;
    // The host is checked first: its problem is usually the more interesting one.
    Address parsed;
    if (auto err = parse_bracketed_host(input, inner, 0, &parsed); !err.empty()) return err;
    if (auto err = parse_port(input, after.substr(1), &port); !err.empty()) return err;
    *out = parsed.with_port(port);
    return {};
  }

  const auto first_colon = input.find(':');
  if (first_colon == std::string_view::npos) {
    return fail(input, "missing port (expected host:port)");
  }
  const auto last_colon = input.rfind(':');
  if (first_colon != last_colon) {
    // More than one colon: an IPv6 address, which needs brackets to tell its
    // last group from a port ("::1:80" is itself a valid IPv6 address).
    const std::string_view head = input.substr(0, last_colon);
    const std::string_view tail = input.substr(last_colon + 1);
    if (all_digits(tail) && valid_v6(head)) {
      return fail(input, fmt::format("IPv6 address with a port must be in brackets, e.g. "
                                     "\"[{}]:{}\"",
                                     head, tail));
    }
    if (valid_v6(input)) {
      return fail(input, fmt::format("missing port (expected \"[{}]:port\")", input));
    }
    return fail(input, "not a valid address (expected \"a.b.c.d:port\" or \"[v6]:port\")");
  }

  const std::string_view host = input.substr(0, first_colon);
  if (host.empty()) return fail(input, "missing host before ':'");
  Address parsed;
  if (auto err = parse_unbracketed_host(input, host, 0, &parsed); !err.empty()) return err;
  std::uint16_t port = 0;
  if (auto err = parse_port(input, input.substr(first_colon + 1), &port); !err.empty()) {
    return err;
  }
  *out = parsed.with_port(port);
  return {};
}

Error parse_host(std::string_view host, std::uint16_t port, Address* out) {
  if (auto err = check_common(host, "host"); !err.empty()) return err;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return fail(host, "missing closing bracket ']'");
    if (close != host.size() - 1) {
      return fail(host, fmt::format("unexpected {} after ']' (the port is passed separately)",
                                    quoted(host.substr(close + 1))));
    }
    return parse_bracketed_host(host, host.substr(1, close - 1), port, out);
  }
  return parse_unbracketed_host(host, host, port, out);
}

}  // namespace

Address::Address() noexcept : storage_{} {
  storage_.ss_family = AF_UNSPEC;
}

Address Address::loopback_v4(std::uint16_t port) noexcept {
  in_addr addr{};
  addr.s_addr = htonl(INADDR_LOOPBACK);
  return from_v4(addr, port);
}

Address Address::loopback_v6(std::uint16_t port) noexcept {
  return from_v6(in6addr_loopback, 0, port);
}

Address Address::any_v4(std::uint16_t port) noexcept {
  in_addr addr{};
  addr.s_addr = htonl(INADDR_ANY);
  return from_v4(addr, port);
}

Address Address::any_v6(std::uint16_t port) noexcept {
  return from_v6(in6addr_any, 0, port);
}

Address Address::parse(std::string_view host_and_port) {
  Address out;
  if (auto err = parse_host_and_port(host_and_port, &out); !err.empty()) throw AddressError(err);
  return out;
}

Address Address::parse(std::string_view host, std::uint16_t port) {
  Address out;
  if (auto err = parse_host(host, port, &out); !err.empty()) throw AddressError(err);
  return out;
}

std::optional<Address> Address::try_parse(std::string_view host_and_port, std::string* error) {
  Address out;
  if (auto err = parse_host_and_port(host_and_port, &out); !err.empty()) {
    if (error != nullptr) *error = std::move(err);
    return std::nullopt;
  }
  return out;
}

Address Address::resolve(std::string_view host, std::uint16_t port) {
  // Anything that is not plainly a name goes through parse(), so a mistyped
  // numeric address ("256.1.1.1") gets parse()'s precise message and never
  // reaches DNS, where it would come back as a vague "not known".
  if (host.empty() || is_space(host.front()) || is_space(host.back()) ||
      classify(host) != HostKind::kName) {
    return parse(host, port);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  const std::string name(host);
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &raw);
  if (rc != 0) {
    const std::string reason =
        rc == EAI_SYSTEM ? std::system_category().message(errno) : ::gai_strerror(rc);
    throw AddressError(fmt::format("cannot resolve host {}: {}", quoted(host), reason));
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(raw, &::freeaddrinfo);

  const addrinfo* v4 = nullptr;
  const addrinfo* v6 = nullptr;
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && v4 == nullptr) v4 = ai;
    if (ai->ai_family == AF_INET6 && v6 == nullptr) v6 = ai;
  }
  const addrinfo* chosen = v4 != nullptr ? v4 : v6;
  if (chosen == nullptr) {
    throw AddressError(
        fmt::format("cannot resolve host {}: no IPv4 or IPv6 address", quoted(host)));
  }
  return from_sockaddr(chosen->ai_addr, chosen->ai_addrlen).with_port(port);
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  Address out;
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return out;
  // Copies only the size of the family's own struct: a short `len` means the
  // kernel (or caller) truncated it, and reading on would take garbage.
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&out.storage_, sa, sizeof(sockaddr_in));
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&out.storage_, sa, sizeof(sockaddr_in6));
  }
  return out;
}

std::uint16_t Address::port() const noexcept {
  if (is_v4()) return ntohs(as_v4(sockaddr_ptr()).sin_port);
  if (is_v6()) return ntohs(as_v6(sockaddr_ptr()).sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address out = *this;
  if (is_v4()) {
    sockaddr_in sin = as_v4(sockaddr_ptr());
    sin.sin_port = htons(port);
    std::memcpy(&out.storage_, &sin, sizeof sin);
  } else if (is_v6()) {
    sockaddr_in6 sin6 = as_v6(sockaddr_ptr());
    sin6.sin6_port = htons(port);
    std::memcpy(&out.storage_, &sin6, sizeof sin6);
  }
  return out;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    const sockaddr_in sin = as_v4(sockaddr_ptr());
    ::inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
    return buf;
  }
  if (is_v6()) {
    const sockaddr_in6 sin6 = as_v6(sockaddr_ptr());
    ::inet_ntop(AF_INET6, &sin6.sin6_addr, buf, sizeof buf);
    // Numeric zone: it round-trips through parse() even after the interface
    // is renamed or gone, which a name would not.
    if (sin6.sin6_scope_id != 0) return fmt::format("{}%{}", buf, sin6.sin6_scope_id);
    return buf;
  }
  return "unspecified";
}

std::string Address::to_string() const {
  if (is_v4()) return fmt::format("{}:{}", host(), port());
  if (is_v6()) return fmt::format("[{}]:{}", host(), port());
  return "unspecified";
}

socklen_t Address::sockaddr_len() const noexcept {
  if (is_v4()) return sizeof(sockaddr_in);
  if (is_v6()) return sizeof(sockaddr_in6);
  return 0;
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) {
    const sockaddr_in x = as_v4(a.sockaddr_ptr());
    const sockaddr_in y = as_v4(b.sockaddr_ptr());
    return x.sin_addr.s_addr == y.sin_addr.s_addr && x.sin_port == y.sin_port;
  }
  if (a.is_v6()) {
    const sockaddr_in6 x = as_v6(a.sockaddr_ptr());
    const sockaddr_in6 y = as_v6(b.sockaddr_ptr());
    return std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0 &&
           x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id;
  }
  // Unspecified (or a family we do not model) compares by family alone.
  return true;
}

}  // namespace coring::net
