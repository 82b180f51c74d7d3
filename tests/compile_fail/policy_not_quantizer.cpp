// expect: policy<W, A, S>: W must be a tcomp::quantizer
// The first argument must be a quantizer, not a bare format.
#include <tcomp/quant/presets.hpp>

using P = tcomp::policy<tcomp::int_format<8>, tcomp::presets::int8_per_token>;
static_assert(sizeof(P) > 0);
