#!/usr/bin/env bash
# Echo-server benchmark: coring's demos/echo_server against a plain liburing echo server
# (bench/baselines/uring_echo_server.cpp) and a Boost.Asio one
# (bench/baselines/asio_echo_server.cpp), and coring's echo_server on its epoll backend
# (--backend epoll, "coring_epoll") against a plain epoll echo server
# (bench/baselines/epoll_echo_server.cpp, "epoll"), loaded by coring's demos/echo_client.
#
# For each scenario (connections x message size x pipeline depth) it runs the servers
# interleaved (coring, baseline, asio, coring, ...) REPS times, each on a fresh server
# process pinned to one CPU with the client pinned to another, and records per run: round
# trips/s and p50/p99/p99.9 latency (from echo_client), the server's CPU time per round trip
# (utime+stime from /proc/PID/stat, read just before and after the client run) and its peak
# RSS (VmHWM). Then, per server, the memory an idle connection costs: VmRSS before and while
# echo_client holds IDLE_CONNS connections that never send. It prints one markdown table per
# scenario (medians, and the ratios coring/baseline and coring/asio against the issue's
# targets), the idle-memory table, and writes every run's raw line to
# $BUILD_DIR/net_bench_raw.txt (the summary also goes to $BUILD_DIR/net_bench_summary.md).
#
# Usage: bench/run_net_bench.sh
# Environment:
#   BUILD_DIR     build directory                                (default: <repo>/build/bench)
#   REPS          runs per server and scenario                   (default: 5)
#   DURATION      seconds per client run                         (default: 3)
#   WARMUP        echo_client --warmup seconds; the server CPU is then sampled after it
#                 (default: 0, no warmup; CPU covers the whole client run)
#   SCENARIOS     space-separated CONNECTIONS:SIZE:DEPTH        (default: "1:64:1 100:64:1
#                 1000:64:1 50:16384:1")
#   IDLE_CONNS    idle connections for the memory test           (default: 5000)
#   IDLE_HOLD     seconds echo_client holds them                 (default: 3)
#   IDLE_REPS     idle-memory runs per server                    (default: 3)
#   SERVER_CPU / CLIENT_CPU   CPUs to pin to (default: 0 / 1; "none": no pinning)
#   SKIP_BUILD=1  use the binaries as they are
#   CORING_ECHO_SERVER, URING_ECHO_SERVER, ASIO_ECHO_SERVER, EPOLL_ECHO_SERVER, ECHO_CLIENT:
#                 binaries to use instead of the ones in $BUILD_DIR
#   SERVER_SET    servers to measure, among coring baseline asio coring_epoll epoll previous
#                 (default: all that exist)
#   PREVIOUS_ECHO_SERVER  an earlier coring's echo_server, measured as a fourth server
#                 ("previous") with the ratio coring/previous (bench/compare_revisions.sh
#                 sets it); left out when unset
#   PREVIOUS_ARGS extra arguments for it (e.g. "--backend epoll", with ratio
#                 coring_epoll/previous)
# Takes about 5 minutes with the defaults (plus the build). Exits non-zero if a client run
# failed (echo mismatch, errors) or a server could not be started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/bench}"
REPS="${REPS:-5}"
DURATION="${DURATION:-3}"
WARMUP="${WARMUP:-0}"
SCENARIOS="${SCENARIOS:-1:64:1 100:64:1 1000:64:1 50:16384:1}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
IDLE_HOLD="${IDLE_HOLD:-3}"
IDLE_REPS="${IDLE_REPS:-3}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
RAW="$BUILD_DIR/net_bench_raw.txt"
SUMMARY="$BUILD_DIR/net_bench_summary.md"

# ---- cleanup ------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/coring-net-bench.XXXXXX")"
SRV_PID=""
CLIENT_PID=""
cleanup() {
  local p
  for p in "$CLIENT_PID" "$SRV_PID"; do
    if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "== interrupted" >&2; exit 130' INT TERM

die() {
  echo "run_net_bench: $*" >&2
  exit 1
}

# ---- build ------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCORING_BUILD_BENCH=ON -DCORING_BUILD_TESTS=OFF -DCORING_BUILD_DEMOS=ON >/dev/null
  targets=(echo_server echo_client uring_echo_server epoll_echo_server)
  if cmake --build "$BUILD_DIR" --target help | grep -qw asio_echo_server; then
    targets+=(asio_echo_server)
  fi
  cmake --build "$BUILD_DIR" --target "${targets[@]}"
fi
mkdir -p "$BUILD_DIR"

CLIENT="${ECHO_CLIENT:-$BUILD_DIR/demos/echo_client}"
declare -A BIN=(
  [coring]="${CORING_ECHO_SERVER:-$BUILD_DIR/demos/echo_server}"
  [baseline]="${URING_ECHO_SERVER:-$BUILD_DIR/bench/baselines/uring_echo_server}"
  [asio]="${ASIO_ECHO_SERVER:-$BUILD_DIR/bench/baselines/asio_echo_server}"
  [previous]="${PREVIOUS_ECHO_SERVER:-}"
  [coring_epoll]="${CORING_ECHO_SERVER:-$BUILD_DIR/demos/echo_server}"
  [epoll]="${EPOLL_ECHO_SERVER:-$BUILD_DIR/bench/baselines/epoll_echo_server}"
)
# Extra arguments per server.
declare -A ARGS=([coring_epoll]="--backend epoll" [previous]="${PREVIOUS_ARGS:-}")
[[ -x "$CLIENT" ]] || die "no echo_client at $CLIENT"
SERVERS=()
for s in ${SERVER_SET:-coring baseline asio coring_epoll epoll previous}; do
  if [[ -x "${BIN[$s]}" ]]; then
    SERVERS+=("$s")
  elif [[ $s == previous && -z "${BIN[$s]}" ]]; then
    continue
  else
    echo "== WARNING: no $s server at ${BIN[$s]}; it is left out" >&2
  fi
done
[[ ${#SERVERS[@]} -gt 0 ]] || die "no server to measure"

# ---- environment ----------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
# The idle test needs IDLE_CONNS descriptors in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((IDLE_CONNS + 64)) ]]; then
  echo "== WARNING: ulimit -n is $(ulimit -n), below IDLE_CONNS=$IDLE_CONNS + 64" >&2
fi

PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null && [[ "$(nproc)" -gt 1 ]]; then
  if [[ "$SERVER_CPU" != none ]]; then PIN_SERVER=(taskset -c "$SERVER_CPU"); fi
  if [[ "$CLIENT_CPU" != none ]]; then PIN_CLIENT=(taskset -c "$CLIENT_CPU"); fi
fi

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- runtime net include demos bench 2>/dev/null ||
  rev="$rev+local-changes"
echo "== coring $rev; $(c++ --version | head -1); liburing $(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo '?'); Boost $(dpkg-query -W -f='${Version}' libboost-dev 2>/dev/null || echo '?')"
echo "== machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "== server pinned: ${PIN_SERVER[*]:-(not pinned)}; client pinned: ${PIN_CLIENT[*]:-(not pinned)}"
echo "== servers: ${SERVERS[*]}; REPS=$REPS DURATION=${DURATION}s WARMUP=${WARMUP}s; scenarios: $SCENARIOS"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg); start: $(date -u +%FT%TZ)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "== WARNING: the machine is busy (load average > 1); expect slower and noisier figures"
fi
{
  echo "# run_net_bench $(date -u +%FT%TZ) coring=$rev kernel=$(uname -r) clk_tck=$CLK_TCK"
  echo "# reps=$REPS duration=$DURATION warmup=$WARMUP servers=${SERVERS[*]}"
} >"$RAW"

# ---- helpers ------------------------------------------------------------------
# Server CPU time so far, in clock ticks: utime + stime, fields 14 and 15 of
# /proc/PID/stat. The command name (field 2) may hold spaces: count from after ") ".
cpu_ticks() {
  local stat f
  stat="$(<"/proc/$1/stat")"
  stat="${stat##*) }"
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}

# A /proc/PID/status field in kB (VmHWM, VmRSS).
status_kb() {
  awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"
}

# Starts server $1 on a free port; sets SRV_PID and SRV_PORT (the last ":NNNN" of its
# first stdout line).
start_server() {
  local name=$1 out="$TMP/$1.out" line="" i
  : >"$out"
  # shellcheck disable=SC2086 # ARGS are words
  "${PIN_SERVER[@]}" stdbuf -oL "${BIN[$name]}" ${ARGS[$name]:-} --port 0 >"$out" 2>"$TMP/$name.err" &
  SRV_PID=$!
  for ((i = 0; i < 200; i++)); do
    line="$(head -n1 "$out")"
    [[ -n "$line" ]] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  SRV_PORT="$(grep -oE ':[0-9]+' <<<"$line" | tail -n1 | tr -d :)"
  if [[ -z "$SRV_PORT" ]]; then
    echo "run_net_bench: $name did not report its port; its output:" >&2
    cat "$out" "$TMP/$name.err" >&2 || true
    stop_server
    exit 1
  fi
}

# Stops the server with SIGTERM (that PID only), SIGKILL after 10 s.
stop_server() {
  local i rc=0
  [[ -n "$SRV_PID" ]] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SRV_PID" 2>/dev/null; then
    echo "== WARNING: server $SRV_PID ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$SRV_PID" 2>/dev/null || true
  fi
  wait "$SRV_PID" 2>/dev/null || rc=$?
  if [[ $rc -ne 0 && $rc -ne 143 ]]; then
    echo "== WARNING: server exited with status $rc" >&2
  fi
  SRV_PID=""
}

# Waits for the client started in the background (CLIENT_PID); returns its status.
wait_client() {
  local rc=0
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=""
  return "$rc"
}

# Value of key $2 in a "k=v k=v" line $1.
field() {
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2; exit}'
}

FAILED=0

# One load run: server $1, connections $2, size $3, depth $4, repetition $5.
load_run() {
  local name=$1 conns=$2 size=$3 depth=$4 rep=$5 t0 t1 hwm rc=0 line cpu rts warm=()
  start_server "$name"
  if [[ "$WARMUP" != 0 ]]; then warm=(--warmup "$WARMUP"); fi
  t0="$(cpu_ticks "$SRV_PID")"
  timeout --kill-after=5 $((${DURATION%.*} + ${WARMUP%.*} + 120)) \
    "${PIN_CLIENT[@]}" "$CLIENT" --host 127.0.0.1 --port "$SRV_PORT" --connections "$conns" \
    --size "$size" --duration "$DURATION" --depth "$depth" "${warm[@]}" \
    >"$TMP/client.out" 2>"$TMP/client.err" &
  CLIENT_PID=$!
  if [[ "$WARMUP" != 0 ]]; then
    sleep "$WARMUP"
    t0="$(cpu_ticks "$SRV_PID")"
  fi
  wait_client || rc=$?
  t1="$(cpu_ticks "$SRV_PID")"
  hwm="$(status_kb "$SRV_PID" VmHWM)"
  stop_server
  line="$(grep '^echo_client ' "$TMP/client.out" | tail -n1 || true)"
  rts="$(field "$line" round_trips)"
  if [[ $rc -ne 0 || -z "$line" || "$(field "$line" errors)" != 0 ]]; then
    FAILED=$((FAILED + 1))
    echo "  $name rep $rep: FAILED (client status $rc): ${line:-no result line}" >&2
    sed 's/^/    client: /' "$TMP/client.err" | tail -n5 >&2
  fi
  cpu="$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${rts:-0}" \
    'BEGIN {printf "%.3f", (n > 0 ? d * 1e6 / hz / n : 0)}')"
  echo "scenario=$conns:$size:$depth server=$name rep=$rep client_rc=$rc cpu_ticks=$((t1 - t0)) cpu_us_per_rt=$cpu peak_rss_kib=$hwm ${line:-echo_client missing}" >>"$RAW"
  printf '  %-8s rep %d: %10s rt/s  %7s us CPU/rt  p99 %8s us  peak RSS %6s KiB\n' \
    "$name" "$rep" "$(field "$line" rt_per_s)" "$cpu" "$(field "$line" p99_us)" "$hwm"
}

# One idle-memory run: server $1, repetition $2.
idle_run() {
  local name=$1 rep=$2 rss0 rss1 s fd0 fds=0 i rc=0 accepted
  start_server "$name"
  sleep 0.2
  rss0="$(status_kb "$SRV_PID" VmRSS)"
  fd0="$(find "/proc/$SRV_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
  timeout --kill-after=5 $((${IDLE_HOLD%.*} + 120)) \
    "${PIN_CLIENT[@]}" "$CLIENT" --host 127.0.0.1 --port "$SRV_PORT" --idle "$IDLE_CONNS" \
    --hold "$IDLE_HOLD" >"$TMP/idle.out" 2>"$TMP/idle.err" &
  CLIENT_PID=$!
  # Wait for "idle N connections open", then for the server to have accepted them all.
  for ((i = 0; i < 1200; i++)); do
    grep -q '^idle .* open' "$TMP/idle.out" && break
    kill -0 "$CLIENT_PID" 2>/dev/null || break
    sleep 0.05
  done
  for ((i = 0; i < 50; i++)); do
    fds="$(find "/proc/$SRV_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    [[ $((fds - fd0)) -ge $IDLE_CONNS ]] && break
    sleep 0.05
  done
  accepted=$((fds - fd0))
  # The largest of a few samples while the connections are open.
  rss1=0
  for i in 1 2 3; do
    sleep 0.2
    s="$(status_kb "$SRV_PID" VmRSS)"
    if [[ $s -gt $rss1 ]]; then rss1=$s; fi
  done
  wait_client || rc=$?
  stop_server
  if [[ $rc -ne 0 ]] || ! grep -q '^idle .* open' "$TMP/idle.out"; then
    FAILED=$((FAILED + 1))
    echo "  $name idle rep $rep: FAILED (client status $rc)" >&2
    sed 's/^/    client: /' "$TMP/idle.err" | tail -n5 >&2
  fi
  local per
  per="$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_CONNS" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')"
  echo "idle server=$name rep=$rep client_rc=$rc connections=$IDLE_CONNS accepted=$accepted rss_before_kib=$rss0 rss_open_kib=$rss1 bytes_per_conn=$per" >>"$RAW"
  printf '  %-8s rep %d: RSS %6s -> %6s KiB with %d connections (%d accepted): %6s B/connection\n' \
    "$name" "$rep" "$rss0" "$rss1" "$IDLE_CONNS" "$accepted" "$per"
}

# ---- load runs --------------------------------------------------------------------
for sc in $SCENARIOS; do
  IFS=: read -r conns size depth <<<"$sc"
  echo
  echo "== $conns connections, $size B, depth $depth"
  for ((rep = 1; rep <= REPS; rep++)); do
    for name in "${SERVERS[@]}"; do
      load_run "$name" "$conns" "$size" "$depth" "$rep"
    done
  done
done

# ---- idle memory ----------------------------------------------------------------
echo
echo "== idle connections: $IDLE_CONNS, held ${IDLE_HOLD}s"
for ((rep = 1; rep <= IDLE_REPS; rep++)); do
  for name in "${SERVERS[@]}"; do
    idle_run "$name" "$rep"
  done
done

# ---- summary ----------------------------------------------------------------
echo
echo "== end: $(date -u +%FT%TZ); load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RAW" "$SCENARIOS" "$DURATION" <<'EOF' | tee "$SUMMARY"
import statistics, sys

raw, scenarios, duration = sys.argv[1], sys.argv[2].split(), sys.argv[3]
runs, idle = [], []
with open(raw) as f:
    for line in f:
        if line.startswith("#"):
            continue
        kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        (idle if line.startswith("idle ") else runs).append(kv)

LABEL = {"coring": "coring", "baseline": "liburing baseline", "asio": "Asio",
         "previous": "previous coring", "coring_epoll": "coring on epoll",
         "epoll": "epoll baseline"}
servers = [s for s in ("coring", "baseline", "asio", "coring_epoll", "epoll", "previous")
           if any(r["server"] == s for r in runs + idle)]

def ok(r):
    return r.get("client_rc") == "0" and r.get("errors") == "0" and "rt_per_s" in r

def med(rows, key):
    vals = [float(r[key]) for r in rows if key in r]
    return statistics.median(vals) if vals else None

def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"

def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b

def verdict(r, limit, higher_is_better=False):
    if r is None:
        return "n/a"
    met = r >= limit if higher_is_better else r <= limit
    return f"{r:.2f}x ({'MET' if met else 'MISSED'})"

print(f"\n## Echo server benchmark (medians; {duration} s per run)\n")
for sc in scenarios:
    conns, size, depth = sc.split(":")
    print(f"### {conns} connection{'s' if conns != '1' else ''}, {size} B, depth {depth}\n")
    print("| server | rt/s | CPU us/rt | p50 us | p99 us | p99.9 us | peak RSS MiB | good runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    m = {}
    for s in servers:
        rows = [r for r in runs if r["scenario"] == sc and r["server"] == s]
        good = [r for r in rows if ok(r)]
        m[s] = {k: med(good, k) for k in ("rt_per_s", "cpu_us_per_rt", "p50_us", "p99_us", "p999_us")}
        rss = med(good, "peak_rss_kib")
        m[s]["rss"] = None if rss is None else rss / 1024
        print(f"| {LABEL[s]} | {fmt(m[s]['rt_per_s'], 0)} | {fmt(m[s]['cpu_us_per_rt'], 2)} | "
              f"{fmt(m[s]['p50_us'])} | {fmt(m[s]['p99_us'])} | {fmt(m[s]['p999_us'])} | "
              f"{fmt(m[s]['rss'])} | {len(good)}/{len(rows)} |")
    for mine, other in (("coring", "baseline"), ("coring", "asio"), ("coring", "previous"),
                        ("coring_epoll", "epoll"), ("coring_epoll", "previous")):
        if mine in m and other in m:
            r = {k: ratio(m[mine][k], m[other][k]) for k in m[mine]}
            print(f"| {mine}/{other} | " + " | ".join(
                "-" if r[k] is None else f"{r[k]:.2f}x"
                for k in ("rt_per_s", "cpu_us_per_rt", "p50_us", "p99_us", "p999_us", "rss")) + " | |")
    targets = []
    if "coring" in m:
        c = m["coring"]
        if "baseline" in m:
            b = m["baseline"]
            targets.append("rt/s >= 0.95x baseline: " +
                           verdict(ratio(c["rt_per_s"], b["rt_per_s"]), 0.95, True))
            targets.append("CPU/rt <= 1.05x baseline: " +
                           verdict(ratio(c["cpu_us_per_rt"], b["cpu_us_per_rt"]), 1.05))
            targets.append("p99 <= 1.1x baseline: " + verdict(ratio(c["p99_us"], b["p99_us"]), 1.1))
        if "asio" in m:
            targets.append("CPU/rt <= 0.65x Asio: " +
                           verdict(ratio(c["cpu_us_per_rt"], m["asio"]["cpu_us_per_rt"]), 0.65))
    if "coring_epoll" in m and "epoll" in m:
        targets.append("epoll backend CPU/rt <= 1.1x plain epoll: " +
                       verdict(ratio(m["coring_epoll"]["cpu_us_per_rt"],
                                     m["epoll"]["cpu_us_per_rt"]), 1.1))
    if targets:
        print("\nTargets: " + "; ".join(targets))
    print()

if idle:
    n = idle[0]["connections"]
    print(f"### Idle connections ({n} open, never sending)\n")
    print("| server | RSS before KiB | RSS with idle connections KiB | accepted | bytes/connection | good runs |")
    print("|---|---:|---:|---:|---:|---:|")
    per = {}
    for s in servers:
        rows = [r for r in idle if r["server"] == s]
        good = [r for r in rows if r["client_rc"] == "0"]
        per[s] = med(good, "bytes_per_conn")
        print(f"| {LABEL[s]} | {fmt(med(good, 'rss_before_kib'), 0)} | "
              f"{fmt(med(good, 'rss_open_kib'), 0)} | {fmt(med(good, 'accepted'), 0)} | "
              f"{fmt(per[s], 0)} | {len(good)}/{len(rows)} |")
    if per.get("coring") is not None:
        print(f"\nTarget: idle connection < 1024 B of server memory: "
              f"{per['coring']:.0f} B ({'MET' if per['coring'] < 1024 else 'MISSED'})")
EOF
echo "== raw runs: $RAW; summary: $SUMMARY"
if [[ $FAILED -ne 0 ]]; then
  echo "== $FAILED run(s) FAILED; see above" >&2
  exit 1
fi
