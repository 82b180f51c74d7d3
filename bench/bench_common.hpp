// What the bench/bench_*.cpp suites share (each suite is its own executable; this is header only): the
// seeded N(0, 1) 256 x 4096 weight matrix, relative_error, the per-quantizer prepared<Q> cache and its
// counters (bits_per_weight, relative_error), BM_quantize<Q> / BM_dequantize<Q>, the raw F::encode loop
// (the suite picks the input distribution) and BM_decode<F>, and the registration macros
// TCOMP_QUANTIZER_BENCH / TCOMP_FORMAT_BENCH. A suite brings the names it registers into its own scope
// (using namespace tcomp_bench;) so the benchmark names stay unqualified ("BM_quantize<int4_group128>").
#pragma once

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "tcomp/tcomp.hpp"

namespace tcomp_bench {

inline constexpr tcomp::index_t rows = 256;
inline constexpr tcomp::index_t cols = 4096;
// Raw loops: sized so one iteration takes >= ~1 ms (decode vectorizes; encode is ~50x slower).
inline constexpr std::size_t encode_elements = std::size_t{1} << 20;
inline constexpr std::size_t decode_elements = std::size_t{1} << 22;

/// The rows x cols weight matrix, N(0, 1), seed 42; built once.
inline const tcomp::dense_matrix<float>& weights() {
    static const tcomp::dense_matrix<float> w = [] {
        tcomp::dense_matrix<float> m(rows, cols);
        std::mt19937_64 rng(42);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto& v : m.storage()) v = normal(rng);
        return m;
    }();
    return w;
}

/// ||ref - approx||_F / ||ref||_F, accumulated in double.
inline double relative_error(const tcomp::dense_matrix<float>& ref, const tcomp::dense_matrix<float>& approx) {
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
            out.relative_error = tcomp_bench::relative_error(weights(), tcomp::dequantize(out.matrix));
            return out;
        }();
        return p;
    }
};

/// Sets the bits_per_weight and relative_error counters from a prepared-like P (those two members).
template <class P>
void set_counters(benchmark::State& state, const P& p) {
    state.counters["bits_per_weight"] = p.bits_per_weight;
    state.counters["relative_error"] = p.relative_error;
}

/// Times make(weights().view()) (which returns a compressed matrix), GB/s of float32 input. The caller sets
/// the counters first.
template <class Make>
void compress_loop(benchmark::State& state, Make make) {
    const tcomp::matrix_view<const float> w = weights().view();
    for (auto _ : state) {
        auto m = make(w);
        benchmark::DoNotOptimize(m.storage().codes.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * w.size() * static_cast<std::int64_t>(sizeof(float)));
}

/// Times tcomp::dequantize of p.matrix (a prepared-like P), GB/s of float32 output; sets P's counters.
template <class P>
void dequantize_loop(benchmark::State& state, const P& p) {
    const auto view = p.matrix.view();
    set_counters(state, p);
    for (auto _ : state) {
        auto out = tcomp::dequantize(view);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * view.rows() * view.cols() * static_cast<std::int64_t>(sizeof(float)));
}

template <class Q>
void BM_quantize(benchmark::State& state) {
    set_counters(state, prepared<Q>::get());
    compress_loop(state, [](tcomp::matrix_view<const float> w) { return tcomp::quantize<Q>(w); });
}

template <class Q>
void BM_dequantize(benchmark::State& state) {
    dequantize_loop(state, prepared<Q>::get());
}

/// Raw F::encode, one call per element, of encode_elements inputs sample(rng) with rng = mt19937_64(7);
/// GB/s of float32 input plus items_per_second. The suite's BM_encode<F> picks the distribution.
template <class F, class Sample>
void encode_loop(benchmark::State& state, Sample sample) {
    std::vector<float> in(encode_elements);
    std::mt19937_64 rng(7);
    for (auto& v : in) v = sample(rng);
    std::vector<std::uint32_t> out(in.size());
    for (auto _ : state) {
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = F::encode(in[i]);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(in.size() * sizeof(float)));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in.size()));
}

/// Raw F::encode of N(0, (F::max_value / 2)^2) floats (some saturate).
template <class F>
void encode_half_max_normal(benchmark::State& state) {
    std::normal_distribution<float> normal(0.0f, F::max_value / 2.0f);
    encode_loop<F>(state, [&](std::mt19937_64& rng) { return normal(rng); });
}

/// Raw F::decode of every code pattern (for float formats NaN/Inf/subnormal codes included), cycled, one
/// call per element; GB/s of float32 output plus items_per_second.
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

}  // namespace tcomp_bench

// Registration, expanded in the suite, where BM_quantize / BM_dequantize / BM_encode / BM_decode name the
// benchmarks unqualified.
#define TCOMP_QUANTIZER_BENCH(Q)                                             \
    BENCHMARK_TEMPLATE(BM_quantize, Q)->Unit(benchmark::kMillisecond);      \
    BENCHMARK_TEMPLATE(BM_dequantize, Q)->Unit(benchmark::kMillisecond)

#define TCOMP_FORMAT_BENCH(F)                                                \
    BENCHMARK_TEMPLATE(BM_encode, F)->Unit(benchmark::kMicrosecond);        \
    BENCHMARK_TEMPLATE(BM_decode, F)->Unit(benchmark::kMicrosecond)
