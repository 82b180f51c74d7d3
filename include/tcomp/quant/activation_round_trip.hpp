// Activations quantized and dequantized as a descriptor's activation quantizer says: with fixed (calibrated)
// scales, or dynamic ones chosen from these rows. The reference path of model::linear runs a layer this way,
// and the calibration searches (SmoothQuant's migration strength, static clipping) measure their candidates with
// it, so both see the same arithmetic.
#pragma once

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/quant/compressed_matrix.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/format_table.hpp"

namespace tcomp::detail {

/// x[M x K] through quantizer a (round to nearest even): `fixed` is the calibrated row of scales, or nullptr for
/// scales chosen from x itself (dynamic quantization).
inline dense_matrix<float> round_trip_activations(matrix_view<const float> x, const quantizer_desc& a,
                                                  const scale_table* fixed, const char* where) {
    require_finite(x, where, "x");
    const format_info& f = format_info_for(a.format);
    const scale_table table = fixed != nullptr
                                  ? *fixed
                                  : scales_from_cells(f, a, grid_for(a, x.rows(), x.cols(), false, where),
                                                      gather_cells(x, grid_for(a, x.rows(), x.cols(), false, where), {}));
    dense_matrix<float> out(x.rows(), x.cols());
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) {
            const auto cell = static_cast<std::size_t>(table.cell(r, c));
            const std::uint32_t code =
                quantize_value(f, rounding_kind::nearest_even, x(r, c), table.effective[cell], table.zero[cell], 0, 0);
            out(r, c) = dequantize_value(f, code, table.effective[cell], table.zero[cell]);
        }
    return out;
}

}  // namespace tcomp::detail
