// expect: shares exponents within groups and needs per_group<G>
// The OCP MX scale is per block: it needs per_group<G>.
#include <tcomp/quant/quantizer.hpp>
#include <tcomp/format/fp8.hpp>

using Q = tcomp::quantizer<tcomp::fp8_e4m3, tcomp::e8m0_scale, tcomp::per_channel>;
static_assert(sizeof(Q) > 0);
