// http_get: a small HTTP/1.0 GET client on the event loop.
//
//   net::HttpResponse r = co_await net::http_get("127.0.0.1:8080", "/index.html", 5s);
//   if (!r) { fmt::print("{}\n", r.error.message()); co_return; }  // "Connection refused"...
//   fmt::print("{} {} bytes\n", r.status, r.body.size());
//
// One request per connection: connect, send "GET <path> HTTP/1.0" with a Host
// header, read the status line and the headers with a BufferedReader, then the
// body: Content-Length bytes when the server gives a length, else up to EOF.
// No body is read for 1xx, 204 and 304. The connection is closed afterwards.
//
// Addresses are numeric (Address::parse: "a.b.c.d:port", "[v6]:port"); there
// is no DNS here (Address::resolve blocks: call it yourself beforehand).
//
// Outcomes are values: a response with a status (any status, 404 included, is a
// response), or `error` set and the fields filled as far as they got:
//   std::errc::connection_refused (nothing listens), timed_out (the whole
//   request took longer than `timeout`), connection_reset, ...;
//   HttpErrc::bad_address, bad_path, malformed_status_line, malformed_header,
//   headers_too_large, body_too_large, truncated (EOF before the headers ended
//   or before Content-Length bytes came), unsupported_encoding (a chunked or
//   otherwise encoded body: HTTP/1.0 servers should not send one).
// HttpLimits bounds what a response may hold in memory.
//
// Cancel-safety: cancelling the awaiting task unwinds http_get at its current
// step and closes the connection; nothing else is left behind. Destruction: a
// response owns its strings. Thread-safety: on the loop's thread, like every
// net operation; any number of http_get may run at once on one loop.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/net/address.hpp"
#include "coring/net/tcp_stream.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

// HTTP-level failures of http_get (network errors are std::errc values).
enum class HttpErrc {
  bad_address = 1,        // the "host:port" text is not a numeric address
  bad_path,               // the path does not start with '/' or holds spaces or controls
  malformed_status_line,  // not "HTTP/1.x NNN reason"
  malformed_header,       // a header line without "name:"; a bad Content-Length
  headers_too_large,      // status line + headers past HttpLimits::max_header_bytes
  body_too_large,         // body past HttpLimits::max_body_bytes
  truncated,              // EOF before the headers ended or the body was complete
  unsupported_encoding,   // Transfer-Encoding other than identity
};

const std::error_category& http_category() noexcept;
inline std::error_code make_error_code(HttpErrc e) noexcept {
  return {static_cast<int>(e), http_category()};
}

struct HttpLimits {
  std::size_t max_header_bytes = 64 * 1024;  // status line and every header line
  std::size_t max_headers = 100;
  std::size_t max_body_bytes = 16 * 1024 * 1024;
};

struct HttpHeader {
  std::string name;   // as sent
  std::string value;  // without surrounding blanks
};

struct [[nodiscard]] HttpResponse {
  int status = 0;  // 0 until a status line was read
  std::string reason;
  std::vector<HttpHeader> headers;
  std::string body;
  std::error_code error;

  // A whole response came (whatever its status).
  explicit operator bool() const noexcept { return !error; }
  // The first header named `name` (ASCII case-insensitive), if any.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept;

  // How a request that timed out reports (see with_timeout).
  static HttpResponse timed_out() {
    HttpResponse r;
    r.error = std::make_error_code(std::errc::timed_out);
    return r;
  }
};

// GET `path` from the server at `address`; `timeout` bounds the whole exchange.
Task<HttpResponse> http_get(Address address, std::string path, Duration timeout = kNoTimeout,
                            HttpLimits limits = {});
// As above, with a numeric "host:port" (HttpErrc::bad_address otherwise).
Task<HttpResponse> http_get(std::string_view host_and_port, std::string path,
                            Duration timeout = kNoTimeout, HttpLimits limits = {});

}  // namespace coring::net

template <>
struct std::is_error_code_enum<coring::net::HttpErrc> : std::true_type {};
