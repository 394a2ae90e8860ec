#!/usr/bin/env bash
# Builds the runtime benchmarks in Release, runs them (5 repetitions, medians),
# runs the seed's Python TaskScheduler for comparison, and prints a summary
# (the figures in docs/benchmarks.md, section "Runtime (issue 2)").
#
# Usage: bench/run_runtime_bench.sh
# Environment:
#   BUILD_DIR        build directory          (default: <repo>/build/bench)
#   CORING_BENCH_CPU CPU to pin the runs to   (default: the last CPU; "none": no pinning)
#   REPETITIONS      Google Benchmark repetitions (default: 5)
#   PY_REPEAT        runs of the Python script per interpreter (default: 7)
#   PYTHONS          interpreters to time     (default: /usr/bin/python3 and python3 on PATH)
# Takes about 2 minutes on a 2-core VM (plus the build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
REPETITIONS="${REPETITIONS:-5}"
PY_REPEAT="${PY_REPEAT:-7}"
OUT="$BUILD_DIR/results"

# ---- build ------------------------------------------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCORING_BUILD_BENCH=ON -DCORING_BUILD_TESTS=OFF -DCORING_BUILD_DEMOS=OFF >/dev/null
cmake --build "$BUILD_DIR"
mkdir -p "$OUT"

# ---- pinning ----------------------------------------------------------------
CPU="${CORING_BENCH_CPU:-$(($(nproc) - 1))}"
PIN=()
if [[ "$CPU" != none ]] && command -v taskset >/dev/null && [[ "$(nproc)" -gt 1 ]]; then
  PIN=(taskset -c "$CPU")
fi

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- runtime include 2>/dev/null || rev="$rev+local-changes"
echo "== coring $rev; $(c++ --version | head -1); Google Benchmark $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?')"
echo "== machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "== pinned to: ${PIN[*]:-(not pinned)}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== start: $(date -u +%FT%TZ)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "== WARNING: the machine is busy (load average > 1); expect slower and noisier figures"
fi

# ---- C++ benchmarks -----------------------------------------------------------
# yield and timer repetitions are randomly interleaved, so that a slow phase of
# a shared machine hits every variant alike (the ratios are what matter there).
# skynet is not: its Args must run in increasing order (maxrss is a running peak)
# and its allocator diagnostics must run last.
for b in yield_bench skynet_bench timer_bench; do
  echo
  echo "== $b"
  interleave=true
  [[ $b == skynet_bench ]] && interleave=false
  "${PIN[@]}" "$BUILD_DIR/bench/$b" \
    --benchmark_repetitions="$REPETITIONS" \
    --benchmark_enable_random_interleaving="$interleave" \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/$b.json" --benchmark_out_format=json
done

# ---- Python seed ------------------------------------------------------------
if [[ -z "${PYTHONS:-}" ]]; then
  PYTHONS=""
  [[ -x /usr/bin/python3 ]] && PYTHONS="/usr/bin/python3"
  p="$(command -v python3 || true)"
  if [[ -n "$p" && "$(readlink -f "$p")" != "$(readlink -f /usr/bin/python3 2>/dev/null || true)" ]]; then
    PYTHONS="$PYTHONS $p"
  fi
fi
: >"$OUT/python.txt"
for py in $PYTHONS; do
  echo
  echo "== seed TaskScheduler on $py"
  "${PIN[@]}" "$py" "$ROOT/bench/python/seed_task_scheduler.py" --repeat "$PY_REPEAT" | tee "$OUT/python.raw"
  ver="$("$py" -c 'import platform; print(platform.python_version())')"
  ns="$(awk '/^python_ns_per_switch/ {print $2}' "$OUT/python.raw")"
  echo "$py $ver $ns" >>"$OUT/python.txt"
done
rm -f "$OUT/python.raw"

# ---- summary ----------------------------------------------------------------
echo
echo "== end: $(date -u +%FT%TZ); load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'EOF'
import json, sys, os
out = sys.argv[1]

def medians(name):
    with open(os.path.join(out, name + ".json")) as f:
        data = json.load(f)
    res = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            res[b["run_name"].replace("/real_time", "")] = b
    return res

y, s, t = medians("yield_bench"), medians("skynet_bench"), medians("timer_bench")

def verdict(ok):
    return "MET" if ok else "MISSED"

print("\n== Summary (medians of the repetitions; wall-clock)")
deque = y["BM_DequeYield/100"]["ns_per_switch"]
coring = y["BM_CoringYield/100"]["ns_per_switch"]
ratio = coring / deque
print(f"yield, 100 tasks: deque floor {deque:.2f} ns/switch, coring {coring:.2f} ns/switch")
print(f"  coring_yield/deque_yield = {ratio:.2f}x   (target <= 1.2x: {verdict(ratio <= 1.2)})")
for n in ("100", "10000"):
    print(f"  {n:>5} tasks: " + ", ".join(
        f"{k} {y[f'BM_{k}Yield/{n}']['ns_per_switch']:.2f}"
        for k in ("Deque", "Coring", "SchedulerRaw", "EventLoop")) + " ns/switch")

with open(os.path.join(out, "python.txt")) as f:
    for line in f:
        py, ver, ns = line.split()
        r = float(ns) / coring
        print(f"python {ver} ({py}): {float(ns):.1f} ns/switch; "
              f"python/coring = {r:.1f}x (target >= 50x: {verdict(r >= 50)})")

print("skynet (ns per task; peak RSS):")
for key in ("BM_Skynet/10000", "BM_Skynet/100000", "BM_Skynet/1000000",
            "BM_SkynetEventLoop/1000000", "BM_SkynetFrameCache/1000000", "BM_SkynetNoTrim/1000000"):
    b = s[key]
    print(f"  {key:<28} {b['ns_per_task']:9.1f} ns/task  maxrss {b['maxrss_MiB']:6.0f} MiB  "
          f"minflt/task {b['minflt_per_task']:.3f}")
sk = s["BM_Skynet/1000000"]["ns_per_task"]
print(f"  skynet 1M standalone: {sk:.1f} ns/task (target <= 40: {verdict(sk <= 40)}); "
      f"frame {s['BM_Skynet/1000000']['frame_bytes']:.0f} B")

print("timers (ns per timer):")
for k in ("SpawnJoin", "SleepFor", "SleepCancel", "TimerQueueAddExpire", "TimerQueueAddRemove"):
    print(f"  {k:<22} 10k {t[f'BM_{k}/10000']['ns_per_timer']:8.1f}   "
          f"100k {t[f'BM_{k}/100000']['ns_per_timer']:8.1f}")
EOF
