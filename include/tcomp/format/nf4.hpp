// NF4: the 4-bit NormalFloat of QLoRA (Dettmers et al. 2023), 16 values at the quantiles of a standard normal,
// normalised to [-1, 1], with an exact zero. Weights are stored as 4-bit indices into the table and scaled
// per group by a float absmax scale (QLoRA uses groups of 64: policy "nf4" = w=nf4:g64).
//
// A table format, not a grid: it belongs to the floating family (value = decode(code), no integer
// arithmetic on codes). encode(x) is the nearest table value; a tie between two neighbours goes to the lower
// one (x must exceed the midpoint to round up), NaN encodes as the zero code, and values beyond +-1 saturate.
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

namespace detail {
// The 16 float32 values of bitsandbytes' NF4 table (create_normal_map), in code order.
inline constexpr float nf4_values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};
}  // namespace detail

struct nf4_format {
    static constexpr int bits = 4;
    static constexpr std::string_view name = "nf4";
    static constexpr format_family family = format_family::floating;
    static constexpr float max_value = 1.0f;
    /// The code of 0.0 (what NaN encodes to).
    static constexpr std::uint32_t zero_code = 7;

    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return detail::nf4_values[code & 15u]; }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) {
        if (!(x == x)) return zero_code;
        // Count the midpoints x lies above: a binary search over 15 midpoints in float (each midpoint is the
        // float average of two neighbours, computed the same way on every back end).
        std::uint32_t lo = 0, hi = 15;
        while (lo < hi) {
            const std::uint32_t mid = (lo + hi) / 2;
            const float midpoint = (detail::nf4_values[mid] + detail::nf4_values[mid + 1]) * 0.5f;
            if (x > midpoint) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
};

}  // namespace tcomp
