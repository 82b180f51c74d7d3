// expect: quantized activations must be symmetric int8
// The fused quantizer is symmetric per-token int8; uint8 with zero points has no CUDA kernel.
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

using P = tcomp::policy<tcomp::presets::int8_per_channel, tcomp::presets::uint8_per_token_asymmetric>;
constexpr auto kind = tcomp::cuda::kernel_for<P>();
