// expect: shares exponents within groups and needs per_group<G>
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<4>, tcomp::multi_level_scale<2>>;
static_assert(sizeof(Q) > 0);
