// OCP Microscaling (MX v1.0) block formats: 32 elements share one E8M0 (power-of-two) scale.
//   MXINT8  fixed_point_format<1, 6> (Q1.6)   MXFP8  fp8_e4m3   MXFP6  fp6_e2m3, fp6_e3m2   MXFP4  fp4_e2m1
// all as quantizer<Element, per_group<32>, e8m0_scale>.
//
// Per format: quantize (tcomp::quantize<Q>, GB/s of float32 input) and dequantize (tcomp::dequantize,
// GB/s of float32 output) of a seeded N(0, 1) 256 x 4096 weight matrix; per element format (and E8M0):
// raw F::encode of N(0, (max/2)^2) floats and raw F::decode of every code (cycled), one call per element
// (2^20 / 2^22 elements). Counters: bits_per_weight (codes + one 8-bit scale per 32) and relative_error
// (||W - deq(quant(W))||_F / ||W||_F), measured once, outside the timed loop.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include "bench_common.hpp"

namespace {

using namespace tcomp_bench;  // the benchmarks register unqualified: BM_quantize<...>, not tcomp_bench::...

/// Raw F::encode of N(0, (max/2)^2) floats (some saturate), one call per element.
template <class F>
void BM_encode(benchmark::State& state) {
    encode_half_max_normal<F>(state);
}

// Element formats (fp8_e4m3's raw loops are in bench_float8) and the shared scale.
using q1_6 = tcomp::fixed_point_format<1, 6>;
using e2m3 = tcomp::fp6_e2m3;
using e3m2 = tcomp::fp6_e3m2;
using e2m1 = tcomp::fp4_e2m1;
using e8m0 = tcomp::e8m0_format;

// MX quantizers (readable names: the benchmark names are these spellings).
using mxint8 = tcomp::quantizer<q1_6, tcomp::per_group<32>, tcomp::e8m0_scale>;
using mxfp8_e4m3 = tcomp::quantizer<tcomp::fp8_e4m3, tcomp::per_group<32>, tcomp::e8m0_scale>;
using mxfp6_e2m3 = tcomp::quantizer<e2m3, tcomp::per_group<32>, tcomp::e8m0_scale>;
using mxfp6_e3m2 = tcomp::quantizer<e3m2, tcomp::per_group<32>, tcomp::e8m0_scale>;
using mxfp4_e2m1 = tcomp::quantizer<e2m1, tcomp::per_group<32>, tcomp::e8m0_scale>;

}  // namespace

TCOMP_QUANTIZER_BENCH(mxint8);
TCOMP_QUANTIZER_BENCH(mxfp8_e4m3);
TCOMP_QUANTIZER_BENCH(mxfp6_e2m3);
TCOMP_QUANTIZER_BENCH(mxfp6_e3m2);
TCOMP_QUANTIZER_BENCH(mxfp4_e2m1);

TCOMP_FORMAT_BENCH(q1_6);
TCOMP_FORMAT_BENCH(e2m3);
TCOMP_FORMAT_BENCH(e3m2);
TCOMP_FORMAT_BENCH(e2m1);
TCOMP_FORMAT_BENCH(e8m0);

BENCHMARK_MAIN();
