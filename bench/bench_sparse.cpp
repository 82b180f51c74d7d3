// Sparsity: magnitude pruning and compression to n_m<2, 4> (2:4), block_sparse<4, 8> and unstructured
// (bitmap), each at 50 % density, weights quantized with presets::int8_per_channel (dense: the baseline).
//   BM_magnitude_mask<S>   tcomp::magnitude_mask<S>(W, 0.5)                     GB/s of float32 input
//   BM_compress<S>         tcomp::compress_matrix<int8_per_channel, S>(W)       GB/s of float32 input
//   BM_dequantize<S>       tcomp::dequantize(view) (pruned elements are 0)      GB/s of float32 output
// on a seeded N(0, 1) 256 x 4096 weight matrix. Counters: relative_error (||W - W'||_F / ||W||_F; for the
// mask W' is the pruned W, for compress/dequantize the pruned and quantized W) and bits_per_weight (codes,
// scales, sparsity metadata and row offsets per logical weight), measured once, outside the timed loop.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include <cstdint>

#include "bench_common.hpp"

namespace {

using tcomp_bench::weights;

constexpr double density = 0.5;

using weight_quantizer = tcomp::presets::int8_per_channel;

tcomp::quantize_options options() {
    tcomp::quantize_options o;
    o.density = density;
    return o;
}

/// The compressed matrix and its cost in size and accuracy, built once per pattern.
template <class S>
struct prepared {
    tcomp::compressed_matrix<weight_quantizer, S> matrix;
    double bits_per_weight = 0.0;
    double relative_error = 0.0;        // pruned and quantized
    double pruning_relative_error = 0.0;  // pruned only

    static const prepared& get() {
        static const prepared p = [] {
            prepared out;
            out.matrix = tcomp::compress_matrix<weight_quantizer, S>(weights().view(), options());
            out.bits_per_weight = out.matrix.bits_per_weight();
            out.relative_error = tcomp_bench::relative_error(weights(), tcomp::dequantize(out.matrix));
            out.pruning_relative_error =
                tcomp_bench::relative_error(weights(), tcomp::prune<S>(weights().view(), density));
            return out;
        }();
        return p;
    }
};

template <class S>
void BM_magnitude_mask(benchmark::State& state) {
    const tcomp::matrix_view<const float> w = weights().view();
    state.counters["relative_error"] = prepared<S>::get().pruning_relative_error;
    for (auto _ : state) {
        auto mask = tcomp::magnitude_mask<S>(w, density);
        benchmark::DoNotOptimize(mask.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * w.size() * static_cast<std::int64_t>(sizeof(float)));
}

template <class S>
void BM_compress(benchmark::State& state) {
    const auto o = options();
    tcomp_bench::set_counters(state, prepared<S>::get());
    tcomp_bench::compress_loop(
        state, [&](tcomp::matrix_view<const float> w) { return tcomp::compress_matrix<weight_quantizer, S>(w, o); });
}

template <class S>
void BM_dequantize(benchmark::State& state) {
    tcomp_bench::dequantize_loop(state, prepared<S>::get());
}

// Patterns (readable names: the benchmark names are these spellings).
using dense = tcomp::dense;
using n_m_2_4 = tcomp::n_m<2, 4>;
using block_4x8 = tcomp::block_sparse<4, 8>;
using unstructured = tcomp::unstructured;

}  // namespace

BENCHMARK_TEMPLATE(BM_magnitude_mask, n_m_2_4)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_magnitude_mask, block_4x8)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_magnitude_mask, unstructured)->Unit(benchmark::kMillisecond);

#define TCOMP_PATTERN_BENCH(S)                                               \
    BENCHMARK_TEMPLATE(BM_compress, S)->Unit(benchmark::kMillisecond);      \
    BENCHMARK_TEMPLATE(BM_dequantize, S)->Unit(benchmark::kMillisecond)

TCOMP_PATTERN_BENCH(dense);
TCOMP_PATTERN_BENCH(n_m_2_4);
TCOMP_PATTERN_BENCH(block_4x8);
TCOMP_PATTERN_BENCH(unstructured);

BENCHMARK_MAIN();
