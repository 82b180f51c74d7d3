// Shiftable fixed-point GEMM/GEMV suite: int8 and int4 weights per group of 128 with shiftable_scale<3> (a
// power-of-two tensor scale and a 3-bit shift per group), int8 tokens. The kernels take the shift epilogue
// (quant/shift_epilogue.hpp: int64 shifts per group, one float conversion per output); compare with the
// w8a8 / w4a8 suites for what the exact integer epilogue costs.
#include "tcomp_gemm_suite.hpp"

int main(int argc, char** argv) {
    using namespace tcomp;
    using w8_shift = policy<quantizer<int_format<8>, symmetric, per_group<128>, shiftable_scale<3>>, presets::int8_per_token>;
    using w4_shift = policy<quantizer<int_format<4>, symmetric, per_group<128>, shiftable_scale<3>>, presets::int8_per_token>;
    tcomp_bench::register_tcomp_suite<w8_shift>("w8a8_shift");
    tcomp_bench::register_tcomp_suite<w4_shift>("w4a8_shift");
    return tcomp_bench::gemm_main(argc, argv);
}
