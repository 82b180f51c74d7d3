// tcomp_cuda_tests: the GPU tests (standalone, no Catch2). Exit status 0: all passed; 1: a failure or a
// CUDA error; 77: no usable CUDA device (CTest's SKIP_RETURN_CODE: reported as skipped, never as passed).
//
//   tcomp_cuda_tests [--quick] [--seed N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "cuda_tests.hpp"
#include "tcomp/kernel/cuda/runtime.cuh"

int main(int argc, char** argv) {
    kernel_test_options options;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            options.quick = true;
        } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            options.seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            std::fprintf(stderr, "usage: %s [--quick] [--seed N]\n", argv[0]);
            return 2;
        }
    }
    if (tcomp::cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device: the GPU tests (formats, quantizer, matmul kernels, 2:4 metadata) did not run\n");
        return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    bool ok = true;
    try {
        ok &= test_formats_on_device();
        ok &= test_sparse_metadata_layout();
        ok &= test_quantize_per_token(options);
        ok &= test_matmul_kernels(options);
        ok &= test_matmul_errors();
    } catch (const std::exception& e) {
        std::printf("FAIL: unexpected exception: %s\n", e.what());
        ok = false;
    }
    std::printf("%s\n", ok ? "tcomp_cuda_tests: all passed" : "tcomp_cuda_tests: FAILED");
    return ok ? 0 : 1;
}
