// Element formats of the OCP Microscaling (MX) spec v1.0, beside fp8_e4m3/fp8_e5m2 (fp8.hpp) and Q1.6
// (MXINT8, fixed_point.hpp). Every code is finite: no Inf, no NaN (a block's NaN lives in its E8M0 scale).
//
//   fp6_e2m3  bias 1: max 7.5, min normal 1, min subnormal 0.125
//   fp6_e3m2  bias 3: max 28, min normal 0.25, min subnormal 0.0625
//   fp4_e2m1  bias 1: max 6, min normal 1, min subnormal 0.5 (values 0, 0.5, 1, 1.5, 2, 3, 4, 6)
//
// encode: round to nearest even; magnitudes beyond max and ±Inf saturate to ±max (MX converts with
// saturation); NaN -> +0 (code 0, sign cleared). The spec leaves NaN conversion to the implementation; NVIDIA's
// cvt gives +max, but a NaN should not become the largest value of its block. -0 encodes to the -0 code.
#pragma once

#include <string_view>

#include "tcomp/format/minifloat.hpp"

namespace tcomp {

struct fp6_e2m3 : minifloat_format<2, 3, ocp_finite_rules> {
    static constexpr std::string_view name = "fp6_e2m3";
};

struct fp6_e3m2 : minifloat_format<3, 2, ocp_finite_rules> {
    static constexpr std::string_view name = "fp6_e3m2";
};

struct fp4_e2m1 : minifloat_format<2, 1, ocp_finite_rules> {
    static constexpr std::string_view name = "fp4_e2m1";
};

}  // namespace tcomp
