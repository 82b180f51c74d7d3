// Scale kinds: how a group's scale S is chosen and stored. S is in code units: x ~ S * (v - z), with v
// the format's integer (integer-grid formats) or its decoded value (floating formats). Each kind turns the
// per-group "ideal" scale S* (the one that maps the group's clip range exactly onto the grid) into a
// representable one, and says how many bits each group's entry takes:
//
//   float_scale               S = S*                               32-bit float per group
//   pow2_scale                S = 2^ceil(log2 S*)  (never clips)   int8 exponent per group; dequant = shift
//   e8m0_scale                OCP MX: S = 2^(floor(log2 amax) - emax(element)) * unit; values beyond the
//                             element's max saturate (as the MX spec does)   uint8 biased exponent (E8M0)
//   multi_level_scale<B>      tensor float T = max S*, group S = T * 2^-s, s in [0, 2^B)  B bits per group
//   shiftable_scale<B>        as multi_level, with T itself a power of two: every rescale is a shift
//                             (the shiftable fixed-point format of low-bit training)
//   unit_scale                S = the format's own unit (2^-n for Q(m.n), 1 otherwise); nothing stored:
//                             raw fixed point, fp16/bf16/fp8 storage casts
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

#include "tcomp/format/format_info.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/format/half.hpp"
#include "tcomp/quant/descriptor.hpp"

namespace tcomp {

struct scale_category {};

namespace detail {

/// The format's unit: what one step of the stored integer is worth at scale 1 (1 for floating formats).
template <class F>
constexpr float format_unit() {
    if constexpr (integer_grid_format<F>) return F::step;
    else return 1.0f;
}

/// floor(log2(x)) for finite x > 0, exact (frexp is exact).
inline int floor_log2(double x) {
    int e = 0;
    const double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
    (void)m;
    return e - 1;
}
/// ceil(log2(x)) for finite x > 0, exact.
inline int ceil_log2(double x) {
    int e = 0;
    const double m = std::frexp(x, &e);
    return m == 0.5 ? e - 1 : e;
}

inline std::uint32_t float_bits(float f) {
    std::uint32_t u = 0;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline float bits_float(std::uint32_t u) {
    float f = 0;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

/// Per-group scale decisions of one matrix: stored entries (scale_bits each), the scales they mean,
/// and the tensor-level scale for two-level kinds.
struct scale_assignment {
    std::vector<std::uint32_t> stored;
    std::vector<float> effective;
    float tensor_scale = 1.0f;
};

inline float safe_float_scale(double ideal) {
    if (!(ideal > 0.0)) return 1.0f;  // an all-zero group: any scale is exact; 1 avoids 0/0 later
    // Never a subnormal scale (as pow2_scale): bf16's amax / max_value is subnormal for amax < ~4, and a
    // subnormal S loses precision, so x / S could overflow float to Inf, besides running on slow microcode.
    // A scale above the ideal one never clips.
    const auto s = static_cast<float>(ideal);
    return s >= std::numeric_limits<float>::min() ? s : std::numeric_limits<float>::min();
}

/// The half-precision scale nearest a wanted one (never zero, subnormal or above 65504; 1 for an all-zero group).
inline float half_scale_value(double ideal) {
    if (!(ideal > 0.0)) return 1.0f;
    const float v = fp16_format::decode(fp16_format::encode(static_cast<float>(ideal)));
    return v < 0x1p-14f ? 0x1p-14f : v;  // encode saturates at 65504
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/// Representable scales for the ideal ones, by scale kind: the one implementation of every kind below (the
/// typed kinds call it with their format's row). `shift_bits`: multi_level / shiftable only.
inline scale_assignment assign_scales(scale_kind kind, int shift_bits, const format_info& f,
                                      std::span<const double> ideal, std::span<const float> amax) {
    scale_assignment out;
    switch (kind) {
        case scale_kind::float_:
            for (double s : ideal) {
                // Sign grids (binary) have no zero code: an all-zero group must keep S = 0 to dequantize to 0
                // (quantize_value never divides by it); every other grid has a zero code, so any S is exact there.
                const float v = (f.sign_grid && !(s > 0.0)) ? 0.0f : safe_float_scale(s);
                out.stored.push_back(float_bits(v));
                out.effective.push_back(v);
            }
            break;
        case scale_kind::f16:
            // IEEE half, rounded to nearest (llama.cpp's Q4_0 / Q8_0 layout): 2^-11 relative, so a group's extreme
            // may land a fraction of a step beyond the grid and clamp. Kept normal (>= 2^-14) and <= 65504.
            for (double s : ideal) {
                const float v = (f.sign_grid && !(s > 0.0)) ? 0.0f : half_scale_value(s);
                out.stored.push_back(static_cast<std::uint32_t>(fp16_format::encode(v)));
                out.effective.push_back(v);
            }
            break;
        case scale_kind::pow2:
            for (double s : ideal) {
                const int e = s > 0.0 ? clamp_int(ceil_log2(s), -126, 127) : 0;  // 2^e stays a normal float
                out.stored.push_back(static_cast<std::uint32_t>(e) & 0xFFu);
                out.effective.push_back(std::ldexp(1.0f, e));
            }
            break;
        case scale_kind::e8m0: {
            // OCP MX v1.0, section 6.3: shared exponent = floor(log2(amax)) - emax_elem.
            const int emax_element = floor_log2(static_cast<double>(f.max_value));
            for (float a : amax) {
                const int e = a > 0.0f ? clamp_int(floor_log2(a) - emax_element, -127, 127) : -127;
                out.stored.push_back(static_cast<std::uint32_t>(e + 127));
                out.effective.push_back(static_cast<float>(std::ldexp(1.0, e) * static_cast<double>(f.unit())));
            }
            break;
        }
        case scale_kind::multi_level:
        case scale_kind::shiftable: {
            const int max_shift = (1 << shift_bits) - 1;
            double top = 0.0;
            for (double s : ideal) top = s > top ? s : top;
            float tensor = safe_float_scale(top);
            if (kind == scale_kind::shiftable)
                tensor = top > 0.0 ? std::ldexp(1.0f, clamp_int(ceil_log2(top), -126, 127)) : 1.0f;
            out.tensor_scale = tensor;
            for (double s : ideal) {
                // The largest shift that still covers the group (S >= S*), so no group clips.
                int shift = s > 0.0 ? floor_log2(static_cast<double>(tensor) / s) : max_shift;
                shift = clamp_int(shift, 0, max_shift);
                out.stored.push_back(static_cast<std::uint32_t>(shift));
                out.effective.push_back(std::ldexp(tensor, -shift));
            }
            break;
        }
        case scale_kind::unit:
            out.stored.assign(ideal.size(), 0u);
            out.effective.assign(ideal.size(), f.unit());
            break;
    }
    return out;
}

/// The scale a stored entry means (run-time counterpart of each kind's decode<F>).
inline float decode_scale(scale_kind kind, const format_info& f, std::uint32_t stored, float tensor_scale) {
    switch (kind) {
        case scale_kind::float_: return bits_float(stored);
        case scale_kind::pow2:
            return std::ldexp(1.0f, static_cast<int>(static_cast<std::int8_t>(static_cast<std::uint8_t>(stored))));
        case scale_kind::e8m0:
            return static_cast<float>(std::ldexp(1.0, static_cast<int>(stored & 0xFFu) - 127) *
                                      static_cast<double>(f.unit()));
        case scale_kind::multi_level:
        case scale_kind::shiftable: return std::ldexp(tensor_scale, -static_cast<int>(stored));
        case scale_kind::unit: return f.unit();
        case scale_kind::f16: return fp16_format::decode(stored & 0xFFFFu);
    }
    return 1.0f;
}

/// Stored bits of one scale entry of a kind (0: nothing stored).
inline int scale_storage_bits(scale_kind kind, int shift_bits) {
    switch (kind) {
        case scale_kind::float_: return 32;
        case scale_kind::f16: return 16;
        case scale_kind::pow2:
        case scale_kind::e8m0: return 8;
        case scale_kind::multi_level:
        case scale_kind::shiftable: return shift_bits;
        case scale_kind::unit: return 0;
    }
    return 32;
}

}  // namespace detail

struct float_scale {
    using option_category = scale_category;
    static constexpr int storage_bits = 32;
    static constexpr bool has_tensor_scale = false;
    static constexpr bool needs_groups = false;
    static constexpr bool power_of_two = false;

    template <class F>
    static detail::scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return detail::assign_scales(scale_kind::float_, 0, format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t stored, float) {
        return detail::bits_float(stored);
    }
};

/// IEEE half scales: 16 bits per group (llama.cpp's Q4_0 / Q8_0: 4.5 / 8.5 bits per weight with groups of 32).
struct f16_scale {
    using option_category = scale_category;
    static constexpr int storage_bits = 16;
    static constexpr bool has_tensor_scale = false;
    static constexpr bool needs_groups = false;
    static constexpr bool power_of_two = false;

    template <class F>
    static detail::scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return detail::assign_scales(scale_kind::f16, 0, format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t stored, float) {
        return fp16_format::decode(stored & 0xFFFFu);
    }
};

struct pow2_scale {
    using option_category = scale_category;
    static constexpr int storage_bits = 8;
    static constexpr bool has_tensor_scale = false;
    static constexpr bool needs_groups = false;
    static constexpr bool power_of_two = true;
    static constexpr int min_exponent = -126;  // keeps 2^e a normal float
    static constexpr int max_exponent = 127;

    template <class F>
    static detail::scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return detail::assign_scales(scale_kind::pow2, 0, format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t stored, float) {
        const int e = static_cast<int>(static_cast<std::int8_t>(static_cast<std::uint8_t>(stored)));
        return std::ldexp(1.0f, e);
    }
};

struct e8m0_scale {
    using option_category = scale_category;
    static constexpr int storage_bits = 8;
    static constexpr bool has_tensor_scale = false;
    static constexpr bool needs_groups = true;
    static constexpr bool power_of_two = true;
    static constexpr int bias = 127;

    template <class F>
    static detail::scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return detail::assign_scales(scale_kind::e8m0, 0, format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t stored, float) {
        return static_cast<float>(std::ldexp(1.0, static_cast<int>(stored & 0xFFu) - bias) *
                                  static_cast<double>(detail::format_unit<F>()));
    }
};

namespace detail {
template <int ShiftBits, bool PowerOfTwoTensor>
struct two_level_scale {
    static_assert(ShiftBits >= 1 && ShiftBits <= 8,
                  "multi_level_scale/shiftable_scale<B>: B (bits of the per-group shift) must be in 1..8");
    using option_category = scale_category;
    static constexpr int storage_bits = ShiftBits;
    static constexpr bool has_tensor_scale = true;
    static constexpr bool needs_groups = true;
    static constexpr bool power_of_two = PowerOfTwoTensor;
    static constexpr int max_shift = (1 << ShiftBits) - 1;

    template <class F>
    static scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return assign_scales(PowerOfTwoTensor ? scale_kind::shiftable : scale_kind::multi_level, ShiftBits,
                             format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t stored, float tensor_scale) {
        return std::ldexp(tensor_scale, -static_cast<int>(stored));
    }
};
}  // namespace detail

template <int ShiftBits = 2>
struct multi_level_scale : detail::two_level_scale<ShiftBits, false> {};
template <int ShiftBits = 2>
struct shiftable_scale : detail::two_level_scale<ShiftBits, true> {};

struct unit_scale {
    using option_category = scale_category;
    static constexpr int storage_bits = 0;
    static constexpr bool has_tensor_scale = false;
    static constexpr bool needs_groups = false;
    static constexpr bool power_of_two = true;

    template <class F>
    static detail::scale_assignment assign(std::span<const double> ideal, std::span<const float> amax) {
        return detail::assign_scales(scale_kind::unit, 0, format_info_of<F>(), ideal, amax);
    }
    template <class F>
    static float decode(std::uint32_t, float) {
        return detail::format_unit<F>();
    }
};

}  // namespace tcomp
