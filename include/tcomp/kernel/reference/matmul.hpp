// The scalar reference GEMM, Y[M x N] = X[M x K] * W^T + bias, W[N x K] compressed: the oracle every
// SIMD and CUDA kernel is tested against. Written for clarity, not speed.
//
// Integer path (both operands on integer grids): along K the elements fall into segments where neither
// the activation cell nor the weight cell changes. Per segment s:
//     acc_s = sum_k (qx_k - zx) * (qw_k - zw)          exact, in int64
// and the epilogue, in float, in this order:
//     y = 0;  for each segment s in increasing k: y += float(acc_s) * (Sx_s * Sw_s);  y += bias
// A kernel that keeps the int32 accumulators exact and this order of float operations matches bit for bit
// (FMA contraction aside: allow 1 ulp per segment when comparing a kernel that fuses).
//
// Two-level power-of-two weight scales (multi_level_scale / shiftable_scale) with one activation scale per
// row take the shift epilogue instead (quant/shift_epilogue.hpp): acc_s << shift summed exactly in int64,
// one conversion at the end.
//
// Float path (either operand on a floating format, or float activations): both operands dequantized,
// products summed in double, rounded to float once, plus bias. Kernels accumulating in float are
// compared within a bound stated by their tests.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tcomp/core/matrix_view.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/compressed_matrix.hpp"
#include "tcomp/quant/requantize.hpp"
#include "tcomp/quant/shift_epilogue.hpp"

namespace tcomp::reference {

namespace detail {

/// Shapes, aliasing and a finite bias (the host paths read it).
template <class X>
void check_shapes(matrix_view<X> x, index_t n, index_t k, matrix_view<float> y, std::span<const float> bias) {
    tcomp::detail::check_matmul_shapes(x, n, k, y, bias, "matmul");
    for (std::size_t i = 0; i < bias.size(); ++i)
        if (!std::isfinite(bias[i])) tcomp::detail::throw_error<value_error>("matmul: bias(", i, ") is not finite");
}

}  // namespace detail

/// Y = Xq * Wq^T + bias for already-quantized activations (xq) and compressed weights (w).
template <class AQ, class WQ, class S>
void matmul_quantized(const compressed_view<AQ, dense>& xq, const compressed_view<WQ, S>& w, matrix_view<float> y,
                      std::span<const float> bias = {}) {
    const index_t m_rows = xq.rows(), k_cols = xq.cols(), n_rows = w.rows();
    if (w.cols() != k_cols)
        tcomp::detail::throw_error<shape_error>("matmul: X has K = ", k_cols, ", W has K = ", w.cols());
    if (y.rows() != m_rows || y.cols() != n_rows)
        tcomp::detail::throw_error<shape_error>("matmul: Y is ", y.rows(), "x", y.cols(), ", expected ", m_rows, "x",
                                                n_rows);
    if (!bias.empty() && static_cast<index_t>(bias.size()) != n_rows)
        tcomp::detail::throw_error<shape_error>("matmul: bias has ", bias.size(), " entries, expected N = ", n_rows);

    constexpr bool integer_path =
        integer_grid_format<typename AQ::format> && integer_grid_format<typename WQ::format>;
    const index_t x_group = xq.packed().layout.group_size, w_group = w.packed().layout.group_size;

    // Activations: decode every element once.
    std::vector<std::uint32_t> x_codes(static_cast<std::size_t>(m_rows * k_cols));
    std::vector<index_t> columns;
    for (index_t m = 0; m < m_rows; ++m)
        xq.for_each_in_row(m, columns, [&](index_t c, std::uint32_t code) {
            x_codes[static_cast<std::size_t>(m * k_cols + c)] = code;
        });

    constexpr bool shift_scales = tcomp::detail::shift_epilogue_scale<typename WQ::scale>;
    const bool shift_epilogue = integer_path && shift_scales && x_group >= k_cols;

    for (index_t n = 0; n < n_rows; ++n) {
        std::vector<index_t> w_cols;
        std::vector<std::uint32_t> w_codes;
        w.for_each_in_row(n, columns, [&](index_t c, std::uint32_t code) {
            w_cols.push_back(c);
            w_codes.push_back(code);
        });
        tcomp::detail::shift_plan plan;
        if constexpr (integer_path && shift_scales)
            if (shift_epilogue) plan = tcomp::detail::plan_shift_epilogue(w, n, w_group);
        for (index_t m = 0; m < m_rows; ++m) {
            auto x_code = [&](index_t c) { return x_codes[static_cast<std::size_t>(m * k_cols + c)]; };
            float out = 0.0f;
            if constexpr (integer_path) {
              if (shift_epilogue) {
                std::int64_t total = 0, acc = 0;
                index_t seg_w = -1;
                auto flush = [&] {
                    if (seg_w >= 0 && !tcomp::detail::add_shifted(total, acc, plan.shift[static_cast<std::size_t>(seg_w)]))
                        tcomp::detail::throw_error<value_error>(
                            "matmul: output (", m, ", ", n, "): the shift epilogue's int64 sum overflows (group shifts ",
                            "span ", plan.span, " bits); use fewer shift bits or per-group float scales");
                };
                for (std::size_t i = 0; i < w_cols.size(); ++i) {
                    const index_t c = w_cols[i];
                    if (c / w_group != seg_w) flush(), acc = 0, seg_w = c / w_group;
                    acc += static_cast<std::int64_t>(tcomp::detail::centered_integer<AQ>(x_code(c), xq.zero_point(m, c))) *
                           static_cast<std::int64_t>(tcomp::detail::centered_integer<WQ>(w_codes[i], w.zero_point(n, c)));
                }
                flush();
                out = tcomp::detail::shift_epilogue_output(total, xq.scale(m, 0), plan.row_scale);
              } else {
                std::int64_t acc = 0;
                index_t seg_x = -1, seg_w = -1;  // current segment's cells (group indices along K)
                float seg_scale = 0.0f;
                for (std::size_t i = 0; i < w_cols.size(); ++i) {
                    const index_t c = w_cols[i];
                    const index_t cx = c / x_group, cw = c / w_group;
                    if (cx != seg_x || cw != seg_w) {
                        if (seg_x >= 0) out += static_cast<float>(acc) * seg_scale;
                        acc = 0, seg_x = cx, seg_w = cw;
                        seg_scale = xq.scale(m, c) * w.scale(n, c);
                    }
                    acc += static_cast<std::int64_t>(tcomp::detail::centered_integer<AQ>(x_code(c), xq.zero_point(m, c))) *
                           static_cast<std::int64_t>(tcomp::detail::centered_integer<WQ>(w_codes[i], w.zero_point(n, c)));
                }
                if (seg_x >= 0) out += static_cast<float>(acc) * seg_scale;
              }
            } else {
                double acc = 0.0;
                for (std::size_t i = 0; i < w_cols.size(); ++i) {
                    const index_t c = w_cols[i];
                    acc += static_cast<double>(tcomp::detail::dequantize_value<AQ>(x_code(c), xq.scale(m, c), xq.zero_point(m, c))) *
                           static_cast<double>(tcomp::detail::dequantize_value<WQ>(w_codes[i], w.scale(n, c), w.zero_point(n, c)));
                }
                out = static_cast<float>(acc);
            }
            y(m, n) = bias.empty() ? out : out + bias[static_cast<std::size_t>(n)];
        }
    }
}

/// Integer-only layer output (the F8Net scheme): output codes
///     q_y = clamp(requantize(acc, Sx * Sw / Sy) + z_y)
/// with the int32 accumulator rescaled by a fixed_point_multiplier (one integer multiply and a rounding
/// shift; a pure shift when all scales are powers of two). Needs one cell per row along K for both
/// operands (per_tensor / per_channel / per_token), since the rescale is applied once per output.
template <class OutputFormat, class AQ, class WQ, class S>
dense_matrix<int> matmul_requantized(const compressed_view<AQ, dense>& xq, const compressed_view<WQ, S>& w,
                                     float output_scale, int output_zero = 0) {
    static_assert(integer_grid_format<OutputFormat> && integer_grid_format<typename AQ::format> &&
                      integer_grid_format<typename WQ::format>,
                  "matmul_requantized: operands and output must be integer-grid formats");
    static_assert(AQ::granularity::group_size == 0 && WQ::granularity::group_size == 0,
                  "matmul_requantized: per_group scales change along K; integer-only output needs per_tensor, "
                  "per_channel or per_token cells");
    if (w.cols() != xq.cols())
        tcomp::detail::throw_error<shape_error>("matmul_requantized: X has K = ", xq.cols(), ", W has K = ", w.cols());
    if (!(output_scale > 0.0f) || !std::isfinite(output_scale))
        tcomp::detail::throw_error<value_error>("matmul_requantized: output scale ", output_scale, " must be finite and > 0");
    if (output_zero < OutputFormat::code_min || output_zero > OutputFormat::code_max)
        tcomp::detail::throw_error<value_error>("matmul_requantized: output zero point ", output_zero,
                                                " is outside the output format's codes");
    const index_t m_rows = xq.rows(), n_rows = w.rows(), k_cols = xq.cols();
    dense_matrix<int> out(m_rows, n_rows);
    std::vector<index_t> columns;
    std::vector<int> x_centered(static_cast<std::size_t>(m_rows * k_cols));
    for (index_t m = 0; m < m_rows; ++m)
        xq.for_each_in_row(m, columns, [&](index_t c, std::uint32_t code) {
            x_centered[static_cast<std::size_t>(m * k_cols + c)] = tcomp::detail::centered_integer<AQ>(code, xq.zero_point(m, c));
        });
    for (index_t n = 0; n < n_rows; ++n) {
        std::vector<std::pair<index_t, int>> row;
        w.for_each_in_row(n, columns, [&](index_t c, std::uint32_t code) {
            row.emplace_back(c, tcomp::detail::centered_integer<WQ>(code, w.zero_point(n, c)));
        });
        for (index_t m = 0; m < m_rows; ++m) {
            std::int64_t acc = 0;
            for (const auto& [c, v] : row) acc += static_cast<std::int64_t>(x_centered[static_cast<std::size_t>(m * k_cols + c)]) * v;
            if (acc > INT32_MAX || acc < INT32_MIN)
                tcomp::detail::throw_error<value_error>("matmul_requantized: accumulator ", acc, " at (", m, ", ", n,
                                                        ") overflows int32");
            const double multiplier = static_cast<double>(xq.scale(m, 0)) * static_cast<double>(w.scale(n, 0)) /
                                      static_cast<double>(output_scale);
            // A zero scale (an all-zero binary row or token) makes the product 0, which no multiplier expresses.
            const std::int64_t q =
                (multiplier == 0.0 ? 0
                                   : static_cast<std::int64_t>(
                                         fixed_point_multiplier::from_real(multiplier).apply(static_cast<std::int32_t>(acc)))) +
                output_zero;
            out(m, n) = static_cast<int>(q < OutputFormat::code_min ? OutputFormat::code_min
                                                                   : (q > OutputFormat::code_max ? OutputFormat::code_max : q));
        }
    }
    return out;
}

/// Y = X * W^T + bias under W's policy: activations quantized as the policy says (dynamic: from X now;
/// calibrated: with the scales calibrate() fixed), or kept in float.
template <class Policy>
void matmul(matrix_view<const float> x, const compressed_weights<Policy>& w, matrix_view<float> y,
            std::span<const float> bias = {}, const quantize_options& options = {}) {
    detail::check_shapes(x, w.rows(), w.cols(), y, bias);
    tcomp::detail::require_finite(x, "matmul", "x");
    const auto wv = w.weights().view();
    if constexpr (Policy::quantizes_activations) {
        using AQ = typename Policy::activation_quantizer;
        const scale_table* fixed = nullptr;
        if constexpr (compressed_weights<Policy>::calibrated_activations()) fixed = &w.activation_scales();
        const auto xq = quantize<AQ>(x, options, fixed);
        matmul_quantized(xq.view(), wv, y, bias);
    } else {
        using WQ = typename Policy::weight_quantizer;
        std::vector<index_t> columns;
        for (index_t n = 0; n < w.rows(); ++n) {
            std::vector<std::pair<index_t, float>> row;
            wv.for_each_in_row(n, columns, [&](index_t c, std::uint32_t code) {
                row.emplace_back(c, tcomp::detail::dequantize_value<WQ>(code, wv.scale(n, c), wv.zero_point(n, c)));
            });
            for (index_t m = 0; m < x.rows(); ++m) {
                double acc = 0.0;
                for (const auto& [c, v] : row) acc += static_cast<double>(x(m, c)) * static_cast<double>(v);
                const auto out = static_cast<float>(acc);
                y(m, n) = bias.empty() ? out : out + bias[static_cast<std::size_t>(n)];
            }
        }
    }
}

}  // namespace tcomp::reference
