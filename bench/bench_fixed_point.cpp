// Fixed point Q(m.n) (fixed_point_format) under each scale kind that suits it: raw (unit_scale: the
// format's own 2^-n), pow2_scale per channel, shiftable_scale<2> and multi_level_scale<2> per group of 128;
// plus the integer-only requantization fixed_point_multiplier::apply.
//
// Per quantizer: quantize (tcomp::quantize<Q>, GB/s of float32 input) and dequantize (tcomp::dequantize,
// GB/s of float32 output) of a seeded N(0, 1) 256 x 4096 weight matrix; per format: raw F::encode and
// F::decode, one call per element (2^20 / 2^22 elements); requantize: apply() over 2^20 int32 accumulators
// (GB/s of int32 input). Counters: bits_per_weight (codes + scales + tensor scale) and relative_error
// (||W - deq(quant(W))||_F / ||W||_F), measured once, outside the timed loop.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace tcomp_bench;  // the benchmarks register unqualified: BM_quantize<...>, not tcomp_bench::...

/// Raw F::encode of N(0, (max/2)^2) values (some saturate), one call per element.
template <class F>
void BM_encode(benchmark::State& state) {
    encode_half_max_normal<F>(state);
}

/// fixed_point_multiplier::apply on int32 accumulators of an int8 x int8, K = 4096 dot product's range.
template <class Multiplier>
void BM_requantize(benchmark::State& state) {
    const auto m = tcomp::fixed_point_multiplier::from_real(Multiplier::value);
    std::vector<std::int32_t> in(encode_elements);
    std::mt19937_64 rng(11);
    std::uniform_int_distribution<std::int32_t> acc(-(1 << 26), 1 << 26);
    for (auto& v : in) v = acc(rng);
    std::vector<std::int32_t> out(in.size());
    for (auto _ : state) {
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = m.apply(in[i]);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(in.size() * sizeof(std::int32_t)));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in.size()));
}

// Formats.
using q3_4 = tcomp::fixed_point_format<3, 4>;  // 8 bits: range [-8, 7.9375], resolution 1/16
using q1_2 = tcomp::fixed_point_format<1, 2>;  // 4 bits: range [-2, 1.75], resolution 1/4

// Quantizers (readable names: the benchmark names are these spellings).
using q3_4_unit = tcomp::quantizer<q3_4, tcomp::unit_scale>;
using q3_4_pow2_per_channel = tcomp::quantizer<q3_4, tcomp::pow2_scale, tcomp::per_channel>;
using q3_4_shiftable2_group128 = tcomp::quantizer<q3_4, tcomp::shiftable_scale<2>, tcomp::per_group<128>>;
using q3_4_multi_level2_group128 = tcomp::quantizer<q3_4, tcomp::multi_level_scale<2>, tcomp::per_group<128>>;

// Requantization multipliers: a general one (Sx * Sw / Sy) and a power of two (pure shift, mantissa 2^30).
struct general_multiplier {
    static constexpr double value = 0.000123456;
};
struct pow2_multiplier {
    static constexpr double value = 1.0 / 8192.0;
};

}  // namespace

TCOMP_QUANTIZER_BENCH(q3_4_unit);
TCOMP_QUANTIZER_BENCH(q3_4_pow2_per_channel);
TCOMP_QUANTIZER_BENCH(q3_4_shiftable2_group128);
TCOMP_QUANTIZER_BENCH(q3_4_multi_level2_group128);

TCOMP_FORMAT_BENCH(q3_4);
TCOMP_FORMAT_BENCH(q1_2);

BENCHMARK_TEMPLATE(BM_requantize, general_multiplier)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_requantize, pow2_multiplier)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
