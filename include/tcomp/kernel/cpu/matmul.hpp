// The CPU back end's driver: Y = X * W^T + bias with pre-packed weights (tcomp::cpu::pack), on the ISA path
// that dispatch.hpp picks, with a caller-chosen thread count. Callers use the front door (tcomp/matmul.hpp):
//
//   auto packed = tcomp::cpu::pack(tcomp::compress<tcomp::presets::w4a8>(w));
//   tcomp::matmul(x, packed, y, bias, {.threads = 2});
//
// Activations are quantized here as the policy says (the oracle's rules, vectorised: the codes are
// identical), then the kernel family of the packed weights runs. Where no SIMD path or kernel applies
// (path `reference`, or packed.family() == reference) cpu::detail::run_kernels says so and the front door
// runs the scalar oracle on the same weights: this back end does not include the reference one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <span>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/packed_weights.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/core/float16.hpp"

namespace tcomp::cpu {

namespace detail {

inline int resolve_threads(int requested) {
    if (requested > 0) return requested;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

/// Splits [0, panels) x [0, m) into tasks for `threads` threads: panel ranges when there are enough
/// panels (each thread streams its own weights, X is shared), else row ranges.
struct task_grid {
    index_t panel_chunks = 1, row_chunks = 1, panels = 0, rows = 0;
    index_t count() const { return panel_chunks * row_chunks; }
    void range(index_t task, index_t& p0, index_t& p1, index_t& m0, index_t& m1) const {
        const index_t pc = task % panel_chunks, rc = task / panel_chunks;
        p0 = panels * pc / panel_chunks, p1 = panels * (pc + 1) / panel_chunks;
        m0 = rows * rc / row_chunks, m1 = rows * (rc + 1) / row_chunks;
    }
};

inline task_grid make_task_grid(index_t panels, index_t rows, int threads) {
    task_grid g;
    g.panels = panels, g.rows = rows;
    const index_t t = threads;
    if (t <= 1) return g;
    if (panels >= 2 * t || rows < 16) {
        g.panel_chunks = std::min(panels, t);
    } else {
        g.panel_chunks = std::max<index_t>(1, std::min(panels, t));
        g.row_chunks = std::max<index_t>(1, std::min<index_t>((t + g.panel_chunks - 1) / g.panel_chunks, rows / 8));
    }
    return g;
}

/// Per-row activation scale and offset for the int_dot kernels: (Sx, c = z - code_min).
template <class AQ>
void activation_cell(float lo, float hi, float& scale, std::int32_t& offset) {
    using F = typename AQ::format;
    const tcomp::detail::cell_choice c = tcomp::detail::ideal_for_range<AQ>(lo, hi, {});
    const double ideal[1] = {c.ideal};
    const float amax[1] = {c.amax};
    scale = AQ::scale::template assign<F>(ideal, amax).effective[0];
    offset = tcomp::detail::zero_point_for<AQ>(c.lo, scale) - F::code_min;
}

/// Reused per-thread scratch for quantized activations.
struct int_dot_scratch {
    std::vector<std::uint8_t> x;
    std::vector<float> scale;
    std::vector<std::int32_t> offset;
    std::vector<float> lo, hi;
};

/// Steps 1-2 of every quantized-activation path: each row's scale and offset (calibrated, or from the data as
/// the policy's observer says) and its codes as unsigned bytes (code - code_min), row stride `stride` >= K,
/// vectorised and bit-identical to quantize<AQ>. Only for activation quantizers the SIMD encoder takes
/// (family_row<int_dot>::activation_reason<P>() == "").
template <class Policy>
void encode_activations(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const float> x,
                        index_t stride, int threads, int_dot_scratch& s) {
    using AQ = typename Policy::activation_quantizer;
    using F = typename AQ::format;
    const index_t m = x.rows(), k = x.cols();
    const auto rows_alloc = static_cast<std::size_t>(m + 8);
    s.x.assign(rows_alloc * static_cast<std::size_t>(stride), 0);
    s.scale.assign(rows_alloc, 0.0f);
    s.offset.assign(rows_alloc, 0);
    thread_pool& pool = thread_pool::instance();

    // 1. Scales: calibrated (fixed), or per row / per tensor from the data.
    constexpr bool calibrated = compressed_weights<Policy>::calibrated_activations();
    constexpr bool min_max = std::is_same_v<typename AQ::observer, tcomp::min_max>;
    if constexpr (calibrated) {
        const scale_table& t = w.source().activation_scales();
        const float sc = t.effective[0];
        const std::int32_t off = t.zero[0] - F::code_min;
        std::fill(s.scale.begin(), s.scale.begin() + m, sc);
        std::fill(s.offset.begin(), s.offset.begin() + m, off);
    } else if constexpr (min_max) {
        s.lo.assign(static_cast<std::size_t>(m), 0.0f);
        s.hi.assign(static_cast<std::size_t>(m), 0.0f);
        pool.run(threads, m, [&](index_t r) { table.row_min_max(&x(r, 0), k, &s.lo[r], &s.hi[r]); });
        if constexpr (AQ::granularity::per_row) {
            for (index_t r = 0; r < m; ++r) activation_cell<AQ>(s.lo[r], s.hi[r], s.scale[r], s.offset[r]);
        } else {
            const float lo = *std::min_element(s.lo.begin(), s.lo.end());
            const float hi = *std::max_element(s.hi.begin(), s.hi.end());
            activation_cell<AQ>(lo, hi, s.scale[0], s.offset[0]);
            std::fill(s.scale.begin() + 1, s.scale.begin() + m, s.scale[0]);
            std::fill(s.offset.begin() + 1, s.offset.begin() + m, s.offset[0]);
        }
    } else {
        const scale_table t = choose_scales<AQ>(x);  // percentile / clip search: the scalar observer
        for (index_t r = 0; r < m; ++r) {
            const index_t cell = t.cell(r, 0);
            s.scale[r] = t.effective[static_cast<std::size_t>(cell)];
            s.offset[r] = t.zero[static_cast<std::size_t>(cell)] - F::code_min;
        }
    }

    // 2. Codes (as unsigned bytes, code - code_min), vectorised, bit-identical to quantize<AQ>.
    pool.run(threads, m, [&](index_t r) {
        encode_call e;
        e.x = &x(r, 0);
        e.k = k;
        e.scale = s.scale[r];
        e.zero = static_cast<float>(s.offset[r] + F::code_min);
        e.code_min = F::code_min, e.code_max = F::code_max;
        e.out = s.x.data() + r * stride;
        table.encode_u8(e);
    });
}

template <class Policy>
void run_int_dot(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const float> x,
                 matrix_view<float> y, std::span<const float> bias, int threads) {
    const int_dot_weights& d = w.int_dot().desc;
    const index_t m = x.rows(), kp = d.k_padded;
    // The caller's scratch; a named reference, because lambdas running on pool threads would otherwise
    // name their own thread's thread_local instance.
    thread_local int_dot_scratch caller_scratch;
    int_dot_scratch& s = caller_scratch;
    thread_pool& pool = thread_pool::instance();
    encode_activations(w, table, x, kp, threads, s);

    // 3. The GEMM.
    const task_grid grid = make_task_grid(d.panels, m, threads);
    pool.run(threads, grid.count(), [&](index_t task) {
        int_dot_call c;
        c.w = &d;
        c.x = s.x.data(), c.x_stride = kp;
        c.x_scale = s.scale.data(), c.x_offset = s.offset.data();
        c.m = m;
        c.y = y.data(), c.y_stride = y.row_stride();
        c.bias = bias.empty() ? nullptr : bias.data();
        grid.range(task, c.panel_begin, c.panel_end, c.m_begin, c.m_end);
        if (c.panel_begin < c.panel_end && c.m_begin < c.m_end) table.int_dot(c);
    });
}

/// Weight-only (float activations, fp32 or bf16): the kernel dequantizes weights in registers.
template <class Policy, class T>
void run_weight_only(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const T> x,
                     matrix_view<float> y, std::span<const float> bias, int threads) {
    const weight_only_weights& d = w.weight_only().desc;
    const task_grid grid = make_task_grid(d.panels, x.rows(), threads);
    thread_pool::instance().run(threads, grid.count(), [&](index_t task) {
        weight_only_call c;
        c.w = &d;
        if constexpr (std::is_same_v<T, float>) c.x = x.data();
        else c.x_bf16 = x.data();
        c.x_stride = x.row_stride();
        c.m = x.rows();
        c.y = y.data(), c.y_stride = y.row_stride();
        c.bias = bias.empty() ? nullptr : bias.data();
        grid.range(task, c.panel_begin, c.panel_end, c.m_begin, c.m_end);
        if (c.panel_begin < c.panel_end && c.m_begin < c.m_end) table.weight_only(c);
    });
}

/// The activations a weight-only call with quantized activations multiplies: X quantized as the policy says
/// and decoded back to float, equal bit for bit to the oracle's dequantize_value of quantize<AQ>(X) (per row:
/// scale * float(q - zero)). Integer grids the SIMD encoder takes are encoded by it; other activation formats
/// (fp8 tokens, per-group cells) by quantize<AQ> itself. Stochastic rounding never gets here (the family row
/// refuses it: the kernels take no seed).
template <class Policy>
void quantized_activations(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const float> x,
                           int threads, dense_matrix<float>& out) {
    using AQ = typename Policy::activation_quantizer;
    const index_t m = x.rows(), k = x.cols();
    if (out.rows() != m || out.cols() != k) out = dense_matrix<float>(m, k);
    if constexpr (family_row<kernel_family::int_dot>::simd_encodes<AQ>) {
        thread_local int_dot_scratch caller_scratch;
        int_dot_scratch& s = caller_scratch;
        encode_activations(w, table, x, k, threads, s);
        thread_pool::instance().run(threads, m, [&](index_t r) {
            const std::uint8_t* u = s.x.data() + r * k;
            const float scale = s.scale[static_cast<std::size_t>(r)];
            const std::int32_t offset = s.offset[static_cast<std::size_t>(r)];
            for (index_t c = 0; c < k; ++c) out(r, c) = scale * static_cast<float>(static_cast<std::int32_t>(u[c]) - offset);
        });
    } else {
        const scale_table* fixed = nullptr;
        if constexpr (compressed_weights<Policy>::calibrated_activations()) fixed = &w.source().activation_scales();
        out = dequantize(quantize<AQ>(x, {}, fixed));
    }
}

/// Weight-only kernels with quantized activations (a floating format on either side): the activations are
/// quantized and decoded once per call (quantized_activations), then the weights are decoded in registers.
/// The oracle sums the same dequantized products in double; the kernel in float (the weight-only bound).
template <class Policy>
void run_weight_only_quantized(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const float> x,
                               matrix_view<float> y, std::span<const float> bias, int threads) {
    thread_local dense_matrix<float> caller_xq;
    dense_matrix<float>& xq = caller_xq;
    quantized_activations(w, table, x, threads, xq);
    run_weight_only(w, table, matrix_view<const float>(xq.view()), y, bias, threads);
}

struct binary_scratch {
    std::vector<std::uint64_t> bits;
    std::vector<float> scale;
};

/// W1A1: binarize X (the oracle's scales and signs), then xnor + popcount. Returns false when the
/// activation quantizer has no binary kernel (the caller then runs the oracle).
template <class Policy>
bool run_binary(const packed_weights<Policy>& w, const kernel_table& table, matrix_view<const float> x,
                matrix_view<float> y, std::span<const float> bias, int threads) {
    using AQ = typename Policy::activation_quantizer;
    const binary_weights& d = w.binary().desc;
    thread_local binary_scratch caller_scratch;
    binary_scratch& s = caller_scratch;
    const scale_table* fixed = nullptr;
    if constexpr (compressed_weights<Policy>::calibrated_activations()) fixed = &w.source().activation_scales();
    // Rows of X are binarized on the call's threads (each task a range of rows).
    auto for_rows = [&](index_t tasks, const auto& fn) { thread_pool::instance().run(threads, tasks, fn); };
    if (!binarize_activations<AQ>(x, fixed, s.bits, s.scale, for_rows).empty()) return false;
    const task_grid grid = make_task_grid(d.panels, x.rows(), threads);
    thread_pool::instance().run(threads, grid.count(), [&](index_t task) {
        binary_call c;
        c.w = &d;
        c.x_bits = s.bits.data(), c.x_stride = d.words;
        c.x_scale = s.scale.data();
        c.m = x.rows();
        c.y = y.data(), c.y_stride = y.row_stride();
        c.bias = bias.empty() ? nullptr : bias.data();
        index_t p0 = 0, p1 = 0;
        grid.range(task, p0, p1, c.m_begin, c.m_end);
        c.n_begin = p0 * binary_panel_rows, c.n_end = std::min(d.n, p1 * binary_panel_rows);
        if (c.n_begin < c.n_end && c.m_begin < c.m_end) table.binary(c);
    });
    return true;
}

}  // namespace detail

/// Whether a call with these weights runs a SIMD kernel now: they were packed, and the active path's kernel table
/// has their family's kernel (the family-table row says which entry that is).
template <class Policy>
bool uses_simd(const packed_weights<Policy>& w) {
    const kernel_table* t = kernels_for(active_path());
    return t != nullptr && w.family() != kernel_family::reference && packed_weights<Policy>::family_type::has_kernel(*t);
}

namespace detail {

/// Y = X * W^T + bias on the SIMD kernels, X float or bf16 (the weight-only kernels widen bf16 in registers;
/// the other families take float X: the caller widens). Returns false, Y untouched, when the active path has no
/// kernel for these weights or their activation quantizer: the caller then runs the oracle. Shapes, aliasing and
/// finiteness are the caller's to check (the front door does).
template <class Policy, class T>
bool run_kernels(matrix_view<const T> x, const packed_weights<Policy>& w, matrix_view<float> y,
                 std::span<const float> bias, int threads) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bfloat16>, "cpu::run_kernels: X is float or bf16");
    if (!uses_simd(w)) return false;
    const kernel_table& table = *kernels_for(active_path());
    threads = resolve_threads(threads);
    // uses_simd() said the family has a kernel; run it (the family is the policy's row of the family table).
    constexpr kernel_family family = family_of<Policy>();
    if constexpr (family == kernel_family::weight_only && Policy::quantizes_activations) {
        if constexpr (!std::is_same_v<T, float>) return false;  // the caller widens X, then calls again
        else run_weight_only_quantized(w, table, x, y, bias, threads);
        return true;
    } else if constexpr (family == kernel_family::weight_only) {
        if constexpr (std::is_same_v<T, bfloat16>) {
            const matrix_view<const std::uint16_t> bits(reinterpret_cast<const std::uint16_t*>(x.data()), x.rows(),
                                                        x.cols(), x.row_stride());
            run_weight_only(w, table, bits, y, bias, threads);
        } else {
            run_weight_only(w, table, x, y, bias, threads);
        }
        return true;
    } else if constexpr (!std::is_same_v<T, float>) {
        return false;
    } else if constexpr (family == kernel_family::binary) {
        return run_binary(w, table, x, y, bias, threads);
    } else {
        run_int_dot(w, table, x, y, bias, threads);
        return true;
    }
}

}  // namespace detail
}  // namespace tcomp::cpu
