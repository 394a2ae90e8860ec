#!/usr/bin/env bash
# Installs what is missing, builds coring and runs every test with ctest.
# Usage: scripts/run-tests.sh [preset]   (debug by default; also asan-ubsan, tsan, release)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-debug}"
scripts/install-deps.sh
cmake --preset "$preset" -DCORING_BUILD_BENCH=OFF >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset" -j2 --timeout 300
