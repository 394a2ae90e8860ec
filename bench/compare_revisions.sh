#!/usr/bin/env bash
# Before/after comparison of the micro-benchmarks: builds an earlier revision
# (in a git worktree) and the working tree in Release, runs every benchmark the
# two have in common interleaved -- before, after, before, after... -- pinned to
# one CPU, and prints the median of each benchmark's main counter and the ratio
# after/before. With ECHO=1 it also runs bench/run_net_bench.sh once with the
# earlier revision's echo_server as a fourth server, so that the two echo servers
# and the liburing floor are measured in the same run.
#
# Usage: bench/compare_revisions.sh BEFORE_REV
# Environment:
#   ROUNDS          interleaved rounds per benchmark (default: 5)
#   CORING_BENCH_CPU CPU to pin to (default: the last CPU)
#   BEFORE_DIR      where to build BEFORE_REV (default: build/compare-<rev>)
#   FILTER          extended regex of benchmark binaries to run (default: all)
#   ECHO=1          also compare the echo servers (about 6 minutes more)
# Takes about 10 minutes with the defaults on a 2-core VM, plus two builds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -eq 1 ]] || {
  echo "usage: $0 BEFORE_REV" >&2
  exit 2
}
REV="$(git -C "$ROOT" rev-parse --short "$1")"
ROUNDS="${ROUNDS:-5}"
CPU="${CORING_BENCH_CPU:-$(($(nproc) - 1))}"
BEFORE_SRC="${BEFORE_DIR:-$ROOT/build/compare-$REV}"
AFTER_BUILD="$ROOT/build/bench"
OUT="$ROOT/build/compare-$REV-results"

configure() {  # SRC BUILD
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORING_BUILD_BENCH=ON \
    -DCORING_BUILD_TESTS=OFF -DCORING_BUILD_DEMOS=ON >/dev/null
  cmake --build "$2" >/dev/null
}

if [[ ! -d "$BEFORE_SRC/.git" && ! -f "$BEFORE_SRC/.git" ]]; then
  git -C "$ROOT" worktree add --detach "$BEFORE_SRC" "$REV" >/dev/null
fi
echo "== building $REV in $BEFORE_SRC/build and the working tree in $AFTER_BUILD"
configure "$BEFORE_SRC" "$BEFORE_SRC/build"
configure "$ROOT" "$AFTER_BUILD"
mkdir -p "$OUT"

PIN=()
command -v taskset >/dev/null && [[ "$(nproc)" -gt 1 ]] && PIN=(taskset -c "$CPU")
benches=()
for b in "$AFTER_BUILD"/bench/*_bench; do
  name="$(basename "$b")"
  [[ -x "$BEFORE_SRC/build/bench/$name" ]] || continue
  [[ -n "${FILTER:-}" && ! "$name" =~ $FILTER ]] && continue
  benches+=("$name")
done
echo "== $(git -C "$ROOT" rev-parse --short HEAD) (working tree) against $REV; ${ROUNDS} rounds of: ${benches[*]}"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

for round in $(seq 1 "$ROUNDS"); do
  for name in "${benches[@]}"; do
    for side in before after; do
      dir="$AFTER_BUILD/bench"
      [[ $side == before ]] && dir="$BEFORE_SRC/build/bench"
      "${PIN[@]}" "$dir/$name" --benchmark_format=json \
        --benchmark_out="$OUT/${name}_${side}_${round}.json" >/dev/null 2>&1 ||
        echo "== $side $name failed in round $round" >&2
    done
  done
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
from collections import defaultdict
out = sys.argv[1]
vals = defaultdict(list)
for path in glob.glob(os.path.join(out, "*.json")):
    base = os.path.basename(path)[:-5]
    name, side, _ = base.rsplit("_", 2)
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        # The benchmark's own counter (ns per switch / hand-off / pop / task),
        # else its time per iteration.
        keys = [k for k in b if k.startswith(("ns_per", "cpu_ns_per"))]
        metric = keys[0] if keys else "real_time"
        vals[(name, b["name"], metric, side)].append(float(b[metric]))
rows = sorted({(n, b, m) for (n, b, m, _) in vals})
print(f"{'benchmark':58s} {'metric':16s} {'before':>10s} {'after':>10s} {'after/before':>12s}")
for n, b, m in rows:
    bef, aft = vals.get((n, b, m, "before")), vals.get((n, b, m, "after"))
    if not bef or not aft:
        continue
    mb, ma = statistics.median(bef), statistics.median(aft)
    print(f"{b[:58]:58s} {m[:16]:16s} {mb:10.2f} {ma:10.2f} {ma / mb:12.2f}")
PY

if [[ "${ECHO:-0}" == 1 ]]; then
  echo
  echo "== echo servers: working tree (coring) and $REV (previous) against the liburing floor"
  SKIP_BUILD=1 BUILD_DIR="$AFTER_BUILD" PREVIOUS_ECHO_SERVER="$BEFORE_SRC/build/demos/echo_server" \
    bash "$ROOT/bench/run_net_bench.sh"
fi
