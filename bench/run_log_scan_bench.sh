#!/usr/bin/env bash
# The parallel log scan (Cookbook 12.8) against the seed's Python version:
# builds log_scan in Release, writes ~200 MB (uncompressed; about 42 MB of
# gzip) of sample Apache logs with the demo's generator, then runs coring's
# log_scan and bench/python/find_robots.py (ProcessPoolExecutor, one worker
# process per CPU) on the same folder, alternating, RUNS times each. Checks
# that both print the same IPs and reports the medians of the wall-clock times,
# the ratio (target: coring >= 4x faster) and the CPU time each used.
#
# Usage: bench/run_log_scan_bench.sh
# Environment:
#   BUILD_DIR  build directory                   (default: <repo>/build/bench)
#   SIZE_MB    uncompressed size of the logs, MB (default: 200)
#   FILES      number of .gz files               (default: 32)
#   RUNS       runs of each program              (default: 3)
#   LOG_DIR    where the logs go                 (default: a temporary folder, removed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
SIZE_MB="${SIZE_MB:-200}"
FILES="${FILES:-32}"
RUNS="${RUNS:-3}"

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORING_BUILD_BENCH=ON \
  -DCORING_BUILD_DEMOS=ON "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" --target log_scan -- -j2 >/dev/null
DEMO="$BUILD_DIR/demos/log_scan"
PY="$ROOT/bench/python/find_robots.py"

if [[ -n "${LOG_DIR:-}" ]]; then
  work="$(mktemp -d)"
  logs="$LOG_DIR"
else
  work="$(mktemp -d)"
  logs="$work/logs"
fi
trap 'rm -rf "$work"' EXIT

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== coring $rev; $(c++ --version | head -1); $(python3 --version)"
echo "== machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"

# ~87 bytes per generated line.
lines=$(( SIZE_MB * 1000 * 1000 / 87 / FILES ))
if [[ ! -d "$logs" ]] || [[ -z "$(ls "$logs"/*.gz 2>/dev/null)" ]]; then
  "$DEMO" --generate "$logs" --files "$FILES" --lines "$lines"
fi
gz_bytes=$(cat "$logs"/*.gz | wc -c)
raw_bytes=$(zcat "$logs"/*.gz | wc -c)  # also warms the page cache
echo "== logs: $(ls "$logs"/*.gz | wc -l) files, $((raw_bytes / 1000000)) MB uncompressed, $((gz_bytes / 1000000)) MB gzip"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "== WARNING: the machine is busy (load average > 1); expect slower and noisier figures"
fi

# Runs "$@" with stdout to $out_file; appends "wall cpu" seconds (cpu: user +
# sys of the process and its children) to $times_file.
timed() {
  local times_file="$1" out_file="$2"
  shift 2
  local t
  t=$( { TIMEFORMAT='%R %U %S'; time "$@" > "$out_file" 2>/dev/null; } 2>&1 | tail -1)
  echo "$t" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}' >> "$times_file"
}

: > "$work/coring.times"
: > "$work/python.times"
for ((i = 1; i <= RUNS; ++i)); do
  timed "$work/coring.times" "$work/coring.out" "$DEMO" --no-progress "$logs"
  timed "$work/python.times" "$work/python.out" python3 "$PY" "$logs"
  cmp -s "$work/coring.out" "$work/python.out" || {
    echo "MISMATCH: log_scan and find_robots.py print different IP sets"
    diff "$work/coring.out" "$work/python.out" | head
    exit 1
  }
done
ips=$(wc -l < "$work/coring.out")

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
c_wall=$(cut -d' ' -f1 "$work/coring.times" | median)
p_wall=$(cut -d' ' -f1 "$work/python.times" | median)
c_cpu=$(cut -d' ' -f2 "$work/coring.times" | median)
p_cpu=$(cut -d' ' -f2 "$work/python.times" | median)
ratio=$(echo "$p_wall / $c_wall" | bc -l)

echo
echo "== Summary (medians of $RUNS runs; both print the same $ips IPs)"
printf "coring log_scan:          %6.3f s wall, %6.3f s CPU, %6.0f MB/s uncompressed\n" \
  "$c_wall" "$c_cpu" "$(echo "$raw_bytes / 1000000 / $c_wall" | bc -l)"
printf "python ProcessPoolExecutor: %6.3f s wall, %6.3f s CPU, %6.0f MB/s uncompressed\n" \
  "$p_wall" "$p_cpu" "$(echo "$raw_bytes / 1000000 / $p_wall" | bc -l)"
printf "python/coring wall = %.2fx (target >= 4x: %s); CPU = %.2fx\n" "$ratio" \
  "$(awk -v r="$ratio" 'BEGIN {print (r >= 4) ? "MET" : "MISSED"}')" \
  "$(echo "$p_cpu / $c_cpu" | bc -l)"
echo "(all runs, wall and CPU seconds: coring $(tr '\n' ';' < "$work/coring.times") python $(tr '\n' ';' < "$work/python.times"))"
