#!/usr/bin/env bash
# scripts/test.sh - build and run the whole tcomp suite.  This is what CI runs.
#
#   deps      install missing Debian packages (scripts/deps.sh)
#   demo      the README's first command as a new user runs it: ./scripts/demo.sh --quick (release
#             preset, build/release); a demo that does not build or run fails CI
#   dev       configure + build the `dev` preset with GCC, ctest (unit, tools, compile-fail, CUDA: skipped
#             without a GPU). Not built here, each done once elsewhere: the demo (stage demo), the
#             benchmarks (stage bench) and the header self-containment check (stage asan, with Clang)
#   bench     build the benchmarks in build/release and smoke-run every one (--benchmark_min_time=0.01,
#             TCOMP_BENCH_QUICK=1: small shapes; the full suites run from bench/run_cpu_suite.sh)
#   asan      `asan` preset: Clang 14 (the second compiler), ASan + UBSan, Debug: build (unit tests, header
#             check; the tools' library code runs there through the unit tests, their CTest chain in dev) + ctest
#   fuzz      libFuzzer + ASan + UBSan with clang++-14 (build/fuzz): build tests/fuzz, run
#             fuzz_safetensors for TCOMP_FUZZ_SECONDS (default 12) s, fuzz_compressed for half and
#             fuzz_descriptor for a quarter of that; any crash fails the stage
#   consumer  install the dev build to a temp prefix; build and run
#             examples/consumer via find_package and via add_subdirectory (Debug: this stage checks
#             the packaging; the same per-ISA objects are built optimised in the demo stage)
#
# Every stage is timed; a failure names its stage.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

JOBS=2
stage_names=()
stage_secs=()
stage_notes=()
current_stage="startup"
stage_start=""
t0=$EPOCHREALTIME
tmp_root=""

elapsed() { # elapsed <since>
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

summary() {
  local i
  echo
  echo "==================== tcomp test summary ===================="
  for i in "${!stage_names[@]}"; do
    printf "  %-10s %7ss  %s\n" "${stage_names[$i]}" "${stage_secs[$i]}" "${stage_notes[$i]}"
  done
  printf "  %-10s %7ss\n" "total" "$(elapsed "$t0")"
  echo "============================================================"
}

on_exit() {
  local rc=$?
  [ -n "$tmp_root" ] && rm -rf "$tmp_root"
  if [ "$rc" -ne 0 ]; then
    if [ -n "$stage_start" ]; then
      stage_names+=("$current_stage"); stage_secs+=("$(elapsed "$stage_start")")
      stage_notes+=("FAILED")
    fi
    summary
    echo "test.sh: FAILED in stage '$current_stage' (exit code $rc)" >&2
  else
    summary
    echo "test.sh: all stages passed"
  fi
}
trap on_exit EXIT

begin() { # begin <stage>
  current_stage="$1"
  stage_start=$EPOCHREALTIME
  echo
  echo "==> [$1] $2"
}

end() { # end [note]
  stage_names+=("$current_stage"); stage_secs+=("$(elapsed "$stage_start")")
  stage_notes+=("${1:-}")
  stage_start=""
}

# ctest summary line ("100% tests passed, 0 tests failed out of N") of a log.
ctest_line() { grep -E 'tests passed|tests failed' "$1" | tail -n 1 || true; }

# ---------------------------------------------------------------- deps
begin deps "checking Debian packages"
source scripts/deps.sh
end

tmp_root="$(mktemp -d "${TMPDIR:-/tmp}/tcomp-test.XXXXXX")"

# ---------------------------------------------------------------- demo
begin demo "the README's first command: ./scripts/demo.sh --quick (release preset, build/release)"
./scripts/demo.sh --quick --png "$tmp_root/tcomp_demo.png" 2>&1 | tee "$tmp_root/demo.log"
grep -q '^total ' "$tmp_root/demo.log" || { echo "test.sh: the demo printed no table" >&2; exit 1; }
end "$(grep '^total ' "$tmp_root/demo.log")"

# ---------------------------------------------------------------- dev
begin dev "configure, build and test the 'dev' preset (build/dev)"
tcomp_pick_generator build/dev
# CI's dev build carries no debug information (a third of GCC's compile time; the preset itself keeps -g).
# The CUDA tests are compiled for sm_90 only (the H100/H200 they run on; 37 s of nvcc instead of 54 for 80;90):
# the release build's bench_cuda_gemm (stage bench) compiles the same kernels for the default 80;90.
cmake --preset dev -DTCOMP_BUILD_EXAMPLES=OFF -DTCOMP_BUILD_BENCH=OFF -DTCOMP_HEADER_CHECK=OFF \
  -DTCOMP_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" -DCMAKE_CUDA_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"
cmake --build --preset dev --parallel "$JOBS"
ctest --preset dev --output-on-failure -j"$JOBS" 2>&1 | tee "$tmp_root/ctest-dev.log"
end "$(ctest_line "$tmp_root/ctest-dev.log")"

# ---------------------------------------------------------------- bench
begin bench "build the benchmarks (build/release) and smoke-run every one (--benchmark_min_time=0.01)"
# bench_cuda_gemm for sm_90 only (the H100/H200 it runs on; the code has no per-architecture branches): ~20 s of
# nvcc less than the preset's 80;90.
cmake -S . -B build/release -DTCOMP_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build --preset release --parallel "$JOBS" --target tcomp_benchmarks
bench_list=build/release/bench/benchmarks.txt
n_bench=0
if [ -s "$bench_list" ]; then
  while IFS= read -r exe; do
    [ -n "$exe" ] || continue
    name="$(basename "$exe")"
    log="$tmp_root/$name.log"
    b0=$EPOCHREALTIME
    if ! TCOMP_BENCH_QUICK=1 timeout 300 "$exe" --benchmark_min_time=0.01 >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "test.sh: benchmark $name failed (log above)" >&2
      exit 1
    fi
    printf "  ok  %-32s %6ss\n" "$name" "$(elapsed "$b0")"
    n_bench=$((n_bench + 1))
  done <"$bench_list"
fi
[ "$n_bench" -gt 0 ] || echo "  (no benchmarks built)"
if [ -x build/release/bench/bench_cuda_gemm ]; then  # compiled on every run; measures only where a GPU is
  set +e
  build/release/bench/bench_cuda_gemm --quick >"$tmp_root/bench_cuda_gemm.log" 2>&1
  rc=$?
  set -e
  case "$rc" in
    0) echo "  ok  bench_cuda_gemm --quick" ;;
    77) echo "  skipped  bench_cuda_gemm --quick (no GPU)" ;;
    *) tail -n 40 "$tmp_root/bench_cuda_gemm.log" >&2; echo "test.sh: bench_cuda_gemm failed" >&2; exit 1 ;;
  esac
fi
end "$n_bench benchmarks ran"

# ---------------------------------------------------------------- asan
begin asan "ASan + UBSan: configure, build and test the 'asan' preset (build/asan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
tcomp_pick_generator build/asan
cmake --preset asan
cmake --build --preset asan --parallel "$JOBS"
ctest --preset asan --output-on-failure -j"$JOBS" 2>&1 | tee "$tmp_root/ctest-asan.log"
end "$(ctest_line "$tmp_root/ctest-asan.log")"

# ---------------------------------------------------------------- fuzz
begin fuzz "libFuzzer (clang++-14, ASan + UBSan): build and run fuzz_safetensors, fuzz_compressed, fuzz_descriptor (build/fuzz)"
fuzz_secs="${TCOMP_FUZZ_SECONDS:-12}"  # a smoke run; the long runs (10 minutes each) are done outside CI
tcomp_pick_generator build/fuzz
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DTCOMP_BUILD_FUZZ=ON -DTCOMP_BUILD_TESTS=ON -DTCOMP_BUILD_BENCH=OFF -DTCOMP_BUILD_EXAMPLES=OFF \
  -DTCOMP_CUDA=OFF -DTCOMP_CPU_KERNELS=OFF -DTCOMP_INSTALL=OFF
cmake --build build/fuzz --target fuzz_safetensors fuzz_compressed fuzz_descriptor --parallel "$JOBS"
fuzz_dir=build/fuzz/tests/fuzz
fuzz_notes=""
# run_fuzzer <target> <seconds> <dict> <seed dir>: new inputs go to corpus-<target>/ (kept between runs); the
# seeds are written by the build. A crash, leak, sanitizer report, timeout (-timeout s per input) or
# out-of-memory exits non-zero and fails the stage; the input is left in artifacts/.
run_fuzzer() {
  local target="$1" secs="$2" dict="$3" seeds="$4" log="$tmp_root/$1.log" rc runs
  mkdir -p "$fuzz_dir/corpus-$target" "$fuzz_dir/artifacts"
  echo "  $target for $secs s (log: $log)"
  set +e
  "$fuzz_dir/$target" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=4194304 \
    -dict="$dict" -artifact_prefix="$fuzz_dir/artifacts/$target-" -print_final_stats=1 \
    "$fuzz_dir/corpus-$target" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^(INFO: Seed|#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::number_of_executed_units)' "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "test.sh: $target failed (exit $rc); reproducer in $fuzz_dir/artifacts/" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  fuzz_notes="$fuzz_notes${fuzz_notes:+, }$target ${runs:-?} in ${secs} s"
}
run_fuzzer fuzz_safetensors "$fuzz_secs" tests/fuzz/safetensors.dict "$fuzz_dir/seeds"
run_fuzzer fuzz_compressed "$(( fuzz_secs / 2 ))" tests/fuzz/compressed.dict "$fuzz_dir/seeds_compressed"
run_fuzzer fuzz_descriptor "$(( fuzz_secs / 4 ))" tests/fuzz/compressed.dict "$fuzz_dir/seeds_descriptor"
end "$fuzz_notes; no crash"

# ---------------------------------------------------------------- consumer
begin consumer "install build/dev, then build + run examples/consumer (find_package, add_subdirectory)"
if [ ! -f include/tcomp/tcomp.hpp ]; then
  echo "test.sh: include/tcomp/tcomp.hpp does not exist; the consumer check needs the umbrella header" >&2
  exit 1
fi
prefix="$tmp_root/prefix"
cmake --install build/dev --prefix "$prefix"
for f in tcompConfig.cmake tcompConfigVersion.cmake tcompTargets.cmake; do
  if [ ! -f "$prefix/share/cmake/tcomp/$f" ]; then
    echo "test.sh: install did not produce share/cmake/tcomp/$f" >&2
    exit 1
  fi
done

tcomp_pick_generator "$tmp_root/consumer-installed"
# Debug: the consumer builds tcomp::cpu's five per-ISA objects itself, twice; at -O0 that is 36 CPU-s a build
# against 100 at -O3, and the packaging under test does not depend on the optimisation level.
cmake -S examples/consumer -B "$tmp_root/consumer-installed" \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$tmp_root/consumer-installed" --parallel "$JOBS"
echo "  run (installed package):"
"$tmp_root/consumer-installed/consumer"

# The add_subdirectory consumer checks the source-tree integration; the per-ISA objects were just built by the
# installed-package consumer (and by tcomp's own builds), so this one links tcomp::cpu without them (18 s less).
cmake -S examples/consumer -B "$tmp_root/consumer-subdir" \
  -DCMAKE_BUILD_TYPE=Debug -DTCOMP_SOURCE_DIR="$repo" -DTCOMP_CPU_KERNELS=OFF
cmake --build "$tmp_root/consumer-subdir" --parallel "$JOBS"
echo "  run (add_subdirectory):"
"$tmp_root/consumer-subdir/consumer"
end "installed + add_subdirectory consumers ran"
