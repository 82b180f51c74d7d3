// Calibration observers: choose the clip range [lo, hi] that a group's scale must cover.
//   min_max                 the data's extremes: no clipping, the scale is set by the largest outlier
//   percentile<PPM>         the PPM/1e6 quantile of |x| (symmetric) or the two-sided quantiles (asymmetric):
//                           clips rare outliers; percentile<999900> keeps 99.99 %
//   mse_clip_search<Steps>  tries clip ratios alpha = 1 - 0.95 i / Steps (i = 0..Steps: 1 down to 0.05) of
//                           the min/max range and keeps the one with the smallest quantize-dequantize squared
//                           error on the group. The wide span matters for 1-3 bit grids, whose best clip is
//                           often 0.3-0.7 of the range (ternary: about 0.7 mean|w| as threshold, TWN)
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

namespace tcomp {

struct observer_category {};

struct min_max {
    using option_category = observer_category;
};

template <int PartsPerMillion>
struct percentile {
    static_assert(PartsPerMillion > 0 && PartsPerMillion <= 1000000,
                  "percentile<PPM>: the quantile must be in (0, 1000000] parts per million");
    using option_category = observer_category;
    static constexpr int parts_per_million = PartsPerMillion;
    static constexpr double fraction = PartsPerMillion / 1e6;
};

template <int Steps = 20>
struct mse_clip_search {
    static_assert(Steps >= 1 && Steps <= 1000, "mse_clip_search<Steps>: Steps must be in 1..1000");
    using option_category = observer_category;
    static constexpr int steps = Steps;
};

namespace detail {

inline std::pair<float, float> min_max_range(std::span<const float> values) {
    if (values.empty()) return {0.0f, 0.0f};
    auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    return {*lo, *hi};
}

/// Quantile q in [0,1] of `values` (nearest rank on a sorted copy).
inline float quantile(std::vector<float> values, double q) {
    if (values.empty()) return 0.0f;
    // q * n within rounding error of an integer is that integer: 1.0 - 0.999 is 0.0010000000000000009, and
    // its nearest rank in 4000 values is 4, not ceil(4.0000000000000036) = 5.
    const double position = q * static_cast<double>(values.size());
    const double nearest = std::round(position);
    const auto rank = static_cast<std::size_t>(std::fabs(position - nearest) <= 1e-9 * std::max(1.0, position)
                                                   ? nearest
                                                   : std::ceil(position));
    const std::size_t k = rank == 0 ? 0 : std::min(rank - 1, values.size() - 1);
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
}

template <class Observer>
struct is_percentile : std::false_type {};
template <int P>
struct is_percentile<percentile<P>> : std::true_type {};
template <class Observer>
struct is_mse_search : std::false_type {};
template <int S>
struct is_mse_search<mse_clip_search<S>> : std::true_type {};

// The range each observer picks for a group: detail::observe_range(quantizer_desc, values) in
// scale_selection.hpp, the one implementation for typed quantizers and descriptors alike.

}  // namespace detail
}  // namespace tcomp
