// A quantizer is a type: a number format plus options, in any order, each defaulted when left out:
//
//   quantizer<Format, [scheme], [granularity], [scale kind], [rounding], [observer], [activation mode]>
//   defaults: symmetric, per_tensor, float_scale, nearest_even, min_max, dynamic
//
// e.g. quantizer<int_format<4>, per_group<128>>   quantizer<int_format<8>, asymmetric, per_token, dynamic>
// Compositions that cannot work fail to compile with a message naming the problem.
#pragma once

#include <type_traits>

#include "tcomp/core/option_list.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/quant/activation_mode.hpp"
#include "tcomp/quant/granularity.hpp"
#include "tcomp/quant/observer.hpp"
#include "tcomp/quant/rounding.hpp"
#include "tcomp/quant/scale.hpp"
#include "tcomp/quant/scheme.hpp"

namespace tcomp {

namespace detail {
template <class Option>
constexpr bool is_quantizer_option() {
    return is_in_category<scheme_category, Option>() || is_in_category<granularity_category, Option>() ||
           is_in_category<scale_category, Option>() || is_in_category<rounding_category, Option>() ||
           is_in_category<observer_category, Option>() || is_in_category<activation_mode_category, Option>();
}
template <class Format>
constexpr bool has_zero_code() {
    return integer_grid_format<Format> && !is_sign_grid<Format>();
}
template <class Format>
constexpr bool has_positive_code() {
    if constexpr (integer_grid_format<Format>) return Format::code_max > 0;
    else return true;
}
}  // namespace detail

template <number_format Format, class... Options>
struct quantizer {
    static_assert((detail::is_quantizer_option<Options>() && ...),
                  "quantizer<Format, Options...>: an option is not a scheme, granularity, scale kind, rounding, "
                  "observer or activation mode");
    static_assert(detail::count_in_category<scheme_category, Options...> <= 1,
                  "quantizer: more than one scheme (symmetric / asymmetric) given");
    static_assert(detail::count_in_category<granularity_category, Options...> <= 1,
                  "quantizer: more than one granularity given");
    static_assert(detail::count_in_category<scale_category, Options...> <= 1, "quantizer: more than one scale kind given");
    static_assert(detail::count_in_category<rounding_category, Options...> <= 1, "quantizer: more than one rounding given");
    static_assert(detail::count_in_category<observer_category, Options...> <= 1, "quantizer: more than one observer given");
    static_assert(detail::count_in_category<activation_mode_category, Options...> <= 1,
                  "quantizer: more than one activation mode (dynamic / calibrated) given");

    using format = Format;
    using scheme = detail::pick_option_t<scheme_category, symmetric, Options...>;
    using granularity = detail::pick_option_t<granularity_category, per_tensor, Options...>;
    using scale = detail::pick_option_t<scale_category, float_scale, Options...>;
    using rounding = detail::pick_option_t<rounding_category, nearest_even, Options...>;
    using observer = detail::pick_option_t<observer_category, min_max, Options...>;
    using activation_mode = detail::pick_option_t<activation_mode_category, dynamic, Options...>;

    static constexpr bool is_integer = integer_grid_format<Format>;
    static constexpr bool has_zero_point = scheme::has_zero_point;
    static constexpr int code_bits = Format::bits;

    static_assert(!scheme::has_zero_point || is_integer,
                  "quantizer: asymmetric (zero-point) quantization needs an integer format; floating formats are "
                  "symmetric");
    static_assert(!scheme::has_zero_point || !is_integer || detail::has_zero_code<Format>(),
                  "quantizer: asymmetric quantization of a format without zero (binary_format: codes are -1 and +1 "
                  "only); use symmetric");
    static_assert(scheme::has_zero_point || detail::has_positive_code<Format>(),
                  "quantizer: symmetric quantization maps amax to the largest code, and this format has no positive "
                  "code (int_format<1>, fixed_point_format<0, 0>: -1 and 0 only); use asymmetric or uint_format<1>");
    static_assert(!rounding::is_stochastic || is_integer,
                  "quantizer: stochastic rounding is implemented for integer-grid formats only");
    static_assert(!std::is_same_v<granularity, per_token> || activation_mode::is_dynamic,
                  "quantizer: per_token granularity needs dynamic quantization (tokens are not known at "
                  "calibration time); use per_tensor or per_group for calibrated activations");
    static_assert(!scale::needs_groups || granularity::group_size > 0,
                  "quantizer: this scale kind (e8m0_scale, multi_level_scale, shiftable_scale) shares exponents "
                  "within groups and needs per_group<G>");
    static_assert(!std::is_same_v<scale, unit_scale> || !scheme::has_zero_point,
                  "quantizer: unit_scale (the format's own scale) has no zero point; use symmetric");
    static_assert(!std::is_same_v<scale, e8m0_scale> || !scheme::has_zero_point,
                  "quantizer: e8m0_scale (OCP MX) is symmetric by definition");
};

template <class T>
struct is_quantizer : std::false_type {};
template <class F, class... O>
struct is_quantizer<quantizer<F, O...>> : std::true_type {};

/// Activations left in float32: weight-only policies (W4A16 with fp32 compute, for instance).
struct float_activations {};

}  // namespace tcomp
