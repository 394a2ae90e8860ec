// Address: an IPv4 or IPv6 socket address (host and port), parsed from text with
// errors that say what is wrong, and formatted with fmt.
//
//   Address::parse("127.0.0.1:15000")      // IPv4
//   Address::parse("[::1]:8080")           // IPv6 needs brackets when a port follows
//   Address::parse("::1", 8080)            // host and port apart: brackets optional
//   Address::resolve("localhost", 80)      // names go through getaddrinfo (blocking)
//
// parse() never touches the network or DNS: it accepts numeric hosts only and
// throws AddressError for anything else, naming the input and the problem
// ("256.1.1.1:80": octet 256 is out of range 0-255; "127.0.0.1": missing port;
// "example.com:80": not a numeric address, use Address::resolve). try_parse()
// reports the same message through `error` instead of throwing. resolve() is the
// one function that may block (it calls getaddrinfo): call it before the loop
// starts serving, or from a thread of your own.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace coring::net {

// Thrown for text that is not a valid address, or a name that does not resolve.
class AddressError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Address {
 public:
  // An unspecified address (family() == AF_UNSPEC); not usable for bind/connect.
  Address() noexcept;

  static Address loopback_v4(std::uint16_t port = 0) noexcept;  // 127.0.0.1
  static Address loopback_v6(std::uint16_t port = 0) noexcept;  // ::1
  static Address any_v4(std::uint16_t port = 0) noexcept;       // 0.0.0.0
  static Address any_v6(std::uint16_t port = 0) noexcept;       // ::

  // "a.b.c.d:port" or "[v6]:port" (port 0-65535, decimal).
  static Address parse(std::string_view host_and_port);
  // A numeric host ("a.b.c.d", "v6" or "[v6]") and a port.
  static Address parse(std::string_view host, std::uint16_t port);
  // As parse(), but returns nullopt and, if `error` is not null, the message.
  static std::optional<Address> try_parse(std::string_view host_and_port,
                                          std::string* error = nullptr);
  // Numeric hosts as parse(); anything else is looked up with getaddrinfo
  // (blocking), preferring IPv4. Throws AddressError naming the host when the
  // name is unknown.
  static Address resolve(std::string_view host, std::uint16_t port);

  // From a kernel-filled sockaddr (accept, getsockname). AF_INET/AF_INET6 only;
  // anything else gives an unspecified Address.
  static Address from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;

  [[nodiscard]] int family() const noexcept { return storage_.ss_family; }
  [[nodiscard]] bool is_v4() const noexcept { return family() == AF_INET; }
  [[nodiscard]] bool is_v6() const noexcept { return family() == AF_INET6; }
  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] Address with_port(std::uint16_t port) const noexcept;

  // The host alone: "127.0.0.1", "::1".
  [[nodiscard]] std::string host() const;
  // "127.0.0.1:80", "[::1]:80"; "unspecified" for an unspecified address.
  [[nodiscard]] std::string to_string() const;

  [[nodiscard]] const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  [[nodiscard]] socklen_t sockaddr_len() const noexcept;

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage storage_;
};

}  // namespace coring::net

// "{}" only. Inheriting formatter<std::string_view> would also give width and
// fill, but its parse() trips a GCC 12 -Wstringop-overflow false positive in
// fmt 9 at -O3, which breaks -Werror release builds of every user.
template <>
struct fmt::formatter<coring::net::Address> {
  constexpr auto parse(fmt::format_parse_context& ctx) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') throw fmt::format_error("Address takes no format spec");
    return it;
  }
  template <class FormatContext>
  auto format(const coring::net::Address& a, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "{}", a.to_string());
  }
};
