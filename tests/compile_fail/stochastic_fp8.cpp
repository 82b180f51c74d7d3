// expect: stochastic rounding is implemented for integer-grid formats only
#include <tcomp/tcomp.hpp>

using Q = tcomp::quantizer<tcomp::fp8_e5m2, tcomp::stochastic, tcomp::per_tensor>;
static_assert(sizeof(Q) > 0);
