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
// Raw loops: sized so one iteration takes >= ~1 ms.
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

/// Raw F::encode of N(0, (max/2)^2) floats (some saturate, some round to subnormals), one call per element.
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

#define TCOMP_QUANTIZER_BENCH(Q)                                             \
    BENCHMARK_TEMPLATE(BM_quantize, Q)->Unit(benchmark::kMillisecond);      \
    BENCHMARK_TEMPLATE(BM_dequantize, Q)->Unit(benchmark::kMillisecond)

TCOMP_QUANTIZER_BENCH(mxint8);
TCOMP_QUANTIZER_BENCH(mxfp8_e4m3);
TCOMP_QUANTIZER_BENCH(mxfp6_e2m3);
TCOMP_QUANTIZER_BENCH(mxfp6_e3m2);
TCOMP_QUANTIZER_BENCH(mxfp4_e2m1);

#define TCOMP_FORMAT_BENCH(F)                                                \
    BENCHMARK_TEMPLATE(BM_encode, F)->Unit(benchmark::kMicrosecond);        \
    BENCHMARK_TEMPLATE(BM_decode, F)->Unit(benchmark::kMicrosecond)

TCOMP_FORMAT_BENCH(q1_6);
TCOMP_FORMAT_BENCH(e2m3);
TCOMP_FORMAT_BENCH(e3m2);
TCOMP_FORMAT_BENCH(e2m1);
TCOMP_FORMAT_BENCH(e8m0);

BENCHMARK_MAIN();
