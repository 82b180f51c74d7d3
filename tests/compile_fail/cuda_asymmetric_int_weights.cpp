// expect: need symmetric signed weights
// int8 tensor cores multiply codes directly: weights with zero points need the float-activation kernels.
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

using P = tcomp::policy<tcomp::presets::uint4_group128_asymmetric, tcomp::presets::int8_per_token>;
constexpr auto kind = tcomp::cuda::kernel_for<P>();
