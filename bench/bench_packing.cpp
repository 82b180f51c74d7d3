// Bit packing (core/bit_packing.hpp), the layout every code, scale and index stream shares:
//   BM_pack_codes/bits:B     pack_codes(codes, B, out)    2^22 codes, width B as a run-time argument
//   BM_unpack_codes/bits:B   unpack_codes(in, B, codes)   the same, back
//   BM_read_packed<B>        a loop of read_packed(stream, i, B) with B a compile-time constant (what a kernel
//                            that knows its format's width gets), summing the codes
// for B = 1..8 and 16. Throughput is GB/s of packed bytes (packed_bytes(2^22, B) per iteration), plus
// items_per_second (codes). The codes are seeded uniform random values below 2^B.
//
// These are speeds of the scalar reference code (the oracle, written for clarity), the only code these
// operations have: the SIMD CPU kernels (kernel/cpu/) cover matmul, and the bench_gemm_* suites measure them.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "tcomp/tcomp.hpp"

namespace {

constexpr std::size_t code_count = std::size_t{1} << 22;  // >= ~1 ms per iteration at every width

std::vector<std::uint32_t> random_codes(int bits) {
    std::vector<std::uint32_t> codes(code_count);
    std::mt19937_64 rng(42 + static_cast<unsigned>(bits));
    const std::uint32_t mask = bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1u;
    for (auto& c : codes) c = static_cast<std::uint32_t>(rng()) & mask;
    return codes;
}

std::vector<std::uint8_t> packed(const std::vector<std::uint32_t>& codes, int bits) {
    std::vector<std::uint8_t> out(tcomp::packed_bytes(static_cast<tcomp::index_t>(codes.size()), bits));
    tcomp::pack_codes(codes, bits, out);
    return out;
}

void set_throughput(benchmark::State& state, int bits) {
    const auto bytes = tcomp::packed_bytes(static_cast<tcomp::index_t>(code_count), bits);
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(code_count));
}

void BM_pack_codes(benchmark::State& state) {
    const int bits = static_cast<int>(state.range(0));
    const auto codes = random_codes(bits);
    std::vector<std::uint8_t> out(tcomp::packed_bytes(static_cast<tcomp::index_t>(codes.size()), bits));
    for (auto _ : state) {
        tcomp::pack_codes(codes, bits, out);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_throughput(state, bits);
}

void BM_unpack_codes(benchmark::State& state) {
    const int bits = static_cast<int>(state.range(0));
    const auto stream = packed(random_codes(bits), bits);
    std::vector<std::uint32_t> codes(code_count);
    for (auto _ : state) {
        tcomp::unpack_codes(stream, bits, codes);
        benchmark::DoNotOptimize(codes.data());
        benchmark::ClobberMemory();
    }
    set_throughput(state, bits);
}

template <int Bits>
void BM_read_packed(benchmark::State& state) {
    const auto stream = packed(random_codes(Bits), Bits);
    const auto n = static_cast<tcomp::index_t>(code_count);
    for (auto _ : state) {
        std::uint64_t sum = 0;
        for (tcomp::index_t i = 0; i < n; ++i) sum += tcomp::read_packed(stream.data(), i, Bits);
        benchmark::DoNotOptimize(sum);
        benchmark::ClobberMemory();
    }
    set_throughput(state, Bits);
}

}  // namespace

BENCHMARK(BM_pack_codes)->ArgName("bits")->DenseRange(1, 8)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_unpack_codes)->ArgName("bits")->DenseRange(1, 8)->Arg(16)->Unit(benchmark::kMicrosecond);

BENCHMARK_TEMPLATE(BM_read_packed, 1)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 3)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 4)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 5)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 6)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 7)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 8)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_read_packed, 16)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
