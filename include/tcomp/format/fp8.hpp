// The two 8-bit formats of the OCP 8-bit Floating Point spec (OFP8, rev. 1.0, 2023), as used by Hopper/Ada
// tensor cores and the OCP MX formats MXFP8:
//
//   fp8_e4m3  E4M3 "FN": bias 7, no Inf, NaN only S.1111.111 (0x7F/0xFF); max 448, min normal 2^-6,
//             min subnormal 2^-9. Encode saturates finite overflow and ±Inf to ±448; NaN -> 0x7F.
//   fp8_e5m2  E5M2, IEEE-like: bias 15, ±Inf 0x7C/0xFC, NaN S.11111.{01,10,11}; max 57344, min normal
//             2^-14, min subnormal 2^-16. Encode saturates finite overflow to ±57344 (OFP8's saturating
//             conversion mode, which tcomp's quantizers want) and keeps ±Inf as ±Inf; NaN -> a quiet NaN
//             with the input's sign (0x7E/0xFE for the default quiet NaN).
//
// Note on ±Inf into E5M2: OFP8's saturating mode clamps values that overflow; NVIDIA __NV_SATFINITE and ONNX
// saturate=1 also turn an infinite input into ±57344. tcomp keeps it infinite so a real Inf in the data is not
// silently turned into a plausible number; minifloat_format<5, 2, minifloat_rules<minifloat_specials::ieee,
// minifloat_overflow::satfinite>> gives the NVIDIA behaviour, minifloat_overflow::non_saturating OFP8's other mode.
// Rounding (round to nearest even, before the overflow test) and all other details: minifloat.hpp.
#pragma once

#include <string_view>

#include "tcomp/format/minifloat.hpp"

namespace tcomp {

struct fp8_e4m3 : minifloat_format<4, 3, ocp_fn_rules> {
    static constexpr std::string_view name = "fp8_e4m3";
};

struct fp8_e5m2 : minifloat_format<5, 2, ieee_rules> {
    static constexpr std::string_view name = "fp8_e5m2";
};

}  // namespace tcomp
