// compressed_tensor: a weight matrix compressed under a run-time descriptor, in the canonical packed layout,
// with the calibrated activation scales when the descriptor quantizes activations statically. It is what
// files store and load, what recipes produce and what models run; compress(descriptor, W) gives exactly the
// bytes compress<P>(W) gives for the policy type P that describe<P>() names (one engine serves both).
#pragma once

#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/core/packed_storage.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/describe.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/format_table.hpp"

namespace tcomp {

struct compressed_tensor {
    descriptor desc;
    packed_buffers storage;
    /// Calibrated activation scales (one shared row of cells), when desc's activations are static.
    std::optional<scale_table> activation_scales;
    /// Per-input-channel smoothing divisors s (K entries, or empty: none). A layer with them computes
    /// quantize(x / s) against weights compressed from W diag(s): SmoothQuant's and AWQ's migration when it is
    /// not folded into the operation before the layer. Its cost: one multiply per input element and call.
    std::vector<float> smoothing;

    index_t rows() const { return storage.layout.rows; }
    index_t cols() const { return storage.layout.cols; }
    /// Every stored byte: the packed weights and the activation scales (entries and zero points).
    std::size_t bytes() const {
        std::size_t b = storage.bytes();
        if (activation_scales && desc.activations) {
            const auto n = static_cast<index_t>(activation_scales->stored.size());
            const quantizer_desc& a = *desc.activations;
            b += packed_bytes(n, detail::scale_storage_bits(a.scale, a.shift_bits));
            if (a.has_zero_point()) b += packed_bytes(n, format_info_for(a.format).bits);
            if (a.scale == scale_kind::multi_level || a.scale == scale_kind::shiftable) b += sizeof(float);
        }
        return b + smoothing.size() * sizeof(float);
    }
    double bits_per_weight() const {
        const auto n = static_cast<double>(rows() * cols());
        return n == 0 ? 0.0 : 8.0 * static_cast<double>(bytes()) / n;
    }
    bool needs_calibration() const { return desc.activations && desc.activations->calibrated; }
};

/// The packed layout descriptor d gives an n x k weight matrix; throws shape_error naming `where` when d cannot
/// take that shape (a group size or M that does not divide K, a block that does not tile the matrix).
inline packed_layout expected_layout(const descriptor& d, index_t n, index_t k, const char* where) {
    const format_info& f = format_info_for(d.weights.format);
    const auto grid = detail::grid_for(d.weights, n, k, false, where);
    packed_layout l = detail::layout_for(f, d.weights, d.sparsity, n, k, grid);
    l.validate(where);
    return l;
}

/// Whether two layouts are the same (every field).
inline bool same_layout(const packed_layout& a, const packed_layout& b) {
    return a.rows == b.rows && a.cols == b.cols && a.code_bits == b.code_bits && a.scale_bits == b.scale_bits &&
           a.scale_rows == b.scale_rows && a.scale_cols == b.scale_cols && a.group_size == b.group_size &&
           a.has_zero_points == b.has_zero_points && a.has_tensor_scale == b.has_tensor_scale &&
           a.sparsity == b.sparsity && a.sparse_n == b.sparse_n && a.sparse_m == b.sparse_m &&
           a.block_rows == b.block_rows && a.block_cols == b.block_cols;
}

/// Prunes and quantizes W[N x K] under d (d is validated first). Static activations are left uncalibrated:
/// calibrate() them, or set activation_scales from a file.
inline compressed_tensor compress(const descriptor& d, matrix_view<const float> w, const quantize_options& options = {}) {
    validate(d);
    compressed_tensor out;
    out.desc = d;
    quantize_options o = options;
    if (d.sparsity.kind == sparsity_kind::block || d.sparsity.kind == sparsity_kind::bitmap) o.density = d.sparsity.density;
    out.storage = detail::compress_packed(format_info_for(d.weights.format), d.weights, d.sparsity, w, o);
    return out;
}

/// The float weights a compressed tensor stands for (pruned elements 0).
/// The stored weights decoded (codes x scales: W diag(s) for a tensor with smoothing divisors s).
inline dense_matrix<float> dequantize(const compressed_tensor& t) {
    return detail::dequantize_packed(format_info_for(t.desc.weights.format), t.desc.weights, t.storage.view());
}
/// The weights the layer multiplies its input by: dequantize(t) with any smoothing divided back out.
inline dense_matrix<float> effective_weights(const compressed_tensor& t) {
    dense_matrix<float> w = dequantize(t);
    if (!t.smoothing.empty())
        for (index_t r = 0; r < w.rows(); ++r)
            for (index_t c = 0; c < w.cols(); ++c) w(r, c) /= t.smoothing[static_cast<std::size_t>(c)];
    return w;
}

namespace detail {
/// Checks that `t`'s storage and activation scales are exactly what its descriptor gives its shape.
inline void check_tensor(const compressed_tensor& t, const char* where) {
    validate(t.desc);
    const packed_layout want = expected_layout(t.desc, t.rows(), t.cols(), where);
    if (!same_layout(want, t.storage.layout))
        throw_error<shape_error>(where, ": the packed layout is not the one ", spell(t.desc), " gives a ", t.rows(),
                                 "x", t.cols(), " matrix");
    t.storage.view().validate(where);
    if (!t.smoothing.empty()) {
        if (static_cast<index_t>(t.smoothing.size()) != t.cols())
            throw_error<shape_error>(where, ": ", t.smoothing.size(), " smoothing divisors for K = ", t.cols());
        for (std::size_t i = 0; i < t.smoothing.size(); ++i)
            if (!std::isfinite(t.smoothing[i]) || !(t.smoothing[i] > 0.0f))
                throw_error<value_error>(where, ": smoothing divisor ", i, " is ", t.smoothing[i],
                                         " (must be finite and positive)");
    }
    if (t.activation_scales) {
        if (!t.needs_calibration())
            throw_error<shape_error>(where, ": activation scales given, but ", spell(t.desc),
                                     " has no calibrated activations");
        const scale_grid g = grid_for(*t.desc.activations, 1, t.cols(), true, where);
        const scale_table& s = *t.activation_scales;
        const auto n = static_cast<std::size_t>(g.cols);
        if (s.rows != 1 || s.cols != g.cols || s.group_size != g.group_size || s.stored.size() != n ||
            s.effective.size() != n || s.zero.size() != n)
            throw_error<shape_error>(where, ": activation scales have ", s.cols, " cells of ", s.group_size,
                                     ", the descriptor needs ", g.cols, " of ", g.group_size);
    }
}
}  // namespace detail

/// Calibrated activation scales of quantizer `a` over calibration batches X[rows x K] (all K equal).
inline scale_table calibrate_activations(const quantizer_desc& a, std::span<const matrix_view<const float>> batches) {
    if (!a.calibrated)
        detail::throw_error<value_error>("calibrate_activations: ", spell(a), " is dynamic (add :static to calibrate)");
    if (batches.empty()) detail::throw_error<value_error>("calibrate_activations: no calibration batch");
    const index_t k = batches[0].cols();
    const detail::scale_grid grid = detail::grid_for(a, 1, k, true, "calibrate_activations");
    std::vector<std::vector<float>> cells(static_cast<std::size_t>(grid.cols));
    for (const matrix_view<const float>& x : batches) {
        detail::require_finite(x, "calibrate_activations", "x");
        if (x.cols() != k)
            detail::throw_error<shape_error>("calibrate_activations: a batch has ", x.cols(), " columns, the first ", k);
        auto batch = detail::gather_cells(x, detail::scale_grid{1, grid.cols, grid.group_size}, {});
        for (std::size_t i = 0; i < cells.size(); ++i) cells[i].insert(cells[i].end(), batch[i].begin(), batch[i].end());
    }
    return detail::scales_from_cells(format_info_for(a.format), a, grid, cells);
}

/// Feeds calibration batches to t's static activation quantizer and stores the scales.
inline void calibrate(compressed_tensor& t, std::span<const matrix_view<const float>> batches) {
    if (!t.needs_calibration())
        detail::throw_error<value_error>("calibrate: ", spell(t.desc), " has no calibrated (static) activations");
    for (const auto& x : batches)
        if (x.cols() != t.cols())
            detail::throw_error<shape_error>("calibrate: activations have ", x.cols(), " columns, weights have K = ",
                                             t.cols());
    t.activation_scales = calibrate_activations(*t.desc.activations, batches);
}

/// The typed weights of a compressed tensor whose descriptor is describe<P>() (else shape_error).
template <class P>
compressed_weights<P> to_typed(compressed_tensor t, const char* where = "to_typed") {
    descriptor want = describe<P>();
    want.sparsity.density = t.desc.sparsity.density;
    if (!(want == t.desc))
        detail::throw_error<shape_error>(where, ": the tensor is ", spell(t.desc), ", not ", spell(describe<P>()));
    compressed_weights<P> out{typename compressed_weights<P>::matrix_type(std::move(t.storage))};
    if constexpr (compressed_weights<P>::calibrated_activations())
        if (t.activation_scales) out.set_activation_scales(std::move(*t.activation_scales));
    return out;
}

/// A compressed_tensor of typed weights (the same bytes).
template <class P>
compressed_tensor to_tensor(const compressed_weights<P>& w) {
    compressed_tensor t;
    t.desc = describe<P>();
    t.storage = w.weights().storage();
    if constexpr (compressed_weights<P>::calibrated_activations())
        if (w.has_activation_scales()) t.activation_scales = w.activation_scales();
    return t;
}

}  // namespace tcomp
