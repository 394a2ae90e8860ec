// The parallel log scan (Python Cookbook 12.8, `find_robots`): every `*.gz` file
// of a folder is read with the loop's file reads, inflated with zlib on a thread
// pool, and the IPs that requested /robots.txt are collected and merged.
//
// The parse is the recipe's: a line's whitespace-separated fields, and when the
// seventh (`fields[6]`, the request path of an Apache access-log line) is
// exactly `/robots.txt`, the first (`fields[0]`, the client address) is kept.
// Lines end at '\n', '\r' or "\r\n" and fields are split at the ASCII
// whitespace Python's str.split() knows (space, \t \n \v \f \r, \x1c-\x1f), so
// the result is the seed's `io.TextIOWrapper(gzip.open(f))` + `line.split()`
// byte for byte; bytes >= 0x80 are ordinary field characters (the seed with
// `errors='surrogateescape'`). A line with fewer than seven fields is skipped.
//
// State: GzipDecoder is `in a member` / `between members` / `failed`;
// RobotsParser holds the unfinished last line; scan_directory() owns every file
// it opens and closes it before it returns.
// Invariants: a file contributes its IPs only if it was read and inflated to
// its end without an error (the seed loses a failing file's whole set too);
// decompressed data is never held whole: a file is read and inflated in chunks,
// so memory is about (files in flight) x (chunk size + 256 KiB + zlib's 44 KiB).
// Cancel-safety: cancelling the task awaiting scan_directory() stops the file
// workers at their next suspension point; what a pool thread is inflating is
// owned by the job itself, never by a frame that may be gone.
// Destruction: GzipDecoder frees its zlib state; nothing else holds resources.
// Thread-safety: GzipDecoder/RobotsParser/FileScan are single-owner objects that
// may move between threads between calls (the scan hands a file's FileScan to
// one pool job at a time). scan_directory() runs on one EventLoop.
// Errors: corrupt or truncated gzip data throws GzipError; scan_directory()
// turns every per-file failure into a FileError and goes on with the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <coring/runtime/task.hpp>
#include <coring/runtime/thread_pool.hpp>

namespace log_scan {

// Corrupt or truncated gzip data; what() says which, e.g. "not in gzip format",
// "truncated (the compressed data ends inside a gzip member)",
// "corrupt data: invalid distance too far back", "corrupt data: incorrect data check".
class GzipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Streaming gzip decoder: one or more members back to back (as `cat a.gz b.gz`
// makes), each checked against its CRC-32 and length; zero bytes after a member
// are padding and skipped (as gzip(1) and Python's gzip module do). Any other
// byte after a member must start a new member. Empty input is an empty file
// (Python reads a 0-byte .gz as empty).
class GzipDecoder {
 public:
  using Sink = std::function<void(std::string_view)>;
  GzipDecoder();
  ~GzipDecoder();
  GzipDecoder(GzipDecoder&&) noexcept;
  GzipDecoder& operator=(GzipDecoder&&) noexcept;
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  // Inflates `in`, the next bytes of the file, handing the output to `out` in
  // pieces of up to 256 KiB. Throws GzipError for corrupt data; after that the
  // decoder is failed and every call throws again.
  void feed(std::span<const std::byte> in, const Sink& out);
  // The input has ended: throws GzipError("truncated ...") if a member is unfinished.
  void finish();
  // Decompressed bytes so far.
  [[nodiscard]] std::uint64_t bytes_out() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// A whole gzip buffer inflated at once (tests, small files). Throws GzipError.
std::string gunzip(std::span<const std::byte> data);
inline std::string gunzip(std::string_view data) {
  return gunzip(std::as_bytes(std::span(data.data(), data.size())));
}

// The recipe's line parse over a stream of decompressed text in arbitrary pieces.
class RobotsParser {
 public:
  void feed(std::string_view text);
  // The input has ended: parses an unterminated last line.
  void finish();
  [[nodiscard]] const std::unordered_set<std::string>& ips() const noexcept { return ips_; }
  std::unordered_set<std::string> take() noexcept { return std::move(ips_); }
  // One line, without its terminator.
  void parse_line(std::string_view line);

 private:
  // A line is judged by its first kMaxLine bytes (bounds the memory of a line
  // that never ends; the recipe's seven fields are far shorter).
  static constexpr std::size_t kMaxLine = 1 << 20;
  std::string partial_;  // the last line's beginning, when a piece ended inside it
  std::unordered_set<std::string> ips_;
};

// One file's decoder and parser: feed it the file's bytes in order.
class FileScan {
 public:
  void feed(std::span<const std::byte> compressed);
  void finish();
  [[nodiscard]] std::uint64_t bytes_out() const noexcept { return decoder_.bytes_out(); }
  std::unordered_set<std::string> take() noexcept { return parser_.take(); }

 private:
  GzipDecoder decoder_;
  RobotsParser parser_;
};

struct FileError {
  std::filesystem::path path;
  std::string what;  // "not in gzip format", "truncated ...", "read error: ...", "cannot open: ..."
};

struct ScanProgress {
  std::size_t files_total = 0;
  std::size_t files_done = 0;  // scanned or failed
  std::size_t files_failed = 0;
  std::uint64_t bytes_read = 0;   // compressed bytes read so far
  std::uint64_t bytes_total = 0;  // compressed size of all files (sizes at listing time)
};

struct ScanOptions {
  // Files read and inflated at once; 0: the pool's thread count + 1, so a
  // file is read while the others inflate.
  std::size_t files_in_flight = 0;
  // Bytes per read and per pool job.
  std::size_t chunk_size = 1 << 20;
  // Where files are inflated; nullptr: coring::default_thread_pool() (one
  // thread per core).
  coring::ThreadPool* pool = nullptr;
  // Called on the loop's thread after every chunk and every finished file.
  std::function<void(const ScanProgress&)> on_progress;
};

struct ScanResult {
  std::vector<std::string> ips;   // sorted, unique
  std::vector<FileError> errors;  // in file-name order
  std::size_t files = 0;          // *.gz files found
  std::uint64_t bytes_in = 0;     // compressed bytes read
  std::uint64_t bytes_out = 0;    // decompressed bytes of the files that scanned cleanly
};

// The regular files (or symlinks to them) named *.gz directly in `dir`, sorted
// by name. Throws std::filesystem::filesystem_error if `dir` cannot be listed.
std::vector<std::filesystem::path> list_gz_files(const std::filesystem::path& dir);

// Scans every file of list_gz_files(dir) on the current EventLoop. Per-file
// failures are in the result; only an unlistable folder throws.
coring::Task<ScanResult> scan_directory(std::filesystem::path dir, ScanOptions options = {});
// The same over a given list of files.
coring::Task<ScanResult> scan_files(std::vector<std::filesystem::path> files,
                                    ScanOptions options = {});

}  // namespace log_scan
