// Pre-packing a compressed weight matrix into the integer-dot kernels' panel layout (int_dot_args.hpp).
// ISA-independent: the same packed bytes serve every path. Packing is done once per weight matrix.
#pragma once

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/kernel/cpu/aligned_buffer.hpp"
#include "tcomp/kernel/cpu/int_dot_args.hpp"
#include "tcomp/quant/compressed_matrix.hpp"
#include "tcomp/quant/shift_epilogue.hpp"

namespace tcomp::cpu {

/// Owning storage behind an int_dot_weights descriptor.
struct int_dot_storage {
    int_dot_weights desc;
    aligned_buffer<std::uint8_t> codes;
    aligned_buffer<float> scales;
    aligned_buffer<std::int32_t> weight_sums;
    aligned_buffer<std::uint8_t> offsets;
    aligned_buffer<std::uint8_t> shifts;   // shift epilogue only (int_dot_args.hpp)
    aligned_buffer<double> row_scales;     // shift epilogue only

    int_dot_storage() = default;
    // Copies and moves re-point the descriptor at their own buffers (never at the source's).
    int_dot_storage(const int_dot_storage& o)
        : desc(o.desc), codes(o.codes), scales(o.scales), weight_sums(o.weight_sums), offsets(o.offsets),
          shifts(o.shifts), row_scales(o.row_scales) {
        bind();
    }
    int_dot_storage(int_dot_storage&& o) noexcept
        : desc(o.desc), codes(std::move(o.codes)), scales(std::move(o.scales)),
          weight_sums(std::move(o.weight_sums)), offsets(std::move(o.offsets)), shifts(std::move(o.shifts)),
          row_scales(std::move(o.row_scales)) {
        bind();
    }
    int_dot_storage& operator=(const int_dot_storage& o) {
        if (this != &o) *this = int_dot_storage(o);
        return *this;
    }
    int_dot_storage& operator=(int_dot_storage&& o) noexcept {
        desc = o.desc, codes = std::move(o.codes), scales = std::move(o.scales);
        weight_sums = std::move(o.weight_sums), offsets = std::move(o.offsets);
        shifts = std::move(o.shifts), row_scales = std::move(o.row_scales);
        bind();
        return *this;
    }

    /// Bytes the kernel reads per call (codes, scales or shifts, sums, offsets).
    std::size_t bytes() const {
        return codes.size() + scales.size() * sizeof(float) + weight_sums.size() * sizeof(std::int32_t) +
               offsets.size() + shifts.size() + row_scales.size() * sizeof(double);
    }
    void bind() {
        desc.codes = codes.data();
        desc.scales = scales.data();
        desc.weight_sums = weight_sums.data();
        desc.offsets = offsets.size() ? offsets.data() : nullptr;
        desc.shifts = shifts.size() ? shifts.data() : nullptr;
        desc.row_scales = row_scales.size() ? row_scales.data() : nullptr;
        if (desc.shifts) desc.scales = nullptr;
    }
};

/// Longest weight group the int32 accumulators hold exactly: 255 * 128 * 65793 < 2^31.
inline constexpr index_t int_dot_max_group = 65536;

namespace detail {

template <class... Parts>
std::string reason(const Parts&... parts) {
    std::ostringstream s;
    (s << ... << parts);
    return s.str();
}

}  // namespace detail

/// Packs w for the integer-dot kernels. Returns "" on success, else why the composition is not supported
/// (the front door then runs the scalar reference, which computes the same thing).
template <class Q, class S>
std::string pack_int_dot(const compressed_view<Q, S>& w, int_dot_storage& out) {
    using F = typename Q::format;
    if constexpr (!integer_grid_format<F>) {
        return "the weight format is not an integer grid";
    } else if constexpr (F::code_max - F::code_min > 255) {
        return "the weight codes span more than 256 integers";
    } else {
        const packed_layout& l = w.packed().layout;
        constexpr bool sparse = S::kind == sparsity_kind::n_m;
        if constexpr (S::kind != sparsity_kind::dense && !sparse)
            return "block and unstructured sparsity have no SIMD kernel";
        if constexpr (sparse)
            if (S::n != 2 || S::m != 4) return detail::reason("N:M sparsity ", S::n, ":", S::m, " (only 2:4 has a kernel)");

        constexpr int range = F::code_max - F::code_min;
        const int bits = sparse ? (range <= 15 ? 4 : 8) : (range <= 3 ? 2 : (range <= 15 ? 4 : 8));
        const index_t n = w.rows(), k = w.cols();
        if (k == 0 || n == 0) return "an empty weight matrix";
        const index_t k_step = sparse ? 4 : (bits == 8 ? 4 : (bits == 4 ? 8 : 16));
        const index_t group_size = l.group_size;
        const bool one_group = group_size >= k;
        if (!one_group && group_size % k_step != 0)
            return detail::reason("group size ", group_size, " is not a multiple of the kernel's k-step ", k_step,
                                  " for ", bits, "-bit weights");
        const index_t k_padded = std::max<index_t>(k_step, (k + k_step - 1) / k_step * k_step);
        const index_t group = one_group ? k_padded : group_size;
        if (group > int_dot_max_group)
            return detail::reason("a weight group of ", group, " elements could overflow the int32 accumulator (max ",
                                  int_dot_max_group, ")");
        const index_t groups = k_padded / group;
        const index_t panels = (n + panel_rows - 1) / panel_rows;

        // Centred weights (code - zero point) of every row, and each row-group's offset (zero - code_min).
        std::vector<std::int8_t> centred(static_cast<std::size_t>(panels * panel_rows * k_padded), 0);
        std::vector<std::uint8_t> kept(sparse ? centred.size() : 0, 0);
        std::vector<int> offset(static_cast<std::size_t>(panels * panel_rows * groups), 0);
        std::vector<index_t> columns;
        for (index_t r = 0; r < n; ++r) {
            for (index_t g = 0; g < groups; ++g) {
                const index_t k0 = std::min(g * group, k - 1);
                offset[static_cast<std::size_t>(r * groups + g)] = w.zero_point(r, std::max<index_t>(k0, 0)) - F::code_min;
            }
            std::string bad;
            w.for_each_in_row(r, columns, [&](index_t c, std::uint32_t code) {
                const int v = F::to_integer(code) - w.zero_point(r, c);
                if (v < -128 || v > 127) {
                    if (bad.empty()) bad = detail::reason("weight (", r, ", ", c, ") centres to ", v, ", outside int8");
                    return;
                }
                centred[static_cast<std::size_t>(r * k_padded + c)] = static_cast<std::int8_t>(v);
                if (sparse) kept[static_cast<std::size_t>(r * k_padded + c)] = 1;
            });
            if (!bad.empty()) return bad;
        }

        out = int_dot_storage{};
        int_dot_weights& d = out.desc;
        d.n = n, d.k = k, d.k_padded = k_padded, d.group = group, d.groups = groups, d.panels = panels;
        d.code_bits = bits, d.sparse_2of4 = sparse;
        d.panel_code_bytes = sparse ? static_cast<std::size_t>(k_padded / 4) * (bits == 8 ? 40 : 24)
                                    : static_cast<std::size_t>(k_padded) * panel_rows * static_cast<std::size_t>(bits) / 8;
        out.codes = aligned_buffer<std::uint8_t>(static_cast<std::size_t>(panels) * d.panel_code_bytes);
        // Two-level power-of-two scales (multi_level_scale / shiftable_scale) with one activation scale per row:
        // the shift epilogue (int_dot_args.hpp), whose integer sum must stay exact (|sum| < 2^53) for every
        // activation row; else the composition runs on the oracle, which computes the same thing.
        constexpr bool shift = tcomp::detail::shift_epilogue_scale<typename Q::scale>;
        std::vector<tcomp::detail::shift_plan> plans;
        if constexpr (shift) {
            plans.reserve(static_cast<std::size_t>(n));
            for (index_t r = 0; r < n; ++r) {
                plans.push_back(tcomp::detail::plan_shift_epilogue<Q>(w, r, group));
                if (!plans.back().exact)
                    return detail::reason("shift epilogue: row ", r, "'s group shifts span ", plans.back().span,
                                          " bits, too many for an exact int64 sum; the oracle runs this composition");
            }
        }
        bool shift_fits_int32 = true;
        for (const auto& plan : plans) shift_fits_int32 = shift_fits_int32 && plan.fits_int32;
        d.shift_fits_int32 = shift && shift_fits_int32;
        if (shift) {
            out.shifts = aligned_buffer<std::uint8_t>(static_cast<std::size_t>(panels * groups * panel_rows));
            out.row_scales = aligned_buffer<double>(static_cast<std::size_t>(panels * panel_rows));
        } else {
            out.scales = aligned_buffer<float>(static_cast<std::size_t>(panels * groups * panel_rows));
        }
        out.weight_sums = aligned_buffer<std::int32_t>(static_cast<std::size_t>(panels * groups * panel_rows));
        if (bits != 8) out.offsets = aligned_buffer<std::uint8_t>(static_cast<std::size_t>(panels * groups * (sparse ? 32 : 64)));

        auto c_at = [&](index_t r, index_t c) { return static_cast<int>(centred[static_cast<std::size_t>(r * k_padded + c)]); };
        auto off_at = [&](index_t r, index_t g) { return r < n ? offset[static_cast<std::size_t>(r * groups + g)] : 0; };

        for (index_t p = 0; p < panels; ++p) {
            // Scales, sums, offsets.
            for (index_t g = 0; g < groups; ++g)
                for (index_t i = 0; i < panel_rows; ++i) {
                    const index_t r = p * panel_rows + i;
                    const std::size_t cell = static_cast<std::size_t>((p * groups + g) * panel_rows + i);
                    if (r < n) {
                        if constexpr (shift) {
                            const auto& plan = plans[static_cast<std::size_t>(r)];
                            out.shifts[cell] = plan.shift[static_cast<std::size_t>(g)];
                            if (g == 0) out.row_scales[static_cast<std::size_t>(p * panel_rows + i)] = plan.row_scale;
                        } else {
                            out.scales[cell] = w.scale(r, std::min(g * group, k - 1));
                        }
                        std::int32_t sum = 0;
                        for (index_t c = g * group; c < std::min((g + 1) * group, k_padded); ++c) sum += c_at(r, c);
                        out.weight_sums[cell] = sum;
                    }
                    if (bits != 8) {
                        if (sparse)
                            for (int j = 0; j < 2; ++j)
                                out.offsets[static_cast<std::size_t>((p * groups + g) * 32 + 2 * i + j)] =
                                    static_cast<std::uint8_t>(off_at(r, g));
                        else
                            for (int j = 0; j < 4; ++j)
                                out.offsets[static_cast<std::size_t>((p * groups + g) * 64 + 4 * i + j)] =
                                    static_cast<std::uint8_t>(off_at(r, g));
                    }
                }
            // Codes.
            std::uint8_t* dst = out.codes.data() + static_cast<std::size_t>(p) * d.panel_code_bytes;
            // u = centred + offset: the unsigned stored value; K padding stores the offset (centres to 0).
            auto u_at = [&](index_t r, index_t c) { return r < n ? c_at(r, c) + off_at(r, std::min(c / group, groups - 1)) : 0; };
            if (!sparse && bits == 8) {
                for (index_t q = 0; q < k_padded / 4; ++q)
                    for (index_t i = 0; i < panel_rows; ++i)
                        for (int j = 0; j < 4; ++j) {
                            const index_t r = p * panel_rows + i;
                            dst[q * 64 + i * 4 + j] = static_cast<std::uint8_t>(r < n ? c_at(r, q * 4 + j) : 0);
                        }
            } else if (!sparse) {
                const int parts = 8 / bits;
                for (index_t s = 0; s < k_padded / k_step; ++s)
                    for (index_t i = 0; i < panel_rows; ++i)
                        for (int j = 0; j < 4; ++j) {
                            const index_t r = p * panel_rows + i;
                            int byte = 0;
                            for (int part = 0; part < parts; ++part)
                                byte |= u_at(r, s * k_step + 4 * part + j) << (part * bits);
                            dst[s * 64 + i * 4 + j] = static_cast<std::uint8_t>(byte);
                        }
            } else {
                const index_t step_bytes = bits == 8 ? 40 : 24;
                for (index_t q = 0; q < k_padded / 4; ++q) {
                    std::uint8_t* s = dst + q * step_bytes;
                    std::uint64_t mask = 0;
                    int count = 0;
                    for (index_t i = 0; i < panel_rows; ++i)
                        for (int j = 0; j < 4; ++j) {
                            const index_t r = p * panel_rows + i, c = q * 4 + j;
                            if (r >= n || !kept[static_cast<std::size_t>(r * k_padded + c)]) continue;
                            mask |= std::uint64_t{1} << (i * 4 + j);
                            if (bits == 8) {
                                s[8 + count] = static_cast<std::uint8_t>(c_at(r, c));
                            } else {
                                const int u = u_at(r, c);
                                s[8 + (count & 15)] |= static_cast<std::uint8_t>(count < 16 ? u : u << 4);
                            }
                            ++count;
                        }
                    for (int b = 0; b < 8; ++b) s[b] = static_cast<std::uint8_t>(mask >> (8 * b));
                }
            }
        }
        out.bind();
        return "";
    }
}

}  // namespace tcomp::cpu
