// Arguments of the weight-only kernels (W8A16, W4A16, W2A16: integer weights, float activations).
// Owned by the weight-only kernel (weight_only_kernel.hpp); pack.hpp fills the weights.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tcomp/core/config.hpp"

namespace tcomp::cpu {

struct weight_only_weights {
    index_t n = 0, k = 0;
    index_t k_padded = 0;
    index_t group = 0;       // k per scale group; k_padded for one group
    index_t groups = 0;
    index_t panels = 0;      // ceil(n / 16)
    int code_bits = 8;       // packed width: 8, 4 or 2
    std::size_t panel_code_bytes = 0;
    const std::uint8_t* codes = nullptr;  // layout: see weight_only_kernel.hpp
    const float* scales = nullptr;        // [panel][group][16]
    const float* zeros = nullptr;         // [panel][group][16]: w = scale * (u - zero), u = code - code_min
};

struct weight_only_call {
    const weight_only_weights* w = nullptr;
    const float* x = nullptr;             // fp32 activations, or
    const std::uint16_t* x_bf16 = nullptr;  // bf16 activations (exactly one of x / x_bf16 is set)
    index_t x_stride = 0;
    index_t m = 0;
    float* y = nullptr;
    index_t y_stride = 0;
    const float* bias = nullptr;
    index_t panel_begin = 0, panel_end = 0;
    index_t m_begin = 0, m_end = 0;
};

}  // namespace tcomp::cpu
