// Implementation notes
//
// Decoding: zlib's inflate with windowBits 16+15 (gzip wrapper only), which
// checks each member's CRC-32 and length. Z_STREAM_END ends a member; the
// decoder then skips zero padding and starts the next member with
// inflateReset. The z_stream lives on the heap because zlib keeps a pointer to
// it in its own state (a moved z_stream fails inflateStateCheck).
//
// Parsing: a line is only worth splitting if it contains "/robots.txt" (fields[6]
// equal to it implies the substring), so the parser searches each piece of
// text for that substring with memmem and splits just those lines; the rest of
// the text is never looked at byte by byte.
//
// Scanning: `files_in_flight` worker tasks take the next file index in turn
// (loop-local, so a plain counter). A worker reads a chunk with async_read,
// hands it to the pool to inflate and parse, reads the next chunk, and so on;
// with one more worker than pool threads, a read is always under way while the
// pool inflates. The chunk buffer and the FileScan belong to a shared Job that
// the pool job holds too, so a cancelled worker never leaves the pool writing
// into freed memory.
#include "find_robots.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <coring/runtime/io.hpp>
#include <coring/runtime/join_handle.hpp>
#include <coring/runtime/task_group.hpp>
#include <coring/runtime/thread_pool.hpp>
#include <cstring>
#include <new>
#include <system_error>
#include <utility>

namespace log_scan {

namespace {

constexpr std::size_t kOutChunk = 256 * 1024;

// The ASCII characters Python's str.split() splits at.
constexpr std::array<bool, 256> make_space_table() {
  std::array<bool, 256> t{};
  for (unsigned char c : {' ', '\t', '\n', '\v', '\f', '\r', '\x1c', '\x1d', '\x1e', '\x1f'}) {
    t[c] = true;
  }
  return t;
}
constexpr std::array<bool, 256> kSpace = make_space_table();

bool is_space(char c) noexcept {
  return kSpace[static_cast<unsigned char>(c)];
}
bool is_line_end(char c) noexcept {
  return c == '\n' || c == '\r';
}

constexpr std::string_view kRobots = "/robots.txt";

}  // namespace

// ---------------------------------------------------------------------------
// GzipDecoder

struct GzipDecoder::State {
  z_stream strm{};
  bool in_member = false;
  bool failed = false;
  std::uint64_t members = 0;    // members finished
  std::uint64_t member_in = 0;  // bytes of the current member consumed so far
  std::uint64_t out = 0;
  std::unique_ptr<unsigned char[]> buf{new unsigned char[kOutChunk]};

  State() {
    if (inflateInit2(&strm, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  }
  ~State() { inflateEnd(&strm); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  [[noreturn]] void fail(std::string what) {
    failed = true;
    throw GzipError(std::move(what));
  }
};

GzipDecoder::GzipDecoder() : s_(std::make_unique<State>()) {}
GzipDecoder::~GzipDecoder() = default;
GzipDecoder::GzipDecoder(GzipDecoder&&) noexcept = default;
GzipDecoder& GzipDecoder::operator=(GzipDecoder&&) noexcept = default;

std::uint64_t GzipDecoder::bytes_out() const noexcept {
  return s_ ? s_->out : 0;
}

void GzipDecoder::feed(std::span<const std::byte> in, const Sink& out) {
  if (!s_) throw std::logic_error("GzipDecoder: used after a move");
  State& s = *s_;
  if (s.failed) throw GzipError("the decoder already failed");
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t n = in.size();
  while (n > 0) {
    if (!s.in_member) {
      if (s.members > 0) {  // zero padding after a member (not before the first)
        while (n > 0 && *p == 0) {
          ++p;
          --n;
        }
        if (n == 0) break;
        inflateReset(&s.strm);
      }
      s.in_member = true;
      s.member_in = 0;
    }
    s.strm.next_in = const_cast<unsigned char*>(p);
    const auto avail = static_cast<uInt>(std::min<std::size_t>(n, UINT_MAX));
    s.strm.avail_in = avail;
    int rc = Z_OK;
    do {
      s.strm.next_out = s.buf.get();
      s.strm.avail_out = static_cast<uInt>(kOutChunk);
      rc = inflate(&s.strm, Z_NO_FLUSH);
      const std::size_t produced = kOutChunk - s.strm.avail_out;
      if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
        const std::string msg = s.strm.msg ? s.strm.msg : "invalid data";
        const std::uint64_t at = s.member_in + (avail - s.strm.avail_in);
        if (msg == "incorrect header check" && at <= 2) {
          s.fail(s.members == 0 ? "not in gzip format"
                                : "not in gzip format after member " + std::to_string(s.members) +
                                      " (trailing garbage)");
        }
        s.fail("corrupt data: " + msg);
      }
      if (rc == Z_MEM_ERROR) throw std::bad_alloc();
      if (produced > 0) {
        s.out += produced;
        out(std::string_view(reinterpret_cast<const char*>(s.buf.get()), produced));
      }
      if (rc == Z_STREAM_END) break;
      // Z_OK: progress made; Z_BUF_ERROR: no progress possible without more input.
    } while (rc == Z_OK && (s.strm.avail_in > 0 || s.strm.avail_out == 0));
    const std::size_t used = avail - s.strm.avail_in;
    s.member_in += used;
    p += used;
    n -= used;
    if (rc == Z_STREAM_END) {
      s.in_member = false;
      ++s.members;
    } else if (used == 0 && n > 0 && rc != Z_OK) {
      s.fail("corrupt data: inflate made no progress");  // not expected from zlib
    }
  }
}

void GzipDecoder::finish() {
  if (!s_) throw std::logic_error("GzipDecoder: used after a move");
  if (s_->failed) throw GzipError("the decoder already failed");
  if (s_->in_member) {
    s_->failed = true;
    throw GzipError(s_->member_in < 2 && s_->members == 0
                        ? "not in gzip format (too short)"
                        : "truncated (the data ends inside a gzip member)");
  }
}

std::string gunzip(std::span<const std::byte> data) {
  std::string out;
  GzipDecoder d;
  d.feed(data, [&out](std::string_view piece) { out.append(piece); });
  d.finish();
  return out;
}

// ---------------------------------------------------------------------------
// RobotsParser

void RobotsParser::parse_line(std::string_view line) {
  std::string_view fields[7];
  std::size_t count = 0;
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (count < 7) {
    while (i < n && is_space(line[i])) ++i;
    if (i == n) return;  // fewer than seven fields
    const std::size_t start = i;
    while (i < n && !is_space(line[i])) ++i;
    fields[count++] = line.substr(start, i - start);
  }
  if (fields[6] == kRobots) ips_.emplace(fields[0]);
}

void RobotsParser::feed(std::string_view text) {
  if (!partial_.empty()) {
    // Finish the line a previous piece ended inside.
    std::size_t end = 0;
    while (end < text.size() && !is_line_end(text[end])) ++end;
    if (end == text.size()) {
      // Memory stays bounded: a line is judged by its first kMaxLine bytes
      // (the seven fields the parse looks at are far shorter in any log).
      partial_.append(text.substr(0, kMaxLine - std::min(kMaxLine, partial_.size())));
      return;
    }
    partial_.append(text.substr(0, end).substr(0, kMaxLine - std::min(kMaxLine, partial_.size())));
    if (partial_.find(kRobots) != std::string::npos) parse_line(partial_);
    partial_.clear();
    text.remove_prefix(end);
  }
  // The complete lines of `text`: up to its last line end.
  std::size_t last = text.size();
  while (last > 0 && !is_line_end(text[last - 1])) --last;
  std::string_view complete = text.substr(0, last);
  if (last < text.size()) partial_.assign(text.substr(last).substr(0, kMaxLine));

  std::size_t from = 0;
  while (from < complete.size()) {
    const void* hit =
        ::memmem(complete.data() + from, complete.size() - from, kRobots.data(), kRobots.size());
    if (hit == nullptr) break;
    const std::size_t at =
        static_cast<std::size_t>(static_cast<const char*>(hit) - complete.data());
    std::size_t begin = at;
    while (begin > 0 && !is_line_end(complete[begin - 1])) --begin;
    std::size_t end = at + kRobots.size();
    while (end < complete.size() && !is_line_end(complete[end])) ++end;
    parse_line(complete.substr(begin, end - begin));
    from = end;
  }
}

void RobotsParser::finish() {
  if (!partial_.empty()) {
    if (partial_.find(kRobots) != std::string::npos) parse_line(partial_);
    partial_.clear();
  }
}

// ---------------------------------------------------------------------------
// FileScan

void FileScan::feed(std::span<const std::byte> compressed) {
  decoder_.feed(compressed, [this](std::string_view text) { parser_.feed(text); });
}

void FileScan::finish() {
  decoder_.finish();
  parser_.finish();
}

// ---------------------------------------------------------------------------
// Scanning

std::vector<std::filesystem::path> list_gz_files(const std::filesystem::path& dir) {
  // As the seed's glob(logdir + '/*.gz'): every name ending in .gz but hidden
  // ones; what is not a readable file fails when it is read.
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 3 && name.front() != '.' && name.ends_with(".gz")) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

struct Job {
  std::vector<std::byte> buf;
  FileScan scan;
};

struct Shared {
  std::vector<std::filesystem::path> files;
  ScanOptions options;
  coring::ThreadPool* pool = nullptr;
  std::size_t next = 0;
  std::vector<std::string> errors;  // per file; empty: no error
  std::unordered_set<std::string> ips;
  ScanProgress progress;
  std::uint64_t bytes_out = 0;

  void report() const {
    if (options.on_progress) options.on_progress(progress);
  }
};

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

coring::Task<void> scan_one(Shared& s, std::size_t index) {
  const Fd fd(::open(s.files[index].c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    s.errors[index] = "cannot open: " + std::generic_category().message(errno);
    co_return;
  }
  auto job = std::make_shared<Job>();
  job->buf.resize(std::max<std::size_t>(s.options.chunk_size, 4096));
  std::uint64_t offset = 0;
  for (;;) {
    const coring::IoResult r = co_await coring::async_read(fd.get(), job->buf, offset);
    if (!r.ok()) {
      s.errors[index] = "read error: " + r.error().message();
      co_return;
    }
    if (r.bytes() == 0) break;
    offset += r.bytes();
    s.progress.bytes_read += r.bytes();
    s.report();
    const std::size_t n = r.bytes();
    auto inflate = [job, n] { job->scan.feed(std::span(job->buf.data(), n)); };  // named: GCC 12
    try {
      co_await coring::offload(*s.pool, std::move(inflate));
    } catch (const GzipError& e) {
      s.errors[index] = e.what();
      co_return;
    }
  }
  try {
    job->scan.finish();
  } catch (const GzipError& e) {
    s.errors[index] = e.what();
    co_return;
  }
  s.bytes_out += job->scan.bytes_out();
  auto found = job->scan.take();
  if (s.ips.empty()) {
    s.ips = std::move(found);
  } else {
    s.ips.merge(found);
  }
}

coring::Task<void> worker(std::shared_ptr<Shared> s) {
  while (s->next < s->files.size()) {
    const std::size_t i = s->next++;
    co_await scan_one(*s, i);
    ++s->progress.files_done;
    if (!s->errors[i].empty()) ++s->progress.files_failed;
    s->report();
  }
}

}  // namespace

coring::Task<ScanResult> scan_files(std::vector<std::filesystem::path> files, ScanOptions options) {
  auto s = std::make_shared<Shared>();
  s->files = std::move(files);
  s->options = std::move(options);
  s->errors.resize(s->files.size());
  s->progress.files_total = s->files.size();
  for (const auto& f : s->files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    if (!ec) s->progress.bytes_total += size;
  }
  s->pool = s->options.pool ? s->options.pool : &coring::default_thread_pool();
  std::size_t workers = s->options.files_in_flight;
  if (workers == 0) workers = s->pool->size() + 1;
  workers = std::min(workers, s->files.size());

  // In a task group: however the scan ends (done, a worker failing, the scan
  // cancelled), every worker has stopped and closed its file before this returns.
  auto body = [&s, workers](coring::TaskGroup& g) -> coring::Task<void> {
    for (std::size_t i = 0; i < workers; ++i) g.spawn(worker(s));
    co_return;
  };
  co_await coring::task_group(body);

  ScanResult result;
  result.files = s->files.size();
  result.bytes_in = s->progress.bytes_read;
  result.bytes_out = s->bytes_out;
  result.ips.assign(s->ips.begin(), s->ips.end());
  std::sort(result.ips.begin(), result.ips.end());
  for (std::size_t i = 0; i < s->files.size(); ++i) {
    if (!s->errors[i].empty()) result.errors.push_back({s->files[i], std::move(s->errors[i])});
  }
  co_return result;
}

coring::Task<ScanResult> scan_directory(std::filesystem::path dir, ScanOptions options) {
  co_return co_await scan_files(list_gz_files(dir), std::move(options));
}

}  // namespace log_scan
