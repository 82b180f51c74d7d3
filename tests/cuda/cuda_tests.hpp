// The GPU test groups of tcomp_cuda_tests, run by tests/cuda/main.cu. Each returns true when every check
// passed and prints one PASS/FAIL line per check.
#pragma once

/// Format decode/encode on the device equals the host's (test_formats_device.cu).
bool test_formats_on_device();

/// Options of the kernel tests: `quick` runs fewer shapes (for compute-sanitizer, which is slow).
struct kernel_test_options {
    bool quick = false;
    unsigned seed = 20261204u;
};

/// The 2:4 metadata layout of mma.sp m16n8k64 s8 found on the device equals kernel/cuda/fragments.hpp's.
bool test_sparse_metadata_layout();
/// The fused per-token quantizer equals the CPU quantizer bit for bit (codes and scales).
bool test_quantize_per_token(const kernel_test_options& options);
/// Every CUDA matmul kernel against the scalar oracle on random shapes and data.
bool test_matmul_kernels(const kernel_test_options& options);
/// Bad arguments are errors that name the problem (NaN rows, alignment, shapes).
bool test_matmul_errors();
