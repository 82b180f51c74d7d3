// Integer-only requantization (the F8Net / gemmlowp scheme): an int32 accumulator is rescaled by a real
// multiplier M in (0, 2^31) using one 32x32->64 multiply and shifts, no float:
//     M = m0 * 2^(shift - 31), m0 in [2^30, 2^31)          (a Q0.31 mantissa and an exponent)
//     y = round(acc * M)  computed as  round_shift(acc * m0, 31 - shift)
// With power-of-two scales (per-layer fractional lengths) m0 = 2^30 and the rescale is a pure shift.
#pragma once

#include <cmath>
#include <cstdint>

#include "tcomp/core/error.hpp"

namespace tcomp {

struct fixed_point_multiplier {
    std::int32_t mantissa = 0;  // Q0.31, in [2^30, 2^31) for a nonzero multiplier
    int shift = 0;              // power-of-two exponent: M = mantissa * 2^(shift - 31)

    /// Nearest representation of `real` (> 0, < 2^31); throws on zero, negative, non-finite or too-large
    /// multipliers, which no int32 rescale can express.
    static fixed_point_multiplier from_real(double real) {
        if (!(real > 0.0) || !std::isfinite(real) || real >= 2147483648.0)
            detail::throw_error<value_error>("fixed_point_multiplier: multiplier ", real,
                                             " must be finite and in (0, 2^31)");
        int exponent = 0;
        const double fraction = std::frexp(real, &exponent);  // real = fraction * 2^exponent, fraction in [0.5, 1)
        auto q = static_cast<std::int64_t>(std::llround(fraction * 2147483648.0));
        if (q == 2147483648LL) q /= 2, ++exponent;  // rounding reached 1.0
        fixed_point_multiplier m;
        m.mantissa = static_cast<std::int32_t>(q);
        m.shift = exponent;
        return m;
    }

    /// round(acc * M), ties away from zero, saturated to int32; exact integer arithmetic.
    std::int32_t apply(std::int32_t acc) const {
        const std::int64_t product = static_cast<std::int64_t>(acc) * mantissa;  // |product| < 2^62
        const int right = 31 - shift;
        std::int64_t result = 0;
        if (right <= 0) {
            result = product;
            for (int i = 0; i < -right && result < (std::int64_t{1} << 62) && result > -(std::int64_t{1} << 62); ++i)
                result *= 2;
        } else if (right >= 63) {
            result = 0;
        } else {
            const std::int64_t half = std::int64_t{1} << (right - 1);
            const std::int64_t magnitude = product < 0 ? -product : product;
            result = (magnitude + half) >> right;
            if (product < 0) result = -result;
        }
        if (result > INT32_MAX) return INT32_MAX;
        if (result < INT32_MIN) return INT32_MIN;
        return static_cast<std::int32_t>(result);
    }

    double real() const { return std::ldexp(static_cast<double>(mantissa), shift - 31); }
};

}  // namespace tcomp
