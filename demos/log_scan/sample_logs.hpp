// Sample Apache access logs for the log scan: deterministic (a seeded
// splitmix64, no std distributions, so every platform writes the same bytes),
// gzip-compressed with zlib.
//
// Lines are in the Common Log Format the recipe's logs use:
//   203.0.113.9 - - [24/Aug/2012:14:46:05 -0500] "GET /robots.txt HTTP/1.1" 200 4106
// About one request in 500 is for /robots.txt, from a pool of "crawler"
// addresses (so the same IP shows up in several files); one line in 4000 is
// malformed (blank, or cut short) and must be skipped by the parse.
// Thread-safety: the functions share no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace log_scan {

struct SampleOptions {
  std::size_t files = 8;
  std::size_t lines_per_file = 20000;
  std::uint64_t seed = 12;
  int level = 6;         // zlib compression level (gzip's default)
  unsigned threads = 0;  // generator threads; 0: hardware_concurrency
};

// One file's text: `lines` lines from the generator seeded with `seed`.
std::string sample_log_text(std::uint64_t seed, std::size_t lines);

// `text` as a single gzip member. Throws std::runtime_error if zlib fails.
std::string gzip_compress(std::string_view text, int level = 6);

// Writes access-NNN.log.gz (NNN from 000) into `dir`, which must exist.
// Returns the uncompressed bytes written. Throws std::runtime_error on an I/O error.
std::uint64_t write_sample_logs(const std::filesystem::path& dir, const SampleOptions& options);

}  // namespace log_scan
