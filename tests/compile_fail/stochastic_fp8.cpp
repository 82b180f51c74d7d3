// expect: stochastic rounding is implemented for integer-grid formats only
#include <tcomp/quant/quantizer.hpp>
#include <tcomp/format/fp8.hpp>

using Q = tcomp::quantizer<tcomp::fp8_e5m2, tcomp::stochastic, tcomp::per_tensor>;
static_assert(sizeof(Q) > 0);
