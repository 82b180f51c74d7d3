// expect: asymmetric [(]zero-point[)] quantization needs an integer format
// Floating formats are symmetric.
#include <tcomp/quant/quantizer.hpp>
#include <tcomp/format/fp8.hpp>

using Q = tcomp::quantizer<tcomp::fp8_e4m3, tcomp::asymmetric, tcomp::per_channel>;
static_assert(sizeof(Q) > 0);
