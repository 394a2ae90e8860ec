#!/usr/bin/env bash
# Builds the sync benchmarks in Release, runs them (5 repetitions, medians),
# runs the seed's Python queue.Queue producer/consumer for comparison, and
# prints the ratios the issue sets as targets:
#   Queue hand-off / yield switch   (target: within 2x)
#   python ns per item / coring ns per item   (target: >= 100x)
#
# Usage: bench/run_sync_bench.sh
# Environment:
#   BUILD_DIR        build directory          (default: <repo>/build/bench)
#   CORING_BENCH_CPU CPU to pin the runs to   (default: the last CPU; "none": no pinning)
#   REPETITIONS      Google Benchmark repetitions (default: 5)
#   PY_REPEAT        runs of the Python script (default: 5)
#   PY_ITEMS         items per Python run      (default: 1000000)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
REPETITIONS="${REPETITIONS:-5}"
PY_REPEAT="${PY_REPEAT:-5}"
PY_ITEMS="${PY_ITEMS:-1000000}"
OUT="$BUILD_DIR/results"

cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCORING_BUILD_BENCH=ON -DCORING_BUILD_TESTS=OFF -DCORING_BUILD_DEMOS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target sync_queue_bench sync_lock_bench
mkdir -p "$OUT"

CPU="${CORING_BENCH_CPU:-$(($(nproc) - 1))}"
PIN=()
if [[ "$CPU" != none ]] && command -v taskset >/dev/null && [[ "$(nproc)" -gt 1 ]]; then
  PIN=(taskset -c "$CPU")
fi

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- runtime sync include 2>/dev/null || rev="$rev+local-changes"
echo "== coring $rev; $(c++ --version | head -1)"
echo "== machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "== pinned to: ${PIN[*]:-(not pinned)}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "== WARNING: the machine is busy (load average > 1); expect slower and noisier figures"
fi

for b in sync_queue_bench sync_lock_bench; do
  echo
  echo "== $b"
  "${PIN[@]}" "$BUILD_DIR/bench/$b" \
    --benchmark_repetitions="$REPETITIONS" \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/$b.json" --benchmark_out_format=json
done

# The Python recipe needs its two threads on two CPUs, as the seed runs it;
# it is not pinned.
echo
echo "== seed queue.Queue producer/consumer on $(command -v python3)"
python3 "$ROOT/bench/python/seed_queue.py" --items "$PY_ITEMS" --repeat "$PY_REPEAT" |
  tee "$OUT/python_queue.txt"

echo
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
with open(os.path.join(out, "sync_queue_bench.json")) as f:
    data = json.load(f)
med = {b["run_name"].replace("/real_time", ""): b
       for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
with open(os.path.join(out, "python_queue.txt")) as f:
    py = float([l.split()[1] for l in f if l.startswith("python_ns_per_item")][0])

def verdict(ok):
    return "MET" if ok else "MISSED"

y = med["BM_YieldPingPong"]["ns_per_handoff"]
q = med["BM_QueuePingPong"]["ns_per_handoff"]
print("== Summary (medians of the repetitions; wall-clock)")
print(f"ping-pong: yield {y:.2f} ns/switch, Queue {q:.2f} ns/hand-off")
print(f"  queue_handoff/yield = {q / y:.2f}x   (target <= 2x: {verdict(q / y <= 2)})")
for cap in ("1024", "0"):
    b = med[f"BM_QueueThroughput/{cap}"]
    name = "unbounded" if cap == "0" else f"capacity {cap}"
    print(f"throughput, {name}: {b['ns_per_item']:.2f} ns/item, "
          f"{b['items_per_second'] / 1e6:.1f} M items/s")
c = med["BM_QueueThroughput/1024"]["ns_per_item"]
print(f"python queue.Queue: {py:.1f} ns/item; python/coring(capacity 1024) = {py / c:.0f}x "
      f"(target >= 100x: {verdict(py / c >= 100)})")
PY
