// Choosing the scales of a matrix: split it into the granularity's cells, let the observer pick each
// cell's clip range, turn ranges into ideal scales, let the scale kind make them representable, then
// place zero points. The result, a scale_table, is what encoding uses; calibrated activations keep one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/element.hpp"
#include "tcomp/quant/quantizer.hpp"

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

/// The cell grid of quantizer Q over a rows x cols matrix. `shared_rows`: one row of cells for all rows
/// (calibrated activations). A K that the group size does not divide is an error: no silent padding.
template <class Q>
scale_grid grid_for(index_t rows, index_t cols, bool shared_rows, const char* where) {
    using G = typename Q::granularity;
    scale_grid grid;
    grid.group_size = G::group_size > 0 ? G::group_size : std::max<index_t>(cols, 1);
    if constexpr (G::group_size > 0)  // constexpr: no `% 0` for nvcc to warn about in the whole-row case
        if (cols % G::group_size != 0)
            throw_error<shape_error>(where, ": K = ", cols, " is not a multiple of the group size ", G::group_size,
                                     " (per_group<", G::group_size,
                                     ">); tcomp never pads or changes format silently: choose a group size that divides K");
    grid.cols = cols / grid.group_size;
    grid.rows = (G::per_row && !shared_rows) ? rows : 1;
    return grid;
}

template <class Q>
constexpr float code_range_max() {
    using F = typename Q::format;
    if constexpr (integer_grid_format<F>) return static_cast<float>(F::code_max);
    else return F::max_value;
}

struct cell_choice {
    double ideal = 0.0;
    float amax = 0.0f;
    float lo = 0.0f;
};

/// Ideal scale for the clip range [lo, hi] (code units: x ~ S * (v - z)).
template <class Q>
cell_choice ideal_for_range(float lo, float hi, std::span<const float> values) {
    using F = typename Q::format;
    cell_choice out;
    out.lo = std::min(lo, 0.0f);
    if constexpr (is_sign_grid<F>()) {
        // Binary: the L2-optimal scale for sign codes is mean |x| (XNOR-Net), not amax.
        double sum = 0.0;
        for (float v : values) sum += std::fabs(v);
        out.ideal = values.empty() ? 0.0 : static_cast<double>(static_cast<float>(sum / static_cast<double>(values.size())));
        out.amax = std::max(std::fabs(lo), std::fabs(hi));
    } else if constexpr (Q::has_zero_point) {
        const float range = std::max(hi, 0.0f) - std::min(lo, 0.0f);
        out.ideal = static_cast<double>(range / static_cast<float>(F::code_max - F::code_min));
        out.amax = std::max(std::fabs(lo), std::fabs(hi));
    } else {
        bool is_signed = true;
        if constexpr (integer_grid_format<F>) is_signed = F::is_signed;
        out.amax = is_signed ? std::max(std::fabs(lo), std::fabs(hi)) : std::max(hi, 0.0f);
        out.ideal = static_cast<double>(out.amax / code_range_max<Q>());
    }
    return out;
}

template <class Q>
int zero_point_for(float lo, float scale) {
    using F = typename Q::format;
    if constexpr (Q::has_zero_point) {
        double z = round_half_even(static_cast<double>(static_cast<float>(F::code_min) - std::min(lo, 0.0f) / scale));
        z = std::clamp(z, static_cast<double>(F::code_min), static_cast<double>(F::code_max));
        return static_cast<int>(z);
    } else {
        (void)lo, (void)scale;
        return 0;
    }
}

/// Squared quantize-dequantize error of a cell at a candidate clip range (round to nearest).
template <class Q>
double clip_error(std::span<const float> values, float lo, float hi) {
    using F = typename Q::format;
    const cell_choice c = ideal_for_range<Q>(lo, hi, values);
    const double ideal[1] = {c.ideal};
    const float amax[1] = {c.amax};
    const float scale = Q::scale::template assign<F>(ideal, amax).effective[0];
    const int zero = zero_point_for<Q>(c.lo, scale);
    using deterministic = quantizer<F, typename Q::scheme, typename Q::granularity, typename Q::scale>;
    double err = 0.0;
    for (float x : values) {
        const float dq = dequantize_value<deterministic>(quantize_value<deterministic>(x, scale, zero, 0, 0), scale, zero);
        err += (static_cast<double>(x) - dq) * (static_cast<double>(x) - dq);
    }
    return err;
}

template <class Q>
cell_choice choose_cell(std::span<const float> values) {
    using O = typename Q::observer;
    auto [lo, hi] = observe_range<O>(values, !Q::has_zero_point);
    if constexpr (is_mse_search<O>::value) {
        double best = clip_error<Q>(values, lo, hi);
        float best_lo = lo, best_hi = hi;
        for (int i = 1; i <= O::steps; ++i) {
            const float alpha = 1.0f - 0.95f * static_cast<float>(i) / static_cast<float>(O::steps);
            const double e = clip_error<Q>(values, alpha * lo, alpha * hi);
            if (e < best) best = e, best_lo = alpha * lo, best_hi = alpha * hi;
        }
        lo = best_lo, hi = best_hi;
    }
    return ideal_for_range<Q>(lo, hi, values);
}

/// Scales for the cells whose values are given (cells in grid order).
template <class Q>
scale_table scales_from_cells(const scale_grid& grid, const std::vector<std::vector<float>>& cells) {
    using F = typename Q::format;
    std::vector<double> ideal(cells.size());
    std::vector<float> amax(cells.size());
    std::vector<float> lo(cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i) {
        const cell_choice c = choose_cell<Q>(cells[i]);
        ideal[i] = c.ideal, amax[i] = c.amax, lo[i] = c.lo;
    }
    scale_assignment assigned = Q::scale::template assign<F>(ideal, amax);
    scale_table table;
    table.rows = grid.rows, table.cols = grid.cols, table.group_size = grid.group_size;
    table.stored = std::move(assigned.stored);
    table.effective = std::move(assigned.effective);
    table.tensor_scale = assigned.tensor_scale;
    table.zero.resize(cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i) table.zero[i] = zero_point_for<Q>(lo[i], table.effective[i]);
    return table;
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
