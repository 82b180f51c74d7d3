// The format row (format/format_info.hpp) of every format a descriptor can name, looked up by format_desc.
// Rows are built once, on first use; the lookup is a switch on the kind and an index, never a string compare.
#pragma once

#include <array>
#include <utility>

#include "tcomp/core/error.hpp"
#include "tcomp/format/format_info.hpp"
#include "tcomp/format/formats.hpp"
#include "tcomp/quant/descriptor.hpp"

namespace tcomp {

namespace detail {

template <template <int> class Format, std::size_t... B>
std::array<format_info, 8> integer_rows(std::index_sequence<B...>) {
    return {format_info_of<Format<static_cast<int>(B) + 1>>()...};
}

template <std::size_t I>
format_info fixed_point_row() {
    constexpr int m = static_cast<int>(I / 8), n = static_cast<int>(I % 8);
    if constexpr (1 + m + n <= 8) return format_info_of<fixed_point_format<m, n>>();
    else return format_info{};
}
template <std::size_t... I>
std::array<format_info, 64> fixed_point_rows(std::index_sequence<I...>) {
    return {fixed_point_row<I>()...};
}

}  // namespace detail

/// The row of the format `f` names; throws tcomp::error for a format_desc outside the named set.
inline const format_info& format_info_for(const format_desc& f) {
    static const std::array<format_info, 8> ints = detail::integer_rows<int_format>(std::make_index_sequence<8>{});
    static const std::array<format_info, 8> uints = detail::integer_rows<uint_format>(std::make_index_sequence<8>{});
    static const std::array<format_info, 64> fixed = detail::fixed_point_rows(std::make_index_sequence<64>{});
    static const std::array<format_info, 10> named = {
        format_info_of<binary_format>(), format_info_of<ternary_format>(), format_info_of<fp8_e4m3>(),
        format_info_of<fp8_e5m2>(),      format_info_of<fp6_e2m3>(),       format_info_of<fp6_e3m2>(),
        format_info_of<fp4_e2m1>(),      format_info_of<fp16_format>(),    format_info_of<bf16_format>(),
        format_info_of<nf4_format>()};
    switch (f.kind) {
        case format_kind::int_:
        case format_kind::uint_:
            if (f.bits < 1 || f.bits > 8)
                detail::throw_error<error>("format: int_format<Bits>/uint_format<Bits>: Bits must be in 1..8; got ", f.bits);
            return (f.kind == format_kind::int_ ? ints : uints)[static_cast<std::size_t>(f.bits - 1)];
        case format_kind::fixed_point:
            if (f.integer_bits < 0 || f.fraction_bits < 0 || 1 + f.integer_bits + f.fraction_bits > 8)
                detail::throw_error<error>("format: fixed_point_format<m, n>: 1 + m + n must be at most 8 bits");
            return fixed[static_cast<std::size_t>(f.integer_bits * 8 + f.fraction_bits)];
        case format_kind::binary: return named[0];
        case format_kind::ternary: return named[1];
        case format_kind::fp8_e4m3: return named[2];
        case format_kind::fp8_e5m2: return named[3];
        case format_kind::fp6_e2m3: return named[4];
        case format_kind::fp6_e3m2: return named[5];
        case format_kind::fp4_e2m1: return named[6];
        case format_kind::fp16: return named[7];
        case format_kind::bf16: return named[8];
        case format_kind::nf4: return named[9];
    }
    detail::throw_error<error>("format: unknown format kind ", static_cast<int>(f.kind));
}

}  // namespace tcomp
