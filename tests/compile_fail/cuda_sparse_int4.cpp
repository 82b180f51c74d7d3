// expect: 2:4 sparsity of int8 weights
// Sparse tensor cores take 2:4 int8 weights; 2:4 int4 (W4A8 2:4) has no CUDA kernel.
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

constexpr auto kind = tcomp::cuda::kernel_for<tcomp::presets::w4a8_2of4>();
