// The cost of calibration (include/tcomp/calib/), per layer of N = K outputs and inputs:
//   BM_statistics/K/hessian:H   input_statistics::observe of 128 rows (H: with the K x K Hessian), against
//   BM_forward/K                the layer's own float forward pass on those rows (Eigen GEMM): the overhead ratio
//   BM_gptq/K/threads:T         GPTQ (act-order, 128 calibration rows; the case is K = 4096), T threads
//   BM_importance_scales/K      imatrix's per-cell clip search (int4 g32)
//   BM_awq/K                    AWQ's 20-point strength search + clip search (int4 g32)
//   BM_sparsegpt/K              SparseGPT 2:4 with int8 weights
//   BM_smoothquant/K            SmoothQuant's 21-point strength search on a 256-row sample (W8A8)
// and, with ../shared/models present, one stories260K forward pass over a calibration story with and without
// the statistics tap (BM_stories260K_forward / BM_stories260K_forward_with_statistics).
// TCOMP_BENCH_QUICK=1 (CI's smoke run) uses K = 256 only.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <vector>

#include "tcomp/calib/awq.hpp"
#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/imatrix.hpp"
#include "tcomp/calib/smoothquant.hpp"
#include "tcomp/calib/sparsegpt.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace {

using namespace tcomp;

bool quick() { return std::getenv("TCOMP_BENCH_QUICK") != nullptr; }

dense_matrix<float> normal(index_t rows, index_t cols, std::uint64_t seed) {
    dense_matrix<float> m(rows, cols);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : m.storage()) v = d(rng);
    return m;
}

/// 128 calibration rows with unequal channel scales (a few channels 20x), as activations have.
dense_matrix<float> activations(index_t rows, index_t k) {
    dense_matrix<float> x = normal(rows, k, 7);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < k; ++c) x(r, c) *= (c % 97 == 5) ? 20.0f : 1.0f + 0.25f * static_cast<float>(c % 4);
    return x;
}

struct layer {
    dense_matrix<float> w, x;
    calib::input_statistics stats;
};

const layer& layer_of(index_t k) {
    static std::vector<std::pair<index_t, layer>> cache;
    for (const auto& [kk, l] : cache)
        if (kk == k) return l;
    layer l{normal(k, k, 42), activations(128, k), calib::input_statistics(k, true, 128)};
    l.stats.observe(l.x.view());
    cache.emplace_back(k, std::move(l));
    return cache.back().second;
}

void sizes(benchmark::internal::Benchmark* b, std::vector<index_t> full) {
    for (index_t k : quick() ? std::vector<index_t>{256} : full) b->Arg(k);
    b->Unit(benchmark::kMillisecond);
}

void BM_statistics(benchmark::State& state) {
    const index_t k = state.range(0);
    const bool hessian = state.range(1) != 0;
    const layer& l = layer_of(k);
    for (auto _ : state) {
        calib::input_statistics s(k, hessian);
        s.observe(l.x.view());
        benchmark::DoNotOptimize(s);
    }
    state.SetItemsProcessed(state.iterations() * l.x.rows());
}
BENCHMARK(BM_statistics)->Apply([](benchmark::internal::Benchmark* b) {
    for (index_t k : quick() ? std::vector<index_t>{256} : std::vector<index_t>{1024, 4096})
        for (int h : {0, 1}) b->Args({k, h});
    b->ArgNames({"K", "hessian"})->Unit(benchmark::kMillisecond);
});

void BM_forward(benchmark::State& state) {
    const index_t k = state.range(0);
    const layer& l = layer_of(k);
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const row_major> x(l.x.view().data(), l.x.rows(), k), w(l.w.view().data(), k, k);
    row_major y(l.x.rows(), k);
    for (auto _ : state) {
        y.noalias() = x * w.transpose();
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(state.iterations() * l.x.rows());
}
BENCHMARK(BM_forward)->Apply([](benchmark::internal::Benchmark* b) { sizes(b, {1024, 4096}); });

void BM_gptq(benchmark::State& state) {
    const index_t k = state.range(0);
    const layer& l = layer_of(k);
    const descriptor d = parse_descriptor("w=int4:g128");
    calib::gptq_options o;
    o.act_order = true;
    o.threads = static_cast<int>(state.range(1));
    for (auto _ : state) benchmark::DoNotOptimize(calib::gptq(l.w.view(), l.stats, d, o));
}
BENCHMARK(BM_gptq)->Apply([](benchmark::internal::Benchmark* b) {
    for (index_t k : quick() ? std::vector<index_t>{256} : std::vector<index_t>{1024, 4096})
        for (int t : {1, 2}) b->Args({k, t});
    b->ArgNames({"K", "threads"})->Unit(benchmark::kMillisecond)->Iterations(quick() ? 1 : 3);
});

void BM_importance_scales(benchmark::State& state) {
    const layer& l = layer_of(state.range(0));
    const descriptor d = parse_descriptor("w=int4:g32");
    const std::vector<float> importance = l.stats.mean_square();
    for (auto _ : state) benchmark::DoNotOptimize(calib::importance_scales(l.w.view(), importance, d));
}
BENCHMARK(BM_importance_scales)->Apply([](benchmark::internal::Benchmark* b) { sizes(b, {1024}); });

void BM_awq(benchmark::State& state) {
    const layer& l = layer_of(state.range(0));
    const descriptor d = parse_descriptor("w=int4:g32");
    for (auto _ : state) benchmark::DoNotOptimize(calib::awq(l.w.view(), l.stats, d));
}
BENCHMARK(BM_awq)->Apply([](benchmark::internal::Benchmark* b) { sizes(b, {1024}); });

void BM_sparsegpt(benchmark::State& state) {
    const layer& l = layer_of(state.range(0));
    const descriptor d = parse_descriptor("w=int8:channel s=2:4");
    for (auto _ : state) benchmark::DoNotOptimize(calib::sparsegpt(l.w.view(), l.stats, d));
}
BENCHMARK(BM_sparsegpt)->Apply([](benchmark::internal::Benchmark* b) { sizes(b, {1024}); });

void BM_smoothquant(benchmark::State& state) {
    const layer& l = layer_of(state.range(0));
    const descriptor d = parse_descriptor("w=int8:channel a=int8:token");
    for (auto _ : state) benchmark::DoNotOptimize(calib::smoothquant(l.w.view(), l.stats, d));
}
BENCHMARK(BM_smoothquant)->Apply([](benchmark::internal::Benchmark* b) { sizes(b, {1024}); });

// stories260K: the statistics tap's cost on a real model (every linear's input into its statistics).
struct stories {
    std::optional<model::llama_model> m;
    std::vector<int> story;
    static stories& get() {
        static stories s = [] {
            stories out;
            const std::filesystem::path dir = std::filesystem::path(TCOMP_SHARED_DIR) / "models" / "stories260K";
            if (!std::filesystem::exists(dir / "config.json")) return out;
            out.m.emplace(model::load_llama(dir));
            const io::safetensors_file f = io::safetensors_file::open(dir / "tinystories_calib_tokens.safetensors");
            const io::tensor_view& t = f.tensor("tokens");
            const io::tensor_view& o = f.tensor("offsets");
            std::int64_t end = 0;
            std::memcpy(&end, o.data.data() + sizeof(std::int64_t), sizeof(end));
            out.story.resize(static_cast<std::size_t>(end));
            std::memcpy(out.story.data(), t.data.data(), out.story.size() * sizeof(int));
            return out;
        }();
        return s;
    }
};

void BM_stories260K_forward(benchmark::State& state) {
    stories& s = stories::get();
    if (!s.m) return state.SkipWithError("../shared/models/stories260K not found");
    for (auto _ : state) benchmark::DoNotOptimize(s.m->forward(s.story));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(s.story.size()));
}
BENCHMARK(BM_stories260K_forward)->Unit(benchmark::kMillisecond);

void BM_stories260K_forward_with_statistics(benchmark::State& state) {
    stories& s = stories::get();
    if (!s.m) return state.SkipWithError("../shared/models/stories260K not found");
    for (auto _ : state)
        benchmark::DoNotOptimize(model::collect_input_statistics([&] { (void)s.m->forward(s.story); }));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(s.story.size()));
}
BENCHMARK(BM_stories260K_forward_with_statistics)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
