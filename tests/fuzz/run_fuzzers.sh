#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (tests/fuzz/CMakeLists.txt, clang + ASan + UBSan) into
# BUILD_DIR/fuzz, writes their seed corpora, and runs each for SECONDS seconds (the fuzzers run
# side by side). Prints one line per fuzzer with its number of runs; exits non-zero on any
# finding (a crash, a sanitizer report, a leak, an escaped exception, a hang over 10 s, over
# 2 GB of memory) or when a fuzzer cannot run. The input that failed is kept in
# BUILD_DIR/fuzz/artifacts/ and the fuzzer's log in BUILD_DIR/fuzz/logs/.
#   usage: tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS
# Reproduce a finding: BUILD_DIR/fuzz/<fuzzer> BUILD_DIR/fuzz/artifacts/<file>
set -u
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1/fuzz" && cd "$1/fuzz" && pwd)"
secs="$2"

for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found" >&2; exit 1; }
done
if [ ! -f "$out/build.ninja" ]; then
  cmake -S "$src" -B "$out" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >"$out/configure.log" 2>&1 ||
    { cat "$out/configure.log" >&2; echo "fuzz: configuring the fuzz build failed" >&2; exit 1; }
fi
cmake --build "$out" -j2 >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log" >&2; echo "fuzz: building the fuzzers failed" >&2; exit 1; }

rm -rf "$out/seeds"
"$out/make_seeds" "$out/seeds" || { echo "fuzz: writing the seed corpora failed" >&2; exit 1; }

# name, -max_len
fuzzers=("heap_dump_fuzzer 262144" "capture_reader_fuzzer 262144" "findleaks_record_fuzzer 65536"
         "retention_record_fuzzer 65536" "tasks_record_fuzzer 65536")
mkdir -p "$out/corpus" "$out/artifacts" "$out/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pids=()
for f in "${fuzzers[@]}"; do
  set -- $f
  name=$1 max_len=$2 seeds="${1%_fuzzer}"
  mkdir -p "$out/corpus/$name"
  "$out/$name" "$out/corpus/$name" "$out/seeds/$seeds" \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" >"$out/logs/$name.log" 2>&1 &
  pids+=($!)
done

status=0
i=0
for f in "${fuzzers[@]}"; do
  set -- $f
  name=$1
  wait "${pids[$i]}"
  rc=$?
  i=$((i + 1))
  log="$out/logs/$name.log"
  runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    echo "fuzz: $name: $runs runs in $secs s, no finding"
  else
    status=1
    what=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|ALARM|out-of-memory|deadly signal|uncaught exception|terminate' "$log" || true)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz: $name: FINDING after ${runs:-?} runs (exit $rc): ${what:-see $log}; input: ${artifact:-none}; log: $log"
  fi
done
exit $status
