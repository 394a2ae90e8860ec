// What BufferedReader::read_line costs against splitting the received buffers
// by hand, in the same run, over a real loopback connection on one loop.
//
//   BM_LinesHandSplit       recv() loop; memchr for '\n' in each lease; a line
//                           split across two buffers is joined in a string.
//                           The baseline: what users wrote before the reader.
//   BM_LinesBufferedReader  co_await reader.read_line(max) for every line.
//
// Each iteration sends 4096 lines of 64 bytes (256 KiB, one send_all from a
// task on the same loop) and reads them all back; ns_per_line is wall time per
// line, sending included (the same in both).
//
//   cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCORING_BUILD_BENCH=ON -G Ninja
//   cmake --build build/bench -t buffered_reader_bench
//   build/bench/bench/buffered_reader_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true      (one line)
#include <benchmark/benchmark.h>

#include <chrono>
#include <coring/coring.hpp>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace {

using namespace std::chrono_literals;
namespace net = coring::net;

constexpr int kLines = 4096;
constexpr std::size_t kLineBytes = 64;  // with the '\n'

std::string make_block() {
  std::string s;
  s.reserve(kLines * kLineBytes);
  for (int i = 0; i < kLines; ++i) {
    std::string line = "line " + std::to_string(i) + " ";
    line.resize(kLineBytes - 1, 'x');
    s += line;
    s += '\n';
  }
  return s;
}

struct Pair {
  net::TcpStream client;
  net::TcpStream server;
};

coring::Task<Pair> connect_pair() {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4());
  auto connecting = coring::spawn(net::connect(listener.local_address(), 1s));
  net::Accepted a = co_await listener.accept(1s);
  net::Connected c = co_await connecting;
  if (!a || !c) throw std::runtime_error("no connection");
  co_return Pair{std::move(c.stream), std::move(a.stream)};
}

coring::Task<void> send_block(net::TcpStream* s, const std::string* block) {
  net::SendResult w = co_await s->send_all(*block);
  if (!w) throw std::system_error(w.error);
}

// Returns the sum of the line lengths, so the work cannot be dropped.
coring::Task<std::size_t> hand_split(net::TcpStream* s, std::string* carry) {
  std::size_t total = 0;
  int lines = 0;
  while (lines < kLines) {
    net::Received r = co_await s->recv();
    if (!r) throw std::runtime_error("recv failed");
    const char* p = reinterpret_cast<const char*>(r.data().data());
    const char* end = p + r.size();
    while (p < end) {
      const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      if (nl == nullptr) {
        carry->append(p, end);
        break;
      }
      const char* q = static_cast<const char*>(nl);
      if (!carry->empty()) {
        carry->append(p, q);
        total += carry->size();
        carry->clear();
      } else {
        total += static_cast<std::size_t>(q - p);
      }
      ++lines;
      p = q + 1;
    }
  }
  co_return total;
}

coring::Task<std::size_t> with_reader(net::BufferedReader* in) {
  std::size_t total = 0;
  for (int i = 0; i < kLines; ++i) {
    net::ReadResult line = co_await in->read_line(1024);
    if (!line) throw std::runtime_error("read_line failed");
    total += line.data.size();
  }
  co_return total;
}

template <class Read>
void run_lines(benchmark::State& state, Read read) {
  coring::EventLoop loop;
  Pair p = loop.run(connect_pair());
  const std::string block = make_block();
  net::BufferedReader in(p.server);
  std::string carry;
  for (auto _ : state) {
    auto body = [&]() -> coring::Task<std::size_t> {
      auto sending = coring::spawn(send_block(&p.client, &block));
      std::size_t n = co_await read(&p.server, &in, &carry);
      co_await sending;
      co_return n;
    };
    benchmark::DoNotOptimize(loop.run(body()));
  }
  state.counters["ns_per_line"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kLines,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_LinesHandSplit(benchmark::State& state) {
  run_lines(state, [](net::TcpStream* s, net::BufferedReader*, std::string* carry) {
    return hand_split(s, carry);
  });
}
BENCHMARK(BM_LinesHandSplit)->UseRealTime();

void BM_LinesBufferedReader(benchmark::State& state) {
  run_lines(state,
            [](net::TcpStream*, net::BufferedReader* in, std::string*) { return with_reader(in); });
}
BENCHMARK(BM_LinesBufferedReader)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
