// Cancellation and timeouts, as a small job runner: what the seed's countdown
// (Cookbook 12.1, "terminate() a thread") grows into once tasks are cheap.
//
// 1. Per-job timeouts: with_timeout(d, job()) gives std::nullopt when the job
//    took too long; the job is stopped (its frames unwound), the runner goes on.
// 2. A batch cancelled as a whole: each job wraps its work in try_finally, so
//    a cancelled job still awaits its own cleanup (here: a flush that takes a
//    moment) before it ends; join() then tells "it was cancelled" as a value.
// 3. A commit that must not be torn: shield() runs it to its end although the
//    job is cancelled meanwhile; the job stops right after it.
// Cancellation throws nothing: a cancelled task is unwound at its suspension
// point, its destructors run, no code after that point does.
//
// Run: ./job_runner [--time-scale=1]   (one unit of the demo's time: 0.1 s)
#include <fmt/core.h>

#include <coring/coring.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "demo_options.hpp"

namespace {

double g_scale = 1.0;

coring::Duration units(double n) {
  return demo::scaled(0.1 * n, g_scale);
}

coring::Task<int> job(int id, double work) {
  co_await coring::sleep_for(units(work));
  co_return id * 10;
}

coring::Task<void> flush(int id) {
  co_await coring::sleep_for(units(1));  // awaited cleanup: the job is already cancelled
  fmt::print("job {}: flushed its output\n", id);
}

coring::Task<int> careful_job(int id) {
  co_return co_await coring::try_finally(job(id, 100), flush(id));
}

coring::Task<void> commit(int id) {
  fmt::print("job {}: committing\n", id);
  co_await coring::sleep_for(units(5));
  fmt::print("job {}: committed\n", id);
}

coring::Task<void> committing_job(int id) {
  co_await coring::shield(commit(id));
  co_await coring::sleep_for(units(100));  // cancelled here, right after the commit
  fmt::print("job {}: never printed\n", id);
}

template <class T>
const char* how(const coring::Outcome<T>& o) {
  return o.cancelled() ? "cancelled" : o.failed() ? "failed" : "finished";
}

coring::Task<void> run_jobs() {
  // 1. Timeouts.
  for (const auto& [id, work] : {std::pair{1, 1.0}, std::pair{2, 8.0}, std::pair{3, 2.0}}) {
    const std::optional<int> r = co_await coring::with_timeout(units(4), job(id, work));
    if (r) {
      fmt::print("job {}: done, result {}\n", id, *r);
    } else {
      fmt::print("job {}: timed out\n", id);
    }
  }

  // 2. A cancelled batch.
  std::vector<coring::JoinHandle<int>> batch;
  for (int id = 4; id <= 6; ++id) batch.push_back(coring::spawn(careful_job(id)));
  co_await coring::sleep_for(units(1));
  fmt::print("batch: cancelling {} jobs\n", batch.size());
  for (auto& h : batch) h.cancel();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const coring::Outcome<int> o = co_await batch[i].join();
    fmt::print("job {}: {}\n", 4 + i, how(o));
  }

  // 3. A shielded commit.
  auto committer = coring::spawn(committing_job(7));
  co_await coring::sleep_for(units(1));
  fmt::print("job 7: cancel requested\n");
  committer.cancel();
  const coring::Outcome<void> o = co_await committer.join();
  fmt::print("job 7: {}, after its commit\n", how(o));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    g_scale = demo::parse_time_scale(argc, argv);
    coring::run(run_jobs());
  } catch (const std::exception& e) {
    fmt::print(stderr, "job_runner: {}\n", e.what());
    return 1;
  }
}
