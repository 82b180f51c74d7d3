#!/usr/bin/env bash
# bench/cuda/run_on_gpu.sh - everything the CUDA kernels need checked on a GPU, in one call:
#   1. build tests/cuda (tcomp_cuda_tests) and bench/cuda (bench_cuda_gemm) with nvcc for this GPU
#      (no CMake configure and no Debian packages: both need only include/, nvcc and cuBLAS);
#      the ptxas resource report (registers, spills) and the tensor-core instruction counts of the SASS;
#   2. the GPU tests: kernels vs the scalar oracle, quantizer, mma.sp layout probes, errors;
#   3. compute-sanitizer memcheck over the quick test set;
#   4. the benchmark against cuBLAS fp16 / bf16 and cuBLASLt int8 (JSON + table).
# The last lines printed are a short summary table. Full logs and bench.json go to $OUT (the device
# tool's output folder) or build/gpu; the binaries stay in build/gpu and are rebuilt only when the content
# of their sources changed (include/ and tests/cuda for the tests, include/ and bench_cuda_gemm.cu for the
# bench), so binaries built elsewhere and copied into build/gpu are used as they are.
#
#   bench/cuda/run_on_gpu.sh [--quick] [--no-bench] [--no-sanitizer] [--no-tests]
#
# --quick: the quick test set and a smoke-sized benchmark (a first run on a fresh machine, ~3 min).
# A device call is limited to 600 s: a first session runs `--quick`, then `--no-sanitizer --no-tests`
# (the full benchmark), then, if time is left, `--no-bench --no-sanitizer` (the full test set).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bin="$repo/build/gpu"
out="${OUT:-$bin}"
mkdir -p "$out" "$bin"
quick=0 bench=1 sanitizer=1 tests=1
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-bench) bench=0 ;;
    --no-sanitizer) sanitizer=0 ;;
    --no-tests) tests=0 ;;
    *) echo "usage: $0 [--quick] [--no-bench] [--no-sanitizer] [--no-tests]" >&2; exit 2 ;;
  esac
done

NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
SANITIZER="$(command -v compute-sanitizer || echo "$(dirname "$NVCC")/compute-sanitizer")"
t0=$SECONDS
declare -a rows=()
row() { rows+=("$(printf '%-28s %-8s %s' "$1" "$2" "$3")"); }

# --- the device ---------------------------------------------------------------------------------------
gpu="$(nvidia-smi --query-gpu=name,compute_cap,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n1)"
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '.')"
[ -z "$cap" ] && cap=90
echo "device: ${gpu:-unknown} (building for sm_${cap})"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
"$NVCC" --version | tail -n 2

# --- 1. build -----------------------------------------------------------------------------------------
common=(-std=c++20 -O3 -Iinclude --expt-relaxed-constexpr --diag-suppress=20012 -Werror=all-warnings
        -lineinfo -gencode "arch=compute_${cap},code=sm_${cap}")
build_ok=1
# Rebuild when the sources' content changed (the device tool copies the tree, so mtimes say nothing).
stale() { # stale <binary> <sources...>: true when the binary is missing or built from other sources
  local binary="$1"; shift
  local sum; sum="$(find "$@" -type f | sort | xargs cat | sha256sum | cut -c1-16)"
  if [ -x "$binary" ] && [ "$(cat "$binary.sources" 2>/dev/null)" = "$sum" ]; then return 1; fi
  echo "$sum" > "$binary.sources.new"
  return 0
}
p1="" p2=""
if stale "$bin/tcomp_cuda_tests" include tests/cuda; then
  "$NVCC" "${common[@]}" -Xptxas -v -o "$bin/tcomp_cuda_tests" tests/cuda/*.cu > "$bin/build-tests.txt" 2>&1 &
  p1=$!
fi
if stale "$bin/bench_cuda_gemm" include bench/cuda/bench_cuda_gemm.cu; then
  "$NVCC" "${common[@]}" -o "$bin/bench_cuda_gemm" bench/cuda/bench_cuda_gemm.cu -lcublas -lcublasLt \
    > "$bin/build-bench.txt" 2>&1 &
  p2=$!
fi
finish() { # finish <pid> <binary> <log>: wait for a build, record its sources' sum or report the failure
  if wait "$1"; then mv -f "$2.sources.new" "$2.sources"
  else build_ok=0; rm -f "$2"; echo "BUILD FAILED: $2"; tail -n 30 "$3"; fi
}
[ -n "$p1" ] && finish "$p1" "$bin/tcomp_cuda_tests" "$bin/build-tests.txt"
[ -n "$p2" ] && finish "$p2" "$bin/bench_cuda_gemm" "$bin/build-bench.txt"
cp -f "$bin"/build-*.txt "$out"/ 2>/dev/null || true
if [ "$build_ok" = 1 ] && [ -f "$bin/build-tests.txt" ]; then
  spills="$(grep -c 'bytes spill stores' "$bin/build-tests.txt") kernels, $(grep 'spill' "$bin/build-tests.txt" | grep -vc ' 0 bytes spill stores, 0 bytes spill loads') with spills"
  row "build (sm_${cap})" "ok" "$spills; ptxas report in build-tests.txt"
  if command -v cuobjdump > /dev/null; then
    cuobjdump -sass "$bin/tcomp_cuda_tests" > "$out/sass.txt" 2>/dev/null || true
    row "SASS tensor-core ops" "info" "IMMA $(grep -c 'IMMA' "$out/sass.txt") HMMA $(grep -c 'HMMA' "$out/sass.txt") LDGSTS $(grep -c 'LDGSTS' "$out/sass.txt")"
  fi
elif [ "$build_ok" = 0 ]; then
  row "build (sm_${cap})" "FAIL" "see build-tests.txt / build-bench.txt"
fi

# --- 2. tests -----------------------------------------------------------------------------------------
if [ "$tests" = 1 ] && [ -x "$bin/tcomp_cuda_tests" ]; then
  test_args=()
  [ "$quick" = 1 ] && test_args=(--quick)
  # A hung kernel must not eat the device lease: every run has a time limit.
  timeout 240 "$bin/tcomp_cuda_tests" "${test_args[@]}" > "$out/tests.txt" 2>&1
  rc=$?
  pass=$(grep -c '^PASS' "$out/tests.txt"); fail=$(grep -c '^FAIL' "$out/tests.txt")
  [ "$rc" = 0 ] && status=ok || status=FAIL
  [ "$rc" = 77 ] && status=SKIPPED
  row "tests (oracle, probes)" "$status" "$pass passed, $fail failed (exit $rc)"
  grep -E '^(FAIL|     )' "$out/tests.txt" | head -n 40
fi

# --- 3. compute-sanitizer -----------------------------------------------------------------------------
if [ "$sanitizer" = 1 ] && [ -x "$bin/tcomp_cuda_tests" ] && [ -x "$SANITIZER" ]; then
  timeout 300 "$SANITIZER" --tool memcheck --leak-check full --error-exitcode 3 "$bin/tcomp_cuda_tests" --quick \
    > "$out/memcheck.txt" 2>&1
  rc=$?
  summary="$(grep -E 'ERROR SUMMARY' "$out/memcheck.txt" | tail -n 1)"
  [ "$rc" = 0 ] && row "compute-sanitizer memcheck" "ok" "${summary:-no summary line}" \
                || row "compute-sanitizer memcheck" "FAIL" "exit $rc; ${summary:-see memcheck.txt}"
  [ "$rc" != 0 ] && grep -E 'Invalid|ERROR|at 0x' "$out/memcheck.txt" | head -n 20
elif [ "$sanitizer" = 1 ]; then
  row "compute-sanitizer memcheck" "missing" "no compute-sanitizer at $SANITIZER"
fi

# --- 4. benchmark -------------------------------------------------------------------------------------
if [ "$bench" = 1 ] && [ -x "$bin/bench_cuda_gemm" ]; then
  bench_args=(--json "$out/bench.json")
  [ "$quick" = 1 ] && bench_args+=(--quick)
  timeout 300 "$bin/bench_cuda_gemm" "${bench_args[@]}" > "$out/bench.txt" 2>&1
  rc=$?
  [ "$rc" = 0 ] && row "bench vs cuBLAS" "ok" "bench.json, bench.txt" || row "bench vs cuBLAS" "FAIL" "exit $rc"
  echo
  echo "---- bench (tail of bench.txt) ----"
  tail -n 45 "$out/bench.txt"
fi

echo
echo "==================== tcomp CUDA summary ($((SECONDS - t0)) s) ===================="
echo "device: ${gpu:-unknown}"
for r in "${rows[@]}"; do echo "  $r"; done
echo "logs: $out"
