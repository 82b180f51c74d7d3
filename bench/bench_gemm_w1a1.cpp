// W1A1 GEMM/GEMV suite: tcomp::matmul with presets::w1a1 weights (sign weights x sign activations, per-channel
// and per-token mean-|x| scales) pre-packed for the binary kernel (xnor + popcount); activation binarization
// included, as a caller pays it. Variants: the active ISA path (VPOPCNTQ on AVX-512 CPUs that have it) and,
// on such CPUs, the same path with the vpshufb table popcount the AVX-512 paths fall back to without it.
#include "tcomp_gemm_suite.hpp"

#include "tcomp/kernel/cpu/binary_args.hpp"

int main(int argc, char** argv) {
    using policy = tcomp::presets::w1a1;
    tcomp_bench::register_tcomp_suite<policy>("w1a1");

    const tcomp::cpu::isa_path path = tcomp::cpu::active_path();
    if ((path == tcomp::cpu::isa_path::avx512bw || path == tcomp::cpu::isa_path::avx512_vnni) &&
        tcomp::cpu::cpu_has_avx512_vpopcntdq()) {
        tcomp_bench::register_gemm(
            "w1a1", std::string(tcomp::cpu::to_string(path)) + "_table_popcount",
            [](const tcomp_bench::weight_source& src) {
                const tcomp::matrix_view<const float> w(src.w, src.n, src.k, src.k);
                return tcomp_bench::tcomp_packed<policy>{std::make_shared<const tcomp::cpu::packed_weights<policy>>(
                    tcomp::cpu::pack(tcomp::compress<policy>(w)))};
            },
            [](const tcomp_bench::gemm_call& c, const tcomp_bench::tcomp_packed<policy>& w) {
                const tcomp::matrix_view<const float> x(c.x, c.m, c.k, c.k);
                const tcomp::matrix_view<float> y(c.y, c.m, c.n, c.n);
                auto& mode = tcomp::cpu::detail::binary_vpopcnt_mode();
                const int previous = mode.exchange(0);
                tcomp::matmul(x, *w.packed, y, {}, {.threads = c.threads});
                mode.store(previous);
            });
    }
    return tcomp_bench::gemm_main(argc, argv);
}
