// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
// 2022): the columns of W[N x K] are quantized one at a time, and each column's rounding error is spread over
// the columns not yet quantized, weighted by the inverse Hessian of the layer's calibration inputs
// (H = sum x^T x), so that the layer's output error on those inputs, tr((W - Q) H (W - Q)^T), is what is
// minimised rather than each weight's own error.
//
//   H += damp * mean(diag H) * I;  dead channels (diag 0) get H_ii = 1 and W[:, i] = 0
//   U  = the upper Cholesky factor of H^-1 (U^T U = H^-1), from one Cholesky of the reversed H
//   for each block of columns, for each column i in it:
//       q = quantize(w_i);  e = (w_i - q) / U_ii;  w_j -= e * U_ij for the block's j > i
//   then the columns after the block get the block's errors at once (one GEMM): the "lazy batch" update.
//
// Scales: with dynamic groups (the default) a group's scales are chosen when its first column is reached, from
// the weights as updated so far (AutoGPTQ's rule); with static groups they are the RTN scales of the original
// weights. act_order processes columns by decreasing H_ii and implies static groups: each column keeps the group
// of its original position, so the result is an ordinary tensor in the canonical layout and no permutation is
// stored or applied by any kernel (AutoGPTQ's static_groups + desc_act). Two-level kinds (multi_level,
// shiftable) keep the tensor scale of the original weights and choose each group's shift as it is reached.
//
// The output is an ordinary compressed_tensor: the chosen scales, and the codes the encoder gives the weights
// as they stood when quantized, so it saves, loads and runs like any other. Every integer format (2..8 bits,
// fixed point, ternary, binary) and every float format with round to nearest; sparse descriptors are
// SparseGPT's (not here).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>
#include <utility>
#include <vector>

#include "tcomp/calib/scale_cells.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/format_table.hpp"

namespace tcomp::calib {

struct gptq_options {
    /// Added to the Hessian's diagonal, as a fraction of its mean (the reference code's percdamp).
    double damp = 0.01;
    /// Columns per lazy-batch block (raised to a multiple of the group size for dynamic groups).
    index_t block = 128;
    /// Quantize columns in decreasing order of H_ii (implies static groups; no permutation is stored).
    bool act_order = false;
    /// Group scales from the original weights (RTN's) instead of from the updated weights.
    bool static_groups = false;
    /// Static group scales to use instead of RTN's (e.g. calib::importance_scales of the same weights); implies
    /// static groups. Must have the descriptor's grid for W.
    const scale_table* scales = nullptr;
    /// Threads sharing the rows of W (1: the caller's only); the result does not depend on it.
    int threads = 1;
};

/// What a gptq() call did.
struct gptq_report {
    index_t dead_columns = 0;     // channels the calibration never excited (H_ii = 0): zeroed
    double damp_added = 0.0;      // the value added to H's diagonal
    bool static_groups = false;   // whether the group scales were fixed up front
    double proxy_loss = 0.0;      // tr((W - Q) H (W - Q)^T) / tr(W H W^T) on the calibration inputs
    double proxy_loss_rtn = 0.0;  // the same for round to nearest with the same descriptor
};

namespace detail {

/// tr(E H E^T) / tr(W H W^T) for E = W - Q, rows of W and Q in row-major float.
inline double relative_output_error(matrix_view<const float> w, const dense_matrix<float>& q, const Eigen::MatrixXd& h) {
    const index_t n = w.rows(), k = w.cols();
    Eigen::MatrixXd e(n, k), wd(n, k);
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < k; ++c) wd(r, c) = w(r, c), e(r, c) = static_cast<double>(w(r, c)) - q(r, c);
    const double num = (e * h).cwiseProduct(e).sum(), den = (wd * h).cwiseProduct(wd).sum();
    return den > 0.0 ? num / den : 0.0;
}

/// In-place inverse of an upper-triangular matrix by halves: inv([A B; 0 C]) = [inv A, -inv A B inv C; 0, inv C],
/// two triangular-matrix products per level, K^3 / 3 flops in GEMM-speed blocks (a triangular solve against the
/// identity takes K^3 and runs at about half the speed: 4.8 s against 2.2 s at K = 4096 here).
inline void invert_upper(Eigen::Ref<Eigen::MatrixXd> m) {
    const Eigen::Index n = m.rows();
    if (n <= 96) {
        const Eigen::MatrixXd inv = m.triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(n, n));
        m = inv;
        return;
    }
    const Eigen::Index h = n / 2;
    invert_upper(m.topLeftCorner(h, h));
    invert_upper(m.bottomRightCorner(n - h, n - h));
    const Eigen::MatrixXd ab = m.topLeftCorner(h, h).triangularView<Eigen::Upper>() * m.topRightCorner(h, n - h);
    m.topRightCorner(h, n - h).noalias() = -(ab * m.bottomRightCorner(n - h, n - h).triangularView<Eigen::Upper>());
    m.bottomLeftCorner(n - h, h).setZero();
}

using row_major_f = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The checks GPTQ and SparseGPT share: statistics of W's width, a finite non-negative damp, finite weights.
inline void require_hessian_inputs(matrix_view<const float> w, const input_statistics& stats, double damp,
                                   const char* method) {
    if (stats.channels() != w.cols())
        tcomp::detail::throw_error<shape_error>(method, ": the statistics have ", stats.channels(),
                                                " input channels, the weights ", w.cols(), " columns");
    if (!(damp >= 0.0) || !std::isfinite(damp))
        tcomp::detail::throw_error<value_error>(method, ": damp ", damp, " must be finite and >= 0");
    tcomp::detail::require_finite(w, method, "W");
}

/// Dead channels (H_ii = 0: no calibration input reached them) get H_ii = 1 and their weights in `work` zeroed
/// (the reference code's rule, so the factorisation exists); then damp * mean(diag H) is added to the diagonal.
/// Returns {the value added, dead channels}.
inline std::pair<double, index_t> condition_hessian(Eigen::MatrixXd& h, dense_matrix<float>& work, double damp) {
    index_t dead = 0;
    for (index_t c = 0; c < h.rows(); ++c)
        if (h(c, c) == 0.0) {
            h(c, c) = 1.0, ++dead;
            for (index_t r = 0; r < work.rows(); ++r) work(r, c) = 0.0f;
        }
    const double added = damp * h.diagonal().mean();
    h.diagonal().array() += added;
    return {added, dead};
}

/// U: upper with U^T U = (P H P^T)^-1 for the column order P. With R the reversal, chol(R H R) = L gives
/// H = (R L R)(R L R)^T, R L R upper; its inverse is U. value_error (naming `method`) when H is not positive
/// definite.
inline row_major_f inverse_cholesky_upper(const Eigen::MatrixXd& h, const std::vector<index_t>& order, double damp_added,
                                          double damp, index_t rows_seen, const char* method) {
    const index_t k = h.rows();
    Eigen::MatrixXd hr(k, k);
    for (index_t i = 0; i < k; ++i)
        for (index_t j = 0; j < k; ++j)
            hr(k - 1 - i, k - 1 - j) = h(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    Eigen::LLT<Eigen::MatrixXd> llt(hr);
    if (llt.info() != Eigen::Success)
        tcomp::detail::throw_error<value_error>(
            method, ": the Hessian is not positive definite after damping (", damp_added, " added to its diagonal, damp = ",
            damp, "); raise damp or calibrate on more, more varied rows (", rows_seen, " seen for K = ", k, ")");
    hr = llt.matrixL();  // reuse the buffer: L, then R L R, then its inverse
    hr = hr.reverse().eval();
    invert_upper(hr);
    return hr.cast<float>();
}

}  // namespace detail

/// GPTQ of W[N x K] (out x in) under descriptor d, with the Hessian of `stats` (gathered with it). Throws
/// shape_error when the statistics are for another width, value_error for no calibration rows, a Hessian that is
/// not positive definite after damping, or non-finite weights, and error for a descriptor GPTQ cannot take.
inline compressed_tensor gptq(matrix_view<const float> w, const input_statistics& stats, const descriptor& d,
                              const gptq_options& options = {}, gptq_report* report = nullptr) {
    detail::require_dense_nearest(d, "gptq");
    const index_t n = w.rows(), k = w.cols();
    detail::require_hessian_inputs(w, stats, options.damp, "gptq");
    Eigen::MatrixXd h = stats.hessian();  // value_error when empty or gathered without it
    if (n == 0 || k == 0) return compress(d, w);
    const Eigen::MatrixXd h_calib = report != nullptr ? h : Eigen::MatrixXd();

    const format_info& f = format_info_for(d.weights.format);
    const quantizer_desc& q = d.weights;
    const tcomp::detail::scale_grid grid = tcomp::detail::grid_for(q, n, k, false, "gptq");
    const index_t group = grid.group_size;

    dense_matrix<float> work(n, k);
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < k; ++c) work(r, c) = w(r, c);
    const auto [damp, dead] = detail::condition_hessian(h, work, options.damp);

    // Column order.
    std::vector<index_t> order(static_cast<std::size_t>(k));
    std::iota(order.begin(), order.end(), index_t{0});
    if (options.act_order)
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return h(a, a) > h(b, b); });

    using detail::row_major_f;
    const row_major_f u = detail::inverse_cholesky_upper(h, order, damp, options.damp, stats.rows(), "gptq");

    // Scales: the caller's, or RTN's of the (dead-zeroed) weights; dynamic groups overwrite each group's entries
    // when reached.
    scale_table table;
    if (options.scales != nullptr) {
        const scale_table& t = *options.scales;
        const auto cells = static_cast<std::size_t>(grid.rows * grid.cols);
        if (t.rows != grid.rows || t.cols != grid.cols || t.group_size != grid.group_size || t.stored.size() != cells ||
            t.effective.size() != cells || t.zero.size() != cells)
            tcomp::detail::throw_error<shape_error>("gptq: the given scale table is ", t.rows, "x", t.cols, " cells of ",
                                                    t.group_size, ", the descriptor's grid for W is ", grid.rows, "x",
                                                    grid.cols, " cells of ", grid.group_size);
        table = t;
    } else {
        table = tcomp::detail::scales_from_cells(f, q, grid, tcomp::detail::gather_cells(work.view(), grid, {}));
    }
    const bool static_groups = options.static_groups || options.act_order || options.scales != nullptr || group >= k;

    // Work in the permuted, transposed form: row j of wt is column order[j] of W, contiguous for the updates.
    row_major_f wt(k, n);
    for (index_t j = 0; j < k; ++j)
        for (index_t r = 0; r < n; ++r) wt(j, r) = work(r, order[static_cast<std::size_t>(j)]);
    dense_matrix<float> at_quantization(n, k);  // each weight as it stood when quantized: the encoder's input

    index_t block = std::max<index_t>(options.block, 1);
    if (!static_groups && group < k) block = std::max(group, (block + group - 1) / group * group);
    // Output rows are independent (each row's errors only move its own later weights; U is shared), so threads
    // take slices of rows: the same arithmetic per row whatever the thread count (bit-identical results).
    auto sweep = [&](index_t r0, index_t r1) {
        const index_t rows = r1 - r0;
        auto wr = wt.middleCols(r0, rows);
        std::vector<float> values(static_cast<std::size_t>(group));
        for (index_t b0 = 0; b0 < k; b0 += block) {
            const index_t b1 = std::min(k, b0 + block);
            row_major_f err(b1 - b0, rows);
            for (index_t j = b0; j < b1; ++j) {
                const index_t col = order[static_cast<std::size_t>(j)];
                if (!static_groups && col % group == 0) {
                    // A new group: its scales from the current (updated) weights of its columns.
                    for (index_t r = 0; r < rows; ++r) {
                        for (index_t t = 0; t < group; ++t) values[static_cast<std::size_t>(t)] = wr(j + t, r);
                        detail::put(table, table.cell(r0 + r, col), detail::scale_for_values(f, q, values, table.tensor_scale));
                    }
                }
                const float d_jj = u(j, j);
                for (index_t r = 0; r < rows; ++r) {
                    const float x = wr(j, r);
                    at_quantization(r0 + r, col) = x;
                    const float dq = detail::round_trip(f, x, detail::get(table, table.cell(r0 + r, col)));
                    err(j - b0, r) = (x - dq) / d_jj;
                }
                for (index_t t = j + 1; t < b1; ++t) {
                    const float u_jt = u(j, t);
                    if (u_jt != 0.0f) wr.row(t) -= u_jt * err.row(j - b0);
                }
            }
            if (b1 < k) wr.bottomRows(k - b1).noalias() -= u.block(b0, b1, b1 - b0, k - b1).transpose() * err;
        }
    };
    const index_t threads = std::clamp<index_t>(options.threads, 1, std::max<index_t>(1, n / 16));
    std::vector<std::thread> workers;
    for (index_t t = 1; t < threads; ++t) workers.emplace_back(sweep, n * t / threads, n * (t + 1) / threads);
    sweep(0, n / threads);
    for (std::thread& t : workers) t.join();

    compressed_tensor out;
    out.desc = d;
    out.storage = tcomp::detail::encode(f, q, d.sparsity, at_quantization.view(), {}, table, {}, "gptq");
    if (report != nullptr) {
        report->dead_columns = dead;
        report->damp_added = damp;
        report->static_groups = static_groups;
        report->proxy_loss = detail::relative_output_error(w, dequantize(out), h_calib);
        report->proxy_loss_rtn = detail::relative_output_error(w, dequantize(compress(d, w)), h_calib);
    }
    return out;
}

}  // namespace tcomp::calib
