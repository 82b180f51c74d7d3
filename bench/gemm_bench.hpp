// The harness every GEMM benchmark suite shares (ours and the peers in bench_peers.cpp): Y[M x N] = X[M x K] W^T
// with W[N x K], on one list of shapes, with one naming scheme and one set of counters, so that
// bench/report/report.py can put any suite next to any other and next to this machine's measured limits
// (bench_limits.cpp).
//
// Shapes: N = K = 4096, M in {1, 16, 128, 512}, 1 and 2 threads, weights hot (one copy reused) and cold
// (rotating over enough copies that each is evicted before it comes round again: at least 256 MiB and at
// least twice the last-level cache, so they stream from DRAM as in real decoding). TCOMP_BENCH_QUICK=1
// shrinks this to N = K = 512, M in {1, 16} and a 16 MiB cold pool (the CI smoke run); TCOMP_BENCH_COLD_MIB
// overrides the cold pool size.
//
// A suite is a bench/bench_gemm_<name>.cpp:
//
//   #include "gemm_bench.hpp"
//   int main(int argc, char** argv) {
//       tcomp_bench::register_gemm("w8a8", "avx512_vnni",
//           [](const tcomp_bench::weight_source& src) { return my_packed_weights(src.w, src.n, src.k); },
//           [](const tcomp_bench::gemm_call& c, const my_packed_weights& w) { my_gemm(c.x, c.y, c.m, w, c.threads); });
//       return tcomp_bench::gemm_main(argc, argv);
//   }
//
// The weight type W returned by setup needs `std::size_t bytes() const` (the bytes one call streams) and a
// deep copy: its copy constructor, or `W clone() const` when it has one. The copy must be what the kernel reads:
// a copy whose internal pointers (a bound descriptor, a view) still point into the original makes every "cold"
// row hot (the report then shows weight GB/s above the DRAM limit). weight_buffers below is a ready-made W (any
// set of 64-byte aligned byte buffers).
//
// Benchmark names: <suite>/<variant>/M:<m>/threads:<t>/<hot|cold> (Google Benchmark appends /real_time).
// Counters: GOPS (2*M*N*K per second / 1e9, wall time), weight_GBps (weight bytes per second / 1e9), and M, N,
// K, kernel_threads (not "threads": Google Benchmark's JSON already has a "threads" field, its own thread count,
// always 1 here), cold (0/1), weight_bytes, pool_copies. Times are wall-clock (UseRealTime), in milliseconds.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

namespace tcomp_bench {

// ------------------------------------------------------------------------------------------------ configuration

inline constexpr std::size_t mib = std::size_t{1} << 20;

/// The value of environment variable `name` as an integer, or `fallback` when unset or not a number.
inline long env_long(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    return (end != nullptr && *end == '\0') ? r : fallback;
}

/// TCOMP_BENCH_QUICK=1: small shapes for smoke runs.
inline bool quick_mode() { return env_long("TCOMP_BENCH_QUICK", 0) != 0; }

/// The last-level (L3) cache size the OS reports, 0 when unknown.
inline std::size_t last_level_cache_bytes() {
#if defined(_SC_LEVEL3_CACHE_SIZE)
    const long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) return static_cast<std::size_t>(l3);
#endif
    return 0;
}

struct gemm_config {
    bool quick = false;
    int n = 4096;
    int k = 4096;
    std::vector<int> ms{1, 16, 128, 512};
    std::vector<int> threads{1, 2};
    std::size_t cold_pool_bytes = 256 * mib;  ///< the cold pool holds more than this many weight bytes
};

/// The shapes every GEMM suite runs, from the environment (read once).
inline const gemm_config& gemm_settings() {
    static const gemm_config cfg = [] {
        gemm_config c;
        c.quick = quick_mode();
        if (c.quick) {
            c.n = c.k = 512;
            c.ms = {1, 16};
            c.cold_pool_bytes = 16 * mib;
        } else {
            c.cold_pool_bytes = std::max<std::size_t>(256 * mib, 2 * last_level_cache_bytes());
        }
        const long override_mib = env_long("TCOMP_BENCH_COLD_MIB", 0);
        if (override_mib > 0) c.cold_pool_bytes = static_cast<std::size_t>(override_mib) * mib;
        return c;
    }();
    return cfg;
}

// ------------------------------------------------------------------------------------------------ buffers

/// An owning, 64-byte aligned byte buffer whose copies are deep (and touch every page).
class byte_buffer {
public:
    byte_buffer() = default;
    explicit byte_buffer(std::size_t n) : size_(n), data_(allocate(n)) {}
    byte_buffer(const byte_buffer& o) : byte_buffer(o.size_) {
        if (size_ != 0) std::memcpy(data_.get(), o.data_.get(), size_);
    }
    byte_buffer& operator=(const byte_buffer& o) {
        if (this != &o) *this = byte_buffer(o);
        return *this;
    }
    byte_buffer(byte_buffer&& o) noexcept : size_(std::exchange(o.size_, 0)), data_(std::move(o.data_)) {}
    byte_buffer& operator=(byte_buffer&& o) noexcept {
        size_ = std::exchange(o.size_, 0);
        data_ = std::move(o.data_);
        return *this;
    }
    ~byte_buffer() = default;

    std::size_t size() const { return size_; }
    std::byte* data() { return data_.get(); }
    const std::byte* data() const { return data_.get(); }
    template <class T>
    T* as() {
        return reinterpret_cast<T*>(data_.get());
    }
    template <class T>
    const T* as() const {
        return reinterpret_cast<const T*>(data_.get());
    }

private:
    struct aligned_delete {
        void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
    };
    static std::byte* allocate(std::size_t n) {
        return n == 0 ? nullptr : static_cast<std::byte*>(::operator new[](n, std::align_val_t{64}));
    }
    std::size_t size_ = 0;
    std::unique_ptr<std::byte[], aligned_delete> data_;
};

/// A weight copy made of any number of byte buffers (codes, scales, metadata, ...): a ready-made W for
/// register_gemm. Add the parts with add(bytes), then fill part<T>(i).
struct weight_buffers {
    std::vector<byte_buffer> parts;

    std::size_t add(std::size_t bytes) {
        parts.emplace_back(bytes);
        return parts.size() - 1;
    }
    template <class T>
    T* part(std::size_t i) {
        return parts[i].as<T>();
    }
    template <class T>
    const T* part(std::size_t i) const {
        return parts[i].as<T>();
    }
    std::size_t bytes() const {
        std::size_t b = 0;
        for (const auto& p : parts) b += p.size();
        return b;
    }
};

// ------------------------------------------------------------------------------------------------ weight pool

template <class W>
concept weight_copy = requires(const W& w) {
    { w.bytes() } -> std::convertible_to<std::size_t>;
} && (std::is_copy_constructible_v<W> || requires(const W& w) {
    { w.clone() } -> std::convertible_to<W>;
});

/// A deep copy of w: w.clone() when W has it, else W's copy constructor.
template <weight_copy W>
std::unique_ptr<W> clone_weights(const W& w) {
    if constexpr (requires { w.clone(); })
        return std::make_unique<W>(w.clone());
    else
        return std::make_unique<W>(w);
}

/// Copies of one weight set. hot() is always the first copy; make_cold(bytes) adds copies until together they
/// hold more than `bytes`, and next() then hands them out in turn, so each has left the caches by the time it
/// comes round again.
template <weight_copy W>
class weight_pool {
public:
    explicit weight_pool(W first) { copies_.push_back(std::make_unique<W>(std::move(first))); }

    const W& hot() const { return *copies_.front(); }

    void make_cold(std::size_t pool_bytes) {
        const std::size_t one = std::max<std::size_t>(1, bytes_per_copy());
        const std::size_t wanted = std::max<std::size_t>(2, pool_bytes / one + 1);
        copies_.reserve(wanted);
        while (copies_.size() < wanted) copies_.push_back(clone_weights(hot()));
    }

    const W& next() {
        const W& w = *copies_[next_];
        next_ = (next_ + 1) % copies_.size();
        return w;
    }

    std::size_t bytes_per_copy() const { return static_cast<std::size_t>(hot().bytes()); }
    std::size_t copies() const { return copies_.size(); }

private:
    std::vector<std::unique_ptr<W>> copies_;
    std::size_t next_ = 0;
};

// ------------------------------------------------------------------------------------------------ data

/// rows x cols floats, N(0, 1), from mt19937_64(seed); built once per (rows, cols, seed) and kept.
inline const std::vector<float>& gaussian(int rows, int cols, std::uint64_t seed) {
    static std::map<std::tuple<int, int, std::uint64_t>, std::vector<float>> cache;
    auto [it, inserted] = cache.try_emplace({rows, cols, seed});
    if (inserted) {
        it->second.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto& v : it->second) v = normal(rng);
    }
    return it->second;
}

/// What setup builds its weights from: the float weights W[N x K] (row-major, N(0, 1), seed 42: the same
/// matrix in every suite). m is the benchmark's M; only meaningful with gemm_options::weights_per_m.
struct weight_source {
    int m, n, k;
    const float* w;
};

/// One call: Y[M x N] = X[M x K] W^T, row-major; X is N(0, 1) (seed 1), the same in every suite.
struct gemm_call {
    int m, n, k;
    int threads;
    const float* x;
    float* y;
};

struct gemm_options {
    /// Thread counts to register; empty: gemm_settings().threads.
    std::vector<int> threads;
    /// Setup depends on M (e.g. a library choosing its weight layout per shape): the weights are rebuilt for
    /// each M. Otherwise setup runs once per (suite, variant) and src.m is the first M.
    bool weights_per_m = false;
    /// Registers only the (m, threads, cold) for which this returns true; empty: all.
    std::function<bool(int m, int threads, bool cold)> filter;
    /// Non-empty: every benchmark of the variant reports this as its error (e.g. "CPU lacks AVX512-VNNI")
    /// instead of running. Evaluated when the benchmark runs.
    std::function<std::string()> unavailable;
};

namespace detail {

/// One pool alive at a time: benchmarks run in registration order, so a variant's benchmarks reuse its
/// pool and the next variant frees it before building its own.
struct pool_slot {
    std::string key;
    std::shared_ptr<void> pool;
};
inline pool_slot& current_pool() {
    static pool_slot slot;
    return slot;
}

template <class W, class Setup>
weight_pool<W>& pool_for(const std::string& key, Setup& setup, const weight_source& src) {
    pool_slot& slot = current_pool();
    if (slot.key != key || !slot.pool) {
        slot.pool.reset();
        slot.key.clear();
        slot.pool = std::make_shared<weight_pool<W>>(setup(src));
        slot.key = key;
    }
    return *static_cast<weight_pool<W>*>(slot.pool.get());
}

template <class W, class Setup, class Prepare>
void run_gemm(benchmark::State& state, const std::string& key, const std::shared_ptr<Setup>& setup,
              const std::shared_ptr<Prepare>& prepare, const std::function<std::string()>& unavailable, int m,
              int threads, bool cold) {
    const gemm_config& cfg = gemm_settings();
    if (unavailable) {
        const std::string why = unavailable();
        if (!why.empty()) {
            state.SkipWithError(why.c_str());
            return;
        }
    }
    try {
        const weight_source src{m, cfg.n, cfg.k, gaussian(cfg.n, cfg.k, 42).data()};
        weight_pool<W>& pool = pool_for<W>(key, *setup, src);
        if (cold) pool.make_cold(cfg.cold_pool_bytes);
        std::vector<float> y(static_cast<std::size_t>(m) * static_cast<std::size_t>(cfg.n), 0.0f);
        const gemm_call call{m, cfg.n, cfg.k, threads, gaussian(m, cfg.k, 1).data(), y.data()};
        auto runner = (*prepare)(call, pool.hot());
        for (auto _ : state) {
            const W& w = cold ? pool.next() : pool.hot();
            runner(call, w);
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
        const double bytes = static_cast<double>(pool.bytes_per_copy());
        const double ops = 2.0 * m * static_cast<double>(cfg.n) * static_cast<double>(cfg.k);
        state.counters["GOPS"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
        state.counters["weight_GBps"] =
            benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
        state.counters["M"] = m;
        state.counters["N"] = cfg.n;
        state.counters["K"] = cfg.k;
        state.counters["kernel_threads"] = threads;
        state.counters["cold"] = cold ? 1 : 0;
        state.counters["weight_bytes"] = bytes;
        state.counters["pool_copies"] = static_cast<double>(cold ? pool.copies() : 1);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

}  // namespace detail

/// The benchmark name: <suite>/<variant>/M:<m>/threads:<t>/<hot|cold>.
inline std::string gemm_name(const std::string& suite, const std::string& variant, int m, int threads, bool cold) {
    return suite + "/" + variant + "/M:" + std::to_string(m) + "/threads:" + std::to_string(threads) + "/" +
           (cold ? "cold" : "hot");
}

/// Registers suite/variant on every shape. setup(const weight_source&) -> W builds one weight copy (called once
/// per variant, or per M with weights_per_m); prepare(const gemm_call&, const W& first_copy) -> R is called before
/// each timed loop (outside the timing: create primitives, set thread counts, convert activations for a peer
/// that takes them pre-quantized) and returns the callable R that the loop times as r(call, weight_copy).
template <class Setup, class Prepare>
void register_gemm_prepared(const std::string& suite, const std::string& variant, Setup setup, Prepare prepare,
                            gemm_options opt = {}) {
    using W = std::decay_t<std::invoke_result_t<Setup&, const weight_source&>>;
    static_assert(weight_copy<W>, "setup must return a weight type with bytes() and a deep copy (or clone())");
    const gemm_config& cfg = gemm_settings();
    const std::vector<int> threads = opt.threads.empty() ? cfg.threads : opt.threads;
    auto setup_ptr = std::make_shared<Setup>(std::move(setup));
    auto prepare_ptr = std::make_shared<Prepare>(std::move(prepare));

    auto add = [&](int m, int t, bool cold) {
        if (opt.filter && !opt.filter(m, t, cold)) return;
        const std::string key = suite + "/" + variant + (opt.weights_per_m ? "/M:" + std::to_string(m) : "");
        benchmark::RegisterBenchmark(gemm_name(suite, variant, m, t, cold).c_str(),
                                     [=, unavailable = opt.unavailable](benchmark::State& state) {
                                         detail::run_gemm<W>(state, key, setup_ptr, prepare_ptr, unavailable, m,
                                                             t, cold);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    };
    // Registration order is run order: keep the benchmarks that share a weight pool together.
    if (opt.weights_per_m) {
        for (int m : cfg.ms)
            for (bool cold : {false, true})
                for (int t : threads) add(m, t, cold);
    } else {
        for (bool cold : {false, true})
            for (int m : cfg.ms)
                for (int t : threads) add(m, t, cold);
    }
}

/// As register_gemm_prepared, with a run(const gemm_call&, const W&) that needs no preparation.
template <class Setup, class Run>
void register_gemm(const std::string& suite, const std::string& variant, Setup setup, Run run,
                   gemm_options opt = {}) {
    register_gemm_prepared(
        suite, variant, std::move(setup),
        [run = std::move(run)](const gemm_call&, const auto&) { return run; }, std::move(opt));
}

// ------------------------------------------------------------------------------------------------ host, main

/// A /proc/cpuinfo field of the first CPU ("model name", "flags"), empty when unavailable.
inline std::string cpuinfo_field(const std::string& field) {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.compare(0, field.size(), field) != 0) continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = line.substr(0, colon);
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
        if (key != field) continue;
        std::size_t b = colon + 1;
        while (b < line.size() && line[b] == ' ') ++b;
        return line.substr(b);
    }
    return {};
}

/// The SIMD-relevant subset of the CPU's flags.
inline std::string simd_flags() {
    static const char* const wanted[] = {"avx2",        "fma",         "avx_vnni",    "avx512f",
                                         "avx512bw",    "avx512vl",    "avx512dq",    "avx512_vnni",
                                         "avx512_bf16", "avx512_fp16", "avx512_vbmi2", "avx512_vpopcntdq",
                                         "amx_int8",    "amx_bf16"};
    std::istringstream all(cpuinfo_field("flags"));
    std::vector<std::string> have;
    for (std::string f; all >> f;) have.push_back(f);
    std::string out;
    for (const char* w : wanted) {
        if (std::find(have.begin(), have.end(), w) == have.end()) continue;
        if (!out.empty()) out += ' ';
        out += w;
    }
    return out;
}

/// Records the harness settings and the host in the JSON context (for report.py).
inline void add_context() {
    const gemm_config& cfg = gemm_settings();
    benchmark::AddCustomContext("tcomp_quick", cfg.quick ? "1" : "0");
    benchmark::AddCustomContext("tcomp_n", std::to_string(cfg.n));
    benchmark::AddCustomContext("tcomp_k", std::to_string(cfg.k));
    benchmark::AddCustomContext("tcomp_cold_pool_mib", std::to_string(cfg.cold_pool_bytes / mib));
    benchmark::AddCustomContext("tcomp_l3_bytes", std::to_string(last_level_cache_bytes()));
    benchmark::AddCustomContext("tcomp_hardware_threads", std::to_string(std::thread::hardware_concurrency()));
    benchmark::AddCustomContext("tcomp_cpu_model", cpuinfo_field("model name"));
    benchmark::AddCustomContext("tcomp_cpu_flags", simd_flags());
}

/// main() of a suite: registers nothing itself (call register_gemm first), adds the context, runs.
inline int gemm_main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    add_context();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace tcomp_bench
