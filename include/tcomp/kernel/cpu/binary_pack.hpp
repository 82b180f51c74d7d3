// Both operands of the binary (W1A1) kernel, ISA-independent:
//   pack_binary             sign weights -> the panel layout of binary_args.hpp, once per weight matrix;
//   binarize_activations    float activations -> sign bits + one scale per row, every call: exactly the codes
//                           and scales quantize<AQ>(x, {}, fixed_scales) gives the oracle.
// Each returns "" on success, or why the binary kernel does not cover the composition (the front door then
// runs the scalar oracle, which computes the same thing).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tcomp/core/config.hpp"
#include "tcomp/kernel/cpu/aligned_buffer.hpp"
#include "tcomp/kernel/cpu/binary_args.hpp"
#include "tcomp/quant/compressed_matrix.hpp"

namespace tcomp::cpu {

/// Owning storage behind a binary_weights descriptor. Copies re-point the descriptor at their own buffers.
struct binary_storage {
    binary_weights desc;
    aligned_buffer<std::uint64_t> bits;
    aligned_buffer<float> scales;

    binary_storage() = default;
    binary_storage(const binary_storage& other) : desc(other.desc), bits(other.bits), scales(other.scales) { bind(); }
    binary_storage& operator=(const binary_storage& other) {
        if (this != &other) {
            desc = other.desc, bits = other.bits, scales = other.scales;
            bind();
        }
        return *this;
    }
    binary_storage(binary_storage&&) noexcept = default;  // moved buffers keep their addresses
    binary_storage& operator=(binary_storage&&) noexcept = default;
    ~binary_storage() = default;

    /// Bytes the kernel reads per call (bits and scales).
    std::size_t bytes() const { return bits.size() * sizeof(std::uint64_t) + scales.size() * sizeof(float); }
    void bind() {
        desc.bits = bits.data();
        desc.scales = scales.data();
    }
};

/// Packs binary weights for the binary kernel. Supported: binary_format, one scale per row (per_channel or
/// per_tensor; any scale kind), dense. Returns "" on success, else the reason.
template <class Q, class S>
std::string pack_binary(const compressed_view<Q, S>& w, binary_storage& out) {
    using F = typename Q::format;
    if constexpr (!tcomp::detail::is_sign_grid<F>()) {
        return "the weight format is not binary (the binary kernel needs sign weights)";
    } else if constexpr (S::kind != sparsity_kind::dense) {
        return "sparse binary weights have no SIMD kernel (the binary kernel needs dense weights)";
    } else if constexpr (Q::granularity::group_size > 0) {
        return "per_group binary weight scales (the binary kernel needs one scale per row: per_channel or "
               "per_tensor)";
    } else {
        const index_t n = w.rows(), k = w.cols();
        if (n == 0 || k == 0) return "an empty weight matrix";
        if (k > (index_t{1} << 30)) return "K above 2^30 (the binary kernel's int32 accumulators)";
        const index_t words = (k + 63) / 64, panels = (n + binary_panel_rows - 1) / binary_panel_rows;
        out = binary_storage{};
        out.bits = aligned_buffer<std::uint64_t>(static_cast<std::size_t>(panels * words * binary_panel_rows));
        out.scales = aligned_buffer<float>(static_cast<std::size_t>(panels * binary_panel_rows));
        const std::size_t row_bytes = w.packed().layout.row_code_bytes();
        const std::uint64_t last_mask = (k % 64 == 0) ? ~std::uint64_t{0} : ((std::uint64_t{1} << (k % 64)) - 1);
        for (index_t r = 0; r < n; ++r) {
            // Codes are an LSB-first bit stream (core/bit_packing.hpp): byte i holds elements 8i..8i+7.
            const std::uint8_t* codes = w.packed().row_codes(r);
            const index_t panel = r / binary_panel_rows, lane = r % binary_panel_rows;
            for (index_t j = 0; j < words; ++j) {
                std::uint64_t word = 0;
                for (std::size_t b = 0; b < 8; ++b) {
                    const std::size_t byte = static_cast<std::size_t>(j) * 8 + b;
                    if (byte < row_bytes) word |= static_cast<std::uint64_t>(codes[byte]) << (8 * b);
                }
                if (j == words - 1) word &= last_mask;
                out.bits[static_cast<std::size_t>((panel * words + j) * binary_panel_rows + lane)] = word;
            }
            out.scales[static_cast<std::size_t>(r)] = w.scale(r, 0);
        }
        out.desc.n = n, out.desc.k = k, out.desc.words = words, out.desc.panels = panels;
        out.bind();
        return "";
    }
}

namespace detail {

/// Sign bits of one row by the exact rule: bit j of word j/64 = the code quantize_value<AQ> gives x[j] at
/// code scale `scale`: +1 when x / scale >= 0 (so also when the quotient underflows to -0), or when scale is
/// not positive and x >= 0. `row` gets ceil(k / 64) words.
inline void binarize_row_exact(const float* x, index_t k, float scale, std::uint64_t* row) {
    auto exact = [scale](float v) { return scale > 0.0f ? (v / scale >= 0.0f) : (v >= 0.0f); };
    // x >= 0 gives the code except for x < 0 whose quotient underflows to -0. With scale <= 2^40 that needs
    // |x| < 2^-109 (|x| / scale >= 2^-149, the smallest subnormal, rounds to a nonzero quotient): only x in
    // (-band, 0) are divided. A larger scale divides every negative x.
    const float band = !(scale > 0.0f) ? 0.0f : (scale <= 0x1p40f ? 0x1p-109f : std::numeric_limits<float>::infinity());
    for (index_t j = 0; j * 64 < k; ++j) {
        const index_t count = std::min<index_t>(64, k - j * 64);
        const float* p = x + j * 64;
        std::uint64_t word = 0;
        for (index_t i = 0; i < count; ++i) {
            const float v = p[i];
            const bool code = v >= 0.0f || (v > -band && exact(v));
            word |= static_cast<std::uint64_t>(code) << i;
        }
        row[j] = word;
    }
}

/// What one pass over a row of X gathers (binarize_row_fast).
struct binarize_row_stats {
    double abs_sum = 0.0;  // sum of |x| in double, in some order (see abs_sum_is_order_free)
    float abs_max = 0.0f;
    float min_nonzero = std::numeric_limits<float>::infinity();  // smallest nonzero |x|
};

/// One pass over a row: sign bits by x >= 0 (the exact rule unless needs_exact_signs says otherwise), and
/// the statistics of |x|. Vectorised with SSE2 (the baseline of x86-64) where available.
inline binarize_row_stats binarize_row_fast(const float* x, index_t k, std::uint64_t* row) {
    binarize_row_stats st;
    index_t done = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps(), abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    const __m128i one = _mm_set1_epi32(1);
    __m128 amax = zero;
    // Smallest nonzero |x| via the bit patterns minus one: |x| = 0 becomes all ones, a NaN, which minps
    // passes over (it returns its second operand when the first is a NaN); the rest keep their order.
    __m128 amin = _mm_set1_ps(std::numeric_limits<float>::infinity());
    __m128d sum_lo[2], sum_hi[2];  // four dependency chains of adds
    sum_lo[0] = sum_lo[1] = sum_hi[0] = sum_hi[1] = _mm_setzero_pd();
    const index_t full = k / 64;
    for (index_t j = 0; j < full; ++j) {
        std::uint64_t word = 0;
TCOMP_HOST_UNROLL(4)
        for (int q = 0; q < 4; ++q) {
            const float* p = x + j * 64 + q * 16;
            __m128i ge[4];
TCOMP_HOST_UNROLL(4)
            for (int t = 0; t < 4; ++t) {
                const __m128 v = _mm_loadu_ps(p + 4 * t);
                ge[t] = _mm_castps_si128(_mm_cmpge_ps(v, zero));
                const __m128 a = _mm_and_ps(v, abs_mask);
                amax = _mm_max_ps(a, amax);
                amin = _mm_min_ps(_mm_castsi128_ps(_mm_sub_epi32(_mm_castps_si128(a), one)), amin);
                sum_lo[t % 2] = _mm_add_pd(sum_lo[t % 2], _mm_cvtps_pd(a));
                sum_hi[t % 2] = _mm_add_pd(sum_hi[t % 2], _mm_cvtps_pd(_mm_movehl_ps(a, a)));
            }
            const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(ge[0], ge[1]), _mm_packs_epi32(ge[2], ge[3]));
            const auto mask16 = static_cast<std::uint32_t>(_mm_movemask_epi8(bytes)) & 0xFFFFu;
            word |= static_cast<std::uint64_t>(mask16) << (16 * q);
        }
        row[j] = word;
    }
    done = full * 64;
    alignas(16) double sums[4];
    alignas(16) float maxima[4], minima[4];
    _mm_store_pd(sums, _mm_add_pd(sum_lo[0], sum_lo[1]));
    _mm_store_pd(sums + 2, _mm_add_pd(sum_hi[0], sum_hi[1]));
    _mm_store_ps(maxima, amax);
    _mm_store_ps(minima, amin);
    for (int t = 0; t < 4; ++t) {
        st.abs_sum += sums[t];
        st.abs_max = std::max(st.abs_max, maxima[t]);
        if (minima[t] != std::numeric_limits<float>::infinity()) {
            std::uint32_t bits_minus_one;
            std::memcpy(&bits_minus_one, &minima[t], sizeof bits_minus_one);
            const std::uint32_t bits = bits_minus_one + 1u;
            float v;
            std::memcpy(&v, &bits, sizeof v);
            st.min_nonzero = std::min(st.min_nonzero, v);
        }
    }
#endif
    for (index_t j = done / 64; j * 64 < k; ++j) {
        const index_t begin = j * 64, count = std::min<index_t>(64, k - begin);
        std::uint64_t word = 0;
        for (index_t i = 0; i < count; ++i) {
            const float v = x[begin + i], a = std::fabs(v);
            word |= static_cast<std::uint64_t>(v >= 0.0f) << i;
            st.abs_sum += a;
            st.abs_max = std::max(st.abs_max, a);
            if (a != 0.0f) st.min_nonzero = std::min(st.min_nonzero, a);
        }
        row[j] = word;
    }
    return st;
}

/// Whether summing `count` values |x| (largest abs_max, smallest nonzero min_nonzero) in double is exact in
/// every order, so any order equals the oracle's left-to-right sum: every value is a multiple of
/// u = 2^(e - 23), e = the exponent of the smallest nonzero one (at least -126), so every partial sum is a
/// multiple of u no larger than count * abs_max; if that is <= 2^52 u, each is a double.
inline bool abs_sum_is_order_free(double count, float abs_max, float min_nonzero) {
    if (min_nonzero == std::numeric_limits<float>::infinity()) return true;  // all zero
    const int e = std::max(tcomp::detail::floor_log2(static_cast<double>(min_nonzero)), -126);
    return count * static_cast<double>(abs_max) <= std::ldexp(1.0, 52 + e - 23);
}

/// The oracle's sums of |x| (left to right, in double) of `rows.size()` rows of length k, four rows at a
/// time (independent dependency chains, each in the oracle's order).
inline void sequential_abs_sums(const std::vector<const float*>& rows, index_t k, std::vector<double>& out) {
    out.assign(rows.size(), 0.0);
    std::size_t r = 0;
    for (; r + 4 <= rows.size(); r += 4) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        const float *p0 = rows[r], *p1 = rows[r + 1], *p2 = rows[r + 2], *p3 = rows[r + 3];
        for (index_t j = 0; j < k; ++j) {
            s0 += std::fabs(p0[j]), s1 += std::fabs(p1[j]), s2 += std::fabs(p2[j]), s3 += std::fabs(p3[j]);
        }
        out[r] = s0, out[r + 1] = s1, out[r + 2] = s2, out[r + 3] = s3;
    }
    for (; r < rows.size(); ++r) {
        double s = 0.0;
        for (index_t j = 0; j < k; ++j) s += std::fabs(rows[r][j]);
        out[r] = s;
    }
}

}  // namespace detail

/// Binarizes activations X[m x k] for the binary kernel: bits (m rows of ceil(k / 64) words, the layout of
/// binary_call::x_bits) and one scale per row, exactly what quantize<AQ>(x, {}, fixed_scales) stores: the
/// same scale rule (mean |x| per token or tensor through AQ's scale kind, summed as the oracle sums; or
/// fixed_scales when calibrated) and the same sign rule. Supported: binary_format, per_token or per_tensor,
/// round to nearest. Throws as quantize does on non-finite x or mismatched fixed scales. Returns "" on
/// success, else the reason.
///
/// Cost: one SSE2 pass over X (signs, and |x| statistics that prove when the mean |x| may be summed in any
/// order: for about 9 in 10 Gaussian rows of 4096); the other rows are summed again left to right, and rows
/// with quotients x / S that could underflow get their signs again by division.
///
/// `for_rows(tasks, fn)` may run fn(0) .. fn(tasks - 1) concurrently (e.g. thread_pool::run with the call's
/// threads); each task covers a range of rows. The default runs them in turn.
template <class AQ, class ForRows>
std::string binarize_activations(matrix_view<const float> x, const scale_table* fixed_scales,
                                 std::vector<std::uint64_t>& bits, std::vector<float>& scales, ForRows&& for_rows) {
    if constexpr (!is_quantizer<AQ>::value) {
        return "float activations (the binary kernel needs binary activations)";
    } else {
        using F = typename AQ::format;
        using SK = typename AQ::scale;
        if constexpr (!tcomp::detail::is_sign_grid<F>()) {
            return "the activation format is not binary (the binary kernel needs sign activations)";
        } else if constexpr (AQ::rounding::is_stochastic) {
            return "stochastic rounding of binary activations";
        } else if constexpr (AQ::granularity::group_size > 0) {
            return "per_group binary activation scales (the binary kernel needs one scale per row: per_token or "
                   "per_tensor)";
        } else {
            const index_t m = x.rows(), k = x.cols(), words = (k + 63) / 64;
            const auto rows = static_cast<std::size_t>(m);
            bits.resize(rows * static_cast<std::size_t>(words));
            scales.assign(rows, 0.0f);
            if (m == 0 || k == 0) return "";

            // Rows per task: about 64 K elements, so a task is worth handing to another thread.
            const index_t task_rows = std::max<index_t>(1, index_t{65536} / k);
            const index_t tasks = (m + task_rows - 1) / task_rows;
            auto each_row = [&](auto&& fn) {
                for_rows(tasks, [&](index_t task) {
                    const index_t end = std::min(m, (task + 1) * task_rows);
                    for (index_t r = task * task_rows; r < end; ++r) fn(static_cast<std::size_t>(r));
                });
            };

            // 1. Signs by x >= 0 and |x| statistics, one pass.
            std::vector<detail::binarize_row_stats> stats(rows);
            each_row([&](std::size_t r) {
                stats[r] = detail::binarize_row_fast(&x(static_cast<index_t>(r), 0), k,
                                                     bits.data() + r * static_cast<std::size_t>(words));
            });
            bool finite = true;
            for (const auto& st : stats) finite = finite && std::isfinite(st.abs_sum);  // finite iff every |x| is
            if (!finite) tcomp::detail::require_finite(x, "quantize", "x");  // throws, naming the element

            // 2. Scales: the one the oracle reads back (the stored entry decoded) and the one encoding divides by.
            const std::uint32_t entry_mask = tcomp::detail::low_mask(SK::storage_bits);
            std::vector<float> code_scale(rows);
            auto set_row = [&](std::size_t r, const std::vector<std::uint32_t>& stored, const std::vector<float>& eff,
                               float tensor_scale, std::size_t cell) {
                scales[r] = SK::template decode<F>(stored[cell] & entry_mask, tensor_scale);
                code_scale[r] = eff[cell];
            };
            if (fixed_scales != nullptr) {
                const auto grid = tcomp::detail::grid_for<AQ>(m, k, true, "quantize");
                if (fixed_scales->cols != grid.cols || fixed_scales->group_size != grid.group_size ||
                    fixed_scales->rows != 1)
                    tcomp::detail::throw_error<shape_error>("quantize: calibrated scales have ", fixed_scales->cols,
                                                            " groups of ", fixed_scales->group_size,
                                                            ", the input needs ", grid.cols, " of ", grid.group_size);
                for (std::size_t r = 0; r < rows; ++r)
                    set_row(r, fixed_scales->stored, fixed_scales->effective, fixed_scales->tensor_scale, 0);
            } else if constexpr (std::is_same_v<typename AQ::observer, tcomp::min_max>) {
                // As detail::ideal_for_range: ideal = float(sum |x| / count), amax = max |x| per cell.
                constexpr bool per_row = AQ::granularity::per_row;
                std::vector<double> ideal(per_row ? rows : 1);
                std::vector<float> amax(per_row ? rows : 1);
                std::vector<const float*> redo;
                std::vector<std::size_t> redo_rows;
                if constexpr (per_row) {
                    for (std::size_t r = 0; r < rows; ++r) {
                        ideal[r] = stats[r].abs_sum, amax[r] = stats[r].abs_max;
                        if (!detail::abs_sum_is_order_free(static_cast<double>(k), stats[r].abs_max,
                                                           stats[r].min_nonzero))
                            redo.push_back(&x(static_cast<index_t>(r), 0)), redo_rows.push_back(r);
                    }
                    std::vector<double> sums;
                    detail::sequential_abs_sums(redo, k, sums);
                    for (std::size_t i = 0; i < redo_rows.size(); ++i) ideal[redo_rows[i]] = sums[i];
                } else {
                    float a = 0.0f, lo = std::numeric_limits<float>::infinity();
                    double s = 0.0;
                    for (const auto& st : stats)
                        s += st.abs_sum, a = std::max(a, st.abs_max), lo = std::min(lo, st.min_nonzero);
                    if (!detail::abs_sum_is_order_free(static_cast<double>(m) * static_cast<double>(k), a, lo)) {
                        s = 0.0;
                        for (index_t r = 0; r < m; ++r)
                            for (index_t j = 0; j < k; ++j) s += std::fabs(x(r, j));
                    }
                    ideal[0] = s, amax[0] = a;
                }
                const double count = per_row ? static_cast<double>(k) : static_cast<double>(m) * static_cast<double>(k);
                for (double& v : ideal) v = static_cast<double>(static_cast<float>(v / count));
                const tcomp::detail::scale_assignment assigned = SK::template assign<F>(ideal, amax);
                for (std::size_t r = 0; r < rows; ++r)
                    set_row(r, assigned.stored, assigned.effective, assigned.tensor_scale, per_row ? r : 0);
            } else {
                // Other observers: the library's own scale choice (no observer changes a sign grid's mean-|x|
                // scale, but this keeps the rule in one place).
                const scale_table t = choose_scales<AQ>(x);
                for (std::size_t r = 0; r < rows; ++r)
                    set_row(r, t.stored, t.effective, t.tensor_scale,
                            static_cast<std::size_t>(t.cell(static_cast<index_t>(r), 0)));
            }

            // 3. Signs again, by division, where x >= 0 may differ from x / S >= 0: a negative x whose quotient
            //    can underflow to -0 (|x| < 2^-109 with S <= 2^40, or any x with a larger S).
            auto needs_exact = [&](std::size_t r) {
                return code_scale[r] > 0.0f && (code_scale[r] > 0x1p40f || stats[r].min_nonzero < 0x1p-109f);
            };
            bool any_exact = false;
            for (std::size_t r = 0; r < rows; ++r) any_exact = any_exact || needs_exact(r);
            if (any_exact)
                each_row([&](std::size_t r) {
                    if (needs_exact(r))
                        detail::binarize_row_exact(&x(static_cast<index_t>(r), 0), k, code_scale[r],
                                                   bits.data() + r * static_cast<std::size_t>(words));
                });
            return "";
        }
    }
}

/// binarize_activations on the calling thread.
template <class AQ>
std::string binarize_activations(matrix_view<const float> x, const scale_table* fixed_scales,
                                 std::vector<std::uint64_t>& bits, std::vector<float>& scales) {
    return binarize_activations<AQ>(x, fixed_scales, bits, scales, [](index_t tasks, const auto& fn) {
        for (index_t t = 0; t < tasks; ++t) fn(t);
    });
}

}  // namespace tcomp::cpu
