// 2:4-sparse suites: W8A8 and W4A8 with 2:4 pruned weights (compressed values + 2-bit-per-value masks).
// On a CPU the gain is in bytes moved: compare with bench_gemm_w8a8 / bench_gemm_w4a8 at M = 1, cold.
#include "tcomp_gemm_suite.hpp"

int main(int argc, char** argv) {
    tcomp_bench::register_tcomp_suite<tcomp::presets::w8a8_2of4>("w8a8_2of4");
    tcomp_bench::register_tcomp_suite<tcomp::presets::w4a8_2of4>("w4a8_2of4");
    return tcomp_bench::gemm_main(argc, argv);
}
