// Importance-weighted scale search (llama.cpp's imatrix with make_qx_quants): each cell's scale is chosen to
// minimise sum_j importance_j * (w_j - dequant(quant(w_j)))^2, with importance_j = mean x_j^2 over the
// calibration inputs of input channel j (input_statistics::mean_square). With x independent across channels
// this is the cell's contribution to the layer's expected output error, where plain RTN minimises nothing
// (it takes amax) and the mse observer weighs every channel alike.
//
// Per cell: candidate clip ranges alpha * [lo, hi] for alpha from 1 down to min_clip (steps of clip_steps),
// each through the descriptor's own scale kind and zero-point rule; then, for float scales, a weighted
// least-squares refit of the scale for the codes of the best candidate (s = sum(i w v) / sum(i v v), v the
// decoded values at scale 1), kept when it lowers the weighted error. alpha = 1 is RTN's own choice, so the
// result is never worse than RTN on the weighted objective. Two-level kinds keep the tensor scale of the RTN
// assignment and search each cell's shift. The output is an ordinary compressed_tensor.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "tcomp/calib/scale_cells.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/format_table.hpp"

namespace tcomp::calib {

struct imatrix_options {
    /// The smallest clip ratio tried.
    float min_clip = 0.5f;
    /// Candidates between 1 and min_clip.
    int clip_steps = 25;
    /// Weighted least-squares refits of a float scale after the search.
    int refits = 2;
};

namespace detail {

inline double weighted_error(const format_info& f, std::span<const float> x, std::span<const float> importance,
                             const cell_scale& s) {
    double e = 0.0;
    for (std::size_t j = 0; j < x.size(); ++j) {
        const double d = static_cast<double>(x[j]) - round_trip(f, x[j], s);
        e += static_cast<double>(importance[j]) * d * d;
    }
    return e;
}

}  // namespace detail

/// The scale table of W[N x K] under descriptor d with each cell's scale chosen for importance[K] (>= 0, finite;
/// e.g. input_statistics::mean_square()). Dense descriptors with round to nearest; any format and scale kind.
inline scale_table importance_scales(matrix_view<const float> w, std::span<const float> importance, const descriptor& d,
                                     const imatrix_options& options = {}) {
    detail::require_dense_nearest(d, "importance_scales");
    const index_t n = w.rows(), k = w.cols();
    if (static_cast<index_t>(importance.size()) != k)
        tcomp::detail::throw_error<shape_error>("importance_scales: ", importance.size(), " importances for ", k,
                                                " input channels");
    for (std::size_t j = 0; j < importance.size(); ++j)
        if (!std::isfinite(importance[j]) || importance[j] < 0.0f)
            tcomp::detail::throw_error<value_error>("importance_scales: importance(", j, ") is ", importance[j],
                                                    " (must be finite and >= 0)");
    if (!(options.min_clip > 0.0f && options.min_clip <= 1.0f) || options.clip_steps < 0 || options.refits < 0)
        tcomp::detail::throw_error<value_error>("importance_scales: min_clip ", options.min_clip, " must be in (0, 1], ",
                                                "clip_steps and refits >= 0");
    tcomp::detail::require_finite(w, "importance_quantize", "W");

    const format_info& f = format_info_for(d.weights.format);
    const quantizer_desc& q = d.weights;
    const tcomp::detail::scale_grid grid = tcomp::detail::grid_for(q, n, k, false, "importance_quantize");
    scale_table table = tcomp::detail::scales_from_cells(f, q, grid, tcomp::detail::gather_cells(w, grid, {}));
    const index_t g = grid.group_size;
    // A channel of importance 0 still gets a tiny weight, so an all-dead cell falls back to plain MSE.
    double mean_importance = 0.0;
    for (float v : importance) mean_importance += v;
    mean_importance = k > 0 ? mean_importance / static_cast<double>(k) : 0.0;
    const float floor_importance = static_cast<float>(mean_importance > 0.0 ? 1e-6 * mean_importance : 1.0);

    std::vector<float> x, imp;
    for (index_t r = 0; r < grid.rows; ++r)
        for (index_t c = 0; c < grid.cols; ++c) {
            // The cell's elements: one row's group, or (per tensor) every row's.
            const index_t k0 = c * g, r0 = grid.rows == 1 ? 0 : r, r1 = grid.rows == 1 ? n : r + 1;
            x.clear(), imp.clear();
            for (index_t rr = r0; rr < r1; ++rr)
                for (index_t j = 0; j < g; ++j) {
                    x.push_back(w(rr, k0 + j));
                    imp.push_back(std::max(importance[static_cast<std::size_t>(k0 + j)], floor_importance));
                }
            const index_t cell = table.cell(r, k0);
            detail::cell_scale best = detail::get(table, cell);  // RTN's
            double best_error = detail::weighted_error(f, x, imp, best);
            const auto [lo, hi] = tcomp::detail::observe_range(q, x);
            for (int i = 1; i <= options.clip_steps; ++i) {
                const float alpha = 1.0f - (1.0f - options.min_clip) * static_cast<float>(i) / static_cast<float>(options.clip_steps);
                const detail::cell_scale s = detail::scale_for_range(f, q, alpha * lo, alpha * hi, x, table.tensor_scale);
                const double e = detail::weighted_error(f, x, imp, s);
                if (e < best_error) best_error = e, best = s;
            }
            if ((q.scale == scale_kind::float_ || q.scale == scale_kind::f16) && !f.sign_grid)
                for (int it = 0; it < options.refits; ++it) {
                    double num = 0.0, den = 0.0;
                    for (std::size_t j = 0; j < x.size(); ++j) {
                        const std::uint32_t code = tcomp::detail::quantize_value(f, rounding_kind::nearest_even, x[j],
                                                                                 best.effective, best.zero, 0, 0);
                        const double v = tcomp::detail::dequantize_value(f, code, 1.0f, best.zero);
                        num += static_cast<double>(imp[j]) * x[j] * v, den += static_cast<double>(imp[j]) * v * v;
                    }
                    if (!(den > 0.0) || !(num > 0.0)) break;
                    detail::cell_scale s = best;
                    s.effective = static_cast<float>(num / den);
                    if (!std::isfinite(s.effective) || !(s.effective >= std::numeric_limits<float>::min())) break;
                    s.stored = tcomp::detail::float_bits(s.effective);
                    if (q.scale == scale_kind::f16) {  // the refit, rounded to the nearest half
                        s.effective = tcomp::detail::half_scale_value(num / den);
                        s.stored = fp16_format::encode(s.effective);
                    }
                    const double e = detail::weighted_error(f, x, imp, s);
                    if (!(e < best_error)) break;
                    best_error = e, best = s;
                }
            detail::put(table, cell, best);
        }
    return table;
}

/// W under d with importance_scales' scales: an ordinary compressed tensor.
inline compressed_tensor importance_quantize(matrix_view<const float> w, std::span<const float> importance,
                                             const descriptor& d, const imatrix_options& options = {}) {
    const scale_table table = importance_scales(w, importance, d, options);
    compressed_tensor out;
    out.desc = d;
    out.storage = tcomp::detail::encode(format_info_for(d.weights.format), d.weights, d.sparsity, w, {}, table, {},
                                        "importance_quantize");
    return out;
}

}  // namespace tcomp::calib
