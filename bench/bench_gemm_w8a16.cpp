// W8A16 GEMM/GEMV suite: the weight-only kernels (weight_only_kernel.hpp) on the active ISA path, weights
// compressed under presets::w8a16 (int8, one scale per output channel) and pre-packed once; activations fp32
// (variant <path>) or bf16 (variant <path>_bf16: the harness's X rounded to bf16 outside the timing). Threads
// split the weight panels evenly (thread_pool; the front door's weight-only dispatch would do the same).
// Weight bytes are the packed bytes a call streams: codes, float scales, int8 zero offsets.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm_bench.hpp"
#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/kernel/cpu/weight_only_pack.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using tcomp::index_t;

/// The weight-only call on the active path, the panels split evenly over c.threads threads (the caller's
/// included), X as fp32 (xb == nullptr) or as bf16 bits.
void run_weight_only(const tcomp_bench::gemm_call& c, const tcomp::cpu::weight_only_storage& w,
                     const std::uint16_t* xb) {
    const tcomp::cpu::kernel_table* table = tcomp::cpu::kernels_for(tcomp::cpu::active_path());
    const index_t panels = w.desc.panels, tasks = std::min<index_t>(c.threads, panels);
    tcomp::cpu::thread_pool::instance().run(c.threads, tasks, [&](index_t task) {
        tcomp::cpu::weight_only_call call;
        call.w = &w.desc;
        if (xb != nullptr) call.x_bf16 = xb;
        else call.x = c.x;
        call.x_stride = c.k;
        call.m = c.m;
        call.y = c.y, call.y_stride = c.n;
        call.panel_begin = panels * task / tasks, call.panel_end = panels * (task + 1) / tasks;
        call.m_begin = 0, call.m_end = c.m;
        table->weight_only(call);
    });
}

/// Registers suite/<path> (fp32 activations) or suite/<path>_bf16 for policy P.
template <class Policy>
void register_weight_only_suite(const std::string& suite, bool bf16) {
    const std::string path(tcomp::cpu::to_string(tcomp::cpu::active_path()));
    tcomp_bench::gemm_options opt;
    opt.unavailable = []() -> std::string {
        const tcomp::cpu::kernel_table* t = tcomp::cpu::kernels_for(tcomp::cpu::active_path());
        return t != nullptr && t->weight_only != nullptr ? "" : "no weight-only SIMD kernel on this path";
    };
    tcomp_bench::register_gemm_prepared(
        suite, bf16 ? path + "_bf16" : path,
        [](const tcomp_bench::weight_source& src) {
            const tcomp::matrix_view<const float> w(src.w, src.n, src.k, src.k);
            tcomp::cpu::weight_only_storage st;
            const std::string why = tcomp::cpu::pack_weight_only(tcomp::compress<Policy>(w).weights().view(), st);
            if (!why.empty()) throw std::runtime_error(why);
            return st;
        },
        [bf16](const tcomp_bench::gemm_call& c, const tcomp::cpu::weight_only_storage&) {
            std::vector<std::uint16_t> xb;
            if (bf16) {  // round to nearest even, outside the timing
                xb.resize(static_cast<std::size_t>(c.m) * static_cast<std::size_t>(c.k));
                for (std::size_t i = 0; i < xb.size(); ++i) {
                    std::uint32_t b;
                    std::memcpy(&b, c.x + i, 4);
                    xb[i] = static_cast<std::uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
                }
            }
            return [xb = std::move(xb)](const tcomp_bench::gemm_call& call, const tcomp::cpu::weight_only_storage& w) {
                run_weight_only(call, w, xb.empty() ? nullptr : xb.data());
            };
        },
        opt);
}

}  // namespace

int main(int argc, char** argv) {
    register_weight_only_suite<tcomp::presets::w8a16>("w8a16", false);
    register_weight_only_suite<tcomp::presets::w8a16>("w8a16", true);
    return tcomp_bench::gemm_main(argc, argv);
}
