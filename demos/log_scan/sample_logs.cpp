#include "sample_logs.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace log_scan {

namespace {

// splitmix64: tiny, deterministic, good enough for sample data.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  unsigned below(unsigned n) noexcept { return static_cast<unsigned>(next() % n); }
};

constexpr const char* kPaths[] = {"/",
                                  "/index.html",
                                  "/about.html",
                                  "/blog/2012/08/concurrency.html",
                                  "/css/site.css",
                                  "/js/app.js",
                                  "/images/logo.png",
                                  "/favicon.ico",
                                  "/feed.xml",
                                  "/downloads/python-cookbook.pdf"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// The crawlers: a fixed pool of addresses, so the same IP asks in many files.
std::string crawler_ip(unsigned i) {
  return fmt::format("66.249.{}.{}", 64 + i / 200, 1 + i % 200);
}

}  // namespace

std::string sample_log_text(std::uint64_t seed, std::size_t lines) {
  Rng rng{seed * 0x2545f4914f6cdd1dULL + 1};
  std::string out;
  out.reserve(lines * 96);
  const unsigned month = rng.below(12);
  for (std::size_t i = 0; i < lines; ++i) {
    const unsigned roll = rng.below(4000);
    if (roll == 0) {  // malformed: blank, or cut short
      out += (rng.below(2) == 0) ? "\n" : "10.0.0.1 - - [cut short\n";
      continue;
    }
    const bool robots = rng.below(500) == 0;
    std::string ip;
    if (robots || rng.below(50) == 0) {
      ip = crawler_ip(rng.below(1000));
    } else {
      ip = fmt::format("{}.{}.{}.{}", 1 + rng.below(223), rng.below(256), rng.below(256),
                       1 + rng.below(254));
    }
    const char* path = robots ? "/robots.txt" : kPaths[rng.below(std::size(kPaths))];
    const char* method = rng.below(10) == 0 ? "POST" : "GET";
    const unsigned status = rng.below(20) == 0 ? 404 : 200;
    fmt::format_to(std::back_inserter(out),
                   "{} - - [{:02}/{}/2012:{:02}:{:02}:{:02} -0500] \"{} {} HTTP/1.1\" {} {}\n", ip,
                   1 + rng.below(28), kMonths[month], rng.below(24), rng.below(60), rng.below(60),
                   method, path, status, 100 + rng.below(50000));
  }
  return out;
}

std::string gzip_compress(std::string_view text, int level) {
  z_stream strm{};
  if (deflateInit2(&strm, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&strm, static_cast<uLong>(text.size())));
  strm.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  strm.avail_in = static_cast<uInt>(text.size());
  strm.next_out = reinterpret_cast<Bytef*>(out.data());
  strm.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&strm, Z_FINISH);
  out.resize(strm.total_out);
  deflateEnd(&strm);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  return out;
}

std::uint64_t write_sample_logs(const std::filesystem::path& dir, const SampleOptions& options) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> bytes{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    try {
      for (std::size_t i = next++; i < options.files; i = next++) {
        const std::string text =
            sample_log_text(options.seed * 1000003 + i, options.lines_per_file);
        const std::string gz = gzip_compress(text, options.level);
        const auto path = dir / fmt::format("access-{:03}.log.gz", i);
        std::FILE* f = std::fopen(path.c_str(), "wbe");
        if (f == nullptr) throw std::runtime_error("cannot create " + path.string());
        const bool ok = std::fwrite(gz.data(), 1, gz.size(), f) == gz.size();
        if (std::fclose(f) != 0 || !ok) throw std::runtime_error("cannot write " + path.string());
        bytes += text.size();
      }
    } catch (...) {
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = static_cast<unsigned>(
      std::clamp<std::size_t>(threads, 1, std::max<std::size_t>(options.files, 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return bytes;
}

}  // namespace log_scan
