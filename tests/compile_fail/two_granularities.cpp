// expect: quantizer: more than one granularity given
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<4>, tcomp::per_channel, tcomp::per_group<32>>;
static_assert(sizeof(Q) > 0);
