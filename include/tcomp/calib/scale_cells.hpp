// Scale entries of one cell at a time, for methods that decide a tensor's scales cell by cell (GPTQ's groups as
// it reaches them, importance-weighted search): the engine's rules (quant/scale_selection.hpp, quant/scale.hpp)
// applied to one cell, with the joint part of two-level kinds (the tensor scale of multi_level / shiftable) held
// fixed. The results are ordinary scale_table entries, so the ordinary encoder packs them.
#pragma once

#include <span>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/format/format_info.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/element.hpp"
#include "tcomp/quant/scale.hpp"
#include "tcomp/quant/scale_selection.hpp"

namespace tcomp::calib::detail {

/// What every scale-choosing method needs of a descriptor: valid, dense (N:M masks with weight update are
/// SparseGPT's), round to nearest (the methods compare and feed back round-to-nearest errors).
inline void require_dense_nearest(const descriptor& d, const char* method) {
    validate(d);
    if (d.sparsity.kind != sparsity_kind::dense)
        tcomp::detail::throw_error<error>(method, ": ", spell(d), " is sparse; ", method, " takes dense descriptors "
                                          "(N:M masks with weight update are SparseGPT's)");
    if (d.weights.rounding != rounding_kind::nearest_even)
        tcomp::detail::throw_error<error>(method, ": ", spell(d), " rounds stochastically; ", method,
                                          " compares and feeds back round-to-nearest errors");
}

/// One cell's stored entry, effective scale and zero point.
struct cell_scale {
    std::uint32_t stored = 0;
    float effective = 1.0f;
    int zero = 0;
};

/// Whether the kind's cells are assigned jointly (a tensor scale shared by every cell).
inline bool joint_scale_kind(scale_kind k) { return k == scale_kind::multi_level || k == scale_kind::shiftable; }

/// The entry for a cell choice (the engine's ideal scale, amax and low end). For joint kinds the tensor scale
/// `tensor` is kept and only the cell's shift is chosen (as assign_scales does).
inline cell_scale scale_for_choice(const format_info& f, const quantizer_desc& q, const tcomp::detail::cell_choice& c,
                                   float tensor) {
    cell_scale out;
    if (joint_scale_kind(q.scale)) {
        const int max_shift = (1 << q.shift_bits) - 1;
        int shift = c.ideal > 0.0 ? tcomp::detail::floor_log2(static_cast<double>(tensor) / c.ideal) : max_shift;
        shift = tcomp::detail::clamp_int(shift, 0, max_shift);
        out.stored = static_cast<std::uint32_t>(shift);
        out.effective = std::ldexp(tensor, -shift);
    } else {
        const double ideal[1] = {c.ideal};
        const float amax[1] = {c.amax};
        const tcomp::detail::scale_assignment a = tcomp::detail::assign_scales(q.scale, q.shift_bits, f, ideal, amax);
        out.stored = a.stored[0], out.effective = a.effective[0];
    }
    out.zero = tcomp::detail::zero_point_for(f, q, c.lo, out.effective);
    return out;
}

/// The entry of a cell whose clip range is [lo, hi] (values: the cell's elements, for binary's mean |x|).
inline cell_scale scale_for_range(const format_info& f, const quantizer_desc& q, float lo, float hi,
                                  std::span<const float> values, float tensor) {
    return scale_for_choice(f, q, tcomp::detail::ideal_for_range(f, q, lo, hi, values), tensor);
}

/// The entry the descriptor's own observer (min/max, percentile or MSE clip search) gives these values.
inline cell_scale scale_for_values(const format_info& f, const quantizer_desc& q, std::span<const float> values,
                                   float tensor) {
    return scale_for_choice(f, q, tcomp::detail::choose_cell(f, q, values), tensor);
}

/// x quantized and dequantized with a cell's entry (round to nearest even).
inline float round_trip(const format_info& f, float x, const cell_scale& s) {
    return tcomp::detail::dequantize_value(
        f, tcomp::detail::quantize_value(f, rounding_kind::nearest_even, x, s.effective, s.zero, 0, 0), s.effective,
        s.zero);
}

inline void put(scale_table& t, index_t cell, const cell_scale& s) {
    const auto i = static_cast<std::size_t>(cell);
    t.stored[i] = s.stored, t.effective[i] = s.effective, t.zero[i] = s.zero;
}

inline cell_scale get(const scale_table& t, index_t cell) {
    const auto i = static_cast<std::size_t>(cell);
    return {t.stored[i], t.effective[i], t.zero[i]};
}

}  // namespace tcomp::calib::detail
