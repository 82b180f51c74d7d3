// expect: asymmetric weights must be unsigned
// Zero points are stored as bytes 0..255 next to unsigned codes; a signed format with zero points would be
// read wrongly by every float-path kernel, so it must not compile.
#include <tcomp/kernel/cuda/weight_image.hpp>
#include <tcomp/quant/presets.hpp>

using P = tcomp::policy<tcomp::quantizer<tcomp::int_format<8>, tcomp::asymmetric, tcomp::per_channel>,
                        tcomp::float_activations>;
constexpr auto kind = tcomp::cuda::kernel_for<P>();
