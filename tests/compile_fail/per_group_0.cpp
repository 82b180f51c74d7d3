// expect: per_group<G>: the group size G must be positive
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<4>, tcomp::per_group<0>>;
static_assert(sizeof(Q) > 0);
