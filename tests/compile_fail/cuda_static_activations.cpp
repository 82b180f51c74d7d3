// expect: per-tensor / calibrated activation scales have no CUDA kernel
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

constexpr auto kind = tcomp::cuda::kernel_for<tcomp::presets::w8a8_static>();
