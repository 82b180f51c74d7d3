// expect: quantizer: more than one scheme [(]symmetric / asymmetric[)] given
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::uint_format<4>, tcomp::symmetric, tcomp::per_channel, tcomp::asymmetric>;
static_assert(sizeof(Q) > 0);
