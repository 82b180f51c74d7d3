// expect: weights must be 4- or 8-bit integers
// The CUDA kernels have no binary (xnor-popcount) path: W1A1 must fail to compile, not fall back.
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

constexpr auto kind = tcomp::cuda::kernel_for<tcomp::presets::w1a1>();
