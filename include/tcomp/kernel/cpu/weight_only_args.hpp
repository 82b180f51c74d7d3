// Arguments of the weight-only kernels (W8A16, W4A16, W2A16: integer weights; NF4, MXFP4 and other 4-bit
// lookup formats; FP8: all with float activations).
// Owned by the weight-only kernel (weight_only_kernel.hpp); weight_only_pack.hpp fills the weights.
//
// Arithmetic: every weight is dequantized exactly as the oracle does it, w = fl(s * (u - z)), with u the
// stored unsigned integer (code - code_min), z the row-group's zero offset (zero point - code_min) and s its
// scale; the kernels then sum x * w in float (FMA where the path has it). See weight_only_kernel.hpp.
//
// Packed weight layout. A panel is 16 consecutive output rows n (rows past N are zero, with scale 0). K is
// padded with zero-scale or zero-activation elements to a multiple of the block length Bk = 512 / bits
// (64 k for 8-bit, 128 for 4-bit, 256 for 2-bit), so one block of one row is 64 bytes (one cache line).
//   codes   per panel: [block kb][row r (16)][64 bytes]; a panel's codes are contiguous (panel_code_bytes).
//           Within the 64 bytes of (kb, r), element k = kb * Bk + 16 * j + d (d = 0..15, j = 0..Bk/16-1) is
//             8-bit  byte 16 j + d, holding the int8 b = u - 128;
//             4-bit  bits [4 j, 4 j + 4) of the little-endian 32-bit word d (bytes 4d..4d+3), holding u;
//             2-bit  bits [2 j, 2 j + 2) of word d, holding u.
//           So a 16-k chunk j is one shift of the 16 words (AVX-512: one vpsrld, then vpermps through a
//           per-row table; AVX2/SSE: the same words in halves or quarters).
//   scales  [panel][group][16] float s (0 for padding rows and for groups wholly inside the K padding);
//   zeros   [panel][group][16] int8: z for 4/2-bit, z - 128 for 8-bit (so that w = s * (b - zeros)).
// Groups: `group` k per scale group, a multiple of 16 (k_padded for one group per row); `groups` =
// ceil(k_padded / group).
//
// Values of the codes (`values`):
//   integer    w = fl(s * (u - z)) as above;
//   table      4-bit codes of a floating format (NF4, FP4 E2M1): w = fl(s * lut[u]), lut the format's 16 values;
//              zeros are 0;
//   minifloat  8-bit codes of an 8-bit minifloat (FP8 E4M3, E5M2) stored unchanged (not offset by 128):
//              w = fl(s * v), v = +-float_from_bits((b & 0x7F) << mf_shift) * mf_scale, which is the format's
//              value exactly for every finite code (the packer checks each code it stores); zeros are 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tcomp/core/config.hpp"

namespace tcomp::cpu {

/// How a weight-only code becomes a value (see above).
enum class wo_values : std::uint8_t { integer, table, minifloat };

struct weight_only_weights {
    index_t n = 0, k = 0;
    index_t k_padded = 0;    // k rounded up to the block length (512 / code_bits)
    index_t group = 0;       // k per scale group (a multiple of 16); k_padded for one group
    index_t groups = 0;      // ceil(k_padded / group)
    index_t panels = 0;      // ceil(n / 16)
    int code_bits = 8;       // packed width: 8, 4 or 2
    bool zero_free = false;  // every zeros entry is 0 (8-bit: int8 symmetric; the kernel skips the subtraction)
    std::size_t panel_code_bytes = 0;     // 16 * k_padded * code_bits / 8
    const std::uint8_t* codes = nullptr;  // panels x panel_code_bytes, 64-byte aligned
    const float* scales = nullptr;        // [panel][group][16]
    const std::int8_t* zeros = nullptr;   // [panel][group][16]
    wo_values values = wo_values::integer;
    float lut[16] = {};                   // table: the value of each 4-bit code
    int mf_shift = 0;                     // minifloat: 23 - mantissa bits
    float mf_scale = 0.0f;                // minifloat: 2^(127 - bias)

    /// k per 64-byte block of one row.
    index_t block_k() const { return 512 / code_bits; }
};

/// One call: Y[m_begin..m_end) x [16 panel_begin, 16 panel_end) = X * W^T (+ bias), the other entries of Y
/// untouched. Columns past N in the last panel are not written.
struct weight_only_call {
    const weight_only_weights* w = nullptr;
    const float* x = nullptr;               // fp32 activations, or
    const std::uint16_t* x_bf16 = nullptr;  // bf16 activations (the top 16 bits of a float); exactly one is set
    index_t x_stride = 0;                   // elements between rows of X (>= k)
    index_t m = 0;                          // rows of X and Y
    float* y = nullptr;
    index_t y_stride = 0;                   // elements between rows of Y (>= n)
    const float* bias = nullptr;            // n entries or null
    index_t panel_begin = 0, panel_end = 0;
    index_t m_begin = 0, m_end = 0;
};

}  // namespace tcomp::cpu
