// Magnitude pruning to a sparsity pattern: returns a keep-mask (1 = kept) of W[rows x cols], row-major.
//   n_m<N, M>            per row, in each run of M along K, the N largest |w| (ties: lower column first)
//   block_sparse<R, C>   the round(density * tiles) tiles with the largest L1 norm, over the whole matrix
//   unstructured         per row, the round(density * cols) largest |w| (each row keeps the same budget)
// round() is half away from zero, and at least one tile / element per row is kept (a layer pruned to
// nothing is a mistake, not a sparsity level). Ties break toward the lower index so masks are deterministic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "tcomp/core/matrix_view.hpp"
#include "tcomp/sparse/pattern.hpp"

namespace tcomp {

namespace detail {
inline index_t kept_count(double density, index_t total, const char* where) {
    if (!(density > 0.0 && density <= 1.0))
        throw_error<value_error>(where, ": density ", density, " must be in (0, 1]");
    return std::max<index_t>(1, static_cast<index_t>(std::llround(density * static_cast<double>(total))));
}

/// Indices of the `keep` largest scores among [0, n), stable for ties.
inline std::vector<index_t> top_indices(const std::vector<double>& score, index_t keep) {
    std::vector<index_t> order(score.size());
    std::iota(order.begin(), order.end(), index_t{0});
    std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
        return score[static_cast<std::size_t>(a)] > score[static_cast<std::size_t>(b)];
    });
    // Shrink with erase, not resize: resize's (dead) growing path trips GCC 12's -Warray-bounds at -O3.
    order.erase(order.begin() + std::min<index_t>(std::max<index_t>(keep, 0), static_cast<index_t>(order.size())),
                order.end());
    return order;
}
}  // namespace detail

/// Keep-mask for a run-time pattern (kind and its numbers, as packed_layout / sparsity_desc hold them);
/// `density` is the kept fraction for block and unstructured patterns.
inline std::vector<std::uint8_t> magnitude_mask(sparsity_kind kind, int n, int m, int block_rows, int block_cols,
                                                matrix_view<const float> w, double density = 0.5) {
    const index_t rows = w.rows(), cols = w.cols();
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(rows * cols), 0);
    auto at = [&](index_t r, index_t c) -> std::uint8_t& { return mask[static_cast<std::size_t>(r * cols + c)]; };
    if (kind == sparsity_kind::dense) {
        std::fill(mask.begin(), mask.end(), std::uint8_t{1});
    } else if (kind == sparsity_kind::n_m) {
        if (m < 1 || n < 1 || n > m) detail::throw_error<value_error>("magnitude_mask: invalid N:M pattern ", n, ":", m);
        if (cols % m != 0)
            detail::throw_error<shape_error>("magnitude_mask<n_m<", n, ", ", m, ">>: K = ", cols,
                                             " is not a multiple of M = ", m);
        std::vector<double> score(static_cast<std::size_t>(m));
        for (index_t r = 0; r < rows; ++r)
            for (index_t b = 0; b < cols; b += m) {
                for (int j = 0; j < m; ++j) score[static_cast<std::size_t>(j)] = std::fabs(w(r, b + j));
                for (index_t j : detail::top_indices(score, n)) at(r, b + j) = 1;
            }
    } else if (kind == sparsity_kind::block) {
        if (block_rows < 1 || block_cols < 1)
            detail::throw_error<value_error>("magnitude_mask: invalid block ", block_rows, "x", block_cols);
        if (rows % block_rows != 0 || cols % block_cols != 0)
            detail::throw_error<shape_error>("magnitude_mask<block_sparse<", block_rows, ", ", block_cols, ">>: shape ",
                                             rows, "x", cols, " is not a multiple of the block");
        const index_t tile_rows = rows / block_rows, tile_cols = cols / block_cols;
        std::vector<double> score(static_cast<std::size_t>(tile_rows * tile_cols), 0.0);
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < cols; ++c)
                score[static_cast<std::size_t>((r / block_rows) * tile_cols + c / block_cols)] += std::fabs(w(r, c));
        const index_t keep = detail::kept_count(density, tile_rows * tile_cols, "magnitude_mask<block_sparse>");
        for (index_t t : detail::top_indices(score, keep)) {
            const index_t tr = t / tile_cols, tc = t % tile_cols;
            for (index_t r = 0; r < block_rows; ++r)
                for (index_t c = 0; c < block_cols; ++c) at(tr * block_rows + r, tc * block_cols + c) = 1;
        }
    } else {
        const index_t keep = detail::kept_count(density, cols, "magnitude_mask<unstructured>");
        std::vector<double> score(static_cast<std::size_t>(cols));
        for (index_t r = 0; r < rows; ++r) {
            for (index_t c = 0; c < cols; ++c) score[static_cast<std::size_t>(c)] = std::fabs(w(r, c));
            for (index_t c : detail::top_indices(score, keep)) at(r, c) = 1;
        }
    }
    return mask;
}

/// Keep-mask for `Pattern`; `density` is the kept fraction for block and unstructured patterns.
template <sparsity_pattern Pattern>
std::vector<std::uint8_t> magnitude_mask(matrix_view<const float> w, double density = 0.5) {
    return magnitude_mask(Pattern::kind, Pattern::n, Pattern::m, Pattern::block_rows, Pattern::block_cols, w, density);
}

/// W with the pruned elements set to zero (for measuring what pruning alone costs).
template <sparsity_pattern Pattern>
dense_matrix<float> prune(matrix_view<const float> w, double density = 0.5) {
    const auto mask = magnitude_mask<Pattern>(w, density);
    dense_matrix<float> out(w.rows(), w.cols());
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < w.cols(); ++c)
            out(r, c) = mask[static_cast<std::size_t>(r * w.cols() + c)] ? w(r, c) : 0.0f;
    return out;
}

}  // namespace tcomp
