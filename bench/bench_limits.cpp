// This machine's limits, measured by the benchmark itself so that every GEMM row can be read as a fraction of
// what the host can do (hosts differ: never assume one):
//
//   limits/int8_dot_zmm_vnni      vpdpbusd zmm (AVX512-VNNI): 64 u8 x s8 MACs = 128 ops per instruction
//   limits/int8_dot_ymm_avxvnni   vpdpbusd ymm (AVX-VNNI, VEX): 64 ops per instruction
//   limits/int8_pair_zmm_avx512bw vpmaddubsw + vpmaddwd + vpaddd zmm: the int8 dot without VNNI, 128 ops per triple
//   limits/int8_pair_ymm_avx2     the same on ymm (AVX2), 64 ops per triple
//   limits/fp32_fma_zmm           vfmadd zmm (AVX-512F): 32 ops per instruction
//   limits/fp32_fma_ymm           vfmadd ymm (FMA): 16 ops per instruction
//   limits/bf16_dot_zmm           vdpbf16ps zmm (AVX512-BF16): 64 ops per instruction
//   limits/dram_read              streaming read of a buffer of max(1 GiB, 2 x L3) (64 MiB with TCOMP_BENCH_QUICK=1),
//                                 each thread summing its share (as 8 interleaved streams) with the widest loads
//                                 the CPU has
//
// each with /threads:1 and /threads:2 (the same loop on that many std::threads). Counters: GOPS (ops counted
// as 2 per multiply-accumulate) or GBps. The binary is built with default flags and runs on any x86-64: the
// loops are __attribute__((target(...))) functions of intrinsics, chosen with __builtin_cpu_supports, and
// what the CPU lacks is reported as a skipped benchmark naming the missing extension.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gemm_bench.hpp"

namespace {

using tcomp_bench::mib;

// Iterations of each peak loop per thread and benchmark iteration: about 5-25 ms at full rate.
std::int64_t peak_reps() { return tcomp_bench::quick_mode() ? (std::int64_t{1} << 16) : (std::int64_t{1} << 22); }

/// Runs fn(thread_index) on `threads` threads (the caller is thread 0) and waits for all.
template <class F>
void on_threads(int threads, F&& fn) {
    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(threads - 1));
    for (int i = 1; i < threads; ++i) workers.emplace_back(fn, i);
    fn(0);
    for (auto& w : workers) w.join();
}

#define TCOMP_REP16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define TCOMP_REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define TCOMP_REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define TCOMP_REP4(X) X(0) X(1) X(2) X(3)

// ---------------------------------------------------------------------------------------------- peak loops
// Each returns a value depending on every accumulator, so nothing is dead; the accumulators start at
// different values, so the compiler cannot merge identical chains. Independent accumulators hide the
// instruction latency (16 zmm chains cover latency 5 at 2 per cycle with room to spare).

constexpr double ops_dot_zmm_vnni = 16 * 128.0;  // per rep: 16 vpdpbusd zmm

__attribute__((target("avx512f,avx512bw,avx512vnni"))) std::int64_t loop_dot_zmm_vnni(std::int64_t reps) {
    __m512i a = _mm512_set1_epi8(3);
    __m512i b = _mm512_set1_epi8(-2);
    __asm__("" : "+v"(a), "+v"(b));
#define DECL(i) __m512i c##i = _mm512_set1_epi32(i);
    TCOMP_REP16(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
#define STEP(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
        TCOMP_REP16(STEP)
#undef STEP
    }
    __m512i s = _mm512_setzero_si512();
#define SUM(i) s = _mm512_add_epi32(s, c##i);
    TCOMP_REP16(SUM)
#undef SUM
    alignas(64) std::int32_t lanes[16];
    _mm512_store_si512(lanes, s);
    std::int64_t t = 0;
    for (std::int32_t v : lanes) t += v;
    return t;
}

constexpr double ops_dot_ymm_avxvnni = 12 * 64.0;  // per rep: 12 vpdpbusd ymm

__attribute__((target("avx2,avxvnni"))) std::int64_t loop_dot_ymm_avxvnni(std::int64_t reps) {
    __m256i a = _mm256_set1_epi8(3);
    __m256i b = _mm256_set1_epi8(-2);
    __asm__("" : "+x"(a), "+x"(b));
#define DECL(i) __m256i c##i = _mm256_set1_epi32(i);
    TCOMP_REP12(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
#define STEP(i) c##i = _mm256_dpbusd_avx_epi32(c##i, a, b);
        TCOMP_REP12(STEP)
#undef STEP
    }
    __m256i s = _mm256_setzero_si256();
#define SUM(i) s = _mm256_add_epi32(s, c##i);
    TCOMP_REP12(SUM)
#undef SUM
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    std::int64_t t = 0;
    for (std::int32_t v : lanes) t += v;
    return t;
}

// The pair: t = maddubs(a_i, b) (u8 x s8 -> pairs summed in s16), t = madd(t, 1) (-> s32), acc += t. b goes
// through an empty asm each rep so the products cannot be hoisted out of the loop; the a_i differ so the
// chains cannot share them.
constexpr double ops_pair_zmm = 8 * 128.0;  // per rep: 8 triples on zmm (64 MACs each)

__attribute__((target("avx512f,avx512bw"))) std::int64_t loop_pair_zmm(std::int64_t reps) {
    __m512i b = _mm512_set1_epi8(-2);
    const __m512i ones = _mm512_set1_epi16(1);
#define DECL(i)                                                   \
    __m512i a##i = _mm512_set1_epi8(static_cast<char>(1 + (i))); \
    __m512i c##i = _mm512_set1_epi32(i);
    TCOMP_REP8(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
        __asm__ volatile("" : "+v"(b));
#define STEP(i) c##i = _mm512_add_epi32(c##i, _mm512_madd_epi16(_mm512_maddubs_epi16(a##i, b), ones));
        TCOMP_REP8(STEP)
#undef STEP
    }
    __m512i s = _mm512_setzero_si512();
#define SUM(i) s = _mm512_add_epi32(s, c##i);
    TCOMP_REP8(SUM)
#undef SUM
    alignas(64) std::int32_t lanes[16];
    _mm512_store_si512(lanes, s);
    std::int64_t t = 0;
    for (std::int32_t v : lanes) t += v;
    return t;
}

constexpr double ops_pair_ymm = 4 * 64.0;  // per rep: 4 triples on ymm (32 MACs each)

__attribute__((target("avx2"))) std::int64_t loop_pair_ymm(std::int64_t reps) {
    __m256i b = _mm256_set1_epi8(-2);
    const __m256i ones = _mm256_set1_epi16(1);
#define DECL(i)                                                   \
    __m256i a##i = _mm256_set1_epi8(static_cast<char>(1 + (i))); \
    __m256i c##i = _mm256_set1_epi32(i);
    TCOMP_REP4(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
        __asm__ volatile("" : "+x"(b));
#define STEP(i) c##i = _mm256_add_epi32(c##i, _mm256_madd_epi16(_mm256_maddubs_epi16(a##i, b), ones));
        TCOMP_REP4(STEP)
#undef STEP
    }
    __m256i s = _mm256_setzero_si256();
#define SUM(i) s = _mm256_add_epi32(s, c##i);
    TCOMP_REP4(SUM)
#undef SUM
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    std::int64_t t = 0;
    for (std::int32_t v : lanes) t += v;
    return t;
}

// c = c * 0.5 + 0.5 converges to 1: no overflow, no denormals.
constexpr double ops_fma_zmm = 16 * 32.0;  // per rep: 16 vfmadd zmm

__attribute__((target("avx512f"))) std::int64_t loop_fma_zmm(std::int64_t reps) {
    __m512 a = _mm512_set1_ps(0.5f);
    __m512 b = _mm512_set1_ps(0.5f);
    __asm__("" : "+v"(a), "+v"(b));
#define DECL(i) __m512 c##i = _mm512_set1_ps(static_cast<float>(i));
    TCOMP_REP16(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
        TCOMP_REP16(STEP)
#undef STEP
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
    TCOMP_REP16(SUM)
#undef SUM
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    float t = 0.0f;
    for (float v : lanes) t += v;
    return static_cast<std::int64_t>(t);
}

constexpr double ops_fma_ymm = 12 * 16.0;  // per rep: 12 vfmadd ymm

__attribute__((target("avx2,fma"))) std::int64_t loop_fma_ymm(std::int64_t reps) {
    __m256 a = _mm256_set1_ps(0.5f);
    __m256 b = _mm256_set1_ps(0.5f);
    __asm__("" : "+x"(a), "+x"(b));
#define DECL(i) __m256 c##i = _mm256_set1_ps(static_cast<float>(i));
    TCOMP_REP12(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
        TCOMP_REP12(STEP)
#undef STEP
    }
    __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, c##i);
    TCOMP_REP12(SUM)
#undef SUM
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    float t = 0.0f;
    for (float v : lanes) t += v;
    return static_cast<std::int64_t>(t);
}

// bf16 pairs of 0.5: c = c + 2 * 0.25 grows by 0.5 a step, exactly representable far beyond any rep count.
constexpr double ops_bf16_zmm = 16 * 64.0;  // per rep: 16 vdpbf16ps zmm (32 MACs each)

__attribute__((target("avx512f,avx512bw,avx512bf16"))) std::int64_t loop_bf16_zmm(std::int64_t reps) {
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
    __m512bh b = a;
    __asm__("" : "+v"(a), "+v"(b));
#define DECL(i) __m512 c##i = _mm512_set1_ps(static_cast<float>(i));
    TCOMP_REP16(DECL)
#undef DECL
    for (std::int64_t r = 0; r < reps; ++r) {
#define STEP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
        TCOMP_REP16(STEP)
#undef STEP
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
    TCOMP_REP16(SUM)
#undef SUM
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    float t = 0.0f;
    for (float v : lanes) t += v;
    return static_cast<std::int64_t>(t);
}

#undef TCOMP_REP16
#undef TCOMP_REP12
#undef TCOMP_REP8
#undef TCOMP_REP4

// ---------------------------------------------------------------------------------------------- peak benchmarks

struct peak_loop {
    const char* name;                       // limits/<name>/threads:<t>
    const char* missing;                    // the skip message when the CPU lacks it
    bool (*supported)();                    // run-time check
    std::int64_t (*loop)(std::int64_t);     // the kernel
    double ops_per_rep;                     // per thread
    const char* instruction;                // label
};

bool has_avx512_vnni() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
bool has_avxvnni() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni"); }
bool has_avx512bw() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }
bool has_avx2() { return __builtin_cpu_supports("avx2"); }
bool has_avx512f() { return __builtin_cpu_supports("avx512f"); }
bool has_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512bf16() { return has_avx512bw() && __builtin_cpu_supports("avx512bf16"); }

const peak_loop peak_loops[] = {
    {"int8_dot_zmm_vnni", "CPU lacks AVX512-VNNI (avx512vnni): no vpdpbusd zmm peak", has_avx512_vnni,
     loop_dot_zmm_vnni, ops_dot_zmm_vnni, "vpdpbusd zmm"},
    {"int8_dot_ymm_avxvnni", "CPU lacks AVX-VNNI (avxvnni): no VEX vpdpbusd ymm peak", has_avxvnni,
     loop_dot_ymm_avxvnni, ops_dot_ymm_avxvnni, "vpdpbusd ymm (VEX)"},
    {"int8_pair_zmm_avx512bw", "CPU lacks AVX512-BW: no vpmaddubsw+vpmaddwd zmm peak", has_avx512bw, loop_pair_zmm,
     ops_pair_zmm, "vpmaddubsw+vpmaddwd+vpaddd zmm"},
    {"int8_pair_ymm_avx2", "CPU lacks AVX2: no vpmaddubsw+vpmaddwd ymm peak", has_avx2, loop_pair_ymm, ops_pair_ymm,
     "vpmaddubsw+vpmaddwd+vpaddd ymm"},
    {"fp32_fma_zmm", "CPU lacks AVX-512F: no vfmadd zmm peak", has_avx512f, loop_fma_zmm, ops_fma_zmm,
     "vfmadd231ps zmm"},
    {"fp32_fma_ymm", "CPU lacks AVX2+FMA: no vfmadd ymm peak", has_fma, loop_fma_ymm, ops_fma_ymm, "vfmadd231ps ymm"},
    {"bf16_dot_zmm", "CPU lacks AVX512-BF16 (avx512bf16): no vdpbf16ps zmm peak", has_avx512bf16, loop_bf16_zmm,
     ops_bf16_zmm, "vdpbf16ps zmm"},
};

void bm_peak(benchmark::State& state, const peak_loop& p, int threads) {
    if (!p.supported()) {
        state.SkipWithError(p.missing);
        return;
    }
    const std::int64_t reps = peak_reps();
    std::vector<std::int64_t> sink(static_cast<std::size_t>(threads));
    for (auto _ : state) {
        on_threads(threads, [&](int i) { sink[static_cast<std::size_t>(i)] = p.loop(reps); });
        benchmark::DoNotOptimize(sink.data());
        benchmark::ClobberMemory();
    }
    const double ops = p.ops_per_rep * static_cast<double>(reps) * threads;
    state.counters["GOPS"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["kernel_threads"] = threads;
    state.SetLabel(p.instruction);
}

// ---------------------------------------------------------------------------------------------- DRAM read

std::size_t dram_buffer_bytes() {
    const long override_mib = tcomp_bench::env_long("TCOMP_BENCH_DRAM_MIB", 0);
    if (override_mib > 0) return static_cast<std::size_t>(override_mib) * mib;
    if (tcomp_bench::quick_mode()) return 64 * mib;
    return std::max<std::size_t>(1024 * mib, 2 * tcomp_bench::last_level_cache_bytes());
}

// Each thread reads its share as dram_streams interleaved sequential streams, 256 bytes from each in turn: a
// GEMV reads many weight rows at once, and one core gets about a fifth more bandwidth from several streams than
// from one (more hardware-prefetch streams, more misses in flight).
constexpr std::size_t dram_streams = 8;
constexpr std::size_t dram_step = 256;  // bytes per stream per turn

__attribute__((target("avx512f"))) std::uint64_t sum_avx512(const std::byte* p, std::size_t stream_bytes) {
    __m512i acc[dram_streams];
    for (auto& a : acc) a = _mm512_setzero_si512();
    for (std::size_t i = 0; i < stream_bytes; i += dram_step)
        for (std::size_t s = 0; s < dram_streams; ++s) {
            const std::byte* q = p + s * stream_bytes + i;
            const __m512i a = _mm512_add_epi64(_mm512_load_si512(q), _mm512_load_si512(q + 64));
            const __m512i b = _mm512_add_epi64(_mm512_load_si512(q + 128), _mm512_load_si512(q + 192));
            acc[s] = _mm512_add_epi64(acc[s], _mm512_add_epi64(a, b));
        }
    std::uint64_t t = 0;
    for (const auto& a : acc) {
        alignas(64) std::uint64_t lanes[8];
        _mm512_store_si512(lanes, a);
        for (std::uint64_t v : lanes) t += v;
    }
    return t;
}

__attribute__((target("avx2"))) std::uint64_t sum_avx2(const std::byte* p, std::size_t stream_bytes) {
    __m256i acc[dram_streams];
    for (auto& a : acc) a = _mm256_setzero_si256();
    for (std::size_t i = 0; i < stream_bytes; i += dram_step)
        for (std::size_t s = 0; s < dram_streams; ++s) {
            const auto* q = reinterpret_cast<const __m256i*>(p + s * stream_bytes + i);
            const __m256i a = _mm256_add_epi64(_mm256_add_epi64(_mm256_load_si256(q), _mm256_load_si256(q + 1)),
                                               _mm256_add_epi64(_mm256_load_si256(q + 2), _mm256_load_si256(q + 3)));
            const __m256i b = _mm256_add_epi64(_mm256_add_epi64(_mm256_load_si256(q + 4), _mm256_load_si256(q + 5)),
                                               _mm256_add_epi64(_mm256_load_si256(q + 6), _mm256_load_si256(q + 7)));
            acc[s] = _mm256_add_epi64(acc[s], _mm256_add_epi64(a, b));
        }
    std::uint64_t t = 0;
    for (const auto& a : acc) {
        alignas(32) std::uint64_t lanes[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
        for (std::uint64_t v : lanes) t += v;
    }
    return t;
}

std::uint64_t sum_scalar(const std::byte* p, std::size_t stream_bytes) {
    std::uint64_t acc[dram_streams] = {};
    for (std::size_t i = 0; i < stream_bytes; i += 64)  // one 8-byte load per cache line still moves the line
        for (std::size_t s = 0; s < dram_streams; ++s) {
            std::uint64_t v;
            std::memcpy(&v, p + s * stream_bytes + i, 8);
            acc[s] += v;
        }
    std::uint64_t t = 0;
    for (std::uint64_t v : acc) t += v;
    return t;
}

void bm_dram_read(benchmark::State& state, int threads) {
    static tcomp_bench::byte_buffer buffer = [] {
        tcomp_bench::byte_buffer b(dram_buffer_bytes());
        std::memset(b.data(), 1, b.size());  // touch every page
        return b;
    }();
    const bool avx512 = has_avx512f(), avx2 = has_avx2();
    // Each thread's share: dram_streams streams of a multiple of dram_step bytes.
    const std::size_t stream_bytes =
        buffer.size() / static_cast<std::size_t>(threads) / dram_streams / dram_step * dram_step;
    const std::size_t share = stream_bytes * dram_streams;
    std::vector<std::uint64_t> sink(static_cast<std::size_t>(threads));
    for (auto _ : state) {
        on_threads(threads, [&](int i) {
            const std::byte* p = buffer.data() + share * static_cast<std::size_t>(i);
            sink[static_cast<std::size_t>(i)] =
                avx512 ? sum_avx512(p, stream_bytes) : avx2 ? sum_avx2(p, stream_bytes) : sum_scalar(p, stream_bytes);
        });
        benchmark::DoNotOptimize(sink.data());
        benchmark::ClobberMemory();
    }
    const double bytes = static_cast<double>(share) * threads;
    state.counters["GBps"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["kernel_threads"] = threads;
    state.counters["buffer_MiB"] = static_cast<double>(buffer.size() / mib);
    state.SetLabel(avx512 ? "zmm loads, 8 streams per thread" : avx2 ? "ymm loads, 8 streams per thread"
                          : "scalar loads, 8 streams per thread");
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<int>& threads = tcomp_bench::gemm_settings().threads;
    for (const peak_loop& p : peak_loops)
        for (int t : threads)
            benchmark::RegisterBenchmark(("limits/" + std::string(p.name) + "/threads:" + std::to_string(t)).c_str(),
                                         [&p, t](benchmark::State& s) { bm_peak(s, p, t); })
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
    for (int t : threads)
        benchmark::RegisterBenchmark(("limits/dram_read/threads:" + std::to_string(t)).c_str(),
                                     [t](benchmark::State& s) { bm_dram_read(s, t); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    return tcomp_bench::gemm_main(argc, argv);
}
