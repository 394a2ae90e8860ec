#!/usr/bin/env bash
# Installs what is missing, builds coring and runs every test with ctest, twice:
# on the default backend (io_uring) and on epoll (CORING_BACKEND=epoll; tests
# that need io_uring itself skip there, saying so); in the debug preset, also
# once more with io_uring blocked by a seccomp filter (automatic fallback).
# Usage: scripts/run-tests.sh [preset]   (debug by default; also asan-ubsan, tsan, release)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-debug}"
scripts/install-deps.sh
cmake --preset "$preset" -DCORING_BUILD_BENCH=OFF >/dev/null
cmake --build --preset "$preset"
echo "== ctest ($preset, the default backend: io_uring)"
ctest --preset "$preset" -j2 --timeout 300
echo "== ctest ($preset, CORING_BACKEND=epoll)"
CORING_BACKEND=epoll ctest --preset "$preset" -j2 --timeout 300
if [[ $preset == debug ]]; then
  # Where io_uring is blocked as Docker's default seccomp profile blocks it
  # (EPERM): every loop falls back to epoll on its own, io_uring-only tests skip.
  echo "== the suite with io_uring blocked by a seccomp filter ($preset)"
  build/$preset/tests/demos/without_io_uring build/$preset/tests/coring_tests | tail -n 3
fi
