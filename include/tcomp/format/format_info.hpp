// The run-time face of a number format: one row of facts and conversion functions per format (ggml's
// type_traits idea), so code that learns the format at run time (descriptors, files, the quantization
// engine) reads a row instead of switching on the type in several places. format_info_of<F>() builds the row
// of any format type, including a user's own; quant/format_table.hpp looks rows up by descriptor.
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

struct format_info {
    std::string_view name;
    int bits = 0;
    format_family family = format_family::integer_grid;
    bool is_signed = true;
    bool dense_grid = true;  // integer grids: every integer in [code_min, code_max] is a code
    bool sign_grid = false;  // binary: no zero code, rounding by sign
    int code_min = 0, code_max = 0;  // integer grids only
    float step = 1.0f;               // integer grids: value of one integer step at scale 1
    float max_value = 0.0f;
    std::uint32_t (*encode)(float) = nullptr;
    float (*decode)(std::uint32_t) = nullptr;
    int (*to_integer)(std::uint32_t) = nullptr;  // integer grids only
    std::uint32_t (*from_integer)(int) = nullptr;

    bool integer_grid() const { return family == format_family::integer_grid; }
    /// What one stored integer step is worth at scale 1 (1 for floating formats): detail::format_unit<F>().
    float unit() const { return integer_grid() ? step : 1.0f; }
    /// The largest magnitude symmetric scaling maps amax to: code_max for integer grids, max_value otherwise.
    float range_max() const { return integer_grid() ? static_cast<float>(code_max) : max_value; }
};

namespace detail {
template <class F>
std::uint32_t format_encode(float x) {
    return F::encode(x);
}
template <class F>
float format_decode(std::uint32_t c) {
    return F::decode(c);
}
template <class F>
int format_to_integer(std::uint32_t c) {
    return F::to_integer(c);
}
template <class F>
std::uint32_t format_from_integer(int v) {
    return F::from_integer(v);
}
}  // namespace detail

template <number_format F>
format_info format_info_of() {
    format_info i;
    i.name = F::name;
    i.bits = F::bits;
    i.family = F::family;
    i.max_value = F::max_value;
    i.encode = &detail::format_encode<F>;
    i.decode = &detail::format_decode<F>;
    if constexpr (integer_grid_format<F>) {
        i.is_signed = F::is_signed;
        i.dense_grid = F::dense_grid;
        i.sign_grid = !F::dense_grid;
        i.code_min = F::code_min;
        i.code_max = F::code_max;
        i.step = F::step;
        i.to_integer = &detail::format_to_integer<F>;
        i.from_integer = &detail::format_from_integer<F>;
    }
    return i;
}

}  // namespace tcomp
