// 16-bit float storage types for activations and outputs: tcomp::bfloat16 (the top half of a float) and
// tcomp::float16 (IEEE 754 binary16). They are plain bit containers (the layout of CUDA's __nv_bfloat16 and
// __half, and of the bf16/fp16 tensors of safetensors), so matrix_view<const bfloat16> says what the memory
// holds where a matrix_view<const std::uint16_t> could not tell the two formats apart.
//
// Conversions are IEEE 754 casts: round to nearest even, overflow to ±Inf, NaN stays NaN. (The quantizer
// formats bf16_format / fp16_format in format/half.hpp saturate instead; those are number formats, these are
// storage.)
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tcomp/core/matrix_view.hpp"

namespace tcomp {

struct bfloat16 {
    std::uint16_t bits = 0;
    static constexpr bfloat16 from_bits(std::uint16_t b) { return bfloat16{b}; }
};

struct float16 {
    std::uint16_t bits = 0;
    static constexpr float16 from_bits(std::uint16_t b) { return float16{b}; }
};

// The kernels read arrays of these as arrays of std::uint16_t (and CUDA as __nv_bfloat16 / __half).
static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16> &&
              std::is_standard_layout_v<bfloat16>);
static_assert(sizeof(float16) == 2 && alignof(float16) == 2 && std::is_trivially_copyable_v<float16> &&
              std::is_standard_layout_v<float16>);

inline float to_float(bfloat16 v) {
    const std::uint32_t u = static_cast<std::uint32_t>(v.bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline float to_float(float16 v) {
    const std::uint32_t sign = static_cast<std::uint32_t>(v.bits & 0x8000u) << 16;
    const std::uint32_t exp = (v.bits >> 10) & 0x1Fu, man = v.bits & 0x3FFu;
    std::uint32_t u;
    if (exp == 0x1F) {
        u = sign | 0x7F800000u | (man << 13);  // Inf, NaN (payload kept)
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);  // normal: rebias 15 -> 127
    } else if (man == 0) {
        u = sign;
    } else {  // subnormal: man * 2^-24, exact in float
        float f = static_cast<float>(man) * 0x1p-24f;
        std::memcpy(&u, &f, sizeof u);
        u |= sign;
    }
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

template <class T>
T from_float(float f);

template <>
inline bfloat16 from_float<bfloat16>(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bfloat16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even (overflow carries into Inf)
    return bfloat16{static_cast<std::uint16_t>(u >> 16)};
}

template <>
inline float16 from_float<float16>(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    const std::uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return float16{static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu))};
    if (a >= 0x477FF000u) return float16{static_cast<std::uint16_t>(sign | 0x7C00u)};  // rounds above 65504: Inf
    if (a < 0x38800000u) {  // below 2^-14: subnormal or zero; round |f| * 2^24 to an integer, nearest even
        float m;
        std::memcpy(&m, &a, sizeof m);
        const float scaled = m * 0x1p24f;  // exact (a power-of-two scale of a value below 2^-14)
        auto q = static_cast<std::uint32_t>(scaled);
        const float rest = scaled - static_cast<float>(q);
        if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
        return float16{static_cast<std::uint16_t>(sign | q)};  // q == 0x400 is the smallest normal, correctly
    }
    std::uint32_t r = a - 0x38000000u;  // rebias 127 -> 15 (exponent field minus 112)
    r += 0xFFFu + ((r >> 13) & 1u);
    return float16{static_cast<std::uint16_t>(sign | (r >> 13))};
}

/// Whether T is one of the element types the front door takes for X: float, bfloat16, float16.
template <class T>
inline constexpr bool is_activation_element = std::is_same_v<T, float> || std::is_same_v<T, bfloat16> ||
                                              std::is_same_v<T, float16>;

namespace detail {

/// Whether a 16-bit float's exponent field is all ones (Inf or NaN): bf16 0x7F80, fp16 0x7C00.
inline bool is_nonfinite(bfloat16 v) { return (v.bits & 0x7F80u) == 0x7F80u; }
inline bool is_nonfinite(float16 v) { return (v.bits & 0x7C00u) == 0x7C00u; }

/// require_finite for 16-bit views: a value_error naming the first NaN/Inf element.
template <class T>
    requires(std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>)
void require_finite(matrix_view<const T> m, const char* where, const char* what) {
    for (index_t r = 0; r < m.rows(); ++r)
        for (index_t c = 0; c < m.cols(); ++c)
            if (is_nonfinite(m(r, c)))
                throw_error<value_error>(where, ": ", what, "(", r, ", ", c, ") is ",
                                         (m(r, c).bits & (std::is_same_v<T, bfloat16> ? 0x7Fu : 0x3FFu)) != 0 ? "NaN"
                                                                                                             : "Inf",
                                         " (the first non-finite element; clean the input or clamp it)");
}

/// X widened to float (exact: every bf16 and fp16 value is a float).
template <class T>
dense_matrix<float> widen(matrix_view<const T> x) {
    dense_matrix<float> out(x.rows(), x.cols());
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) out(r, c) = to_float(x(r, c));
    return out;
}

}  // namespace detail
}  // namespace tcomp
