// Floating storage formats: fp8_e4m3, fp8_e5m2 (OCP OFP8), fp16_format, bf16_format, each with a float32
// scale per output channel and as a plain storage cast (unit_scale: nothing stored but the codes).
//
// Per quantizer: quantize (tcomp::quantize<Q>, GB/s of float32 input) and dequantize (tcomp::dequantize,
// GB/s of float32 output) of a seeded N(0, 1) 256 x 4096 weight matrix; per format: raw F::encode of
// N(0, 1) floats and raw F::decode of every code pattern (cycled), one call per element (2^20 / 2^22
// elements). Counters: bits_per_weight (codes + scales) and relative_error (||W - deq(quant(W))||_F /
// ||W||_F), measured once, outside the timed loop.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include <random>

#include "bench_common.hpp"

namespace {

using namespace tcomp_bench;  // the benchmarks register unqualified: BM_quantize<...>, not tcomp_bench::...

/// Raw F::encode of N(0, 1) floats (a few land on subnormal codes), one call per element.
template <class F>
void BM_encode(benchmark::State& state) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    encode_loop<F>(state, [&](std::mt19937_64& rng) { return normal(rng); });
}

// Formats.
using e4m3 = tcomp::fp8_e4m3;
using e5m2 = tcomp::fp8_e5m2;
using fp16 = tcomp::fp16_format;
using bf16 = tcomp::bf16_format;

// Quantizers (readable names: the benchmark names are these spellings).
using e4m3_per_channel = tcomp::quantizer<e4m3, tcomp::per_channel>;
using e4m3_cast = tcomp::quantizer<e4m3, tcomp::unit_scale>;
using e5m2_per_channel = tcomp::quantizer<e5m2, tcomp::per_channel>;
using e5m2_cast = tcomp::quantizer<e5m2, tcomp::unit_scale>;
using fp16_per_channel = tcomp::quantizer<fp16, tcomp::per_channel>;
using fp16_cast = tcomp::quantizer<fp16, tcomp::unit_scale>;
using bf16_per_channel = tcomp::quantizer<bf16, tcomp::per_channel>;
using bf16_cast = tcomp::quantizer<bf16, tcomp::unit_scale>;

}  // namespace

TCOMP_QUANTIZER_BENCH(e4m3_per_channel);
TCOMP_QUANTIZER_BENCH(e4m3_cast);
TCOMP_QUANTIZER_BENCH(e5m2_per_channel);
TCOMP_QUANTIZER_BENCH(e5m2_cast);
TCOMP_QUANTIZER_BENCH(fp16_per_channel);
TCOMP_QUANTIZER_BENCH(fp16_cast);
TCOMP_QUANTIZER_BENCH(bf16_per_channel);
TCOMP_QUANTIZER_BENCH(bf16_cast);

TCOMP_FORMAT_BENCH(e4m3);
TCOMP_FORMAT_BENCH(e5m2);
TCOMP_FORMAT_BENCH(fp16);
TCOMP_FORMAT_BENCH(bf16);

BENCHMARK_MAIN();
