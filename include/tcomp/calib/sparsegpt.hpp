// N:M pruning that looks at the activations.
//
// SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
// 2023): GPTQ's column sweep with pruning in it. At the first column of every group of M columns each row keeps
// the N weights of the group with the largest w^2 / U_jj^2 (the OBS saliency; U the upper Cholesky factor of
// H^-1, as in gptq.hpp); then column by column a pruned weight's target is 0, a kept one's its quantized value,
// and the error (w - target) / U_jj is spread over the columns not yet reached. Quantization is joint, with
// static scales: the RTN scales of the magnitude-pruned original weights (for the 8-bit weights of "2:4 + W8" a
// scale barely moves; the reference code fixes its quantizer's scales up front the same way).
//
// Wanda (Sun et al., "A Simple and Effective Pruning Approach for Large Language Models", 2023): no update; each
// row keeps, per group of M, the N weights with the largest |W_ij| * ||X_j|| (the input channel's L2 norm over
// the calibration rows), then the kept weights are quantized as compress() would.
//
// Both return an ordinary compressed_tensor with the descriptor's N:M layout (sparsity metadata from their masks).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/format_table.hpp"
#include "tcomp/sparse/prune.hpp"

namespace tcomp::calib {

struct sparsegpt_options {
    /// Added to the Hessian's diagonal, as a fraction of its mean (as gptq_options::damp).
    double damp = 0.01;
    /// Columns per lazy-batch block (rounded up to a multiple of M).
    index_t block = 128;
};

struct sparsegpt_report {
    index_t dead_columns = 0;
    double proxy_loss = 0.0;            // tr(E H E^T) / tr(W H W^T), E = W - the layer's weights
    double proxy_loss_magnitude = 0.0;  // the same for magnitude N:M + RTN (compress())
};

namespace detail {

/// The N:M descriptor check shared by sparsegpt() and wanda().
inline void require_n_m(const descriptor& d, index_t k, const char* method) {
    validate(d);
    if (d.sparsity.kind != sparsity_kind::n_m)
        tcomp::detail::throw_error<error>(method, ": ", spell(d), " has no N:M sparsity (", method,
                                          " chooses N:M masks: add s=2:4)");
    if (k % d.sparsity.m != 0)
        tcomp::detail::throw_error<shape_error>(method, ": K = ", k, " is not a multiple of M = ", d.sparsity.m);
    if (d.weights.rounding != rounding_kind::nearest_even)
        tcomp::detail::throw_error<error>(method, ": ", spell(d), " rounds stochastically; ", method,
                                          " feeds back round-to-nearest errors");
}

/// Per row and group of M columns: keep the N largest scores (ties: the lower column).
inline std::vector<std::uint8_t> top_n_of_m(const dense_matrix<float>& score, int n, int m) {
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(score.rows() * score.cols()), 0);
    std::vector<int> idx(static_cast<std::size_t>(m));
    for (index_t r = 0; r < score.rows(); ++r)
        for (index_t c0 = 0; c0 < score.cols(); c0 += m) {
            std::iota(idx.begin(), idx.end(), 0);
            std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return score(r, c0 + a) > score(r, c0 + b); });
            for (int j = 0; j < n; ++j) mask[static_cast<std::size_t>(r * score.cols() + c0 + idx[static_cast<std::size_t>(j)])] = 1;
        }
    return mask;
}

}  // namespace detail

/// SparseGPT of W[N x K] under an N:M descriptor, with the Hessian of `stats`. Errors as gptq().
inline compressed_tensor sparsegpt(matrix_view<const float> w, const input_statistics& stats, const descriptor& d,
                                   const sparsegpt_options& options = {}, sparsegpt_report* report = nullptr) {
    const index_t n = w.rows(), k = w.cols();
    detail::require_n_m(d, k, "sparsegpt");
    detail::require_hessian_inputs(w, stats, options.damp, "sparsegpt");
    Eigen::MatrixXd h = stats.hessian();
    if (n == 0 || k == 0) return compress(d, w);
    const Eigen::MatrixXd h_calib = report != nullptr ? h : Eigen::MatrixXd();

    const format_info& f = format_info_for(d.weights.format);
    const quantizer_desc& q = d.weights;
    const int sn = d.sparsity.n, sm = d.sparsity.m;
    dense_matrix<float> work(n, k);
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < k; ++c) work(r, c) = w(r, c);
    const auto [damp, dead] = detail::condition_hessian(h, work, options.damp);
    std::vector<index_t> order(static_cast<std::size_t>(k));
    std::iota(order.begin(), order.end(), index_t{0});
    using detail::row_major_f;
    const row_major_f u = detail::inverse_cholesky_upper(h, order, damp, options.damp, stats.rows(), "sparsegpt");

    // Static scales: RTN's of the magnitude-pruned weights.
    const auto grid = tcomp::detail::grid_for(q, n, k, false, "sparsegpt");
    const std::vector<std::uint8_t> magnitude =
        tcomp::magnitude_mask(sparsity_kind::n_m, sn, sm, 0, 0, work.view(), 0.5);
    const scale_table table = tcomp::detail::scales_from_cells(f, q, grid, tcomp::detail::gather_cells(work.view(), grid, magnitude));

    row_major_f wt(k, n);  // row j = column j of W, contiguous for the updates
    for (index_t j = 0; j < k; ++j)
        for (index_t r = 0; r < n; ++r) wt(j, r) = work(r, j);
    dense_matrix<float> at_quantization(n, k);
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(n * k), 0);
    const index_t block = std::max<index_t>(sm, (std::max<index_t>(options.block, 1) + sm - 1) / sm * sm);
    dense_matrix<float> score(n, sm);
    for (index_t b0 = 0; b0 < k; b0 += block) {
        const index_t b1 = std::min(k, b0 + block);
        row_major_f err(b1 - b0, n);
        for (index_t j = b0; j < b1; ++j) {
            if (j % sm == 0) {  // this group's masks, from the weights as updated so far
                for (index_t r = 0; r < n; ++r)
                    for (index_t t = 0; t < sm; ++t) {
                        const float v = wt(j + t, r), ujj = u(j + t, j + t);
                        score(r, t) = v * v / (ujj * ujj);
                    }
                const std::vector<std::uint8_t> m = detail::top_n_of_m(score, sn, sm);
                for (index_t r = 0; r < n; ++r)
                    for (index_t t = 0; t < sm; ++t) mask[static_cast<std::size_t>(r * k + j + t)] = m[static_cast<std::size_t>(r * sm + t)];
            }
            const float d_jj = u(j, j);
            for (index_t r = 0; r < n; ++r) {
                const float x = wt(j, r);
                const bool kept = mask[static_cast<std::size_t>(r * k + j)] != 0;
                at_quantization(r, j) = kept ? x : 0.0f;
                const float target = kept ? detail::round_trip(f, x, detail::get(table, table.cell(r, j))) : 0.0f;
                err(j - b0, r) = (x - target) / d_jj;
            }
            for (index_t t = j + 1; t < b1; ++t) {
                const float u_jt = u(j, t);
                if (u_jt != 0.0f) wt.row(t) -= u_jt * err.row(j - b0);
            }
        }
        if (b1 < k) wt.bottomRows(k - b1).noalias() -= u.block(b0, b1, b1 - b0, k - b1).transpose() * err;
    }

    compressed_tensor out;
    out.desc = d;
    out.storage = tcomp::detail::encode(f, q, d.sparsity, at_quantization.view(), mask, table, {}, "sparsegpt");
    if (report != nullptr) {
        report->dead_columns = dead;
        report->proxy_loss = detail::relative_output_error(w, dequantize(out), h_calib);
        report->proxy_loss_magnitude = detail::relative_output_error(w, dequantize(compress(d, w)), h_calib);
    }
    return out;
}

/// Wanda's N:M mask of W: per row and group of M, the N largest |W_ij| * ||X_j|| (1 = kept, row-major N x K).
inline std::vector<std::uint8_t> wanda_mask(matrix_view<const float> w, const input_statistics& stats, int n_keep,
                                            int m) {
    if (stats.channels() != w.cols())
        tcomp::detail::throw_error<shape_error>("wanda_mask: the statistics have ", stats.channels(),
                                                " input channels, the weights ", w.cols(), " columns");
    if (m < 1 || n_keep < 1 || n_keep > m)
        tcomp::detail::throw_error<value_error>("wanda_mask: invalid N:M pattern ", n_keep, ":", m);
    if (w.cols() % m != 0)
        tcomp::detail::throw_error<shape_error>("wanda_mask: K = ", w.cols(), " is not a multiple of M = ", m);
    tcomp::detail::require_finite(w, "wanda_mask", "W");
    const std::vector<float> ms = stats.mean_square();  // ||X_j|| = sqrt(rows * mean x^2): the factor is common
    dense_matrix<float> score(w.rows(), w.cols());
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < w.cols(); ++c) score(r, c) = std::fabs(w(r, c)) * std::sqrt(ms[static_cast<std::size_t>(c)]);
    return detail::top_n_of_m(score, n_keep, m);
}

/// Wanda: the activation-aware mask, then the kept weights quantized with RTN scales of the kept weights.
inline compressed_tensor wanda(matrix_view<const float> w, const input_statistics& stats, const descriptor& d) {
    detail::require_n_m(d, w.cols(), "wanda");
    const std::vector<std::uint8_t> mask = wanda_mask(w, stats, d.sparsity.n, d.sparsity.m);
    const format_info& f = format_info_for(d.weights.format);
    const auto grid = tcomp::detail::grid_for(d.weights, w.rows(), w.cols(), false, "wanda");
    const scale_table table = tcomp::detail::scales_from_cells(f, d.weights, grid, tcomp::detail::gather_cells(w, grid, mask));
    compressed_tensor out;
    out.desc = d;
    out.storage = tcomp::detail::encode(f, d.weights, d.sparsity, w, mask, table, {}, "wanda");
    return out;
}

}  // namespace tcomp::calib
