// LoopGroup on real threads, each with its own EventLoop (the backend of
// CORING_BACKEND for all): submit_to runs on the right thread, values and
// exceptions come back to a plain thread (get) and to a task on another loop
// (co_await, resuming on its own loop), Task-returning calls, a failed start,
// and 100 start/stop cycles with no thread or fd left behind.
#include <catch2/catch.hpp>
#include <coring/coring.hpp>

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using namespace std::chrono_literals;
using coring::EventLoop;
using coring::LoopGroup;
using coring::LoopGroupStopped;
using coring::LoopResult;
using coring::Task;

namespace {

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}
std::size_t count_threads() {
  return count_entries("/proc/self/task");
}
// The count to compare against afterwards. A thread is started and joined
// first: ThreadSanitizer starts a background thread of its own at the first
// thread creation, which would otherwise count as one left behind.
std::size_t baseline_threads() {
  std::thread([] {}).join();
  return count_threads();
}

Task<int> doubled_later(int v) {
  co_await coring::sleep_for(1ms);
  co_return v * 2;
}

}  // namespace

TEST_CASE("submit_to runs on loop i's thread; get() gives values and exceptions", "[loop_group]") {
  LoopGroup group(3);
  REQUIRE(group.size() == 3);
  std::set<std::thread::id> ids;
  for (std::size_t i = 0; i < group.size(); ++i) {
    LoopResult<std::thread::id> r = group.submit_to(i, [] { return std::this_thread::get_id(); });
    const std::thread::id id = r.get();
    CHECK(id == group.thread_id(i));
    CHECK(id != std::this_thread::get_id());
    ids.insert(id);
  }
  CHECK(ids.size() == 3);
  // Each runs with its own loop current.
  auto on_loop = group.submit_to(1, [&group] { return EventLoop::current() == &group.loop(1); });
  CHECK(on_loop.get());
  auto failing = group.submit_to(2, []() -> int { throw std::runtime_error("loop 2 failed"); });
  CHECK_THROWS_WITH(failing.get(), "loop 2 failed");
  // A Task: spawned on the loop.
  auto task = group.submit_to(0, [] { return doubled_later(21); });
  CHECK(task.get() == 42);
  auto void_call = group.submit_to(0, [] {});
  void_call.get();
  CHECK_THROWS_AS(group.submit_to(7, [] {}), std::out_of_range);
  const bool described = group.describe().find("epoll") != std::string::npos ||
                         group.describe().find("uring") != std::string::npos;
  CHECK(described);
}

TEST_CASE("a task on one loop awaits work on another and resumes on its own loop", "[loop_group]") {
  LoopGroup group(2);
  struct Seen {
    int sum = 0;
    bool resumed_home = true;
    std::string error;
  };
  LoopResult<Seen> outer = group.submit_to(0, [&group]() -> Task<Seen> {
    return [](LoopGroup* g) -> Task<Seen> {
      Seen seen;
      const std::thread::id home = std::this_thread::get_id();
      for (int i = 0; i < 50; ++i) {
        LoopResult<int> r = g->submit_to(1, [i] { return doubled_later(i); });
        int v = co_await r;
        seen.sum += v;
        seen.resumed_home = seen.resumed_home && std::this_thread::get_id() == home;
      }
      auto failing = g->submit_to(1, []() -> int { throw std::invalid_argument("bad on 1"); });
      try {
        (void)co_await failing;
      } catch (const std::invalid_argument& e) {
        seen.error = e.what();
      }
      co_return seen;
    }(&group);
  });
  Seen seen = outer.get();
  CHECK(seen.sum == 2 * (49 * 50 / 2));
  CHECK(seen.resumed_home);
  CHECK(seen.error == "bad on 1");
}

TEST_CASE("many results from many loops, in any order", "[loop_group]") {
  LoopGroup group(4);
  std::vector<LoopResult<int>> results;
  for (int k = 0; k < 400; ++k) {
    results.push_back(
        group.submit_to(static_cast<std::size_t>(k) % group.size(), [k] { return k; }));
  }
  long sum = 0;
  for (auto& r : results) sum += r.get();
  CHECK(sum == 399L * 400 / 2);
}

TEST_CASE("a wait with a timeout leaves the result usable", "[loop_group]") {
  LoopGroup group(2);
  auto r = group.submit_to(0, [&group]() -> Task<int> {
    return [](LoopGroup* g) -> Task<int> {
      LoopResult<int> slow = g->submit_to(1, [] {
        return []() -> Task<int> {
          co_await coring::sleep_for(30ms);
          co_return 7;
        }();
      });
      std::optional<int> early = co_await coring::with_timeout(1ms, slow.wait());
      int late = co_await slow;
      co_return (early.has_value() ? 100 : 0) + late;
    }(&group);
  });
  CHECK(r.get() == 7);
}

TEST_CASE("stop with work still running: its result reports the stop", "[loop_group]") {
  std::optional<LoopResult<int>> never;
  {
    LoopGroup group(1);
    never.emplace(group.submit_to(0, [] {
      return []() -> Task<int> {
        co_await coring::sleep_for(10s);
        co_return 1;
      }();
    }));
    std::this_thread::sleep_for(5ms);
    group.stop();
    CHECK_THROWS_AS(group.submit_to(0, [] { return 1; }), LoopGroupStopped);
  }
  CHECK_THROWS_AS(never->get(), coring::TaskCancelled);
}

TEST_CASE("a loop that cannot start makes the constructor throw, naming it", "[loop_group]") {
  const std::size_t threads = baseline_threads();
  auto made = std::make_shared<std::atomic<int>>(0);
  coring::LoopOptions options;
  options.backend_factory = [made](const coring::LoopOptions& o) {
    if (made->fetch_add(1) == 2) throw std::runtime_error("no ring for you");
    coring::LoopOptions plain = o;
    plain.backend_factory = nullptr;
    return coring::make_backend(plain);
  };
  bool threw = false;
  try {
    LoopGroup group(4, options);
  } catch (const std::system_error& e) {
    threw = std::string(e.what()).find("no ring for you") != std::string::npos;
  }
  CHECK(threw);
  CHECK(count_threads() == threads);
}

TEST_CASE("LoopGroup start/stop 100 times leaves no thread and no fd behind", "[loop_group]") {
  const std::size_t fds = coring_test::count_open_fds();
  const std::size_t threads = baseline_threads();
  int sum = 0;
  for (int round = 0; round < 100; ++round) {
    LoopGroup group(2);
    auto a = group.submit_to(0, [round] { return round; });
    auto b = group.submit_to(1, [] { return 1; });
    sum += a.get() + b.get();
    if (round % 2 == 0) group.stop();  // else the destructor stops it
  }
  CHECK(sum == 99 * 100 / 2 + 100);
  CHECK(coring_test::count_open_fds() == fds);
  CHECK(count_threads() == threads);
}
