// Integer formats: int_format<8/4/2>, uint_format<4> (asymmetric), binary_format, ternary_format.
//
// Per quantizer: quantize (tcomp::quantize<Q>, GB/s of float32 input) and dequantize (tcomp::dequantize,
// GB/s of float32 output) of a seeded N(0, 1) 256 x 4096 weight matrix; per format: raw F::encode and
// F::decode, one call per element (2^20 / 2^22 elements). Counters: bits_per_weight (everything stored:
// codes, scales, zero points) and relative_error (||W - deq(quant(W))||_F / ||W||_F), measured once,
// outside the timed loop.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include <random>

#include "bench_common.hpp"

namespace {

using namespace tcomp_bench;  // the benchmarks register unqualified: BM_quantize<...>, not tcomp_bench::...

/// Raw F::encode on values spread over the code range (some saturate), one call per element.
template <class F>
void BM_encode(benchmark::State& state) {
    std::normal_distribution<float> normal(0.0f, static_cast<float>(F::code_max - F::code_min) / 4.0f);
    const float center = static_cast<float>(F::code_max + F::code_min) * 0.5f;
    encode_loop<F>(state, [&](std::mt19937_64& rng) { return normal(rng) + center; });
}

// Quantizers (readable names: the benchmark names are these spellings).
using int8_per_channel = tcomp::presets::int8_per_channel;
using int4_group128 = tcomp::presets::int4_group128;
using int2_group64 = tcomp::quantizer<tcomp::int_format<2>, tcomp::symmetric, tcomp::per_group<64>>;
using uint4_group128_asym = tcomp::presets::uint4_group128_asymmetric;
using binary_per_channel = tcomp::presets::binary_per_channel;
using ternary_per_channel = tcomp::quantizer<tcomp::ternary_format, tcomp::symmetric, tcomp::per_channel>;
using ternary_per_channel_mse20 = tcomp::presets::ternary_per_channel;  // + mse_clip_search<20>

// Formats.
using int8 = tcomp::int_format<8>;
using int4 = tcomp::int_format<4>;
using int2 = tcomp::int_format<2>;
using uint4 = tcomp::uint_format<4>;
using binary = tcomp::binary_format;
using ternary = tcomp::ternary_format;

}  // namespace

TCOMP_QUANTIZER_BENCH(int8_per_channel);
TCOMP_QUANTIZER_BENCH(int4_group128);
TCOMP_QUANTIZER_BENCH(int2_group64);
TCOMP_QUANTIZER_BENCH(uint4_group128_asym);
TCOMP_QUANTIZER_BENCH(binary_per_channel);
TCOMP_QUANTIZER_BENCH(ternary_per_channel);
TCOMP_QUANTIZER_BENCH(ternary_per_channel_mse20);

TCOMP_FORMAT_BENCH(int8);
TCOMP_FORMAT_BENCH(int4);
TCOMP_FORMAT_BENCH(int2);
TCOMP_FORMAT_BENCH(uint4);
TCOMP_FORMAT_BENCH(binary);
TCOMP_FORMAT_BENCH(ternary);

BENCHMARK_MAIN();
