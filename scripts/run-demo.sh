#!/usr/bin/env bash
# Installs what is missing, builds coring (release) and runs the main demo.
# Usage: scripts/run-demo.sh [demo-name] [demo args...]   (default: countdown)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release -DCORING_BUILD_BENCH=OFF -DCORING_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release
demo="${1:-countdown}"
shift || true
if [[ "$demo" == countdown && $# -eq 0 ]]; then
  set -- --time-scale=0.2   # the seed's 5 s steps, shortened to 1 s
fi
exec "build/release/demos/$demo" "$@"
