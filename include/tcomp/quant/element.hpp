// One element through a quantizer: x -> code and code -> x, given its group's scale S and zero point z.
// Arithmetic is in float (x / S is one correctly rounded division) so vector kernels can reproduce the
// codes bit for bit; the oracle is the definition.
#pragma once

#include <cmath>
#include <cstdint>

#include "tcomp/core/random.hpp"
#include "tcomp/format/format_info.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/quant/descriptor.hpp"

namespace tcomp::detail {

template <class Q>
std::uint32_t quantize_value(float x, float scale, int zero, std::uint64_t seed, std::uint64_t counter) {
    using F = typename Q::format;
    if constexpr (is_sign_grid<F>())
        if (!(scale > 0.0f)) return F::encode(x);  // an all-zero binary group has S = 0: the sign, no 0/0
    const float v = x / scale;
    if constexpr (integer_grid_format<F>) {
        if constexpr (!F::dense_grid) {  // binary: the sign, or +1 with probability (v + 1) / 2
            if constexpr (Q::rounding::is_stochastic) {
                const float p = std::fmin(1.0f, std::fmax(0.0f, (v + 1.0f) * 0.5f));
                return F::from_integer(uniform01(seed, counter) < p ? 1 : -1);
            } else {
                return F::encode(v);
            }
        } else {
            const float shifted = v + static_cast<float>(zero);
            double q = 0.0;
            if constexpr (Q::rounding::is_stochastic)
                q = std::floor(static_cast<double>(shifted) + static_cast<double>(uniform01(seed, counter)));
            else
                q = round_half_even(static_cast<double>(shifted));
            if (!(q >= F::code_min)) q = F::code_min;  // also catches NaN
            if (q > F::code_max) q = F::code_max;
            return F::from_integer(static_cast<int>(q));
        }
    } else {
        (void)zero, (void)seed, (void)counter;
        return F::encode(v);
    }
}

/// The value an integer kernel multiplies: the code's integer minus the zero point.
template <class Q>
int centered_integer(std::uint32_t code, int zero) {
    return Q::format::to_integer(code) - zero;
}

template <class Q>
float dequantize_value(std::uint32_t code, float scale, int zero) {
    using F = typename Q::format;
    if constexpr (integer_grid_format<F>)
        return scale * static_cast<float>(F::to_integer(code) - zero);
    else
        return scale * F::decode(code);
}

// Run-time counterparts of the above for the quantization engine (format from its row, rounding from the
// descriptor); the same arithmetic step for step, so the engine's codes equal quantize_value<Q>'s.
inline std::uint32_t quantize_value(const format_info& f, rounding_kind rounding, float x, float scale, int zero,
                                    std::uint64_t seed, std::uint64_t counter) {
    if (f.sign_grid && !(scale > 0.0f)) return f.encode(x);
    const float v = x / scale;
    if (!f.integer_grid()) return f.encode(v);
    if (!f.dense_grid) {
        if (rounding == rounding_kind::stochastic) {
            const float p = std::fmin(1.0f, std::fmax(0.0f, (v + 1.0f) * 0.5f));
            return f.from_integer(uniform01(seed, counter) < p ? 1 : -1);
        }
        return f.encode(v);
    }
    const float shifted = v + static_cast<float>(zero);
    double q = 0.0;
    if (rounding == rounding_kind::stochastic)
        q = std::floor(static_cast<double>(shifted) + static_cast<double>(uniform01(seed, counter)));
    else
        q = round_half_even(static_cast<double>(shifted));
    if (!(q >= f.code_min)) q = f.code_min;
    if (q > f.code_max) q = f.code_max;
    return f.from_integer(static_cast<int>(q));
}

inline float dequantize_value(const format_info& f, std::uint32_t code, float scale, int zero) {
    if (f.integer_grid()) return scale * static_cast<float>(f.to_integer(code) - zero);
    return scale * f.decode(code);
}

}  // namespace tcomp::detail
