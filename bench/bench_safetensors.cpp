// safetensors header parsing time against tensor count (issue 16, item 2): safetensors_file::from_bytes on an
// in-memory file of N small F32 tensors (1, 10k, 50k, 100k tensors; TCOMP_BENCH_QUICK=1: 1k and 10k only).
// The header is ~80 bytes per tensor ("model.layers.<i>.weight": dtype, shape, data_offsets), 8 MB at 100k.
// Linear parsing shows as a constant ns_per_tensor counter; the old callback parser was quadratic
// (100,000 tensors: minutes). The file is built once per size, outside the timed loop.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <tcomp/io/safetensors.hpp>

namespace {

bool quick_mode() {
    const char* v = std::getenv("TCOMP_BENCH_QUICK");
    return v != nullptr && std::atol(v) != 0;
}

/// A file of `n` F32 tensors of shape [2], names "model.layers.<i>.weight"; built once per n.
const std::vector<std::byte>& file_of(std::int64_t n) {
    static std::map<std::int64_t, std::vector<std::byte>> cache;
    auto it = cache.find(n);
    if (it == cache.end()) {
        tcomp::io::safetensors_writer w;
        const std::vector<float> data{1.0f, 2.0f};
        for (std::int64_t i = 0; i < n; ++i) w.add_f32("model.layers." + std::to_string(i) + ".weight", {2}, data);
        w.set_metadata("format", "pt");
        it = cache.emplace(n, w.to_bytes()).first;
    }
    return it->second;
}

void BM_parse_header(benchmark::State& state) {
    const std::int64_t n = state.range(0);
    const auto& bytes = file_of(n);
    std::uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | std::to_integer<std::uint64_t>(bytes[static_cast<std::size_t>(i)]);
    for (auto _ : state) {
        auto f = tcomp::io::safetensors_file::from_bytes(bytes, "bench.safetensors");
        if (f.tensors().size() != static_cast<std::size_t>(n)) {
            state.SkipWithError("wrong tensor count");
            break;
        }
        benchmark::DoNotOptimize(f.tensors().data());
    }
    state.counters["tensors"] = static_cast<double>(n);
    state.counters["header_MB"] = static_cast<double>(header) / 1e6;
    // Seconds per iteration / n, in ns: flat across n when parsing is linear.
    state.counters["ns_per_tensor"] = benchmark::Counter(
        1e-9 * static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void sizes(benchmark::internal::Benchmark* b) {
    b->Arg(1'000)->Arg(10'000);
    if (!quick_mode()) b->Arg(50'000)->Arg(100'000);
}

}  // namespace

BENCHMARK(BM_parse_header)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
