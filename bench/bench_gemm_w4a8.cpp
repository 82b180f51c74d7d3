// W4A8 GEMM/GEMV suite: tcomp::matmul with presets::w4a8 weights pre-packed for the CPU kernels.
#include "tcomp_gemm_suite.hpp"

int main(int argc, char** argv) {
    tcomp_bench::register_tcomp_suite<tcomp::presets::w4a8>("w4a8");
    return tcomp_bench::gemm_main(argc, argv);
}
