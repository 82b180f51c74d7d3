// Model layers by descriptor: model::linear::forward for policies that run on the SIMD kernels (w8a16, w4a16,
// w8a8; nf4, mxfp4, fp8 and fp8_w8a8 on the weight-only kernels, decoded by table or shifts) beside a descriptor
// that no kernel family takes and runs the reference path (6-bit floats: weights dequantized once, float GEMM). Counters:
// stored_GB/s (the compressed file's bytes of the weights per second) and streamed_GB/s (what the layer
// actually reads per call: the kernels' packing, or 4 bytes per weight on the reference path, which is
// therefore no faster than FP32, whatever the format saves on disk).
//
//   N = K = 2048 (16 MiB of FP32 weights: beyond L2, but hot, one copy reused, so it may sit in a large L3),
//   M = 1 (decode) and 16, 2 threads; TCOMP_BENCH_QUICK=1: N = K = 256.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tcomp/model/linear.hpp>

#include "gemm_bench.hpp"

namespace {

using namespace tcomp;

void layer_forward(benchmark::State& state, const std::string& policy) {
    const index_t n = tcomp_bench::quick_mode() ? 256 : 2048, k = n, m = state.range(0);
    dense_matrix<float> w(n, k), x(m, k), y(m, n);
    std::uint32_t seed = 1;
    auto next = [&] {
        seed = seed * 1664525u + 1013904223u;
        return static_cast<float>(static_cast<int>(seed >> 9) - (1 << 22)) / float(1 << 22);
    };
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < k; ++c) w(r, c) = next();
    for (index_t r = 0; r < m; ++r)
        for (index_t c = 0; c < k; ++c) x(r, c) = next();
    const model::linear layer = model::linear::make(policy, w.view(), {}, policy);
    for (auto _ : state) {
        layer.forward(x.view(), y.view(), 2);
        benchmark::DoNotOptimize(y.data());
    }
    const double calls = static_cast<double>(state.iterations());
    state.counters["stored_GB/s"] = benchmark::Counter(calls * double(layer.stored_bytes()) / 1e9,
                                                       benchmark::Counter::kIsRate);
    state.counters["streamed_GB/s"] = benchmark::Counter(calls * double(layer.weight_bytes()) / 1e9,
                                                         benchmark::Counter::kIsRate);
    state.SetLabel(layer.kernel_note().empty() ? "SIMD kernels" : "reference path");
}

void register_all() {
    for (const char* policy : {"fp32", "w8a16", "w4a16", "w8a8", "nf4", "mxfp4", "fp8", "fp8_w8a8",
                                "w=fp6_e2m3:g32 a=int8:token"})
        benchmark::RegisterBenchmark((std::string("layer/") + policy).c_str(), layer_forward, std::string(policy))
            ->Arg(1)
            ->Arg(16)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
