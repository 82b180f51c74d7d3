// 16-bit storage formats: weights or activations kept at 16 bits (unit_scale: the value is the code's own).
//
//   fp16_format  IEEE 754 binary16: bias 15, max 65504, min normal 2^-14, min subnormal 2^-24, ±Inf, NaN
//   bf16_format  bfloat16, the top 16 bits of a float: bias 127, max 0x1.FEp127 (~3.3895e38), min normal
//                2^-126, min subnormal 2^-133 (a float subnormal), ±Inf, NaN
//
// encode rounds to nearest even. Both depart from IEEE 754 (and from a plain float->half cast) in one place:
// a finite value that rounds above max saturates to ±max instead of becoming ±Inf, the same saturating rule
// every tcomp format follows, so a quantizer never manufactures an Inf. ±Inf stays ±Inf; NaN stays NaN (quiet,
// with the input's sign and top payload bits; a float's default quiet NaN gives 0x7E00 / 0x7FC0).
// For IEEE overflow use minifloat_format<5, 10, minifloat_rules<minifloat_specials::ieee,
// minifloat_overflow::non_saturating>> (or <8, 7, ...> for bfloat16). Details: minifloat.hpp.
#pragma once

#include <string_view>

#include "tcomp/format/minifloat.hpp"

namespace tcomp {

struct fp16_format : minifloat_format<5, 10, ieee_rules> {
    static constexpr std::string_view name = "fp16";
};

struct bf16_format : minifloat_format<8, 7, ieee_rules> {
    static constexpr std::string_view name = "bf16";
};

}  // namespace tcomp
