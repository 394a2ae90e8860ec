#!/usr/bin/env bash
# echo_server --threads 1 against --threads 2 (a LoopGroup, one SO_REUSEPORT
# listener per loop), loaded by echo_client, interleaved REPS times on fresh
# server processes. Per run: round trips/s (echo_client) and the server's CPU
# time per round trip (utime+stime from /proc/PID/stat before and after the
# client run, all threads). Prints the medians and the ratio threads2/threads1.
#
# Usage: bench/run_threads_bench.sh
# Environment: BUILD_DIR (default <repo>/build/bench), REPS (5), DURATION (3),
#   CONNECTIONS (100), SIZE (64), DEPTH (1), BACKEND (automatic), SKIP_BUILD=1.
# No CPU pinning: --threads 2 needs two CPUs; the client competes with the
# server for them (this machine has 2), so read the CPU column with that in mind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
REPS="${REPS:-5}"
DURATION="${DURATION:-3}"
CONNECTIONS="${CONNECTIONS:-100}"
SIZE="${SIZE:-64}"
DEPTH="${DEPTH:-1}"
BACKEND="${BACKEND:-automatic}"
if [[ -z ${SKIP_BUILD:-} ]]; then
  cmake --build "$BUILD_DIR" -t echo_server echo_client >/dev/null
fi
SERVER="$BUILD_DIR/demos/echo_server"
CLIENT="$BUILD_DIR/demos/echo_client"
TICKS=$(getconf CLK_TCK)
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() {  # threads -> "rt_per_s cpu_us_per_rt"
  local threads=$1 line port before after out rts
  rm -f "$tmp/server.out"
  "$SERVER" --port 0 --threads "$threads" --backend "$BACKEND" >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  line=
  for _ in $(seq 100); do
    line=$(head -n 1 "$tmp/server.out" 2>/dev/null || true)
    [[ -n $line ]] && break
    sleep 0.05
  done
  [[ $line =~ :([0-9]+)$ ]] || { echo "no address from echo_server: '$line'" >&2; exit 1; }
  port=${BASH_REMATCH[1]}
  before=$(cpu_ticks "$server_pid")
  out=$("$CLIENT" --host 127.0.0.1 --port "$port" --connections "$CONNECTIONS" --size "$SIZE" \
    --depth "$DEPTH" --duration "$DURATION")
  after=$(cpu_ticks "$server_pid")
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
  [[ $out =~ round_trips=([0-9]+)\ rt_per_s=([0-9]+) ]] || { echo "bad client output: $out" >&2; exit 1; }
  rts=${BASH_REMATCH[1]}
  echo "${BASH_REMATCH[2]} $(awk -v t=$((after - before)) -v hz="$TICKS" -v n="$rts" \
    'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$tmp/t1"
: >"$tmp/t2"
for ((r = 0; r < REPS; ++r)); do
  run_one 1 >>"$tmp/t1"
  run_one 2 >>"$tmp/t2"
done
r1=$(cut -d' ' -f1 "$tmp/t1" | median)
c1=$(cut -d' ' -f2 "$tmp/t1" | median)
r2=$(cut -d' ' -f1 "$tmp/t2" | median)
c2=$(cut -d' ' -f2 "$tmp/t2" | median)
echo "echo_server --threads N, $CONNECTIONS connections x $SIZE B, depth $DEPTH, ${DURATION}s, backend $BACKEND, medians of $REPS"
echo "| threads | round trips/s | server CPU us / round trip |"
echo "|---|---|---|"
echo "| 1 | $r1 | $c1 |"
echo "| 2 | $r2 | $c2 |"
awk -v a="$r1" -v b="$r2" 'BEGIN { printf "throughput threads2/threads1: %.2fx\n", b / a }'
