// The log scan (demos/log_scan): the gzip decoder on whole, split, multi-member,
// padded, truncated and corrupt buffers; the recipe's line parse; and the scan of
// a folder against the seed's Python version (bench/python/find_robots.py, on
// Python's gzip module) over the same files, bad ones included.
// (co_await is kept out of Catch macros: see the note in sync/queue_test.cpp.)
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "log_scan/find_robots.hpp"
#include "log_scan/sample_logs.hpp"
#include "support/test_support.hpp"

namespace fs = std::filesystem;
using log_scan::gunzip;
using log_scan::gzip_compress;
using log_scan::GzipDecoder;
using log_scan::GzipError;

namespace {

std::string error_of(const std::string& gz) {
  try {
    gunzip(gz);
  } catch (const GzipError& e) {
    return e.what();
  }
  return "no error";
}

// A fresh folder under the temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "coring_log_scan_test.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::set<std::string> parse_all(const std::string& text) {
  log_scan::RobotsParser p;
  p.feed(text);
  p.finish();
  const auto& ips = p.ips();
  return {ips.begin(), ips.end()};
}

log_scan::ScanResult scan(const fs::path& dir, std::size_t in_flight = 0,
                          std::size_t chunk = 1 << 20) {
  log_scan::ScanOptions o;
  o.files_in_flight = in_flight;
  o.chunk_size = chunk;
  return coring::run(log_scan::scan_directory(dir, o));
}

std::string line(const std::string& ip, const std::string& path) {
  return ip + " - - [24/Aug/2012:14:46:05 -0500] \"GET " + path + " HTTP/1.1\" 200 4106\n";
}

}  // namespace

TEST_CASE("gunzip inflates a whole buffer, one member or several", "[log_scan]") {
  const std::string a = log_scan::sample_log_text(1, 2000);
  const std::string b = log_scan::sample_log_text(2, 50);
  CHECK(gunzip(gzip_compress(a)) == a);
  CHECK(gunzip(gzip_compress("")).empty());
  // `cat a.gz b.gz`: two members, one text.
  CHECK(gunzip(gzip_compress(a) + gzip_compress(b)) == a + b);
  // Zero padding after a member is skipped, as gzip(1) and Python do.
  CHECK(gunzip(gzip_compress(a) + std::string(7, '\0') + gzip_compress(b) + std::string(3, '\0')) ==
        a + b);
  // An empty file is an empty log (Python's gzip reads a 0-byte file as empty).
  CHECK(gunzip(std::string()).empty());
}

TEST_CASE("gunzip names what is wrong with a bad buffer", "[log_scan]") {
  const std::string gz = gzip_compress(log_scan::sample_log_text(3, 3000));
  REQUIRE(gz.size() > 1000);
  CHECK(error_of(gz.substr(0, gz.size() / 2)) == "truncated (the data ends inside a gzip member)");
  CHECK(error_of(gz.substr(0, gz.size() - 1)) == "truncated (the data ends inside a gzip member)");
  CHECK(error_of(gz.substr(0, 5)) == "truncated (the data ends inside a gzip member)");
  CHECK(error_of("hello, world\n") == "not in gzip format");
  CHECK(error_of("h") == "not in gzip format (too short)");
  CHECK(error_of(std::string(10, '\0')) == "not in gzip format");
  CHECK(error_of(gz + "garbage") == "not in gzip format after member 1 (trailing garbage)");

  std::string corrupt = gz;
  for (std::size_t i = 200; i < 260; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  CHECK(error_of(corrupt).rfind("corrupt data: ", 0) == 0);

  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] = static_cast<char>(bad_crc[bad_crc.size() - 6] ^ 1);
  CHECK(error_of(bad_crc) == "corrupt data: incorrect data check");
  std::string bad_length = gz;
  bad_length[bad_length.size() - 2] = static_cast<char>(bad_length[bad_length.size() - 2] ^ 1);
  CHECK(error_of(bad_length) == "corrupt data: incorrect length check");

  // A failed decoder stays failed.
  GzipDecoder d;
  auto sink = [](std::string_view) {};
  CHECK_THROWS_AS(d.feed(std::as_bytes(std::span(corrupt.data(), corrupt.size())), sink),
                  GzipError);
  CHECK_THROWS_AS(d.feed(std::as_bytes(std::span(gz.data(), gz.size())), sink), GzipError);
  CHECK_THROWS_AS(d.finish(), GzipError);
}

TEST_CASE("the gzip decoder gives the same text fed byte by byte", "[log_scan]") {
  const std::string a = log_scan::sample_log_text(4, 300);
  const std::string b = log_scan::sample_log_text(5, 300);
  const std::string gz = gzip_compress(a, 1) + std::string(2, '\0') + gzip_compress(b, 9);
  GzipDecoder d;
  std::string out;
  for (char c : gz) {
    d.feed(std::as_bytes(std::span(&c, 1)), [&](std::string_view piece) { out.append(piece); });
  }
  d.finish();
  CHECK(out == a + b);
  CHECK(d.bytes_out() == out.size());
}

TEST_CASE("the parse keeps fields[0] of the lines whose fields[6] is /robots.txt", "[log_scan]") {
  std::string text = line("1.1.1.1", "/robots.txt") + line("2.2.2.2", "/index.html") +
                     line("3.3.3.3", "/robots.txt?x=1") + line("4.4.4.4", "/a/robots.txt") +
                     "5.5.5.5 a b c d e /robots.txt\n" +  // seven fields is enough
                     "6.6.6.6 a b c d /robots.txt\n" +    // six is not
                     "\n   \n/robots.txt\n" +
                     "7.7.7.7\t-\t-\t[x]\t[y]\t\"GET\t/robots.txt\r\n" +  // tabs, CRLF
                     "8.8.8.8 - - [x] [y] \"GET\r/robots.txt a b\n" +     // \r ends a line
                     "9.9.9.9 \x1c- - [x] [y] \"GET /robots.txt\n" +      // \x1c is a space
                     "\xe9.1 - - [x] [y] \"GET /robots.txt\n" +           // a byte >= 0x80
                     line("1.1.1.1", "/robots.txt") +                     // again: a set
                     "10.10.10.10 - - [x] [y] \"GET /robots.txt";         // no final newline
  const std::set<std::string> want = {"1.1.1.1", "5.5.5.5", "7.7.7.7",
                                      "9.9.9.9", "\xe9.1",  "10.10.10.10"};
  CHECK(parse_all(text) == want);

  // Cut into two pieces at every position: the same set.
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    log_scan::RobotsParser p;
    p.feed(std::string_view(text).substr(0, cut));
    p.feed(std::string_view(text).substr(cut));
    p.finish();
    const std::set<std::string> got(p.ips().begin(), p.ips().end());
    INFO("cut at " << cut);
    CHECK(got == want);
  }
}

TEST_CASE("a scan of an empty folder, or one without .gz files, finds nothing", "[log_scan]") {
  TempDir dir;
  auto r = scan(dir.path);
  CHECK(r.files == 0);
  CHECK(r.ips.empty());
  CHECK(r.errors.empty());

  write_file(dir.path / "access.log", line("1.1.1.1", "/robots.txt"));
  write_file(dir.path / "access.gz.1", gzip_compress(line("1.1.1.1", "/robots.txt")));
  write_file(dir.path / ".hidden.gz", gzip_compress(line("1.1.1.1", "/robots.txt")));
  r = scan(dir.path);
  CHECK(r.files == 0);
  CHECK(r.ips.empty());
  CHECK(r.errors.empty());

  CHECK_THROWS_AS(scan(dir.path / "no-such-folder"), fs::filesystem_error);
}

TEST_CASE("a bad file gets its own error and the others are still scanned", "[log_scan]") {
  TempDir dir;
  const std::string good = gzip_compress(line("1.1.1.1", "/robots.txt"));
  const std::string other = gzip_compress(line("2.2.2.2", "/robots.txt"));
  const std::string lost = gzip_compress(line("3.3.3.3", "/robots.txt"));
  write_file(dir.path / "a.gz", good);
  write_file(dir.path / "b.gz", lost.substr(0, lost.size() - 4));  // truncated
  write_file(dir.path / "c.gz", "plain text\n");
  write_file(dir.path / "d.gz", other);
  fs::create_directory(dir.path / "e.gz");
  const auto r = scan(dir.path, 1);
  CHECK(r.files == 5);
  CHECK(r.ips == std::vector<std::string>{"1.1.1.1", "2.2.2.2"});
  REQUIRE(r.errors.size() == 3);
  CHECK(r.errors[0].path.filename() == "b.gz");
  CHECK(r.errors[0].what == "truncated (the data ends inside a gzip member)");
  CHECK(r.errors[1].path.filename() == "c.gz");
  CHECK(r.errors[1].what == "not in gzip format");
  CHECK(r.errors[2].path.filename() == "e.gz");
  CHECK(r.errors[2].what.rfind("read error: ", 0) == 0);
}

TEST_CASE("the scan finds what the seed's Python version finds, bad files included", "[log_scan]") {
  TempDir dir;
  log_scan::SampleOptions sample;
  sample.files = 6;
  sample.lines_per_file = 5000;
  sample.threads = 1;
  log_scan::write_sample_logs(dir.path, sample);
  const std::string gz0 = read_file(dir.path / "access-000.log.gz");
  const std::string gz1 = read_file(dir.path / "access-001.log.gz");
  write_file(dir.path / "multi.gz", gz0 + gz1 + std::string(5, '\0'));
  write_file(dir.path / "truncated.gz", gz0.substr(0, gz0.size() * 2 / 3));
  std::string corrupt = gz1;
  for (std::size_t i = corrupt.size() / 2; i < corrupt.size() / 2 + 16; ++i) corrupt[i] = 'X';
  write_file(dir.path / "corrupt.gz", corrupt);
  write_file(dir.path / "plain.gz", log_scan::sample_log_text(9, 10));
  write_file(dir.path / "empty.gz", "");
  write_file(dir.path / "odd.gz",
             gzip_compress(line("\xc3\xa9t\xc3\xa9", "/robots.txt") + "x y z\r\n" +
                           "4.4.4.4\t- - [x] [y] \"GET\t/robots.txt\n"));

  const std::string out_file = (dir.path / "python.out").string();
  const std::string err_file = (dir.path / "python.err").string();
  const std::string cmd = "python3 " CORING_SOURCE_DIR "/bench/python/find_robots.py '" +
                          dir.path.string() + "' --workers 2 >'" + out_file + "' 2>'" + err_file +
                          "'";
  const int status = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);  // some files are bad
  std::vector<std::string> py_ips;
  {
    std::istringstream s(read_file(out_file));
    for (std::string l; std::getline(s, l);) py_ips.push_back(l);
  }
  std::set<std::string> py_failed;
  {
    std::istringstream s(read_file(err_file));
    for (std::string l; std::getline(s, l);) {
      const auto colon = l.find(".gz: ");
      if (colon != std::string::npos) py_failed.insert(fs::path(l.substr(0, colon + 3)).filename());
    }
  }
  fs::remove(out_file);
  fs::remove(err_file);
  REQUIRE(py_ips.size() > 20);
  CHECK(py_failed == std::set<std::string>{"corrupt.gz", "plain.gz", "truncated.gz"});

  // In small chunks and big ones, one file at a time and many.
  for (auto [in_flight, chunk] :
       {std::pair<std::size_t, std::size_t>{1, 4096}, {3, 1 << 20}, {16, 10000}}) {
    INFO("in flight " << in_flight << ", chunk " << chunk);
    const auto r = scan(dir.path, in_flight, chunk);
    CHECK(r.files == 12);
    CHECK(r.ips == py_ips);
    std::set<std::string> failed;
    for (const auto& e : r.errors) failed.insert(e.path.filename());
    CHECK(failed == py_failed);
  }
}

TEST_CASE("a cancelled scan stops its workers and closes its files", "[log_scan]") {
  TempDir dir;
  log_scan::SampleOptions sample;
  sample.files = 4;
  sample.lines_per_file = 20000;
  sample.threads = 1;
  log_scan::write_sample_logs(dir.path, sample);
  coring::ThreadPool pool(1);
  const std::size_t fds_before = coring_test::count_open_fds();
  bool cancelled = false;
  auto body = [&]() -> coring::Task<void> {
    log_scan::ScanOptions o;
    o.pool = &pool;
    o.chunk_size = 4096;  // many offloads per file
    o.files_in_flight = 4;
    auto h = coring::spawn(log_scan::scan_directory(dir.path, o));
    co_await coring::sleep_for(std::chrono::milliseconds(5));
    h.cancel();
    const coring::Outcome<log_scan::ScanResult> out = co_await h.join();
    cancelled = out.cancelled();
    for (int i = 0; i < 50; ++i) co_await coring::sleep_for(std::chrono::milliseconds(1));
  };
  coring::run(body());
  CHECK(cancelled);
  CHECK(coring_test::count_open_fds() == fds_before);

  // The pool is still usable: a full scan on it finds what a fresh one does.
  log_scan::ScanOptions o;
  o.pool = &pool;
  const auto again = coring::run(log_scan::scan_directory(dir.path, o));
  CHECK(again.errors.empty());
  CHECK(again.ips == scan(dir.path).ips);
  CHECK_FALSE(again.ips.empty());
}

TEST_CASE("a line that never ends is judged by its beginning, in bounded memory", "[log_scan]") {
  log_scan::RobotsParser p;
  p.feed("10.0.0.1 - - [24/Feb/2008:00:08:59 -0600] \"GET /robots.txt HTTP/1.1\" ");
  const std::string junk(64 * 1024, 'x');
  for (int i = 0; i < 64; ++i) p.feed(junk);  // 4 MiB more of the same line
  p.feed("\n10.0.0.2 - - [24/Feb/2008:00:08:59 -0600] \"GET /robots.txt HTTP/1.1\" 200 1\n");
  p.finish();
  const auto& ips = p.ips();
  CHECK(ips.size() == 2);
  CHECK(ips.count("10.0.0.1") == 1);
  CHECK(ips.count("10.0.0.2") == 1);
}
