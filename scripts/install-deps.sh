#!/usr/bin/env bash
# Installs the Debian packages leakscope builds and tests with (only what is missing).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libzstd-dev libdw-dev libelf-dev libunwind-dev
      nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev python3 python3-dev python3-pytest
      heaptrack valgrind zstd libjemalloc2 clang libclang-rt-14-dev
      black mypy libpython3.11-testsuite  # real programs of the verdict suite
      nodejs chromium  # the HTML report's scripts (npm, below) and the browser its tests open
      zlib1g-dev libprotozero-dev golang-go  # pprof export; `go tool pprof` reads it in the tests
      man-db groff-base  # the man page is rendered in the tests
      libcpp-httplib-dev prometheus  # `--serve` endpoints and the real scraper of its tests
      gunicorn uwsgi-core uwsgi-plugin-python3)  # pre-fork servers of the --follow-fork tests
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
# npm packages, each folder pinned by its package-lock.json and installed again when that
# changes: web/ (the HTML report's d3 and d3-flame-graph, embedded at build time, and
# playwright-core for its browser test) and tests/js (ajv and speedscope's schema, to check
# exports).
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in "$root/web" "$root/tests/js"; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    if ! command -v npm >/dev/null; then
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "leakscope: npm ci --prefix ${dir#"$root"/}" >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
  fi
done
