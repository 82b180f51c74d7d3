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
// These are speeds of the scalar reference code (the oracle, written for clarity): the SIMD back end comes
// in a later issue and will be measured against these numbers.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tcomp/tcomp.hpp"

namespace {

constexpr tcomp::index_t rows = 256;
constexpr tcomp::index_t cols = 4096;
// Raw loops: sized so one iteration takes >= ~1 ms (decode vectorizes; encode is ~50x slower).
constexpr std::size_t encode_elements = std::size_t{1} << 20;
constexpr std::size_t decode_elements = std::size_t{1} << 22;

const tcomp::dense_matrix<float>& weights() {
    static const tcomp::dense_matrix<float> w = [] {
        tcomp::dense_matrix<float> m(rows, cols);
        std::mt19937_64 rng(42);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto& v : m.storage()) v = normal(rng);
        return m;
    }();
    return w;
}

double relative_error(const tcomp::dense_matrix<float>& ref, const tcomp::dense_matrix<float>& approx) {
    double num = 0.0, den = 0.0;
    for (tcomp::index_t r = 0; r < ref.rows(); ++r)
        for (tcomp::index_t c = 0; c < ref.cols(); ++c) {
            const double d = static_cast<double>(ref(r, c)) - static_cast<double>(approx(r, c));
            num += d * d;
            den += static_cast<double>(ref(r, c)) * static_cast<double>(ref(r, c));
        }
    return std::sqrt(num / den);
}

/// The compressed matrix and its cost in size and accuracy, built once per quantizer.
template <class Q>
struct prepared {
    tcomp::compressed_matrix<Q> matrix;
    double bits_per_weight = 0.0;
    double relative_error = 0.0;

    static const prepared& get() {
        static const prepared p = [] {
            prepared out;
            out.matrix = tcomp::quantize<Q>(weights().view());
            out.bits_per_weight = out.matrix.bits_per_weight();
            out.relative_error = ::relative_error(weights(), tcomp::dequantize(out.matrix));
            return out;
        }();
        return p;
    }
};

template <class Q>
void set_counters(benchmark::State& state) {
    const auto& p = prepared<Q>::get();
    state.counters["bits_per_weight"] = p.bits_per_weight;
    state.counters["relative_error"] = p.relative_error;
}

template <class Q>
void BM_quantize(benchmark::State& state) {
    const tcomp::matrix_view<const float> w = weights().view();
    set_counters<Q>(state);
    for (auto _ : state) {
        auto m = tcomp::quantize<Q>(w);
        benchmark::DoNotOptimize(m.storage().codes.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * w.size() * static_cast<std::int64_t>(sizeof(float)));
}

template <class Q>
void BM_dequantize(benchmark::State& state) {
    const auto view = prepared<Q>::get().matrix.view();
    set_counters<Q>(state);
    for (auto _ : state) {
        auto out = tcomp::dequantize(view);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * view.rows() * view.cols() * static_cast<std::int64_t>(sizeof(float)));
}

/// Raw F::encode of N(0, (max/2)^2) values (some saturate), one call per element.
template <class F>
void BM_encode(benchmark::State& state) {
    std::vector<float> in(encode_elements);
    std::mt19937_64 rng(7);
    std::normal_distribution<float> normal(0.0f, F::max_value / 2.0f);
    for (auto& v : in) v = normal(rng);
    std::vector<std::uint32_t> out(in.size());
    for (auto _ : state) {
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = F::encode(in[i]);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(in.size() * sizeof(float)));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in.size()));
}

/// Raw F::decode of every code pattern, cycled, one call per element.
template <class F>
void BM_decode(benchmark::State& state) {
    std::vector<std::uint32_t> in(decode_elements);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::uint32_t>(i) & ((1u << F::bits) - 1u);
    std::vector<float> out(in.size());
    for (auto _ : state) {
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = F::decode(in[i]);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size() * sizeof(float)));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
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

#define TCOMP_QUANTIZER_BENCH(Q)                                             \
    BENCHMARK_TEMPLATE(BM_quantize, Q)->Unit(benchmark::kMillisecond);      \
    BENCHMARK_TEMPLATE(BM_dequantize, Q)->Unit(benchmark::kMillisecond)

TCOMP_QUANTIZER_BENCH(q3_4_unit);
TCOMP_QUANTIZER_BENCH(q3_4_pow2_per_channel);
TCOMP_QUANTIZER_BENCH(q3_4_shiftable2_group128);
TCOMP_QUANTIZER_BENCH(q3_4_multi_level2_group128);

#define TCOMP_FORMAT_BENCH(F)                                                \
    BENCHMARK_TEMPLATE(BM_encode, F)->Unit(benchmark::kMicrosecond);        \
    BENCHMARK_TEMPLATE(BM_decode, F)->Unit(benchmark::kMicrosecond)

TCOMP_FORMAT_BENCH(q3_4);
TCOMP_FORMAT_BENCH(q1_2);

BENCHMARK_TEMPLATE(BM_requantize, general_multiplier)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_requantize, pow2_multiplier)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
