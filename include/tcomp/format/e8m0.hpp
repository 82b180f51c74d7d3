// E8M0, the shared scale of the OCP Microscaling (MX) spec v1.0: an 8-bit unsigned biased exponent, bias 127.
// Code c in 0..254 means 2^(c - 127) (2^-127 .. 2^127); 0xFF is NaN. No sign, no zero, no Inf, no mantissa.
// 2^-127 (code 0) is a float subnormal; decode builds every value from its bit pattern, so it is exact
// whatever the FTZ/DAZ or fast-math settings.
//
// As a number_format (family floating, so generic format code can enumerate and print it):
//   encode(x)  the code of the largest power of two <= |x|, i.e. floor(log2 |x|), the rounding the MX scale
//              rule uses (shared exponent = floor(log2 amax) - emax_elem). The sign is ignored; the exponent is
//              clamped to [-127, 127]: 0 and |x| < 2^-126 give code 0 (2^-127), ±Inf gives 254 (2^127, the
//              largest power of two there is here); NaN gives 0xFF.
//   decode(c)  2^(c - 127), NaN for 0xFF.
// encode_exponent(e) / decode_exponent(c) work on the exponent itself (what the MX scale computation has).
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"
#include "tcomp/format/minifloat.hpp"  // detail::bit_pattern / float_from_pattern

namespace tcomp {

struct e8m0_format {
    static constexpr int bits = 8;
    static constexpr std::string_view name = "e8m0";
    static constexpr format_family family = format_family::floating;
    static constexpr int exponent_bits = 8;
    static constexpr int mantissa_bits = 0;
    static constexpr int bias = 127;
    static constexpr bool is_signed = false;
    static constexpr bool has_infinity = false;
    static constexpr bool has_nan = true;
    static constexpr bool has_zero = false;
    static constexpr std::uint32_t nan_code = 0xFFu;
    static constexpr int min_exponent = -127;
    static constexpr int max_exponent = 127;
    static constexpr float max_value = detail::float_from_pattern(0x7F000000u);  // 2^127
    static constexpr float min_value = detail::float_from_pattern(0x00400000u);  // 2^-127 (subnormal float)

    /// Code of 2^e, with e clamped to [min_exponent, max_exponent] (a scale beyond the range saturates, as
    /// every tcomp format does; it never becomes the NaN code).
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode_exponent(int e) {
        const int c = e < min_exponent ? min_exponent : (e > max_exponent ? max_exponent : e);
        return static_cast<std::uint32_t>(c + bias);
    }
    /// code - 127. The NaN code has no exponent (it gives 128): test is_nan first where it can occur.
    TCOMP_HOST_DEVICE static constexpr int decode_exponent(std::uint32_t code) {
        return static_cast<int>(code & 0xFFu) - bias;
    }
    TCOMP_HOST_DEVICE static constexpr bool is_nan(std::uint32_t code) { return (code & 0xFFu) == nan_code; }

    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) {
        const std::uint32_t c = code & 0xFFu;
        if (c == nan_code) return detail::float_from_pattern(0x7FC00000u);
        // The bias equals float's, so codes 1..254 are float's exponent field as is; code 0 is 2^-127.
        return detail::float_from_pattern(c == 0 ? 0x00400000u : c << 23);
    }

    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) {
        const std::uint32_t a = detail::bit_pattern(x) & 0x7FFFFFFFu;
        if (a > 0x7F800000u) return nan_code;
        if (a == 0x7F800000u) return encode_exponent(max_exponent);
        // floor(log2 |x|) = float exponent field - 127 for normal floats; subnormals and 0 are below 2^-126
        // and clamp to 2^-127.
        return a >> 23;
    }
};

}  // namespace tcomp
