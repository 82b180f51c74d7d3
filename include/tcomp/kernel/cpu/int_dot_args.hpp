// Arguments of the integer-dot kernels (W8A8, W4A8, W2A8 and their 2:4-sparse forms): weights prepacked by
// int_dot_pack.hpp, activations quantized to unsigned bytes by the front door.
//
// Arithmetic (exact in int32): with u the activation's stored byte (code - code_min of its format) and w the
// weight's centered integer (code - zero point), the kernel computes per output and weight group g
//     dot_g = sum_k u_k * w_k                      (vpdpbusd semantics: u8 x s8, summed 4 at a time)
//     acc_g = dot_g - c_m * sum_k w_k              c_m = the activation's zero point + (-code_min)
// which equals the oracle's sum_k (qx - zx)(qw - zw) when |acc| < 2^31 (int_dot_pack.hpp limits the group length).
// The float epilogue then follows the oracle's order exactly: y = 0; y += float(acc_g) * (Sx * Sw_g); y += bias.
// Two-level power-of-two weight scales (multi_level_scale / shiftable_scale) take the shift epilogue instead
// (quant/shift_epilogue.hpp): total += int64(acc_g) << shift_g per group, one conversion per output at the end.
//
// Packed weight layout (one "panel" = 16 consecutive output rows n; rows past N are zero):
//   8-bit dense   per 4 consecutive k ("k-quad"): 64 bytes, byte 4r + j = w[row r][k + j] as int8
//                 (the vpdpbusd operand layout: one zmm, or 2 ymm / 4 xmm of 4 rows each);
//   4-bit dense   per 8 consecutive k: 64 bytes, byte 4r + j = u[r][k + j] | u[r][k + 4 + j] << 4, where
//                 u = code - code_min (unsigned); the kernel subtracts `offsets` to centre it;
//   2-bit dense   per 16 consecutive k: 64 bytes, byte 4r + j holds u[r][k + 4s + j] in bits 2s..2s+1;
//   8-bit 2:4     per k-quad: an 8-byte mask (bit 4r + j set when w[r][k + j] is kept) then 32 bytes: the
//                 kept values in mask-bit order (two per row), as int8;
//   4-bit 2:4     per k-quad: the 8-byte mask then 16 bytes: kept value i (mask-bit order) in the low nibble
//                 of byte i for i < 16, in the high nibble of byte i - 16 otherwise (u = code - code_min).
// K is padded with zero weights to the k-step (4, 8 or 16); one panel's codes are contiguous.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tcomp/core/config.hpp"

namespace tcomp::cpu {

/// Rows per weight panel, for every ISA (one zmm of int32 accumulators).
inline constexpr index_t panel_rows = 16;

struct int_dot_weights {
    index_t n = 0, k = 0;     // logical W[n x k]
    index_t k_padded = 0;     // k rounded up to the k-step
    index_t group = 0;        // k per weight scale group (a multiple of the k-step); k_padded for one group
    index_t groups = 0;
    index_t panels = 0;       // ceil(n / 16)
    int code_bits = 8;        // packed width: 8, 4 or 2
    bool sparse_2of4 = false;
    std::size_t panel_code_bytes = 0;
    const std::uint8_t* codes = nullptr;         // panels x panel_code_bytes
    const float* scales = nullptr;               // [panel][group][16] weight scales Sw (null with shifts)
    const std::int32_t* weight_sums = nullptr;   // [panel][group][16] sum of the group's centered weights
    const std::uint8_t* offsets = nullptr;       // 4/2-bit: [panel][group][64] byte 4r + j = what centres u of row r
                                                 // (2:4 4-bit: [panel][group][32], byte 2r + i for kept value i of row r)
    const std::uint8_t* shifts = nullptr;        // shift epilogue: [panel][group][16] left shift of acc_g; else null
    const double* row_scales = nullptr;          // shift epilogue: [panel][16] T * 2^-ref of each row
    bool shift_fits_int32 = false;               // shift epilogue: every row's |total| < 2^31 (32-bit shifts)

    index_t k_step() const { return sparse_2of4 ? 4 : (code_bits == 8 ? 4 : (code_bits == 4 ? 8 : 16)); }
};

struct int_dot_call {
    const int_dot_weights* w = nullptr;
    const std::uint8_t* x = nullptr;   // activations as unsigned bytes, row stride x_stride >= k_padded, zero padded
    index_t x_stride = 0;
    const float* x_scale = nullptr;     // per row Sx
    const std::int32_t* x_offset = nullptr;  // per row c_m (see above)
    index_t m = 0;                      // rows of X and Y; x, x_scale and x_offset hold m + 8 rows (zero past m)
    float* y = nullptr;
    index_t y_stride = 0;
    const float* bias = nullptr;        // n entries or null
    index_t panel_begin = 0, panel_end = 0;  // the panels this call computes
    index_t m_begin = 0, m_end = 0;          // the rows this call computes
};

/// Activation quantization to unsigned bytes (the oracle's element rule, vectorised):
///     u = clamp(RNE(x / scale + zero), code_min, code_max) - code_min
struct encode_call {
    const float* x = nullptr;
    index_t k = 0;
    float scale = 1.0f;
    float zero = 0.0f;
    int code_min = -128, code_max = 127;
    std::uint8_t* out = nullptr;  // k bytes
};

}  // namespace tcomp::cpu
