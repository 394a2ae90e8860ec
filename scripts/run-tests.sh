#!/usr/bin/env bash
# Installs what is missing, builds coring and runs every test with ctest, twice:
# on the default backend (io_uring) and on epoll (CORING_BACKEND=epoll; tests
# that need io_uring itself ask for it explicitly and still run on it).
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
