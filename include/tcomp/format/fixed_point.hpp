// Signed fixed point Q(m.n): 1 sign bit, m integer bits, n fraction bits, two's complement in 1+m+n
// bits; value = code * 2^-n. Range [-2^m, 2^m - 2^-n], resolution 2^-n.
//
// Used raw (unit_scale: the format's own 2^-n is the scale), with a per-layer power-of-two scale (the
// F8Net "fractional length" choice, see quant/requantize.hpp for the integer-only rescale), or as the
// element of a block format (MXINT8 elements are Q1.6).
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

namespace detail {
constexpr float exp2_int(int e) {
    float r = 1.0f;
    if (e >= 0)
        for (int i = 0; i < e; ++i) r *= 2.0f;
    else
        for (int i = 0; i < -e; ++i) r *= 0.5f;
    return r;
}
}  // namespace detail

template <int IntegerBits, int FractionBits>
struct fixed_point_format {
    static_assert(IntegerBits >= 0 && FractionBits >= 0,
                  "fixed_point_format<m, n>: integer and fraction bit counts must be non-negative");
    static_assert(1 + IntegerBits + FractionBits <= 8,
                  "fixed_point_format<m, n>: 1 + m + n must be at most 8 bits (tcomp packs codes of 1 to 8 bits)");
    static constexpr int integer_bits = IntegerBits;
    static constexpr int fraction_bits = FractionBits;
    static constexpr int bits = 1 + IntegerBits + FractionBits;
    static constexpr std::string_view name = "fixed_point";
    static constexpr format_family family = format_family::integer_grid;
    static constexpr bool is_signed = true;
    static constexpr bool dense_grid = true;
    static constexpr int code_min = -(1 << (bits - 1));
    static constexpr int code_max = (1 << (bits - 1)) - 1;
    static constexpr float step = detail::exp2_int(-FractionBits);
    static constexpr float max_value = static_cast<float>(code_max) * step;

    TCOMP_HOST_DEVICE static constexpr int to_integer(std::uint32_t code) { return detail::from_twos_complement(code, bits); }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t from_integer(int v) { return detail::to_twos_complement(v, bits); }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) {
        return detail::encode_integer_grid<fixed_point_format>(x);
    }
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) {
        return static_cast<float>(to_integer(code)) * step;
    }
};

}  // namespace tcomp
