// quantizer_params<Q>(): a quantizer type's choices as a run-time quantizer_desc, all but the format (which
// the quantization engine takes as a format_info row, so the typed path works for a user's own format too).
#pragma once

#include <type_traits>

#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/quantizer.hpp"
#include "tcomp/sparse/pattern.hpp"

namespace tcomp::detail {

/// Everything of Q but its format: what the quantization engine needs besides the format's row.
template <class Q>
constexpr quantizer_desc quantizer_params() {
    using G = typename Q::granularity;
    using S = typename Q::scale;
    using O = typename Q::observer;
    quantizer_desc q;
    q.scheme = Q::has_zero_point ? scheme_kind::asymmetric : scheme_kind::symmetric;
    if constexpr (std::is_same_v<G, per_tensor>) q.granularity = granularity_kind::tensor;
    else if constexpr (std::is_same_v<G, per_channel>) q.granularity = granularity_kind::channel;
    else if constexpr (std::is_same_v<G, per_token>) q.granularity = granularity_kind::token;
    else q.granularity = granularity_kind::group, q.group_size = G::group_size;
    if constexpr (std::is_same_v<S, float_scale>) q.scale = scale_kind::float_;
    else if constexpr (std::is_same_v<S, pow2_scale>) q.scale = scale_kind::pow2;
    else if constexpr (std::is_same_v<S, f16_scale>) q.scale = scale_kind::f16;
    else if constexpr (std::is_same_v<S, e8m0_scale>) q.scale = scale_kind::e8m0;
    else if constexpr (std::is_same_v<S, unit_scale>) q.scale = scale_kind::unit;
    else  // the two-level kinds: the shift width is their entry width, a power-of-two tensor scale = shiftable
        q.scale = S::power_of_two ? scale_kind::shiftable : scale_kind::multi_level, q.shift_bits = S::storage_bits;
    q.rounding = Q::rounding::is_stochastic ? rounding_kind::stochastic : rounding_kind::nearest_even;
    if constexpr (is_percentile<O>::value) q.observer = observer_kind::percentile, q.observer_param = O::parts_per_million;
    else if constexpr (is_mse_search<O>::value) q.observer = observer_kind::mse, q.observer_param = O::steps;
    q.calibrated = !Q::activation_mode::is_dynamic;
    return q;
}

}  // namespace tcomp::detail

namespace tcomp {

/// The run-time sparsity_desc of a pattern type (density: the default 0.5, a run-time choice).
template <class S>
constexpr sparsity_desc describe_sparsity() {
    sparsity_desc s;
    s.kind = S::kind;
    s.n = S::n, s.m = S::m, s.block_rows = S::block_rows, s.block_cols = S::block_cols;
    return s;
}

}  // namespace tcomp
