// Static (calibrated) activation scales from a layer's input statistics, without keeping the calibration data:
// the descriptor's activation quantizer (per tensor or per group of input channels, its own observer: min/max,
// percentile or MSE clip search) sees the statistics' row sample plus two rows holding each channel's running
// min and max, so a min/max observer gets the exact range of every calibration row and the clip searches get
// a uniform sample. The result is the ordinary row of scales compressed_tensor::activation_scales holds.
#pragma once

#include <vector>

#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace tcomp::calib {

/// Calibrated scales of quantizer a (which must be static) for inputs with these statistics.
inline scale_table static_activation_scales(const input_statistics& stats, const quantizer_desc& a) {
    if (!a.calibrated)
        tcomp::detail::throw_error<value_error>("static_activation_scales: ", spell(a),
                                                " is dynamic (add :static to calibrate)");
    if (stats.rows() == 0)
        tcomp::detail::throw_error<value_error>("static_activation_scales: no calibration rows were observed");
    const index_t k = stats.channels();
    std::vector<float> range(static_cast<std::size_t>(2 * k));
    for (index_t c = 0; c < k; ++c) {
        range[static_cast<std::size_t>(c)] = stats.channel_min()[static_cast<std::size_t>(c)];
        range[static_cast<std::size_t>(k + c)] = stats.channel_max()[static_cast<std::size_t>(c)];
    }
    std::vector<matrix_view<const float>> batches{matrix_view<const float>(range.data(), 2, k)};
    if (stats.sample_count() > 0) batches.push_back(stats.sample());
    return calibrate_activations(a, batches);
}

/// t with its static activation scales set from the statistics of its (smoothed, when t has smoothing divisors)
/// input; t unchanged when its descriptor's activations are dynamic or float.
inline compressed_tensor with_static_activations(compressed_tensor t, const input_statistics& stats) {
    if (!t.needs_calibration()) return t;
    if (stats.channels() != t.cols())
        tcomp::detail::throw_error<shape_error>("with_static_activations: the statistics have ", stats.channels(),
                                                " input channels, the weights ", t.cols(), " columns");
    t.activation_scales = static_activation_scales(t.smoothing.empty() ? stats : stats.divided_by(t.smoothing),
                                                   *t.desc.activations);
    return t;
}

}  // namespace tcomp::calib
