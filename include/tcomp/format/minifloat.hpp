// Small binary floating-point formats: 1 sign bit, E exponent bits, M mantissa bits, bias 2^(E-1) - 1,
// IEEE-style subnormals (exponent field 0: value = m * 2^(1 - bias - M)). One template serves OCP OFP8
// (E4M3, E5M2), the OCP MX element formats (FP6 E2M3/E3M2, FP4 E2M1), IEEE binary16 and bfloat16.
//
// encode/decode work on the float's bit pattern with integer arithmetic only: exact for every float
// (subnormals, ±0, ±Inf, NaN, huge values), independent of the rounding mode, FTZ/DAZ and fast-math, the same
// on the host and in CUDA kernels, constexpr, and without lookup tables.
//
// Rules (a type with two constexpr members, e.g. minifloat_rules<...>) says what the bit layout does not:
//   specials   how the top exponent field (all ones) is used
//     ieee       mantissa 0 is ±Inf, any other mantissa is NaN (IEEE 754; OCP E5M2, fp16, bf16)
//     nan_only   only S.1..1.1..1 is NaN, the rest of the top binade is finite, no Inf (OCP E4M3, "FN")
//     none       every code is finite: no Inf, no NaN (OCP MX FP6 and FP4)
//   overflow   what encode does when |x| rounds to more than max_value
//     saturate        ±max_value. An infinite input stays ±Inf in formats that have Inf (a real Inf in the
//                     data stays visible) and becomes ±max_value elsewhere. tcomp's quantizers use this.
//     satfinite       ±max_value, infinite inputs included (NVIDIA __NV_SATFINITE, ONNX saturate=1)
//     non_saturating  ±Inf, or NaN in nan_only formats (OCP OFP8 non-saturating mode; IEEE 754 overflow);
//                     meaningless for specials = none, which rejects it at compile time
//
// Rounding is to nearest, ties to even (to the code whose last bit is 0), and happens before the overflow
// test, as OFP8 specifies: in E4M3, 464 (halfway between 448 and the 480 that NaN took) rounds to 448 and
// anything larger overflows; in E5M2 (non-saturating), 61440 (halfway between 57344 and 65536) goes to Inf.
// Results below half the smallest subnormal round to zero; zero results keep the input's sign (-0 -> -0 code).
//
// NaN inputs (quantizers never produce them; encode is total anyway):
//   ieee      quiet NaN with the input's sign and the top M payload bits (what F16C/ARM conversions do)
//   nan_only  the positive NaN code (0x7F for E4M3), as is a non_saturating overflow: the sign is dropped
//   none      +0 (no code can say NaN; NVIDIA's cvt picks +max instead, we prefer not to invent a large value)
// decode of a NaN code returns a quiet float NaN with the code's sign and payload, so for ieee formats a
// signalling NaN code comes back from encode(decode(c)) with its quiet bit set; every other code round-trips.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tcomp/format/format_traits.hpp"

namespace tcomp {

enum class minifloat_specials { ieee, nan_only, none };
enum class minifloat_overflow { saturate, satfinite, non_saturating };

template <minifloat_specials Specials, minifloat_overflow Overflow = minifloat_overflow::saturate>
struct minifloat_rules {
    static constexpr minifloat_specials specials = Specials;
    static constexpr minifloat_overflow overflow = Overflow;
};

/// IEEE-like top binade (Inf/NaN); finite overflow saturates, ±Inf stays ±Inf (E5M2, fp16, bf16).
using ieee_rules = minifloat_rules<minifloat_specials::ieee>;
/// OCP E4M3: one NaN pattern per sign, no Inf; overflow and ±Inf saturate to ±max.
using ocp_fn_rules = minifloat_rules<minifloat_specials::nan_only>;
/// OCP MX FP6/FP4: all codes finite; overflow and ±Inf saturate to ±max.
using ocp_finite_rules = minifloat_rules<minifloat_specials::none>;

namespace detail {

// __builtin_bit_cast (GCC >= 11, Clang >= 9, MSVC, nvcc) is constexpr and usable in device code;
// std::bit_cast is a host-only function for nvcc without --expt-relaxed-constexpr.
TCOMP_HOST_DEVICE constexpr std::uint32_t bit_pattern(float x) { return __builtin_bit_cast(std::uint32_t, x); }
TCOMP_HOST_DEVICE constexpr float float_from_pattern(std::uint32_t u) { return __builtin_bit_cast(float, u); }

/// Index of the highest set bit of v (v != 0).
TCOMP_HOST_DEVICE constexpr int highest_bit(std::uint32_t v) {
    int p = 0;
    for (int step = 16; step > 0; step >>= 1) {  // binary search: 5 steps
        if (v >> step) {
            v >>= step;
            p += step;
        }
    }
    return p;
}

/// Everything about a minifloat layout, outside the format type so that the format's static constexpr
/// traits can be computed from it (a class's own member functions are not usable in its member initializers).
template <int E, int M, class Rules>
struct minifloat_codec {
    static constexpr minifloat_specials specials = Rules::specials;
    static constexpr minifloat_overflow overflow = Rules::overflow;
    static constexpr int bias = E >= 1 ? (1 << (E - 1)) - 1 : 0;  // E == 0 is rejected by minifloat_format
    static constexpr std::uint32_t mantissa_mask = (1u << M) - 1u;
    static constexpr std::uint32_t exponent_all_ones = (1u << E) - 1u;
    static constexpr std::uint32_t sign_bit = 1u << (E + M);
    static constexpr std::uint32_t magnitude_mask = sign_bit - 1u;
    static constexpr std::uint32_t inf_code = exponent_all_ones << M;  // ieee only
    // Largest finite magnitude code.
    static constexpr std::uint32_t max_code = specials == minifloat_specials::ieee       ? inf_code - 1u
                                              : specials == minifloat_specials::nan_only ? magnitude_mask - 1u
                                                                                         : magnitude_mask;

    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) {
        const std::uint32_t sign = (code & sign_bit) ? 0x80000000u : 0u;
        const std::uint32_t mag = code & magnitude_mask;
        const std::uint32_t ef = mag >> M;
        const std::uint32_t m = mag & mantissa_mask;
        if constexpr (specials == minifloat_specials::ieee) {
            if (ef == exponent_all_ones) {
                if (m == 0) return float_from_pattern(sign | 0x7F800000u);
                return float_from_pattern(sign | 0x7FC00000u | (m << (23 - M)));  // quiet, payload kept
            }
        } else if constexpr (specials == minifloat_specials::nan_only) {
            if (mag == magnitude_mask) return float_from_pattern(sign | 0x7FC00000u);
        }
        if (ef != 0) {
            // Normal: float exponent ef - bias + 127 is in [1, 254] (E <= 8, and E == 8 only with ieee).
            const std::uint32_t fe = ef + static_cast<std::uint32_t>(127 - bias);
            return float_from_pattern(sign | (fe << 23) | (m << (23 - M)));
        }
        if (m == 0) return float_from_pattern(sign);
        if constexpr (bias + M >= 127) {
            // Subnormals below float's normal range (bf16): exactly the float subnormal k * 2^-149.
            return float_from_pattern(sign | (m << (150 - bias - M)));
        } else {
            // Subnormal m * 2^(1 - bias - M) is a normal float: normalise around its top bit p.
            const int p = highest_bit(m);
            const auto fe = static_cast<std::uint32_t>(p + 128 - bias - M);  // >= 1 here
            return float_from_pattern(sign | (fe << 23) | ((m ^ (1u << p)) << (23 - p)));
        }
    }

    /// Adds the sign to a magnitude code, except to the NaN of a nan_only format, which is always positive.
    TCOMP_HOST_DEVICE static constexpr std::uint32_t with_sign(std::uint32_t sign, std::uint32_t mag) {
        if constexpr (specials == minifloat_specials::nan_only) {
            if (mag == magnitude_mask) return mag;
        }
        return sign | mag;
    }

    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode_nan(std::uint32_t u) {
        if constexpr (specials == minifloat_specials::ieee) {
            const std::uint32_t payload = (u & 0x007FFFFFu) >> (23 - M);
            return ((u >> 31) ? sign_bit : 0u) | inf_code | payload | (1u << (M - 1));
        } else if constexpr (specials == minifloat_specials::nan_only) {
            return magnitude_mask;
        } else {
            return 0u;
        }
    }

    /// Magnitude code for an overflowing result (rounded magnitude above max_code, or an infinite input).
    TCOMP_HOST_DEVICE static constexpr std::uint32_t overflow_code(bool infinite_input) {
        if constexpr (specials == minifloat_specials::none) {
            (void)infinite_input;
            return max_code;
        } else {
            if (overflow == minifloat_overflow::non_saturating)
                return specials == minifloat_specials::ieee ? inf_code : magnitude_mask;  // Inf, or FN's NaN
            if (specials == minifloat_specials::ieee && infinite_input && overflow == minifloat_overflow::saturate)
                return inf_code;
            return max_code;
        }
    }

    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) {
        const std::uint32_t u = bit_pattern(x);
        const std::uint32_t a = u & 0x7FFFFFFFu;
        if (a > 0x7F800000u) return encode_nan(u);
        const std::uint32_t sign = (u >> 31) ? sign_bit : 0u;
        if (a == 0x7F800000u) return with_sign(sign, overflow_code(true));
        if (a == 0) return sign;
        // |x| = sig * 2^lsb_exp with sig < 2^24.
        const std::uint32_t fe = a >> 23;
        const std::uint32_t sig = fe ? ((a & 0x007FFFFFu) | 0x00800000u) : a;
        const int lsb_exp = fe ? static_cast<int>(fe) - 150 : -149;
        const int e = lsb_exp + highest_bit(sig);     // floor(log2 |x|)
        const int te = e + bias < 1 ? 1 : e + bias;   // target exponent field; 1 also stands for subnormals
        const int shift = (te - bias - M) - lsb_exp;  // target quantum over sig's: >= 1 (M <= 14, bias <= 127)
        // In units of the target quantum, the magnitude code is ((te - 1) << M) + sig / 2^shift: the integer
        // part of the quotient carries the implicit bit, and a rounding carry moves into the exponent field by
        // itself (largest subnormal -> smallest normal, 1.11..1 * 2^e -> 2^(e+1)).
        const std::uint32_t base = static_cast<std::uint32_t>(te - 1) << M;
        std::uint32_t q = 0;
        if (shift < 25) {  // otherwise sig < 2^24 <= half a quantum: rounds to 0
            q = sig >> shift;
            const std::uint32_t rem = sig & ((1u << shift) - 1u);
            const std::uint32_t half = 1u << (shift - 1);
            if (rem > half || (rem == half && ((base + q) & 1u))) ++q;  // ties to the even code
        }
        const std::uint32_t mag = base + q;
        if (mag > max_code) return with_sign(sign, overflow_code(false));
        return sign | mag;
    }

    /// The code encode gives a positive quiet NaN (0 where the format has no NaN).
    static constexpr std::uint32_t canonical_nan() {
        if constexpr (specials == minifloat_specials::ieee)
            return inf_code | (1u << (M - 1));
        else if constexpr (specials == minifloat_specials::nan_only)
            return magnitude_mask;
        else
            return 0u;
    }
};

struct minifloat_name {
    char text[24]{};
    int size = 0;
    constexpr void put(char c) { text[size++] = c; }
    constexpr void put_int(int v) {
        if (v >= 10) put(static_cast<char>('0' + v / 10));
        put(static_cast<char>('0' + v % 10));
    }
};

template <int E, int M, class Rules>
constexpr minifloat_name make_minifloat_name() {
    // "fp8_e5m2"; "fn" suffix (finite: no Inf) as ml_dtypes spells float8_e4m3fn and float6_e2m3fn.
    minifloat_name n;
    n.put('f');
    n.put('p');
    n.put_int(1 + E + M);
    n.put('_');
    n.put('e');
    n.put_int(E);
    n.put('m');
    n.put_int(M);
    if (Rules::specials != minifloat_specials::ieee) {
        n.put('f');
        n.put('n');
    }
    return n;
}

template <int E, int M, class Rules>
inline constexpr minifloat_name minifloat_name_v = make_minifloat_name<E, M, Rules>();

}  // namespace detail

template <int ExponentBits, int MantissaBits, class Rules = ieee_rules>
struct minifloat_format {
    static_assert(ExponentBits >= 1 && ExponentBits <= 8,
                  "minifloat_format<E, M, Rules>: ExponentBits must be in 1..8 (a minifloat needs an exponent, "
                  "and decode targets float, whose exponent has 8 bits)");
    static_assert(MantissaBits >= 0, "minifloat_format<E, M, Rules>: MantissaBits must be non-negative");
    static_assert(1 + ExponentBits + MantissaBits <= 16,
                  "minifloat_format<E, M, Rules>: too wide: 1 + E + M must be at most 16 bits (tcomp codes are "
                  "1 to 16 bits)");
    static_assert(ExponentBits < 8 || Rules::specials == minifloat_specials::ieee,
                  "minifloat_format<E, M, Rules>: with 8 exponent bits only ieee specials fit in float's range");
    static_assert(Rules::specials != minifloat_specials::ieee || (ExponentBits >= 2 && MantissaBits >= 1),
                  "minifloat_format<E, M, Rules>: ieee specials need E >= 2 (some normal binade) and M >= 1 "
                  "(to tell NaN from Inf)");
    static_assert(Rules::specials != minifloat_specials::nan_only || ExponentBits + MantissaBits >= 2,
                  "minifloat_format<E, M, Rules>: nan_only specials need E + M >= 2 (a nonzero finite value)");
    static_assert(Rules::specials != minifloat_specials::none || Rules::overflow != minifloat_overflow::non_saturating,
                  "minifloat_format<E, M, Rules>: a format without Inf and NaN can only saturate on overflow");

  private:
    using codec = detail::minifloat_codec<ExponentBits, MantissaBits, Rules>;

  public:
    using rules = Rules;
    static constexpr int exponent_bits = ExponentBits;
    static constexpr int mantissa_bits = MantissaBits;
    static constexpr int bits = 1 + ExponentBits + MantissaBits;
    static constexpr int bias = codec::bias;
    static constexpr std::string_view name{
        detail::minifloat_name_v<ExponentBits, MantissaBits, Rules>.text,
        static_cast<std::size_t>(detail::minifloat_name_v<ExponentBits, MantissaBits, Rules>.size)};
    static constexpr format_family family = format_family::floating;
    static constexpr bool has_infinity = Rules::specials == minifloat_specials::ieee;
    static constexpr bool has_nan = Rules::specials != minifloat_specials::none;
    static constexpr minifloat_overflow overflow = Rules::overflow;

    /// Largest finite magnitude code and the special codes (positive sign; OR sign_bit for negative).
    static constexpr std::uint32_t sign_bit = codec::sign_bit;
    static constexpr std::uint32_t max_code = codec::max_code;
    static constexpr std::uint32_t infinity_code = has_infinity ? codec::inf_code : 0u;  // 0: none
    /// The NaN encode produces for a positive quiet NaN (0 for formats without NaN, where NaN encodes as +0).
    static constexpr std::uint32_t nan_code = codec::canonical_nan();

    static constexpr float max_value = codec::decode(codec::max_code);
    /// 2^(1 - bias): smallest positive normal value.
    static constexpr float min_normal = codec::decode(1u << MantissaBits);
    /// 2^(1 - bias - M): smallest positive value (a subnormal when M > 0).
    static constexpr float min_subnormal = codec::decode(1u);

    TCOMP_HOST_DEVICE static constexpr std::uint32_t encode(float x) { return codec::encode(x); }
    TCOMP_HOST_DEVICE static constexpr float decode(std::uint32_t code) { return codec::decode(code); }
    TCOMP_HOST_DEVICE static constexpr bool is_nan(std::uint32_t code) {
        const std::uint32_t mag = code & codec::magnitude_mask;
        if constexpr (Rules::specials == minifloat_specials::ieee)
            return mag > codec::inf_code;
        else if constexpr (Rules::specials == minifloat_specials::nan_only)
            return mag == codec::magnitude_mask;
        else
            return false;
    }
    TCOMP_HOST_DEVICE static constexpr bool is_infinity(std::uint32_t code) {
        return has_infinity && (code & codec::magnitude_mask) == codec::inf_code;
    }
};

}  // namespace tcomp
