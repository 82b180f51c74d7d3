// SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language
// Models", 2023): activation outliers sit in a few input channels, so part of their range is migrated into the
// weights, which quantize easily:
//
//   s_j = max|X_j|^alpha / max|W_:j|^(1 - alpha);  weights Q(W diag(s)), input x / s
//
// (compressed_tensor::smoothing, or folded into the operation before the layer by a model that can). alpha is
// searched per layer: each candidate's layer output on the statistics' row sample, activations quantized as the
// descriptor says (per token at run time, or with static scales calibrated on the smoothed statistics), against
// the float layer's; the unsmoothed layer is a candidate too, so the search never returns worse than plain
// quantization on that sample. The descriptor must quantize activations (weight-only layers have no activation
// error to migrate: AWQ is their method) and the statistics must hold a row sample.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tcomp/calib/activation_scales.hpp"
#include "tcomp/calib/awq.hpp"
#include "tcomp/calib/scale_cells.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/activation_round_trip.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace tcomp::calib {

struct smoothquant_options {
    /// alpha takes i / steps for i = 0 .. steps (0: weights' range only, 1: activations' range only).
    int steps = 20;
};

struct smoothquant_report {
    float alpha = -1.0f;        // the chosen strength; -1: the unsmoothed layer won
    double error = 0.0;         // ||Y - Y_q||^2 / ||Y||^2 on the sample, the result
    double error_plain = 0.0;   // the same without smoothing
};

namespace detail {

/// ||X W^T - Xq Wq^T||^2 / ||X W^T||^2 on the sample rows x, the activations through t's activation quantizer.
inline double sample_output_error(matrix_view<const float> x, matrix_view<const float> w, const compressed_tensor& t) {
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const index_t m = x.rows(), k = x.cols();
    dense_matrix<float> xs(m, k);
    for (index_t r = 0; r < m; ++r)
        for (index_t c = 0; c < k; ++c)
            xs(r, c) = t.smoothing.empty() ? x(r, c) : x(r, c) / t.smoothing[static_cast<std::size_t>(c)];
    const dense_matrix<float> xq =
        t.desc.activations ? tcomp::detail::round_trip_activations(xs.view(), *t.desc.activations,
                                                                   t.activation_scales ? &*t.activation_scales : nullptr,
                                                                   "smoothquant")
                           : xs;
    const dense_matrix<float> wq = dequantize(t);
    const Eigen::Map<const row_major> xm(x.data(), m, k), xqm(xq.view().data(), m, k),
        wm(w.data(), w.rows(), k), wqm(wq.view().data(), wq.rows(), k);
    const Eigen::MatrixXd y = (xm * wm.transpose()).cast<double>();
    const Eigen::MatrixXd yq = (xqm * wqm.transpose()).cast<double>();
    const double den = y.squaredNorm();
    return den > 0.0 ? (y - yq).squaredNorm() / den : 0.0;
}

}  // namespace detail

/// SmoothQuant of W[N x K] under descriptor d (quantized activations) with the statistics of the layer's input
/// (with a row sample: collect them with sample_rows > 0). The result carries its smoothing divisors (none when
/// the unsmoothed layer wins) and, for static activations, the scales calibrated on the smoothed statistics.
inline compressed_tensor smoothquant(matrix_view<const float> w, const input_statistics& stats, const descriptor& d,
                                     const smoothquant_options& options = {}, smoothquant_report* report = nullptr) {
    validate(d);
    if (!d.activations)
        tcomp::detail::throw_error<error>("smoothquant: ", spell(d), " keeps activations in float: there is no "
                                          "activation error to migrate (awq is the weight-only method)");
    const index_t k = w.cols();
    if (stats.channels() != k)
        tcomp::detail::throw_error<shape_error>("smoothquant: the statistics have ", stats.channels(),
                                                " input channels, the weights ", k, " columns");
    if (stats.rows() == 0)
        tcomp::detail::throw_error<value_error>("smoothquant: no calibration rows were observed (an empty calibration set)");
    if (stats.sample_count() == 0)
        tcomp::detail::throw_error<value_error>("smoothquant: the statistics hold no row sample (gather them with "
                                                "sample_rows > 0) and the strength search needs real rows");
    if (options.steps < 1) tcomp::detail::throw_error<value_error>("smoothquant: steps ", options.steps, " (need >= 1)");
    tcomp::detail::require_finite(w, "smoothquant", "W");
    const matrix_view<const float> x = stats.sample();

    compressed_tensor best = with_static_activations(compress(d, w), stats);
    double best_error = detail::sample_output_error(x, w, best);
    const double plain = best_error;
    float best_alpha = -1.0f;
    std::vector<float> w_absmax(static_cast<std::size_t>(k), 0.0f), s(static_cast<std::size_t>(k));
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < k; ++c)
            w_absmax[static_cast<std::size_t>(c)] = std::max(w_absmax[static_cast<std::size_t>(c)], std::fabs(w(r, c)));
    for (int i = 0; i <= options.steps; ++i) {
        const float alpha = static_cast<float>(i) / static_cast<float>(options.steps);
        for (index_t c = 0; c < k; ++c) {
            const float xa = stats.absmax()[static_cast<std::size_t>(c)], wa = w_absmax[static_cast<std::size_t>(c)];
            // A channel with no activation or no weight has nothing to migrate.
            const float v = xa > 0.0f && wa > 0.0f ? std::pow(xa, alpha) / std::pow(wa, 1.0f - alpha) : 1.0f;
            s[static_cast<std::size_t>(c)] = std::isfinite(v) && v > 0.0f ? v : 1.0f;
        }
        compressed_tensor t = compress(d, detail::scale_columns(w, s).view());
        t.smoothing = s;
        t = with_static_activations(std::move(t), stats);
        const double e = detail::sample_output_error(x, w, t);
        if (e < best_error) best = std::move(t), best_error = e, best_alpha = alpha;
    }
    if (report != nullptr) *report = smoothquant_report{best_alpha, best_error, plain};
    return best;
}

}  // namespace tcomp::calib
