// Ternary format: values {-1, 0, +1} in 2 bits, stored as two's complement (0b11 = -1, 0b00 = 0,
// 0b01 = +1). The pattern 0b10 (-2) is never produced; decoding it saturates to -1 so a corrupted code
// cannot leave the grid. 1.58 bits of information in 2 bits of storage: the simple layout keeps
// unpacking a shift and a mask (same as int2).
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

struct ternary_format {
    static constexpr int bits = 2;
    static constexpr std::string_view name = "ternary";
    static constexpr format_family family = format_family::integer_grid;
    static constexpr bool is_signed = true;
    static constexpr bool dense_grid = true;
    static constexpr int code_min = -1;
    static constexpr int code_max = 1;
    static constexpr float step = 1.0f;
    static constexpr float max_value = 1.0f;

    TCOMP_HOST_DEVICE static constexpr int to_integer(std::uint32_t code) {
        const int v = detail::from_twos_complement(code, 2);
        return v < -1 ? -1 : v;
    }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t from_integer(int v) { return detail::to_twos_complement(v, 2); }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) { return detail::encode_integer_grid<ternary_format>(x); }
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return static_cast<float>(to_integer(code)); }
};

}  // namespace tcomp
