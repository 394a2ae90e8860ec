#!/usr/bin/env bash
# Installs the Debian packages coring needs, only if some are missing.
# Usage: scripts/install-deps.sh [--bench]
set -euo pipefail

pkgs=(cmake ninja-build g++ pkg-config liburing-dev libfmt-dev catch2 zlib1g-dev python3)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(libbenchmark-dev libboost-dev hyperfine python3)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "coring: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "coring: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
