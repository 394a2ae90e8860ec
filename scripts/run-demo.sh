#!/usr/bin/env bash
# Installs what is missing, builds coring (release) and runs the main demo.
#
# Usage: scripts/run-demo.sh                 the echo demo: echo_server on a free port on
#                                            127.0.0.1, echo_client loading it for 3 s,
#                                            then SIGTERM and the server's summary
#        scripts/run-demo.sh NAME [ARGS...]  another demo (echo_server --port 15000,
#                                            countdown, task_scheduler, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release -DCORING_BUILD_BENCH=OFF -DCORING_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release
bin=build/release/demos

if [[ $# -gt 0 ]]; then
  demo="$1"
  shift
  if [[ "$demo" == countdown && $# -eq 0 ]]; then
    set -- --time-scale=0.2 # the seed's 5 s steps, shortened to 1 s
  fi
  exec "$bin/$demo" "$@"
fi

# The echo demo.
out=$(mktemp)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$out"
}
trap cleanup EXIT

"$bin/echo_server" --port 0 --verbose >"$out" &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(grep -m1 -o '127\.0\.0\.1:[0-9]*' "$out" | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  sleep 0.05
done
if [[ -z "$port" ]]; then
  echo "run-demo: echo_server did not start:" >&2
  cat "$out" >&2
  exit 1
fi
head -1 "$out"
echo "+ echo_client --connections 4 --size 64 --depth 1 --duration 3 (port $port)"
"$bin/echo_client" --host 127.0.0.1 --port "$port" --connections 4 --size 64 --depth 1 \
  --duration 3 --warmup 0.2
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
tail -n +2 "$out"
