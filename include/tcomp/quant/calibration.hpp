// Static (calibrated) activation quantization: an observer sees calibration batches, then fixes one row
// of scales (per tensor, or per group of columns) shared by every token at inference.
// It keeps the calibration values of each cell (what percentile and clip search need); for very large
// calibration sets, feed a representative sample.
#pragma once

#include <vector>

#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/quantizer.hpp"
#include "tcomp/quant/scale_selection.hpp"

namespace tcomp {

template <class Q>
class activation_calibrator {
    static_assert(is_quantizer<Q>::value, "activation_calibrator<Q>: Q must be a tcomp::quantizer");
    static_assert(!Q::activation_mode::is_dynamic,
                  "activation_calibrator<Q>: Q is dynamic (scales from each input); add tcomp::calibrated to calibrate");

public:
    /// Adds a batch X[rows x K] of activations.
    void observe(matrix_view<const float> x) {
        detail::require_finite(x, "activation_calibrator::observe", "x");
        const auto grid = detail::grid_for<Q>(x.rows(), x.cols(), true, "activation_calibrator::observe");
        if (cells_.empty()) {
            grid_ = grid, cols_ = x.cols();
            cells_.resize(static_cast<std::size_t>(grid.cols));
        } else if (x.cols() != cols_) {
            detail::throw_error<shape_error>("activation_calibrator::observe: batch has ", x.cols(),
                                             " columns, earlier batches had ", cols_);
        }
        auto batch = detail::gather_cells(x, grid, {});
        for (std::size_t i = 0; i < cells_.size(); ++i) cells_[i].insert(cells_[i].end(), batch[i].begin(), batch[i].end());
        ++batches_;
    }
    bool empty() const { return batches_ == 0; }
    index_t batches() const { return batches_; }

    /// The fixed scales; an error before any batch was observed.
    scale_table finish() const {
        if (empty())
            detail::throw_error<value_error>("activation_calibrator::finish: no calibration batch observed");
        return detail::scales_from_cells<Q>(grid_, cells_);
    }

private:
    detail::scale_grid grid_;
    index_t cols_ = 0;
    index_t batches_ = 0;
    std::vector<std::vector<float>> cells_;
};

}  // namespace tcomp
