// What a number format is to tcomp. A format is a tag type with constexpr traits (no state):
//
//   bits            storage width of one code (1..16)
//   name            short printable name ("int4", "fp8_e4m3")
//   family          integer_grid: codes are integers v in [code_min, code_max]; value = v * step
//                   floating:     codes are bit patterns of a small float; value = decode(code)
//   max_value       largest finite magnitude the format represents
//   encode(float)   -> code bit pattern (uint32, low `bits` bits), round-to-nearest-even, saturating
//   decode(code)    -> float
//
// Integer-grid formats also provide code_min, code_max, step (a power of two), is_signed, dense_grid
// (every integer in [code_min, code_max] is a code), to_integer(code) and from_integer(v): the integer
// kernels accumulate to_integer() values in int32/int64. A quantizer multiplies a format's values by a
// scale, so one format serves per-tensor, per-channel and per-group policies alike.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "tcomp/core/config.hpp"

namespace tcomp {

enum class format_family { integer_grid, floating };

template <class F>
concept number_format = requires(float x, std::uint32_t code) {
    { F::bits } -> std::convertible_to<int>;
    { F::name } -> std::convertible_to<std::string_view>;
    { F::family } -> std::convertible_to<format_family>;
    { F::max_value } -> std::convertible_to<float>;
    { F::encode(x) } -> std::same_as<std::uint32_t>;
    { F::decode(code) } -> std::same_as<float>;
} && (F::bits >= 1) && (F::bits <= 16);

template <class F>
concept integer_grid_format = number_format<F> && (F::family == format_family::integer_grid) &&
                              requires(std::uint32_t code, int v) {
                                  { F::code_min } -> std::convertible_to<int>;
                                  { F::code_max } -> std::convertible_to<int>;
                                  { F::step } -> std::convertible_to<float>;
                                  { F::is_signed } -> std::convertible_to<bool>;
                                  { F::dense_grid } -> std::convertible_to<bool>;
                                  { F::to_integer(code) } -> std::same_as<int>;
                                  { F::from_integer(v) } -> std::same_as<std::uint32_t>;
                              };

template <class F>
concept floating_format = number_format<F> && (F::family == format_family::floating);

namespace detail {

/// True for integer grids with holes (binary: {-1, +1}): no zero code, rounding is by sign.
template <class F>
constexpr bool is_sign_grid() {
    if constexpr (integer_grid_format<F>) return !F::dense_grid;
    else return false;
}

/// Round half to even without depending on the floating-point environment's rounding mode.
TCOMP_HOST_DEVICE constexpr double round_half_even(double v) {
    // |v| >= 2^52 is already an integer in double.
    if (v >= 4503599627370496.0 || v <= -4503599627370496.0) return v;
    const double t = static_cast<double>(static_cast<long long>(v));  // truncation toward zero
    const double f = v >= t ? t : t - 1.0;                              // floor
    const double frac = v - f;
    if (frac > 0.5) return f + 1.0;
    if (frac < 0.5) return f;
    const long long fi = static_cast<long long>(f);
    return (fi % 2 == 0) ? f : f + 1.0;
}

/// Two's complement pattern of v in `bits` bits, and back.
TCOMP_HOST_DEVICE constexpr std::uint32_t to_twos_complement(int v, int bits) {
    return static_cast<std::uint32_t>(v) & ((1u << bits) - 1u);
}
TCOMP_HOST_DEVICE constexpr int from_twos_complement(std::uint32_t code, int bits) {
    const std::uint32_t masked = code & ((1u << bits) - 1u);
    const std::uint32_t sign = 1u << (bits - 1);
    return static_cast<int>(masked ^ sign) - static_cast<int>(sign);
}

/// Integer-grid encode shared by all such formats: value/step, round half to even, saturate.
template <class F>
TCOMP_HOST_DEVICE constexpr std::uint32_t encode_integer_grid(float x) {
    if (!(x == x)) return F::from_integer(0);  // NaN never reaches here through the quantizers; be total.
    double v = round_half_even(static_cast<double>(x) / static_cast<double>(F::step));
    if (v < F::code_min) v = F::code_min;
    if (v > F::code_max) v = F::code_max;
    return F::from_integer(static_cast<int>(v));
}

}  // namespace detail
}  // namespace tcomp
