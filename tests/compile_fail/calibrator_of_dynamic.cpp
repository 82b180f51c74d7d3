// expect: activation_calibrator<Q>: Q is dynamic
// A dynamic quantizer computes its scales from each input: there is nothing to calibrate.
#include <tcomp/quant/calibration.hpp>
#include <tcomp/format/integer.hpp>

using Q = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_tensor, tcomp::dynamic>;
tcomp::activation_calibrator<Q> calibrator;
