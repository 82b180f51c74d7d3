// expect: an option is not a scheme, granularity, scale kind, rounding, observer or activation mode
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<4>, int>;
static_assert(sizeof(Q) > 0);
