// expect: policy: per_token granularity is for activations
// The weight quantizer itself is valid (per_token, dynamic); only its use for weights is not.
#include <tcomp/quant/presets.hpp>

using W = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_token>;
using P = tcomp::policy<W, tcomp::presets::int8_per_token>;
static_assert(sizeof(P) > 0);
