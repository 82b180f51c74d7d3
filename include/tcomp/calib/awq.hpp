// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization for LLM Compression and Acceleration", 2023):
// input channels that carry large activations matter most, so their weights are scaled up before quantization
// (finer relative steps) and the input is divided by the same factors, which leaves the float layer unchanged:
//
//   s_j = a_j^alpha / sqrt(max a^alpha * min a^alpha),  a_j = RMS of input channel j (the statistics keep mean
//         x^2; the reference code uses mean |x|), alpha from a grid on [0, 1);
//   the layer's weights are Q(W diag(s)) and its input x / s (compressed_tensor::smoothing, or folded into the
//   operation before the layer by a model that can).
//
// alpha is chosen per layer by the output error on the calibration inputs, tr(E H E^T) with E = W - Q(W diag(s))
// diag(s)^-1 and H = sum x^T x in float (for K > 2048 with a row sample much smaller than K: ||E X_s^T||^2 on the
// sample; without a Hessian: its diagonal, the mean squares). alpha = 0 is
// RTN itself, so the search never returns worse than RTN on that measure. Then the clip search: each cell's
// range is shrunk where that lowers the importance-weighted error of the smoothed weights (imatrix.hpp with
// importance mean (x / s)^2, kept only if the full output error agrees), or GPTQ on the smoothed weights and
// statistics (awq_options::gptq). Dense descriptors with round to nearest; binary weights are refused (scaling
// the channels of a sign-only format changes nothing but the group's mean).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/imatrix.hpp"
#include "tcomp/calib/scale_cells.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/format_table.hpp"

namespace tcomp::calib {

struct awq_options {
    /// alpha takes the values i / grid for i = 0 .. grid - 1 (the reference code's n_grid).
    int grid = 20;
    /// The clip search after the scale search.
    bool clip = true;
    /// GPTQ of the smoothed weights instead of RTN + clip (with importance-searched static scales, act-order).
    bool gptq = false;
    double damp = 0.01;
};

struct awq_report {
    float alpha = 0.0f;           // the chosen migration strength (0: no smoothing)
    bool clipped = false;         // whether the clip search's scales were kept
    double proxy_loss = 0.0;      // tr(E H E^T) / tr(W H W^T) of the result
    double proxy_loss_rtn = 0.0;  // the same for RTN
};

namespace detail {

/// How the strength search measures a candidate's output error: ||E X^T||^2 over the calibration inputs through the
/// Hessian (tr(E H E^T), float GEMM: N K^2 per candidate), through the row sample when K is large and the sample
/// much smaller than K (S N K), else through the diagonal (sum x^2).
struct error_measure {
    using row_major_f = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::MatrixXf h;  // the Hessian, or empty
    row_major_f x;      // the sample rows, or empty
    std::vector<float> ms;
    matrix_view<const float> w;
    double den = 0.0;  // ||W X^T||^2 in the same form

    error_measure(const input_statistics& stats, matrix_view<const float> weights) : w(weights) {
        const index_t k = w.cols();
        if (stats.has_hessian() && (k <= 2048 || stats.sample_count() < 64 || 4 * stats.sample_count() > k)) {
            h = stats.hessian().cast<float>();
        } else if (stats.sample_count() > 0) {
            const matrix_view<const float> s = stats.sample();
            x.resize(s.rows(), k);
            for (index_t r = 0; r < s.rows(); ++r)
                for (index_t c = 0; c < k; ++c) x(r, c) = s(r, c);
        }
        ms = stats.mean_square();
        den = raw(dense_matrix<float>(w.rows(), k));  // E = W when Q = 0
    }
    /// ||E X^T||^2 (or its Hessian / diagonal form) for E = W - q.
    double raw(const dense_matrix<float>& q) const {
        const index_t n = w.rows(), k = w.cols();
        row_major_f e(n, k);
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < k; ++c) e(r, c) = w(r, c) - q(r, c);
        if (h.size() > 0) {
            const row_major_f eh = e * h;
            return static_cast<double>(eh.cwiseProduct(e).sum());
        }
        if (x.size() > 0) return static_cast<double>((x * e.transpose()).squaredNorm());
        double num = 0.0;
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < k; ++c) num += static_cast<double>(ms[static_cast<std::size_t>(c)]) * e(r, c) * e(r, c);
        return num;
    }
    /// ||E X^T||^2 / ||W X^T||^2 for effective weights q.
    double operator()(const dense_matrix<float>& q) const {
        return den > 0.0 ? raw(q) / den : 0.0;
    }
};

/// The layer's output error of effective weights q against w on the calibration inputs: tr(E H E^T) / tr(W H W^T)
/// with the Hessian, else with its diagonal (sum x^2).
inline double output_error(matrix_view<const float> w, const dense_matrix<float>& q, const input_statistics& stats,
                           const Eigen::MatrixXd& h) {
    if (h.size() > 0) return relative_output_error(w, q, h);
    const std::vector<float> ms = stats.mean_square();
    double num = 0.0, den = 0.0;
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < w.cols(); ++c) {
            const double e = static_cast<double>(w(r, c)) - q(r, c), x = w(r, c);
            num += ms[static_cast<std::size_t>(c)] * e * e, den += ms[static_cast<std::size_t>(c)] * x * x;
        }
    return den > 0.0 ? num / den : 0.0;
}

/// W diag(s).
inline dense_matrix<float> scale_columns(matrix_view<const float> w, std::span<const float> s) {
    dense_matrix<float> out(w.rows(), w.cols());
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < w.cols(); ++c) out(r, c) = w(r, c) * s[static_cast<std::size_t>(c)];
    return out;
}

}  // namespace detail

/// AWQ of W[N x K] under descriptor d with the statistics of the layer's input. The result carries its
/// smoothing divisors (none when alpha = 0 wins). Errors: shape_error for statistics of another width,
/// value_error for no calibration rows or non-finite weights, error for a descriptor AWQ cannot take.
inline compressed_tensor awq(matrix_view<const float> w, const input_statistics& stats, const descriptor& d,
                             const awq_options& options = {}, awq_report* report = nullptr) {
    detail::require_dense_nearest(d, "awq");
    const format_info& f = format_info_for(d.weights.format);
    if (f.sign_grid)
        tcomp::detail::throw_error<error>("awq: ", spell(d), " has sign-only weights: scaling input channels changes "
                                          "nothing but each group's mean (use gptq or rtn)");
    const index_t n = w.rows(), k = w.cols();
    if (stats.channels() != k)
        tcomp::detail::throw_error<shape_error>("awq: the statistics have ", stats.channels(), " input channels, the "
                                                "weights ", k, " columns");
    if (options.grid < 1) tcomp::detail::throw_error<value_error>("awq: grid ", options.grid, " (need >= 1)");
    tcomp::detail::require_finite(w, "awq", "W");
    const std::vector<float> rms = stats.rms();  // value_error without rows
    const Eigen::MatrixXd h = stats.has_hessian() && k <= 2048 ? stats.hessian() : Eigen::MatrixXd();
    const compressed_tensor rtn = compress(d, w);
    if (n == 0 || k == 0) return rtn;
    const detail::error_measure measure(stats, w);
    const double rtn_error = measure(dequantize(rtn));

    // Channels never excited get the smallest excited RMS (their weights do not matter; s must stay > 0).
    float floor_rms = 0.0f;
    for (float v : rms)
        if (v > 0.0f && (floor_rms == 0.0f || v < floor_rms)) floor_rms = v;
    if (floor_rms == 0.0f) floor_rms = 1.0f;

    compressed_tensor best = rtn;
    double best_error = rtn_error;
    float best_alpha = 0.0f;
    std::vector<float> s(static_cast<std::size_t>(k));
    for (int i = 1; i < options.grid; ++i) {
        const float alpha = static_cast<float>(i) / static_cast<float>(options.grid);
        float lo = std::numeric_limits<float>::infinity(), hi = 0.0f;
        for (index_t c = 0; c < k; ++c) {
            const float v = std::pow(std::max(rms[static_cast<std::size_t>(c)], floor_rms), alpha);
            s[static_cast<std::size_t>(c)] = v, lo = std::min(lo, v), hi = std::max(hi, v);
        }
        const float norm = std::sqrt(lo * hi);
        for (float& v : s) v /= norm;
        compressed_tensor t = compress(d, detail::scale_columns(w, s).view());
        t.smoothing = s;
        const double e = measure(effective_weights(t));
        if (e < best_error) best = std::move(t), best_error = e, best_alpha = alpha;
    }

    bool clipped = false;
    if (options.clip || options.gptq) {
        // The smoothed problem: weights W diag(s), inputs x / s (s = 1 when alpha = 0 won).
        const std::vector<float> sm = best.smoothing.empty() ? std::vector<float>(static_cast<std::size_t>(k), 1.0f)
                                                             : best.smoothing;
        const dense_matrix<float> ws = detail::scale_columns(w, sm);
        const input_statistics smoothed = best.smoothing.empty() ? stats : stats.divided_by(sm);
        const scale_table table = importance_scales(ws.view(), smoothed.mean_square(), d);
        compressed_tensor t;
        if (options.gptq) {
            t = gptq(ws.view(), smoothed, d, gptq_options{.damp = options.damp, .act_order = true, .scales = &table});
        } else {
            t.desc = d;
            t.storage = tcomp::detail::encode(f, d.weights, d.sparsity, ws.view(), {}, table, {}, "awq");
        }
        t.smoothing = best.smoothing;
        const double e = measure(effective_weights(t));
        if (e < best_error || options.gptq) best = std::move(t), best_error = e, clipped = true;
    }
    if (report != nullptr) {
        // The report's figures through the exact double Hessian when there is one (the search may have used
        // float or the sample).
        const bool exact = h.size() > 0;
        *report = awq_report{best_alpha, clipped,
                             exact ? detail::output_error(w, effective_weights(best), stats, h) : best_error,
                             exact ? detail::output_error(w, dequantize(rtn), stats, h) : rtn_error};
    }
    return best;
}

}  // namespace tcomp::calib
