// Pre-packing a compressed weight matrix into the weight-only kernels' panel layout (weight_only_args.hpp).
// ISA-independent: the same packed bytes serve every path. Packing is done once per weight matrix.
//
// Supported: dense integer-grid weight formats (1..8 bits) whose codes span at most 256 integers, packed at
// the narrowest of 2, 4 or 8 bits that holds u = code - code_min, unless a wider one streams fewer bytes (see
// packing_bits: a short K); floating formats of at most 4 bits (NF4, FP4 E2M1, ...: 4-bit codes and a table of
// their values) and 8-bit minifloats (FP8 E4M3, E5M2: decoded by shifts); any scale kind (decoded once here to
// a float per row and group); zero points; per_tensor, per_channel, or per_group<G> with G a multiple of 16.
// Anything else gets a reason string back (the front door then runs the scalar oracle).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/kernel/cpu/aligned_buffer.hpp"
#include "tcomp/kernel/cpu/weight_only_args.hpp"
#include "tcomp/quant/compressed_matrix.hpp"

namespace tcomp::cpu {

/// Owning storage behind a weight_only_weights descriptor (copies re-point the descriptor).
struct weight_only_storage {
    weight_only_weights desc;
    aligned_buffer<std::uint8_t> codes;
    aligned_buffer<float> scales;
    aligned_buffer<std::int8_t> zeros;

    weight_only_storage() = default;
    weight_only_storage(const weight_only_storage& o) : desc(o.desc), codes(o.codes), scales(o.scales), zeros(o.zeros) {
        bind();
    }
    weight_only_storage& operator=(const weight_only_storage& o) {
        if (this != &o) {
            desc = o.desc, codes = o.codes, scales = o.scales, zeros = o.zeros;
            bind();
        }
        return *this;
    }
    weight_only_storage(weight_only_storage&& o) noexcept
        : desc(o.desc), codes(std::move(o.codes)), scales(std::move(o.scales)), zeros(std::move(o.zeros)) {
        bind();
    }
    weight_only_storage& operator=(weight_only_storage&& o) noexcept {
        desc = o.desc, codes = std::move(o.codes), scales = std::move(o.scales), zeros = std::move(o.zeros);
        bind();
        return *this;
    }
    ~weight_only_storage() = default;

    /// Bytes the kernel reads per call (codes, scales, zero offsets).
    std::size_t bytes() const { return codes.size() + scales.size() * sizeof(float) + zeros.size(); }
    void bind() {
        desc.codes = codes.data();
        desc.scales = scales.data();
        desc.zeros = zeros.data();
    }
};

namespace detail {

template <class... Parts>
std::string weight_only_reason(const Parts&... parts) {
    std::ostringstream s;
    (s << ... << parts);
    return s.str();
}

/// Packing width for K columns of codes that need `narrowest` bits (2, 4 or 8) and scale groups of `group_size`
/// (0 or >= k: one group). K is padded to the block, 512 / bits k (one 64-byte line per row), so a short K pays for
/// padding at 4 or 2 bits that 8 bits does not have: K = 64 at 4 bits pads to 128, and with groups of 32 half of
/// the row's scale groups (a float scale and an int8 zero each) lie in the padding; at 8 bits K = 64 is one
/// block, no padding, the same 64 code bytes per row and half the groups. The width streaming the fewest bytes
/// per row wins (ties: the narrower). Every width computes the same weights (w = s * (u - z), exact integers).
inline int packing_bits(int narrowest, index_t k, index_t group_size) {
    const bool one_group = group_size <= 0 || group_size >= k;
    auto row_bytes = [&](int bits) {
        const index_t bk = 512 / bits, k_padded = (k + bk - 1) / bk * bk;
        const index_t groups = one_group ? 1 : (k_padded + group_size - 1) / group_size;
        return k_padded * bits / 8 + groups * static_cast<index_t>(sizeof(float) + sizeof(std::int8_t));
    };
    int best = narrowest;
    for (int bits = narrowest * 2; bits <= 8; bits *= 2)
        if (row_bytes(bits) < row_bytes(best)) best = bits;
    return best;
}

}  // namespace detail

/// An 8-bit minifloat code decoded as the minifloat kernels do it: the sign and the 7 low bits placed in a float
/// (exponent field and top mantissa bits: float's own subnormals cover the format's), then one exact scaling.
inline float wo_minifloat_value(std::uint32_t code, int shift, float scale) {
    const std::uint32_t bits = ((code & 0x80u) << 24) | ((code & 0x7Fu) << shift);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f * scale;
}

namespace detail {

/// Why w's shape or grouping cannot be packed ("" when it can).
template <class Q, class S>
std::string wo_shape_reason(const compressed_view<Q, S>& w) {
    if (w.rows() == 0 || w.cols() == 0) return "an empty weight matrix";
    const index_t group_size = w.packed().layout.group_size;
    if (group_size < w.cols() && group_size % 16 != 0)
        return weight_only_reason("group size ", group_size, " is not a multiple of 16 (the weight-only kernels' k-step)");
    return "";
}

/// The panel layout of weight_only_args.hpp at `bits` (2, 4 or 8), filled from w. stored(code) is the value the
/// kernel reads for a stored code (u, or u - 128 as a byte for 8-bit integers), or -1 for a code that must not
/// reach the kernel, which returns reject(r, c, code); zero(r, k0) is the zeros entry of row r's group at k0.
template <class Q, class S, class Stored, class Zero, class Reject>
std::string wo_pack_panels(const compressed_view<Q, S>& w, int bits, weight_only_storage& out, Stored&& stored,
                           Zero&& zero, Reject&& reject) {
    const packed_layout& l = w.packed().layout;
    const index_t n = w.rows(), k = w.cols();
    const bool one_group = l.group_size >= k;
    const index_t bk = 512 / bits;
    const index_t k_padded = (k + bk - 1) / bk * bk;
    const index_t group = one_group ? k_padded : l.group_size;
    const index_t groups = (k_padded + group - 1) / group;
    const index_t real_groups = one_group ? 1 : k / group;
    const index_t panels = (n + 15) / 16;

    weight_only_weights d = out.desc;  // the caller's value kind and decode constants
    d.n = n, d.k = k, d.k_padded = k_padded, d.group = group, d.groups = groups, d.panels = panels;
    d.code_bits = bits;
    d.panel_code_bytes = static_cast<std::size_t>(k_padded) * 16 * bits / 8;
    out = weight_only_storage{};
    out.desc = d;
    out.codes = aligned_buffer<std::uint8_t>(static_cast<std::size_t>(panels) * d.panel_code_bytes);
    out.scales = aligned_buffer<float>(static_cast<std::size_t>(panels * groups * 16));
    out.zeros = aligned_buffer<std::int8_t>(static_cast<std::size_t>(panels * groups * 16));

    for (index_t r = 0; r < n; ++r) {
        const index_t p = r / 16, i = r % 16;
        for (index_t g = 0; g < real_groups; ++g) {
            const index_t k0 = one_group ? 0 : g * group;
            const std::size_t cell = static_cast<std::size_t>((p * groups + g) * 16 + i);
            out.scales[cell] = w.scale(r, k0);
            out.zeros[cell] = static_cast<std::int8_t>(zero(r, k0));
        }
        const std::uint8_t* row = w.packed().row_codes(r);
        std::uint8_t* dst = out.codes.data() + static_cast<std::size_t>(p) * d.panel_code_bytes +
                            static_cast<std::size_t>(i) * 64;
        for (index_t c = 0; c < k; ++c) {
            const std::uint32_t code = read_packed(row, c, l.code_bits);
            const int u = stored(code);
            if (u < 0) return reject(r, c, code);
            const index_t kb = c / bk, j = (c % bk) / 16, dd = c % 16;
            std::uint8_t* block = dst + kb * 16 * 64;
            if (bits == 8) {
                block[16 * j + dd] = static_cast<std::uint8_t>(u);
            } else {
                const index_t bit = bits * j;  // within the little-endian word dd
                block[4 * dd + bit / 8] = static_cast<std::uint8_t>(block[4 * dd + bit / 8] | (u << (bit % 8)));
            }
        }
    }
    out.desc.zero_free =
        std::all_of(out.zeros.data(), out.zeros.data() + out.zeros.size(), [](std::int8_t z) { return z == 0; });
    out.bind();
    return "";
}

/// The floating formats: 4-bit codes through a table of their values, or 8-bit minifloats decoded by shifts.
template <class Q, class S>
std::string pack_weight_only_floating(const compressed_view<Q, S>& w, weight_only_storage& out) {
    using F = typename Q::format;
    constexpr bool table = F::bits <= 4;
    constexpr bool minifloat = requires {
        F::exponent_bits;
        F::mantissa_bits;
        F::bias;
    } && F::bits == 8;
    if constexpr (!table && !minifloat) {
        return weight_only_reason("a ", F::bits, "-bit floating format: the weight-only kernels take floating "
                                  "formats of at most 4 bits (by table) and 8-bit minifloats");
    } else {
        if (std::string why = wo_shape_reason(w); !why.empty()) return why;
        // Which codes the kernels decode to the format's value: a code that does not (NaN, infinity) must not
        // reach them, or the SIMD result would differ from the oracle's.
        std::array<bool, 256> exact{};
        out.desc = weight_only_weights{};
        weight_only_weights& d = out.desc;
        if constexpr (table) {
            d.values = wo_values::table;
            for (std::uint32_t c = 0; c < 16; ++c) {
                const float v = c < (1u << F::bits) ? F::decode(c) : 0.0f;
                d.lut[c] = v;
                exact[c] = std::isfinite(v);
            }
        } else {
            d.values = wo_values::minifloat;
            d.mf_shift = 23 - F::mantissa_bits;
            d.mf_scale = std::ldexp(1.0f, 127 - F::bias);
            for (std::uint32_t c = 0; c < 256; ++c) {
                const float want = F::decode(c), got = wo_minifloat_value(c, d.mf_shift, d.mf_scale);
                exact[c] = std::isfinite(want) && tcomp::detail::float_bits(want) == tcomp::detail::float_bits(got);
            }
        }
        return wo_pack_panels(
            w, table ? 4 : 8, out, [&](std::uint32_t code) { return exact[code] ? static_cast<int>(code) : -1; },
            [](index_t, index_t) { return 0; },
            [](index_t r, index_t c, std::uint32_t code) {
                return weight_only_reason("weight (", r, ", ", c, ") has code ", code, ", which ", F::name,
                                          " decodes to ", F::decode(code), ": not a finite weight");
            });
    }
}

}  // namespace detail

/// Packs w for the weight-only kernels. Returns "" on success, else why the composition is not supported.
template <class Q, class S>
std::string pack_weight_only(const compressed_view<Q, S>& w, weight_only_storage& out) {
    using F = typename Q::format;
    if constexpr (S::kind != sparsity_kind::dense) {
        return "sparse weights: the weight-only kernels take dense matrices";
    } else if constexpr (!integer_grid_format<F>) {
        return detail::pack_weight_only_floating(w, out);
    } else if constexpr (F::code_max - F::code_min > 255) {
        return "the weight codes span more than 256 integers";
    } else {
        if (std::string why = detail::wo_shape_reason(w); !why.empty()) return why;
        constexpr int range = F::code_max - F::code_min;
        constexpr int narrowest = range <= 3 ? 2 : (range <= 15 ? 4 : 8);
        const index_t group_size = w.packed().layout.group_size;
        const int bits = detail::packing_bits(narrowest, w.cols(), group_size >= w.cols() ? 0 : group_size);
        out.desc = weight_only_weights{};
        // u = code - code_min (0 .. range); 8-bit rows hold the int8 u - 128, and z - 128 to match.
        return detail::wo_pack_panels(
            w, bits, out,
            [&](std::uint32_t code) {
                const int u = F::to_integer(code) - F::code_min;
                return bits == 8 ? u - 128 + 256 : u;
            },
            [&](index_t r, index_t k0) {
                const int z = w.zero_point(r, k0) - F::code_min;
                return bits == 8 ? z - 128 : z;
            },
            [](index_t, index_t, std::uint32_t) { return std::string(); });
    }
}

}  // namespace tcomp::cpu
