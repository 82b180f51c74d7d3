// Binary (sign) format: one bit, value -1 (code 0) or +1 (code 1). Zero encodes as +1 (sign(0) = +1, as in
// XNOR-Net), so every input has a code. The grid {-1, +1} has no zero, so a zero point is meaningless:
// asymmetric quantizers reject this format at compile time. Products of two binary values are
// xnor + popcount: sum_i a_i*b_i = K - 2*popcount(a XOR b).
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

struct binary_format {
    static constexpr int bits = 1;
    static constexpr std::string_view name = "binary";
    static constexpr format_family family = format_family::integer_grid;
    static constexpr bool is_signed = true;
    static constexpr bool dense_grid = false;  // 0 lies in [code_min, code_max] but is not a code
    static constexpr int code_min = -1;
    static constexpr int code_max = 1;
    static constexpr float step = 1.0f;
    static constexpr float max_value = 1.0f;

    TCOMP_HOST_DEVICE static constexpr int to_integer(std::uint32_t code) { return (code & 1u) ? 1 : -1; }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t from_integer(int v) { return v >= 0 ? 1u : 0u; }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) { return x >= 0.0f ? 1u : 0u; }  // NaN -> -1
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return static_cast<float>(to_integer(code)); }
};

}  // namespace tcomp
