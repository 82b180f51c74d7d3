// The shift epilogue of two-level power-of-two weight scales (multi_level_scale<B>, shiftable_scale<B>):
// a weight group's scale is T * 2^-s_g, one T per tensor and a B-bit shift s_g per group. With one
// activation scale Sx per row, the integer dot product of a whole row then needs no float multiply
// per group, only shifts:
//
//     ref   = max s_g over the row's groups that hold a non-zero weight (0 when none does)
//     total = sum_g acc_g << (ref - s_g)                      exact, in int64 (all-zero groups add 0)
//     y     = float(double(total) * (double(Sx) * ldexp(double(T), -ref)))  (+ bias, in float)
//
// (acc_g = the group's exact integer dot product, as in the segment epilogue.) Aligning to the row's finest
// scale keeps every shift a left shift, so nothing is rounded before the single conversion at the end;
// double(total) is exact while |total| < 2^53, which plan_shift_epilogue() checks from the weights with
// |centred activation| <= 255 (and whether |total| < 2^31, so kernels may add in 32 bits: the same exact
// integer, whatever the width). The scalar oracle (kernel/reference/matmul.hpp) and the CPU integer-dot
// kernels compute this same expression, so they agree bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <concepts>
#include <cstdlib>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/quant/compressed_matrix.hpp"

namespace tcomp::detail {

/// Scale kinds whose group scales are T * 2^-s with a stored shift s (the two-level kinds of scale.hpp).
template <class Scale>
concept shift_epilogue_scale = requires {
    { Scale::max_shift } -> std::convertible_to<int>;
} && Scale::has_tensor_scale;

/// One weight row's shift epilogue: a left shift per group and the row's float scale T * 2^-ref.
struct shift_plan {
    std::vector<std::uint8_t> shift;  // per group: ref - s_g (0 for all-zero groups)
    double row_scale = 0.0;           // T * 2^-ref, exact in double
    int span = 0;                     // largest shift used
    bool exact = true;                // |total| < 2^53 for every activation row with |centred u| <= 255
    bool fits_int32 = true;           // |total| < 2^31 likewise: kernels may accumulate in 32 bits
};

/// The plan of row r of w with groups of `group` columns (the last group may be shorter).
template <class Q, class S>
shift_plan plan_shift_epilogue(const compressed_view<Q, S>& w, index_t r, index_t group) {
    using F = typename Q::format;
    const index_t k = w.cols();
    const index_t groups = std::max<index_t>(1, (k + group - 1) / group);
    std::vector<std::int64_t> abs_sum(static_cast<std::size_t>(groups), 0);
    std::vector<index_t> columns;
    w.for_each_in_row(r, columns, [&](index_t c, std::uint32_t code) {
        abs_sum[static_cast<std::size_t>(c / group)] += std::abs(F::to_integer(code) - w.zero_point(r, c));
    });
    const packed_view& p = w.packed();
    const index_t layout_group = p.layout.group_size;
    auto stored_shift = [&](index_t g) {
        return static_cast<int>(p.scale_entry(r, std::min(g * group, k - 1) / layout_group));
    };
    int ref = 0;
    for (index_t g = 0; g < groups; ++g)
        if (abs_sum[static_cast<std::size_t>(g)] != 0) ref = std::max(ref, stored_shift(g));
    shift_plan plan;
    plan.shift.assign(static_cast<std::size_t>(groups), 0);
    plan.row_scale = std::ldexp(static_cast<double>(p.tensor_scale), -ref);
    long double bound = 0.0L;  // sum_g 255 * sum|w| * 2^shift, compared against 2^53
    for (index_t g = 0; g < groups; ++g) {
        if (abs_sum[static_cast<std::size_t>(g)] == 0) continue;
        const int sh = ref - stored_shift(g);
        plan.shift[static_cast<std::size_t>(g)] = static_cast<std::uint8_t>(sh);
        plan.span = std::max(plan.span, sh);
        bound += 255.0L * static_cast<long double>(abs_sum[static_cast<std::size_t>(g)]) * std::ldexp(1.0L, sh);
    }
    plan.exact = bound < std::ldexp(1.0L, 53);
    plan.fits_int32 = bound < std::ldexp(1.0L, 31);
    return plan;
}

/// y of one output: the shift epilogue's final conversion (shared so oracle and kernels round alike).
inline float shift_epilogue_output(std::int64_t total, float activation_scale, double row_scale) {
    return static_cast<float>(static_cast<double>(total) * (static_cast<double>(activation_scale) * row_scale));
}

/// total += value << shift, exactly; false on int64 overflow (the oracle then reports it).
inline bool add_shifted(std::int64_t& total, std::int64_t value, int shift) {
    if (value == 0) return true;
    if (shift >= 63) return false;
    std::int64_t shifted = 0;
    if (__builtin_mul_overflow(value, std::int64_t{1} << shift, &shifted)) return false;
    return !__builtin_add_overflow(total, shifted, &total);
}

}  // namespace tcomp::detail
