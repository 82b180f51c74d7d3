// Floating-point weight formats on the weight-only kernels, fp32 activations: NF4 per group of 64 and MXFP4
// (FP4 E2M1, E8M0 scales per 32) decoded through a 16-entry table in registers, FP8 E4M3 per channel decoded by
// shifts (model::nf4_g64, mxfp4_weights, fp8_channel: the policies the aliases "nf4", "mxfp4", "fp8" run on);
// and FP8 / MXFP4 weights with INT8 tokens ("fp8_w8a8", "mxfp4_w4a8"): each call quantizes the activations
// per token and decodes them back to float (O(M K)), then the same weight-only kernels run.
// Weight bytes are the packed bytes a call streams: 4-bit or 8-bit codes and float scales. The cold M = 1 rows
// are decode-time GEMV: their weight_GBps against bench_limits' DRAM read bandwidth is the figure that counts.
#include "tcomp_gemm_suite.hpp"

#include <tcomp/model/policy_registry.hpp>

int main(int argc, char** argv) {
    tcomp_bench::register_tcomp_suite<tcomp::model::nf4_g64>("nf4");
    tcomp_bench::register_tcomp_suite<tcomp::model::mxfp4_weights>("mxfp4");
    tcomp_bench::register_tcomp_suite<tcomp::model::fp8_channel>("fp8");
    tcomp_bench::register_tcomp_suite<tcomp::model::mxfp4_w4a8>("mxfp4_w4a8");
    tcomp_bench::register_tcomp_suite<tcomp::model::fp8_w8a8>("fp8_w8a8");
    return tcomp_bench::gemm_main(argc, argv);
}
