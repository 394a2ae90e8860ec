#include "coring/net/http_client.hpp"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include "coring/net/buffered_reader.hpp"

namespace coring::net {

namespace {

class HttpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coring.http"; }
  std::string message(int e) const override {
    switch (static_cast<HttpErrc>(e)) {
      case HttpErrc::bad_address:
        return "HTTP: not a numeric host:port address (no DNS here)";
      case HttpErrc::bad_path:
        return "HTTP: the path must start with '/' and hold no spaces or control characters";
      case HttpErrc::malformed_status_line:
        return "HTTP: malformed status line (expected \"HTTP/1.x NNN reason\")";
      case HttpErrc::malformed_header:
        return "HTTP: malformed header line";
      case HttpErrc::headers_too_large:
        return "HTTP: response headers too large";
      case HttpErrc::body_too_large:
        return "HTTP: response body too large";
      case HttpErrc::truncated:
        return "HTTP: the connection ended before the response was complete";
      case HttpErrc::unsupported_encoding:
        return "HTTP: unsupported Transfer-Encoding";
    }
    return "HTTP: unknown error";
  }
};

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool valid_path(std::string_view p) noexcept {
  if (p.empty() || p.front() != '/') return false;
  return std::none_of(p.begin(), p.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

// "HTTP/1.x NNN reason" (the reason may be empty, the blank before it too).
bool parse_status_line(std::string_view line, HttpResponse& r) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' ||
      line[8] != ' ') {
    return false;
  }
  const std::string_view code = line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  if (line.size() > 12 && line[12] != ' ') return false;
  r.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (r.status < 100) return false;
  r.reason = std::string(line.size() > 13 ? line.substr(13) : std::string_view());
  return true;
}

bool has_body(int status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

HttpResponse fail(HttpResponse r, std::error_code e) {
  r.error = e;
  return r;
}

// What a read error means for the response: a network error as it is, a line
// too long as headers_too_large, the end of the stream as truncated.
std::error_code header_read_error(const ReadResult& line) {
  if (line.error == std::errc::message_size) return HttpErrc::headers_too_large;
  if (line.error) return line.error;
  return HttpErrc::truncated;
}

Task<HttpResponse> ready(HttpResponse r) {
  co_return r;
}

}  // namespace

const std::error_category& http_category() noexcept {
  static const HttpCategory category;
  return category;
}

std::optional<std::string_view> HttpResponse::header(std::string_view name) const noexcept {
  for (const HttpHeader& h : headers) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

Task<HttpResponse> http_get(Address address, std::string path, Duration timeout,
                            HttpLimits limits) {
  HttpResponse r;
  if (!valid_path(path)) co_return fail(std::move(r), HttpErrc::bad_path);
  const bool timed = timeout != kNoTimeout;
  const TimePoint deadline = timed ? coring::detail::deadline_after(timeout) : TimePoint{};
  auto left = [&]() -> Duration {
    return timed ? std::max(Duration::zero(), deadline - coring::now()) : kNoTimeout;
  };

  Connected c = co_await connect(address, left());
  if (!c) co_return fail(std::move(r), c.error);
  TcpStream& s = c.stream;

  std::string request;
  request.reserve(path.size() + 64);
  request.append("GET ").append(path).append(" HTTP/1.0\r\nHost: ");
  request.append(address.to_string()).append("\r\nUser-Agent: coring\r\n\r\n");
  SendResult w = co_await s.send_all(request, left());
  if (!w) co_return fail(std::move(r), w.error);

  BufferedReader in(s);
  // Header bytes still allowed, line ends included. A line's limit leaves room
  // for its "\n" (read_line's max counts the line and its "\r"); a line is
  // charged as ending in "\r\n" (a bare "\n" line one byte more than it takes).
  std::size_t budget = limits.max_header_bytes;
  const auto line_max = [&budget] { return budget == 0 ? 0 : budget - 1; };

  ReadResult status = co_await in.read_line(line_max(), left());
  if (!status) co_return fail(std::move(r), header_read_error(status));
  budget -= std::min(budget, status.data.size() + 2);
  if (!parse_status_line(status.data, r)) {
    co_return fail(std::move(r), HttpErrc::malformed_status_line);
  }

  for (;;) {
    ReadResult line = co_await in.read_line(line_max(), left());
    if (!line) co_return fail(std::move(r), header_read_error(line));
    budget -= std::min(budget, line.data.size() + 2);
    if (line.data.empty()) break;  // the blank line ends the headers
    if (r.headers.size() == limits.max_headers) {
      co_return fail(std::move(r), HttpErrc::headers_too_large);
    }
    const std::size_t colon = line.data.find(':');
    const std::string_view name =
        colon == std::string_view::npos ? std::string_view() : line.data.substr(0, colon);
    if (name.empty() || trim(name).size() != name.size()) {
      co_return fail(std::move(r), HttpErrc::malformed_header);
    }
    r.headers.push_back({std::string(name), std::string(trim(line.data.substr(colon + 1)))});
  }

  if (!has_body(r.status)) co_return r;
  if (auto te = r.header("Transfer-Encoding"); te && !iequals(*te, "identity")) {
    co_return fail(std::move(r), HttpErrc::unsupported_encoding);
  }

  if (auto cl = r.header("Content-Length")) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
    if (ec != std::errc() || end != cl->data() + cl->size()) {
      co_return fail(std::move(r), HttpErrc::malformed_header);
    }
    if (n > limits.max_body_bytes) co_return fail(std::move(r), HttpErrc::body_too_large);
    r.body.reserve(n);
    // In pieces: read_exact(n) would join the whole body in the reader first.
    while (r.body.size() < n) {
      ReadResult piece = co_await in.read_some(n - r.body.size(), left());
      if (piece.error) co_return fail(std::move(r), piece.error);
      if (piece.ended) co_return fail(std::move(r), HttpErrc::truncated);
      r.body.append(piece.data);
    }
    co_return r;
  }

  for (;;) {  // no length: the body ends at EOF
    ReadResult piece = co_await in.read_some(BufferedReader::kNoLimit, left());
    if (piece.error) co_return fail(std::move(r), piece.error);
    if (piece.ended) break;
    if (piece.data.size() > limits.max_body_bytes - r.body.size()) {
      co_return fail(std::move(r), HttpErrc::body_too_large);
    }
    r.body.append(piece.data);
  }
  co_return r;
}

Task<HttpResponse> http_get(std::string_view host_and_port, std::string path, Duration timeout,
                            HttpLimits limits) {
  // Not a coroutine: `host_and_port` is read before this returns.
  std::optional<Address> a = Address::try_parse(host_and_port);
  if (!a) {
    HttpResponse r;
    r.error = HttpErrc::bad_address;
    return ready(std::move(r));
  }
  return http_get(*a, std::move(path), timeout, limits);
}

}  // namespace coring::net
