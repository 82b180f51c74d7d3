#!/usr/bin/env bash
# bench/run_cpu_suite.sh - run the CPU GEMM benchmarks and write docs/performance.md + docs/roofline.png.
#
#   bench/run_cpu_suite.sh [BUILD_DIR] [RESULTS_DIR]
#
# BUILD_DIR    a configured build with TCOMP_BUILD_BENCH=ON (default build/bench: the `bench` preset, configured
#              and built here when it does not exist yet; an existing one is rebuilt). The executables are looked
#              up in BUILD_DIR/bench.
# RESULTS_DIR  where the JSON goes (default BUILD_DIR/bench-results/<UTC date-time>).
#
# Runs, in this order, with --benchmark_repetitions=$REPS and JSON output:
#   bench_limits             this machine's peaks and DRAM read bandwidth
#   bench_peers              Eigen and oneDNN on the same shapes
#   bench_peers (capped)     when the CPU has AMX: oneDNN again with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16, i.e.
#                            on the same vector instructions tcomp uses (variants named onednn_*_max-avx512_core_bf16)
#   bench_gemm_*             every tcomp GEMM suite built (see bench/gemm_bench.hpp)
#   bench_limits             again (bench_limits_end.json): report.py keeps the better of the two per limit
# then bench/report/report.py on the results.
#
# Environment: REPS (default 5), MIN_TIME (--benchmark_min_time, seconds; default Google Benchmark's 0.5),
# FILTER (--benchmark_filter for every executable), REPORT=0 (JSON only), OUT (default docs/performance.md),
# PNG (default docs/roofline.png), TCOMP_BENCH_QUICK=1 (smoke-sized shapes), TCOMP_BENCH_COLD_MIB.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

build="${1:-build/bench}"
results="${2:-$build/bench-results/$(date -u +%Y%m%d-%H%M%S)}"
reps="${REPS:-5}"

if [ ! -f "$build/CMakeCache.txt" ]; then
  if [ "$build" = "build/bench" ]; then
    if [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null 2>&1; then export CMAKE_GENERATOR=Ninja; fi
    cmake --preset bench
  else
    echo "run_cpu_suite.sh: $build is not a configured build directory" >&2
    exit 1
  fi
fi
cmake --build "$build" --parallel 2

bin="$build/bench"
[ -d "$bin" ] || bin="$build"
mkdir -p "$results"

args=(--benchmark_repetitions="$reps" --benchmark_out_format=json)
[ -n "${MIN_TIME:-}" ] && args+=(--benchmark_min_time="$MIN_TIME")
[ -n "${FILTER:-}" ] && args+=(--benchmark_filter="$FILTER")

run() { # run <json name> <executable> [extra args...]
  local out="$results/$1.json" exe="$2"
  shift 2
  echo "==> $(basename "$exe") $* -> $out"
  "$exe" "${args[@]}" --benchmark_out="$out" "$@"
}

exes=()
for name in bench_limits bench_peers; do
  [ -x "$bin/$name" ] && exes+=("$bin/$name")
done
for exe in "$bin"/bench_gemm_*; do
  [ -x "$exe" ] && [ -f "$exe" ] && exes+=("$exe")
done
if [ "${#exes[@]}" -eq 0 ]; then
  echo "run_cpu_suite.sh: no bench_limits / bench_peers / bench_gemm_* in $bin" >&2
  exit 1
fi

for exe in "${exes[@]}"; do
  name="$(basename "$exe")"
  run "$name" "$exe"
  if [ "$name" = bench_peers ] && grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    # The same peers without AMX: the comparison on the instructions tcomp's kernels use. A user FILTER is
    # narrowed to the oneDNN rows (the last --benchmark_filter wins).
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 run bench_peers_noamx "$exe" --benchmark_filter="${FILTER:-onednn}"
  fi
done

# The limits once more: on a shared machine other load lowers a peak, and the report keeps the better of the two.
if [ -x "$bin/bench_limits" ]; then
  run bench_limits_end "$bin/bench_limits"
fi

if [ "${REPORT:-1}" != 0 ]; then
  python3 bench/report/report.py "$results" --out "${OUT:-docs/performance.md}" --png "${PNG:-docs/roofline.png}"
fi
echo "run_cpu_suite.sh: results in $results"
