#!/usr/bin/env bash
# Installs the Debian packages leakscope builds and tests with (only what is missing).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libzstd-dev libdw-dev libelf-dev libunwind-dev
      nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev python3 python3-dev python3-pytest
      heaptrack valgrind zstd libjemalloc2 clang libclang-rt-14-dev
      black mypy libpython3.11-testsuite  # real programs of the verdict suite
      nodejs chromium)  # the HTML report's scripts (npm, below) and the browser its tests open
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "leakscope: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The HTML report's d3 and d3-flame-graph, embedded at build time, and playwright-core for its
# tests: pinned by web/package-lock.json, installed again when the lock file changes.
web="$(cd "$(dirname "$0")/.." && pwd)/web"
if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
  echo "leakscope: npm ci --prefix web" >&2
  npm ci --prefix "$web" --no-audit --no-fund >&2
fi
