#!/usr/bin/env bash
# Smoke test of the echo demos: starts echo_server on a free port, loads it
# with echo_client (4 connections, ~1 s, then 10 idle connections), stops the
# server with SIGTERM and checks both exit 0 and print their summary lines.
#
# Usage: echo_smoke.sh ECHO_SERVER ECHO_CLIENT [WRAPPER...]
#   WRAPPER: a command the server runs under (tests/tools/without_io_uring: the
#   server must then fall back to epoll, say so once on stderr, and serve the
#   same).
# ECHO_SMOKE_THREADS=N in the environment runs the server with --threads N
# (N loops, one SO_REUSEPORT listener each); the summary must add them up.
set -u

server_bin=$1
client_bin=$2
shift 2
wrapper=("$@")
tmp=$(mktemp -d)
server_pid=

fail() {
  echo "echo_smoke: $*" >&2
  for f in server.out server.err client.out client.err idle.out idle.err; do
    [[ -s $tmp/$f ]] && { echo "--- $f" >&2; cat "$tmp/$f" >&2; }
  done
  exit 1
}
cleanup() {
  # Only the server this script started, by its PID.
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [[ ${#wrapper[@]} -gt 0 ]]; then wrapper=(env -u CORING_BACKEND "${wrapper[@]}"); fi
server_args=(--port 0)
if [[ -n ${ECHO_SMOKE_THREADS:-} ]]; then server_args+=(--threads "$ECHO_SMOKE_THREADS"); fi
"${wrapper[@]}" "$server_bin" "${server_args[@]}" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# The first line names the port: "Echo server running at 127.0.0.1:PORT".
line=
for _ in $(seq 100); do
  line=$(head -n 1 "$tmp/server.out")
  [[ -n $line ]] && break
  kill -0 "$server_pid" 2>/dev/null || fail "echo_server exited before printing its address"
  sleep 0.1
done
[[ $line =~ ^Echo\ server\ running\ at\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "unexpected first line: '$line'"
port=${BASH_REMATCH[1]}
[[ $port -gt 0 ]] || fail "port 0 in '$line'"

timeout 60 "$client_bin" --host 127.0.0.1 --port "$port" --connections 4 --size 64 \
  --duration 1 --depth 2 --warmup 0.2 >"$tmp/client.out" 2>"$tmp/client.err"
rc=$?
[[ $rc -eq 0 ]] || fail "echo_client exited with $rc"
summary=$(cat "$tmp/client.out")
re='^echo_client connections=4 size=64 depth=2 seconds=[0-9.]+ round_trips=([0-9]+) rt_per_s=[0-9]+ mb_per_s=[0-9.]+ p50_us=[0-9.]+ p99_us=[0-9.]+ p999_us=[0-9.]+ errors=0$'
[[ $summary =~ $re ]] || fail "unexpected echo_client output: '$summary'"
[[ ${BASH_REMATCH[1]} -gt 0 ]] || fail "no round trips: '$summary'"

timeout 60 "$client_bin" --host 127.0.0.1 --port "$port" --idle 10 --hold 0.2 \
  >"$tmp/idle.out" 2>"$tmp/idle.err"
rc=$?
[[ $rc -eq 0 ]] || fail "echo_client --idle exited with $rc"
[[ $(cat "$tmp/idle.out") == "idle 10 connections open" ]] || fail "unexpected idle output"

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=
[[ $rc -eq 0 ]] || fail "echo_server exited with $rc after SIGTERM"
last=$(tail -n 1 "$tmp/server.out")
re='^echo_server: connections=14 rejected=0 bytes=[1-9][0-9]* errors=0 timeouts=0 cut_off=0 fd_pauses=0$'
[[ $last =~ $re ]] || fail "unexpected echo_server summary: '$last'"
grep -Eq '^shutting down: [0-9]+ connections, grace 5s$' "$tmp/server.err" ||
  fail "echo_server did not report its shutdown"
if [[ ${#wrapper[@]} -gt 0 ]]; then
  # io_uring was blocked: one line, naming the backend taken and why.
  n=$(grep -c '^coring: using the epoll backend; io_uring is unavailable: .*EPERM' "$tmp/server.err")
  [[ $n -eq 1 ]] || fail "expected one fallback line on stderr, found $n"
  [[ $(grep -c '^coring:' "$tmp/server.err") -eq 1 ]] || fail "more than one coring line on stderr"
fi
echo "echo_smoke: ok (port $port; $summary)"
