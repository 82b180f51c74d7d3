// Integers of 1..8 bits. Width and signedness live in the type (as in CUTLASS's integer_subbyte):
//   int_format<B>   two's complement, codes -2^(B-1) .. 2^(B-1)-1, stored as the B-bit pattern
//   uint_format<B>  unsigned, codes 0 .. 2^B-1
// Values are the integers themselves (step 1); a quantizer's scale (and zero point) maps them to reals.
#pragma once

#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

namespace detail {
template <int Bits, bool Signed>
constexpr std::string_view integer_name() {
    constexpr std::string_view names_signed[] = {"", "int1", "int2", "int3", "int4", "int5", "int6", "int7", "int8"};
    constexpr std::string_view names_unsigned[] = {"",      "uint1", "uint2", "uint3", "uint4",
                                                   "uint5", "uint6", "uint7", "uint8"};
    return Signed ? names_signed[Bits] : names_unsigned[Bits];
}
}  // namespace detail

template <int Bits>
struct int_format {
    static_assert(Bits >= 1 && Bits <= 8,
                  "int_format<Bits>: Bits must be in 1..8 (tcomp packs integer codes of 1 to 8 bits; use fp16/bf16 "
                  "storage for wider values)");
    static constexpr int bits = Bits;
    static constexpr std::string_view name = detail::integer_name<Bits, true>();
    static constexpr format_family family = format_family::integer_grid;
    static constexpr bool is_signed = true;
    static constexpr bool dense_grid = true;
    static constexpr int code_min = -(1 << (Bits - 1));
    static constexpr int code_max = (1 << (Bits - 1)) - 1;
    static constexpr float step = 1.0f;
    // Magnitude that symmetric quantization maps amax to: code_max (the negative end, -2^(B-1), stays usable
    // for saturation but is not targeted, so the grid is symmetric around zero).
    static constexpr float max_value = static_cast<float>(code_max);

    TCOMP_HOST_DEVICE static constexpr int to_integer(std::uint32_t code) {
        return detail::from_twos_complement(code, Bits);
    }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t from_integer(int v) { return detail::to_twos_complement(v, Bits); }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) { return detail::encode_integer_grid<int_format>(x); }
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return static_cast<float>(to_integer(code)); }
};

template <int Bits>
struct uint_format {
    static_assert(Bits >= 1 && Bits <= 8, "uint_format<Bits>: Bits must be in 1..8 (tcomp packs integer codes of 1 to 8 bits)");
    static constexpr int bits = Bits;
    static constexpr std::string_view name = detail::integer_name<Bits, false>();
    static constexpr format_family family = format_family::integer_grid;
    static constexpr bool is_signed = false;
    static constexpr bool dense_grid = true;
    static constexpr int code_min = 0;
    static constexpr int code_max = (1 << Bits) - 1;
    static constexpr float step = 1.0f;
    static constexpr float max_value = static_cast<float>(code_max);

    TCOMP_HOST_DEVICE static constexpr int to_integer(std::uint32_t code) {
        return static_cast<int>(code & static_cast<std::uint32_t>(code_max));
    }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t from_integer(int v) { return static_cast<std::uint32_t>(v); }
    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) { return detail::encode_integer_grid<uint_format>(x); }
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return static_cast<float>(to_integer(code)); }
};

using int8_format = int_format<8>;
using int4_format = int_format<4>;
using int2_format = int_format<2>;
using uint8_format = uint_format<8>;
using uint4_format = uint_format<4>;

}  // namespace tcomp
