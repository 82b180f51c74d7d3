// W4A16 and W2A16 GEMM/GEMV suites: tcomp::matmul with presets::w4a16 (uint4, groups of 128, zero points) and
// presets::w2a16 (uint2, groups of 64, zero points) weights pre-packed for the CPU kernels (the weight-only
// kernels: weights dequantized in registers), fp32 activations (variant <path>) or bf16 activations, a
// matrix_view<const tcomp::bfloat16> (variant <path>_bf16). Weight bytes are the packed bytes a call streams:
// codes, float scales, int8 zero offsets.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tcomp_gemm_suite.hpp"

namespace {

/// suite/<path>_bf16: the harness's X rounded to bf16 (nearest even, outside the timing), then
/// tcomp::matmul on bf16 X (the kernels widen bf16 in registers).
template <class Policy>
void register_bf16_suite(const std::string& suite) {
    using W = tcomp_bench::tcomp_packed<Policy>;
    const std::string variant = std::string(tcomp::cpu::to_string(tcomp::cpu::active_path())) + "_bf16";
    tcomp_bench::register_gemm_prepared(
        suite, variant,
        [](const tcomp_bench::weight_source& src) {
            const tcomp::matrix_view<const float> w(src.w, src.n, src.k, src.k);
            return W{std::make_shared<const tcomp::cpu::packed_weights<Policy>>(
                tcomp::cpu::pack(tcomp::compress<Policy>(w)))};
        },
        [](const tcomp_bench::gemm_call& c, const W&) {
            std::vector<tcomp::bfloat16> xb(static_cast<std::size_t>(c.m) * static_cast<std::size_t>(c.k));
            for (std::size_t i = 0; i < xb.size(); ++i) xb[i] = tcomp::from_float<tcomp::bfloat16>(c.x[i]);
            return [xb = std::move(xb)](const tcomp_bench::gemm_call& call, const W& w) {
                const tcomp::matrix_view<const tcomp::bfloat16> x(xb.data(), call.m, call.k, call.k);
                const tcomp::matrix_view<float> y(call.y, call.m, call.n, call.n);
                tcomp::matmul(x, *w.packed, y, {}, {.threads = call.threads});
            };
        });
}

}  // namespace

int main(int argc, char** argv) {
    tcomp_bench::register_tcomp_suite<tcomp::presets::w4a16>("w4a16");
    register_bf16_suite<tcomp::presets::w4a16>("w4a16");
    tcomp_bench::register_tcomp_suite<tcomp::presets::w2a16>("w2a16");
    register_bf16_suite<tcomp::presets::w2a16>("w2a16");
    return tcomp_bench::gemm_main(argc, argv);
}
