// expect: per_token granularity needs dynamic quantization
// Tokens are not known at calibration time.
#include <tcomp/quant/presets.hpp>

using Q = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_token, tcomp::calibrated>;
static_assert(sizeof(Q) > 0);
