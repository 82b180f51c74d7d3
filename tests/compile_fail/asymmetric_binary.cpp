// expect: asymmetric quantization of a format without zero
// binary_format has codes -1 and +1 only: a zero point is meaningless.
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::binary_format, tcomp::asymmetric, tcomp::per_channel>;
static_assert(sizeof(Q) > 0);
