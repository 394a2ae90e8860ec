#!/usr/bin/env bash
# Builds the actor benchmarks and demos/actor_scheduler in Release, runs
# actor_bench (5 repetitions, medians), the seed's Python ActorScheduler and
# demos/actor_scheduler --quiet several times each (medians), and prints the
# figures the issue sets as targets:
#   ActorScheduler ns per message                  (target: <= 6 ns)
#   coring / Python ActorScheduler messages per s  (the issue expects about 40x)
#   mailbox hand-off / yield switch                (target: <= 2x; Queue for comparison)
#   bytes per idle actor at 1,000,000 actors       (target: <= 256 B)
#   spawn + send + join, ns per actor at 1,000,000 (and its peak memory)
#
# Usage: bench/run_actor_bench.sh
# Environment:
#   BUILD_DIR        build directory          (default: <repo>/build/bench)
#   CORING_BENCH_CPU CPU to pin the runs to   (default: the last CPU; "none": no pinning)
#   REPETITIONS      Google Benchmark repetitions (default: 5)
#   COUNT            the counter's start value N for the demo and Python (default: 10000000)
#   DEMO_REPEAT      runs of demos/actor_scheduler (default: 7)
#   PY_REPEAT        runs of the Python script per interpreter (default: 5)
#   PY_COUNT         N for the Python runs    (default: COUNT; about 4 s per run at 10M)
#   PYTHONS          interpreters to time     (default: /usr/bin/python3 and python3 on PATH)
# Takes about 2.5 minutes on a 2-core VM (plus the build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
REPETITIONS="${REPETITIONS:-5}"
COUNT="${COUNT:-10000000}"
DEMO_REPEAT="${DEMO_REPEAT:-7}"
PY_REPEAT="${PY_REPEAT:-5}"
PY_COUNT="${PY_COUNT:-$COUNT}"
OUT="$BUILD_DIR/results"

# ---- build ------------------------------------------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCORING_BUILD_BENCH=ON -DCORING_BUILD_TESTS=OFF -DCORING_BUILD_DEMOS=ON >/dev/null
cmake --build "$BUILD_DIR" --target actor_bench actor_scheduler
mkdir -p "$OUT"
DEMO="$BUILD_DIR/demos/actor_scheduler"

# ---- pinning ----------------------------------------------------------------
CPU="${CORING_BENCH_CPU:-$(($(nproc) - 1))}"
PIN=()
if [[ "$CPU" != none ]] && command -v taskset >/dev/null && [[ "$(nproc)" -gt 1 ]]; then
  PIN=(taskset -c "$CPU")
fi

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- runtime sync actor include demos/actor_scheduler.cpp \
  bench/actor_bench.cpp 2>/dev/null || rev="$rev+local-changes"
echo "== coring $rev; $(c++ --version | head -1); Google Benchmark $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?')"
echo "== machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "== pinned to: ${PIN[*]:-(not pinned)}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== start: $(date -u +%FT%TZ)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "== WARNING: the machine is busy (load average > 1); expect slower and noisier figures"
fi

# ---- Python interpreters ------------------------------------------------------
if [[ -z "${PYTHONS:-}" ]]; then
  PYTHONS=""
  [[ -x /usr/bin/python3 ]] && PYTHONS="/usr/bin/python3"
  p="$(command -v python3 || true)"
  if [[ -n "$p" && "$(readlink -f "$p")" != "$(readlink -f /usr/bin/python3 2>/dev/null || true)" ]]; then
    PYTHONS="$PYTHONS $p"
  fi
fi

# ---- the two programs agree on the message count -------------------------------
# messages = 2N + 3 for a count N (the two starts, N + 1 to the counter, N to the
# printer), from the Python seed and from the coring demo alike.
for n in 0 1 12345; do
  want=$((2 * n + 3))
  got_demo="$("$DEMO" --quiet --count "$n" | sed -n 's/^messages=\([0-9]*\) .*/\1/p')"
  for py in $PYTHONS; do
    got_py="$("$py" "$ROOT/bench/python/actor_scheduler.py" --count "$n" |
      sed -n 's/^messages=\([0-9]*\) .*/\1/p')"
    if [[ "$got_py" != "$want" || "$got_demo" != "$want" ]]; then
      echo "error: count $n: python ($py) says $got_py messages, demo says $got_demo, 2N+3 = $want" >&2
      exit 1
    fi
  done
done
echo "== message counts agree: python = demos/actor_scheduler = 2N+3 for N = 0, 1, 12345"

# ---- C++ benchmarks -------------------------------------------------------------
# Repetitions are randomly interleaved, so a slow phase of a shared machine hits
# every variant alike (the ratios are what matter there).
echo
echo "== actor_bench"
"${PIN[@]}" "$BUILD_DIR/bench/actor_bench" \
  --benchmark_repetitions="$REPETITIONS" \
  --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$OUT/actor_bench.json" --benchmark_out_format=json

# ---- demos/actor_scheduler --------------------------------------------------------
echo
echo "== demos/actor_scheduler --quiet --count $COUNT, $DEMO_REPEAT runs"
: >"$OUT/actor_scheduler_demo.txt"
for _ in $(seq "$DEMO_REPEAT"); do
  "${PIN[@]}" "$DEMO" --quiet --count "$COUNT" | tee -a "$OUT/actor_scheduler_demo.txt"
done

# ---- Python seed --------------------------------------------------------------
: >"$OUT/actor_scheduler_python.txt"
for py in $PYTHONS; do
  ver="$("$py" -c 'import platform; print(platform.python_implementation(), platform.python_version())')"
  echo
  echo "== seed ActorScheduler on $py ($ver), --count $PY_COUNT, $PY_REPEAT runs"
  "${PIN[@]}" "$py" "$ROOT/bench/python/actor_scheduler.py" --count "$PY_COUNT" --repeat "$PY_REPEAT" |
    tee "$OUT/python.raw"
  sed "s|^|$py ${ver// /_} |" "$OUT/python.raw" >>"$OUT/actor_scheduler_python.txt"
done
rm -f "$OUT/python.raw"

# ---- summary ----------------------------------------------------------------
echo
echo "== end: $(date -u +%FT%TZ); load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$COUNT" "$PY_COUNT" <<'PY'
import json, os, statistics, sys
out, count, py_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

with open(os.path.join(out, "actor_bench.json")) as f:
    data = json.load(f)
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") == "median":
        name = b["run_name"].replace("/real_time", "")
        name = "/".join(p for p in name.split("/") if not p.startswith("iterations:"))
        med[name] = b

def fields(line):
    return dict(kv.split("=") for kv in line.split() if "=" in kv)

with open(os.path.join(out, "actor_scheduler_demo.txt")) as f:
    demo = [fields(l) for l in f if l.startswith("messages=")]
pys = {}
with open(os.path.join(out, "actor_scheduler_python.txt")) as f:
    for line in f:
        py, ver, rest = line.split(maxsplit=2)
        if rest.startswith("messages="):
            pys.setdefault((py, ver.replace("_", " ")), []).append(fields(rest))

def verdict(ok):
    return "MET" if ok else "MISSED"

print("== Summary (medians; wall-clock)")
n = 2 * count + 3
demo_rate = statistics.median(float(d["msgs_per_s"]) for d in demo)
demo_ns = 1e9 / demo_rate
bench_ns = med["BM_ActorSchedulerCounter"]["ns_per_message"]
print(f"ActorScheduler, count {count:,} ({n:,} messages):")
print(f"  demos/actor_scheduler --quiet: {demo_ns:.2f} ns/message "
      f"({demo_rate / 1e6:.1f} M msgs/s, median of {len(demo)}) "
      f"(target <= 6 ns: {verdict(demo_ns <= 6)})")
print(f"  actor_bench BM_ActorSchedulerCounter: {bench_ns:.2f} ns/message "
      f"(target <= 6 ns: {verdict(bench_ns <= 6)})")
for (py, ver), runs in pys.items():
    rate = statistics.median(float(r["msgs_per_s"]) for r in runs)
    msgs = int(runs[0]["messages"])
    print(f"  Python seed, {ver} ({py}), count {py_count:,}: {1e9 / rate:.1f} ns/message "
          f"({rate / 1e6:.2f} M msgs/s, {msgs:,} messages, median of {len(runs)}); "
          f"coring/python = {demo_rate / rate:.1f}x (the issue expects about 40x)")

y = med["BM_YieldSwitch"]["ns_per_switch"]
a = med["BM_ActorPingPong"]["ns_per_handoff"]
q = med["BM_QueuePingPong"]["ns_per_handoff"]
print("ping-pong on a TaskScheduler:")
print(f"  yield {y:.2f} ns/switch, actor mailbox {a:.2f} ns/hand-off, Queue {q:.2f} ns/hand-off")
print(f"  mailbox_handoff/yield = {a / y:.2f}x (target <= 2x: {verdict(a / y <= 2)}); "
      f"queue_handoff/yield = {q / y:.2f}x")

ia = med["BM_IdleActors"]
it = med["BM_IdleQueueTasks/1"]
ib = med["BM_IdleQueueTasks/0"]
b = ia["bytes_per_idle_actor"]
print("memory per idle entity, 1,000,000 parked (RSS growth / N; live heap / N):")
print(f"  actor in receive():            {b:7.1f} B RSS, {ia['heap_bytes_per_idle_actor']:7.1f} B heap "
      f"(target <= 256 B: {verdict(b <= 256)})")
print(f"  task in pop() of its own Queue: {it['bytes_per_idle_task']:7.1f} B RSS, "
      f"{it['heap_bytes_per_idle_task']:7.1f} B heap")
print(f"  task in pop() of one shared Queue: {ib['bytes_per_idle_task']:7.1f} B RSS, "
      f"{ib['heap_bytes_per_idle_task']:7.1f} B heap")
print(f"  (spawn + run to the parked state: actor {ia['ns_to_park']:.1f} ns, "
      f"task with its own Queue {it['ns_to_park']:.1f} ns, on a shared Queue {ib['ns_to_park']:.1f} ns)")

s = med["BM_ActorSpawnSendJoin"]
print("spawn + send + join, 1,000,000 actors:")
print(f"  {s['ns_per_actor']:.1f} ns/actor (steady state: frames reused); "
      f"cold first run {s['cold_ns_per_actor']:.1f} ns/actor")
print(f"  peak live heap {s['peak_heap_bytes_per_actor']:.1f} B/actor; cold peak RSS growth "
      f"{s['cold_peak_rss_growth_MiB']:.0f} MiB ({s['cold_peak_rss_bytes_per_actor']:.1f} B/actor); "
      f"minor faults/actor {s['minflt_per_actor']:.3f} (steady state)")
PY
