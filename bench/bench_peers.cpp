// Peers on the shapes of every tcomp GEMM suite (gemm_bench.hpp), measured in the same run as the suites and
// bench_limits, so that the report compares like with like on whatever host it runs on.
//
//   peer/eigen_f32          Eigen 3.4, Y = X * W^T on row-major Maps. Eigen parallelizes its GEMM with OpenMP
//                           (Eigen::setNbThreads) but its GEMV (M = 1) is single-threaded: M = 1 is registered
//                           with threads:1 only, so no row claims a second thread it did not use.
//   peer/onednn_u8s8_f32    oneDNN matmul, u8 activations x s8 weights -> f32, static per-channel (per-N) output
//                           scales fixed at primitive creation (attr output scales, mask 1 << 1).
//   peer/onednn_bf16_f32    oneDNN matmul, bf16 x bf16 -> f32.
//   peer/onednn_f32         oneDNN matmul, f32.
//
// oneDNN: the weights are reordered once, outside the timed loop, into the layout the primitive asks for
// (format_tag::any; per M, since the layout may depend on the shape), as a deployment would; cold rotates over
// reordered copies. Activations are handed over already in the primitive's type (u8: round(32 x) + 128, clamped;
// bf16: converted), so the peer's time excludes the activation quantization that tcomp's dynamic-activation
// kernels include: a conservative comparison. Debian's libdnnl runs on OpenMP: each benchmark sets
// omp_set_num_threads(threads) before creating its primitive (oneDNN sizes its work split at creation).
// With ONEDNN_MAX_CPU_ISA set (e.g. AVX512_CORE_BF16 to keep oneDNN off AMX) the oneDNN variants are named
// onednn_<type>_max-<isa>, so a capped run and an uncapped one can share a report.
//
// Eigen picks its SIMD instructions at compile time, so bench/CMakeLists.txt builds this file with -march=native
// (option TCOMP_BENCH_PEERS_NATIVE, on by default): the Eigen peer uses the build host's widest vectors (AVX-512
// here; the default x86-64 flags would leave it on SSE2 at a quarter of the FMA peak). The context records which
// (eigen_simd). The binary is meant to run where it was built, as scripts/test.sh and bench/run_cpu_suite.sh do.

// GCC 12 reports a false -Wuninitialized (-O2) / -Wmaybe-uninitialized (-O3) inside its own avx512fintrin.h
// (_mm512_undefined_* in inlined Eigen packet code, GCC PR 105593, fixed in GCC 13) even though it is a system
// header; nothing else is relaxed.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef TCOMP_BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include "gemm_bench.hpp"

namespace {

using tcomp_bench::gemm_call;
using tcomp_bench::weight_source;

void set_omp_threads([[maybe_unused]] int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
}

// ---------------------------------------------------------------------------------------------- Eigen

void register_eigen() {
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    tcomp_bench::gemm_options opt;
    opt.filter = [](int m, int threads, bool) { return m > 1 || threads == 1; };
#ifndef _OPENMP
    opt.threads = {1};  // no OpenMP: Eigen is single-threaded
#endif
    tcomp_bench::register_gemm_prepared(
        "peer", "eigen_f32",
        [](const weight_source& src) {
            tcomp_bench::weight_buffers w;
            const std::size_t count = static_cast<std::size_t>(src.n) * static_cast<std::size_t>(src.k);
            w.add(count * sizeof(float));
            std::copy(src.w, src.w + count, w.part<float>(0));
            return w;
        },
        [](const gemm_call& c, const tcomp_bench::weight_buffers&) {
            Eigen::setNbThreads(c.threads);
            return [](const gemm_call& call, const tcomp_bench::weight_buffers& w) {
                Eigen::Map<const row_major> x(call.x, call.m, call.k);
                Eigen::Map<const row_major> wt(w.part<float>(0), call.n, call.k);
                Eigen::Map<row_major> y(call.y, call.m, call.n);
                y.noalias() = x * wt.transpose();
            };
        },
        opt);
}

// ---------------------------------------------------------------------------------------------- oneDNN

#ifdef TCOMP_BENCH_HAVE_DNNL

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}
dnnl::stream& stream() {
    static dnnl::stream s(engine());
    return s;
}

enum class onednn_kind { u8s8_f32, bf16_f32, f32 };

dt src_type(onednn_kind kind) {
    return kind == onednn_kind::u8s8_f32 ? dt::u8 : kind == onednn_kind::bf16_f32 ? dt::bf16 : dt::f32;
}
dt weight_type(onednn_kind kind) {
    return kind == onednn_kind::u8s8_f32 ? dt::s8 : kind == onednn_kind::bf16_f32 ? dt::bf16 : dt::f32;
}

/// One reordered weight copy: its buffer, the layout oneDNN chose, and a memory object over the buffer.
struct onednn_weights {
    tcomp_bench::byte_buffer buffer;
    dnnl::memory::desc desc;
    dnnl::memory memory;
    std::shared_ptr<const std::vector<float>> scales;  // per N, u8s8 only

    onednn_weights() = default;
    onednn_weights(onednn_weights&&) = default;
    onednn_weights& operator=(onednn_weights&&) = default;
    onednn_weights(const onednn_weights&) = delete;
    onednn_weights& operator=(const onednn_weights&) = delete;
    ~onednn_weights() = default;

    std::size_t bytes() const { return buffer.size(); }
    onednn_weights clone() const {
        onednn_weights c;
        c.buffer = buffer;  // deep copy
        c.desc = desc;
        c.memory = dnnl::memory(desc, engine(), c.buffer.data());
        c.scales = scales;
        return c;
    }
};

dnnl::matmul::primitive_desc make_pd(onednn_kind kind, int m, int n, int k, const std::vector<float>* scales) {
    const dnnl::memory::desc src({m, k}, src_type(kind), tag::ab);
    const dnnl::memory::desc wei({k, n}, weight_type(kind), tag::any);
    const dnnl::memory::desc dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    if (kind == onednn_kind::u8s8_f32) attr.set_output_scales(1 << 1, *scales);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, engine());
}

onednn_weights onednn_setup(onednn_kind kind, const weight_source& src, int threads) {
    const std::size_t n = static_cast<std::size_t>(src.n), k = static_cast<std::size_t>(src.k);
    onednn_weights w;
    std::vector<std::int8_t> codes;
    if (kind == onednn_kind::u8s8_f32) {  // symmetric int8 per output channel
        auto scales = std::make_shared<std::vector<float>>(n);
        codes.resize(n * k);
        for (std::size_t r = 0; r < n; ++r) {
            const float* row = src.w + r * k;
            float amax = 0.0f;
            for (std::size_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(row[c]));
            const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
            (*scales)[r] = s;
            for (std::size_t c = 0; c < k; ++c)
                codes[r * k + c] = static_cast<std::int8_t>(std::clamp(std::nearbyint(row[c] / s), -127.0f, 127.0f));
        }
        w.scales = std::move(scales);
    }
    set_omp_threads(threads);
    const auto pd = make_pd(kind, src.m, src.n, src.k, w.scales.get());
    w.desc = pd.weights_desc();
    w.buffer = tcomp_bench::byte_buffer(w.desc.get_size());
    w.memory = dnnl::memory(w.desc, engine(), w.buffer.data());
    // The user's weights: W[N x K] row-major is the K x N matrix in format "ba".
    void* user_data = kind == onednn_kind::u8s8_f32 ? static_cast<void*>(codes.data())
                                                    : static_cast<void*>(const_cast<float*>(src.w));
    const dt user_type = kind == onednn_kind::u8s8_f32 ? dt::s8 : dt::f32;
    dnnl::memory user({{src.k, src.n}, user_type, tag::ba}, engine(), user_data);
    dnnl::reorder(user, w.memory).execute(stream(), user, w.memory);
    stream().wait();
    return w;
}

/// The timed call's state: the primitive and the activation / output memory objects.
struct onednn_runner {
    dnnl::matmul prim;
    dnnl::memory src, dst;
    std::shared_ptr<tcomp_bench::byte_buffer> src_buffer;  // converted activations (u8, bf16)

    void operator()(const gemm_call&, const onednn_weights& w) const {
        prim.execute(stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w.memory}, {DNNL_ARG_DST, dst}});
        stream().wait();
    }
};

onednn_runner onednn_prepare(onednn_kind kind, const gemm_call& c, const onednn_weights& w) {
    set_omp_threads(c.threads);
    const auto pd = make_pd(kind, c.m, c.n, c.k, w.scales.get());
    if (pd.weights_desc() != w.desc)
        throw std::runtime_error("oneDNN chose another weight layout with threads:" + std::to_string(c.threads) +
                                 " than when the weights were reordered");
    onednn_runner r{dnnl::matmul(pd), {}, {}, {}};
    const std::size_t mk = static_cast<std::size_t>(c.m) * static_cast<std::size_t>(c.k);
    dnnl::memory user_x({{c.m, c.k}, dt::f32, tag::ab}, engine(), const_cast<float*>(c.x));
    if (kind == onednn_kind::f32) {
        r.src = user_x;
    } else {
        r.src_buffer = std::make_shared<tcomp_bench::byte_buffer>(pd.src_desc().get_size());
        r.src = dnnl::memory(pd.src_desc(), engine(), r.src_buffer->data());
        if (kind == onednn_kind::u8s8_f32) {
            auto* u8 = r.src_buffer->as<std::uint8_t>();
            for (std::size_t i = 0; i < mk; ++i)
                u8[i] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(c.x[i] * 32.0f) + 128.0f, 0.0f, 255.0f));
        } else {
            dnnl::reorder(user_x, r.src).execute(stream(), user_x, r.src);
            stream().wait();
        }
    }
    r.dst = dnnl::memory(pd.dst_desc(), engine(), c.y);
    return r;
}

/// "_max-<isa>" when ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) caps oneDNN's instruction set, else "".
std::string isa_cap_suffix() {
    const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    if (cap == nullptr || *cap == '\0') cap = std::getenv("DNNL_MAX_CPU_ISA");
    if (cap == nullptr || *cap == '\0') return {};
    std::string s = "_max-";
    for (const char* p = cap; *p != '\0'; ++p) s += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
    return s;
}

const char* isa_name(dnnl::cpu_isa isa) {
    switch (isa) {
        case dnnl::cpu_isa::sse41: return "sse41";
        case dnnl::cpu_isa::avx: return "avx";
        case dnnl::cpu_isa::avx2: return "avx2";
        case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
        case dnnl::cpu_isa::avx512_core: return "avx512_core";
        case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
        case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
        case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
        default: return "other";
    }
}

void register_onednn() {
    const int max_threads = *std::max_element(tcomp_bench::gemm_settings().threads.begin(),
                                              tcomp_bench::gemm_settings().threads.end());
    const std::string suffix = isa_cap_suffix();
    const struct {
        onednn_kind kind;
        const char* name;
    } kinds[] = {{onednn_kind::u8s8_f32, "onednn_u8s8_f32"},
                 {onednn_kind::bf16_f32, "onednn_bf16_f32"},
                 {onednn_kind::f32, "onednn_f32"}};
    tcomp_bench::gemm_options opt;
    opt.weights_per_m = true;
    for (const auto& k : kinds) {
        const onednn_kind kind = k.kind;
        tcomp_bench::register_gemm_prepared(
            "peer", k.name + suffix,
            [kind, max_threads](const weight_source& src) { return onednn_setup(kind, src, max_threads); },
            [kind](const gemm_call& c, const onednn_weights& w) { return onednn_prepare(kind, c, w); }, opt);
    }
    const dnnl_version_t* v = dnnl_version();
    benchmark::AddCustomContext("onednn_version", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                                      std::to_string(v->patch));
    benchmark::AddCustomContext("onednn_isa", isa_name(dnnl::get_effective_cpu_isa()));
}

#endif  // TCOMP_BENCH_HAVE_DNNL

}  // namespace

int main(int argc, char** argv) {
    register_eigen();
#ifdef TCOMP_BENCH_HAVE_DNNL
    register_onednn();
#endif
    benchmark::AddCustomContext("eigen_version", std::to_string(EIGEN_WORLD_VERSION) + "." +
                                                     std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                                     std::to_string(EIGEN_MINOR_VERSION));
    benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
    return tcomp_bench::gemm_main(argc, argv);
}
