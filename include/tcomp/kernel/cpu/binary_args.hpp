// Arguments of the binary kernel (W1A1: sign weights x sign activations, xnor + popcount).
// binary_pack.hpp fills both sides (pack_binary: weights, once; binarize_activations: X, per call);
// binary_kernel.hpp computes.
//
// Arithmetic: with one bit per element (1 = +1, 0 = -1) and P = popcount(xbits XOR wbits) over the K bits,
//     acc = sum_k x_k * w_k = K - 2 * P                      exact in int32
//     y   = 0.0f;  y += float(acc) * (Sx_m * Sw_n);  y += bias[n] (when given)
// the oracle's order of float operations (kernel/reference/matmul.hpp), so results match it bit for bit.
//
// Weight layout (ISA-independent; one "panel" = 16 consecutive output rows n, rows past N are zero):
//   bits[(panel * words + j) * 16 + r]  = 64-bit word j (elements 64j .. 64j + 63) of row 16 * panel + r
// i.e. per panel and word, the 16 rows' words are contiguous (128 bytes), so one SIMD load gives the same
// word of 2, 4 or 8 rows and an activation word broadcast against it yields one output per 64-bit lane: no
// horizontal sums. Within a word, bit b is element 64j + b; bits past K are 0 in both operands, so they add
// nothing to P.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tcomp/core/config.hpp"

namespace tcomp::cpu {

/// Output rows per binary weight panel.
inline constexpr index_t binary_panel_rows = 16;

struct binary_weights {
    index_t n = 0, k = 0;
    index_t words = 0;                       // 64-bit words per row: ceil(k / 64)
    index_t panels = 0;                      // ceil(n / 16)
    const std::uint64_t* bits = nullptr;     // panels * words * 16 words, layout above, 64-byte aligned
    const float* scales = nullptr;           // [panels * 16] weight scale Sw per row (0 past n)
};

struct binary_call {
    const binary_weights* w = nullptr;
    const std::uint64_t* x_bits = nullptr;   // [m][x_stride] words, bit k%64 of word k/64 set when x is +1;
                                             // bits past K are 0
    index_t x_stride = 0;                    // words per row of x_bits (>= w->words; 0 means w->words)
    const float* x_scale = nullptr;          // [m] activation scale Sx per row
    index_t m = 0;                           // rows of X and Y
    float* y = nullptr;
    index_t y_stride = 0;
    const float* bias = nullptr;             // n entries or null
    index_t n_begin = 0, n_end = 0;          // the output columns this call writes (panel-aligned is fastest)
    index_t m_begin = 0, m_end = 0;          // the rows this call writes
};

namespace detail {

/// Popcount choice of the AVX-512 paths: -1 (default) VPOPCNTQ when the CPU has AVX512-VPOPCNTDQ, else the
/// vpshufb nibble table; 0 always the table (lets tests cover both on one machine). Other paths ignore it.
inline std::atomic<int>& binary_vpopcnt_mode() {
    static std::atomic<int> mode{-1};
    return mode;
}

}  // namespace detail

}  // namespace tcomp::cpu
