// The parallel log scan: Python Cookbook 12.8, `find_robots` over a folder of
// gzip'd Apache logs with a ProcessPoolExecutor. Here one event loop reads the
// files (io_uring reads, or the epoll backend's), a thread pool inflates them
// with zlib, and the per-file sets of IPs that asked for /robots.txt are merged.
//
// Run:
//   ./log_scan DIR             scans DIR/*.gz
//   ./log_scan                 writes sample logs into a temporary folder, scans
//                              them, removes the folder
//   ./log_scan --generate DIR [--files N] [--lines N] [--seed N]
//                              only writes sample logs into DIR (for the bench)
// Options: --progress (a progress line on stderr every second; on by default
// when stderr is a terminal), --threads N (inflating threads; default: one per
// core), --in-flight N (files read and inflated at once; default: threads + 1),
// --chunk BYTES (bytes per read and per inflate job; default 1 MiB).
//
// stdout: each IP that requested /robots.txt, one per line, sorted.
// stderr: one line per file that could not be scanned ("NAME: what is wrong");
// the exit status is 1 if there was any, after the rest has been printed.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "log_scan/find_robots.hpp"
#include "log_scan/sample_logs.hpp"

namespace {

namespace fs = std::filesystem;

struct Args {
  std::optional<fs::path> dir;
  std::optional<fs::path> generate;
  log_scan::SampleOptions sample;
  bool progress = ::isatty(2) != 0;
  std::size_t in_flight = 0;
  std::size_t threads = 0;
  std::size_t chunk = 0;
};

std::size_t to_count(const char* flag, const char* value) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0') {
    throw std::invalid_argument(std::string("bad value for ") + flag + ": " + value);
  }
  return static_cast<std::size_t>(v);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--progress") {
      a.progress = true;
    } else if (arg == "--no-progress") {
      a.progress = false;
    } else if (arg == "--generate") {
      a.generate = value();
    } else if (arg == "--files") {
      a.sample.files = to_count("--files", value());
    } else if (arg == "--lines") {
      a.sample.lines_per_file = to_count("--lines", value());
    } else if (arg == "--seed") {
      a.sample.seed = to_count("--seed", value());
    } else if (arg == "--threads") {
      a.threads = to_count("--threads", value());
    } else if (arg == "--chunk") {
      a.chunk = to_count("--chunk", value());
    } else if (arg == "--in-flight") {
      a.in_flight = to_count("--in-flight", value());
    } else if (!arg.empty() && arg[0] == '-') {
      throw std::invalid_argument(
          "unknown option: " + arg +
          " (usage: log_scan [--progress] [--threads N] [--in-flight N] [--chunk BYTES] [DIR] | "
          "log_scan --generate DIR [--files N] [--lines N] [--seed N])");
    } else if (!a.dir) {
      a.dir = arg;
    } else {
      throw std::invalid_argument("more than one folder given: " + arg);
    }
  }
  return a;
}

// A temporary folder removed when the scan is over.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "log_scan.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("cannot create a temporary folder: " + std::string(strerror(errno)));
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

int scan(const fs::path& dir, const Args& args) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last = start;
  log_scan::ScanOptions options;
  options.files_in_flight = args.in_flight;
  if (args.chunk > 0) options.chunk_size = args.chunk;
  std::optional<coring::ThreadPool> pool;
  if (args.threads > 0) options.pool = &pool.emplace(args.threads);
  if (args.progress) {
    options.on_progress = [&last](const log_scan::ScanProgress& p) {
      const auto now = Clock::now();
      if (now - last < std::chrono::seconds(1)) return;
      last = now;
      fmt::print(stderr, "log_scan: {}/{} files, {:.1f}/{:.1f} MiB read, {} failed\n", p.files_done,
                 p.files_total, mib(p.bytes_read), mib(p.bytes_total), p.files_failed);
    };
  }
  const log_scan::ScanResult r = coring::run(log_scan::scan_directory(dir, options));
  std::string out;
  for (const auto& ip : r.ips) {
    out += ip;
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  for (const auto& e : r.errors) fmt::print(stderr, "{}: {}\n", e.path.string(), e.what);
  if (args.progress) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    fmt::print(stderr,
               "log_scan: {} files ({} failed), {:.1f} MiB read, {:.1f} MiB inflated, {} IPs, "
               "{:.3f} s\n",
               r.files, r.errors.size(), mib(r.bytes_in), mib(r.bytes_out), r.ips.size(), secs);
  }
  return r.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    if (args.generate) {
      fs::create_directories(*args.generate);
      const std::uint64_t bytes = log_scan::write_sample_logs(*args.generate, args.sample);
      fmt::print(stderr, "log_scan: wrote {} files, {:.1f} MiB uncompressed, into {}\n",
                 args.sample.files, mib(bytes), args.generate->string());
      return 0;
    }
    if (args.dir) return scan(*args.dir, args);
    const TempDir tmp;
    log_scan::write_sample_logs(tmp.path(), args.sample);
    return scan(tmp.path(), args);
  } catch (const std::exception& e) {
    fmt::print(stderr, "log_scan: {}\n", e.what());
    return 2;
  }
}
