// expect: unit_scale [(]the format.s own scale[)] has no zero point
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::fixed_point_format<3, 4>, tcomp::unit_scale, tcomp::asymmetric>;
static_assert(sizeof(Q) > 0);
