// Choosing the scales of a matrix: split it into the granularity's cells, let the observer pick each
// cell's clip range, turn ranges into ideal scales, let the scale kind make them representable, then
// place zero points. The result, a scale_table, is what encoding uses; calibrated activations keep one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/element.hpp"
#include "tcomp/quant/quantizer.hpp"
#include "tcomp/quant/quantizer_params.hpp"
#include "tcomp/quant/scale.hpp"

namespace tcomp {

/// Decided scales for a [rows x cols] matrix: a grid of rows x cols cells, each group_size wide along K.
struct scale_table {
    index_t rows = 0;
    index_t cols = 0;
    index_t group_size = 0;
    std::vector<std::uint32_t> stored;  // the scale kind's stored entry per cell
    std::vector<float> effective;       // S per cell
    std::vector<int> zero;              // z per cell (0 when symmetric)
    float tensor_scale = 1.0f;

    index_t cell(index_t r, index_t k) const { return (rows == 1 ? 0 : r) * cols + k / group_size; }
};

namespace detail {

struct scale_grid {
    index_t rows = 1;
    index_t cols = 1;
    index_t group_size = 1;
};

/// The cell grid of quantizer q over a rows x cols matrix. `shared_rows`: one row of cells for all rows
/// (calibrated activations). A K that the group size does not divide is an error: no silent padding.
inline scale_grid grid_for(const quantizer_desc& q, index_t rows, index_t cols, bool shared_rows, const char* where) {
    scale_grid grid;
    const index_t g = q.group();
    grid.group_size = g > 0 ? g : std::max<index_t>(cols, 1);
    if (g > 0 && cols % g != 0)
        throw_error<shape_error>(where, ": K = ", cols, " is not a multiple of the group size ", g, " (per_group<", g,
                                 ">); tcomp never pads or changes format silently: choose a group size that divides K");
    grid.cols = cols / grid.group_size;
    grid.rows = (q.per_row() && !shared_rows) ? rows : 1;
    return grid;
}
template <class Q>
scale_grid grid_for(index_t rows, index_t cols, bool shared_rows, const char* where) {
    return grid_for(quantizer_params<Q>(), rows, cols, shared_rows, where);
}

struct cell_choice {
    double ideal = 0.0;
    float amax = 0.0f;
    float lo = 0.0f;
};

/// Ideal scale for the clip range [lo, hi] (code units: x ~ S * (v - z)).
inline cell_choice ideal_for_range(const format_info& f, const quantizer_desc& q, float lo, float hi,
                                   std::span<const float> values) {
    cell_choice out;
    out.lo = std::min(lo, 0.0f);
    if (f.sign_grid) {
        // Binary: the L2-optimal scale for sign codes is mean |x| (XNOR-Net), not amax.
        double sum = 0.0;
        for (float v : values) sum += std::fabs(v);
        out.ideal = values.empty() ? 0.0 : static_cast<double>(static_cast<float>(sum / static_cast<double>(values.size())));
        out.amax = std::max(std::fabs(lo), std::fabs(hi));
    } else if (q.has_zero_point()) {
        const float range = std::max(hi, 0.0f) - std::min(lo, 0.0f);
        out.ideal = static_cast<double>(range / static_cast<float>(f.code_max - f.code_min));
        // Finite data near +-FLT_MAX: the float range overflows to Inf; in double it does not, and the scale
        // (range / levels) is a finite float again. Only then: every other range keeps the float arithmetic.
        if (!std::isfinite(range))
            out.ideal = (static_cast<double>(std::max(hi, 0.0f)) - static_cast<double>(std::min(lo, 0.0f))) /
                        static_cast<double>(f.code_max - f.code_min);
        out.amax = std::max(std::fabs(lo), std::fabs(hi));
    } else {
        const bool is_signed = f.integer_grid() ? f.is_signed : true;
        out.amax = is_signed ? std::max(std::fabs(lo), std::fabs(hi)) : std::max(hi, 0.0f);
        out.ideal = static_cast<double>(out.amax / f.range_max());
    }
    return out;
}
template <class Q>
cell_choice ideal_for_range(float lo, float hi, std::span<const float> values) {
    return ideal_for_range(format_info_of<typename Q::format>(), quantizer_params<Q>(), lo, hi, values);
}

inline int zero_point_for(const format_info& f, const quantizer_desc& q, float lo, float scale) {
    if (!q.has_zero_point()) return 0;
    double z = round_half_even(static_cast<double>(static_cast<float>(f.code_min) - std::min(lo, 0.0f) / scale));
    z = std::clamp(z, static_cast<double>(f.code_min), static_cast<double>(f.code_max));
    return static_cast<int>(z);
}
template <class Q>
int zero_point_for(float lo, float scale) {
    if constexpr (Q::has_zero_point) return zero_point_for(format_info_of<typename Q::format>(), quantizer_params<Q>(), lo, scale);
    else return (void)lo, (void)scale, 0;
}

/// The range the observer (other than the search) picks for one group.
inline std::pair<float, float> observe_range(const quantizer_desc& q, std::span<const float> values) {
    if (q.observer != observer_kind::percentile) return min_max_range(values);  // also the search's start
    const double fraction = q.observer_param / 1e6;
    if (!q.has_zero_point()) {
        std::vector<float> magnitudes(values.size());
        std::transform(values.begin(), values.end(), magnitudes.begin(), [](float v) { return std::fabs(v); });
        const float a = quantile(std::move(magnitudes), fraction);
        return {-a, a};
    }
    std::vector<float> copy(values.begin(), values.end());
    return {quantile(copy, 1.0 - fraction), quantile(copy, fraction)};
}

/// Squared quantize-dequantize error of a cell at a candidate clip range (round to nearest).
inline double clip_error(const format_info& f, const quantizer_desc& q, std::span<const float> values, float lo,
                         float hi) {
    const cell_choice c = ideal_for_range(f, q, lo, hi, values);
    const double ideal[1] = {c.ideal};
    const float amax[1] = {c.amax};
    const float scale = assign_scales(q.scale, q.shift_bits, f, ideal, amax).effective[0];
    const int zero = zero_point_for(f, q, c.lo, scale);
    double err = 0.0;
    for (float x : values) {
        const float dq = dequantize_value(f, quantize_value(f, rounding_kind::nearest_even, x, scale, zero, 0, 0), scale, zero);
        err += (static_cast<double>(x) - dq) * (static_cast<double>(x) - dq);
    }
    return err;
}

inline cell_choice choose_cell(const format_info& f, const quantizer_desc& q, std::span<const float> values) {
    auto [lo, hi] = observe_range(q, values);
    if (q.observer == observer_kind::mse) {
        const int steps = q.observer_param;
        double best = clip_error(f, q, values, lo, hi);
        float best_lo = lo, best_hi = hi;
        for (int i = 1; i <= steps; ++i) {
            const float alpha = 1.0f - 0.95f * static_cast<float>(i) / static_cast<float>(steps);
            const double e = clip_error(f, q, values, alpha * lo, alpha * hi);
            if (e < best) best = e, best_lo = alpha * lo, best_hi = alpha * hi;
        }
        lo = best_lo, hi = best_hi;
    }
    return ideal_for_range(f, q, lo, hi, values);
}

/// Scales for the cells whose values are given (cells in grid order): the one scale-selection path, typed
/// quantizers and descriptors alike.
inline scale_table scales_from_cells(const format_info& f, const quantizer_desc& q, const scale_grid& grid,
                                     const std::vector<std::vector<float>>& cells) {
    std::vector<double> ideal(cells.size());
    std::vector<float> amax(cells.size());
    std::vector<float> lo(cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i) {
        const cell_choice c = choose_cell(f, q, cells[i]);
        ideal[i] = c.ideal, amax[i] = c.amax, lo[i] = c.lo;
    }
    scale_assignment assigned = assign_scales(q.scale, q.shift_bits, f, ideal, amax);
    scale_table table;
    table.rows = grid.rows, table.cols = grid.cols, table.group_size = grid.group_size;
    table.stored = std::move(assigned.stored);
    table.effective = std::move(assigned.effective);
    table.tensor_scale = assigned.tensor_scale;
    table.zero.resize(cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i) table.zero[i] = zero_point_for(f, q, lo[i], table.effective[i]);
    return table;
}
template <class Q>
scale_table scales_from_cells(const scale_grid& grid, const std::vector<std::vector<float>>& cells) {
    return scales_from_cells(format_info_of<typename Q::format>(), quantizer_params<Q>(), grid, cells);
}

/// Gathers each cell's kept values of x (mask: 1 = kept; empty mask = all kept).
inline std::vector<std::vector<float>> gather_cells(matrix_view<const float> x, const scale_grid& grid,
                                                    const std::vector<std::uint8_t>& mask) {
    std::vector<std::vector<float>> cells(static_cast<std::size_t>(grid.rows * grid.cols));
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) {
            if (!mask.empty() && !mask[static_cast<std::size_t>(r * x.cols() + c)]) continue;
            const index_t cell = (grid.rows == 1 ? 0 : r) * grid.cols + c / grid.group_size;
            cells[static_cast<std::size_t>(cell)].push_back(x(r, c));
        }
    return cells;
}

}  // namespace detail

/// Scales quantizer Q would use for x (kept elements only, when a mask is given).
template <class Q>
scale_table choose_scales(matrix_view<const float> x, const std::vector<std::uint8_t>& mask = {},
                          bool shared_rows = false) {
    const auto grid = detail::grid_for<Q>(x.rows(), x.cols(), shared_rows, "choose_scales");
    return detail::scales_from_cells<Q>(grid, detail::gather_cells(x, grid, mask));
}

}  // namespace tcomp
