// expect: symmetric quantization maps amax to the largest code, and this format has no positive code
// int_format<1> has the codes -1 and 0: a symmetric scale amax / code_max would divide by zero.
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<1>, tcomp::symmetric, tcomp::per_channel>;
static_assert(sizeof(Q) > 0);
