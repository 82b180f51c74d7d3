// expect: policy: per_channel granularity is for weights
#include <tcomp/quant/presets.hpp>

using A = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_channel>;
using P = tcomp::policy<tcomp::presets::int8_per_channel, A>;
static_assert(sizeof(P) > 0);
