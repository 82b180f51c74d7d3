// tcomp's own GEMM suites on the shared harness (gemm_bench.hpp): compress the harness's float weights under
// policy P, pack them for the CPU kernels once, and time tcomp::matmul (activation quantization included,
// as a caller pays it) on the active ISA path. Weight bytes are the packed bytes a call streams.
#pragma once

#include <memory>
#include <string>

#include "gemm_bench.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/quant/presets.hpp"

namespace tcomp_bench {

template <class Policy>
struct tcomp_packed {
    std::shared_ptr<const tcomp::cpu::packed_weights<Policy>> packed;
    std::size_t bytes() const { return packed->kernel_bytes(); }
    tcomp_packed clone() const { return {std::make_shared<const tcomp::cpu::packed_weights<Policy>>(*packed)}; }
};

/// Registers suite `suite` for policy P (variant = the ISA path the process runs, e.g. avx512_vnni).
template <class Policy>
void register_tcomp_suite(const std::string& suite) {
    const std::string variant(tcomp::cpu::to_string(tcomp::cpu::active_path()));
    register_gemm(
        suite, variant,
        [](const weight_source& src) {
            const tcomp::matrix_view<const float> w(src.w, src.n, src.k, src.k);
            auto packed = std::make_shared<const tcomp::cpu::packed_weights<Policy>>(
                tcomp::cpu::pack(tcomp::compress<Policy>(w)));
            if (!tcomp::cpu::uses_simd(*packed))
                std::fprintf(stderr, "note: %s runs the scalar reference here (%s)\n", typeid(Policy).name(),
                             packed->unsupported_reason().c_str());
            return tcomp_packed<Policy>{packed};
        },
        [](const gemm_call& c, const tcomp_packed<Policy>& w) {
            const tcomp::matrix_view<const float> x(c.x, c.m, c.k, c.k);
            const tcomp::matrix_view<float> y(c.y, c.m, c.n, c.n);
            tcomp::matmul(x, *w.packed, y, {}, {.threads = c.threads});
        });
}

}  // namespace tcomp_bench
