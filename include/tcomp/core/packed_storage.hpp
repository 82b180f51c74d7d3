// The packed tensor: a compressed matrix W[rows x cols] as plain byte buffers, described by a run-time
// packed_layout so it can be inspected, saved and validated without knowing the policy type.
//
// Byte layout (all bit streams as in core/bit_packing.hpp: little-endian, LSB first):
//   codes         row r starts on a byte boundary. Dense and N:M rows have a fixed length of
//                 packed_bytes(stored_per_row, code_bits) bytes, so row r starts at r * row_code_bytes().
//                 Block and bitmap rows vary: row_offsets[r] (rows + 1 entries, uint64) gives the start.
//                 A row stores the codes of its kept elements in increasing column order.
//   scales        scale_rows x scale_cols entries of scale_bits each, row-major, one stream
//                 (scale_rows == 1 when one row of scales is shared, e.g. per_tensor).
//                 Element (r, k) uses entry (scale_rows == 1 ? 0 : r, k / group_size).
//   zero_points   same grid, code_bits each (the zero point's code pattern); absent for symmetric.
//   tensor_scale  one float for two-level scale kinds, else unused.
//   metadata      N:M: per row, (cols / M) * N column indices within their block, max(1, ceil(log2 M)) bits each,
//                 increasing within a block; each row starts on a byte boundary.
//                 block: one bit per R x C tile, row-major over the (rows/R) x (cols/C) tile grid.
//                 bitmap: one bit per element, each row starts on a byte boundary.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"

namespace tcomp {

enum class sparsity_kind : std::uint8_t { dense = 0, n_m = 1, block = 2, bitmap = 3 };

struct packed_layout {
    index_t rows = 0;
    index_t cols = 0;
    int code_bits = 8;
    int scale_bits = 32;
    index_t scale_rows = 1;
    index_t scale_cols = 1;
    index_t group_size = 0;  // elements along cols per scale column
    bool has_zero_points = false;
    bool has_tensor_scale = false;
    sparsity_kind sparsity = sparsity_kind::dense;
    int sparse_n = 0;
    int sparse_m = 0;
    int block_rows = 0;
    int block_cols = 0;

    index_t scale_count() const { return scale_rows * scale_cols; }
    bool fixed_row_length() const { return sparsity == sparsity_kind::dense || sparsity == sparsity_kind::n_m; }
    int index_bits() const {
        int b = 1;
        while ((1 << b) < sparse_m) ++b;
        return b;
    }
    /// Codes per row for fixed-length rows.
    index_t stored_per_row() const { return sparsity == sparsity_kind::n_m ? cols / sparse_m * sparse_n : cols; }
    std::size_t row_code_bytes() const { return packed_bytes(stored_per_row(), code_bits); }
    std::size_t metadata_row_bytes() const {
        if (sparsity == sparsity_kind::n_m) return packed_bytes(cols / sparse_m * sparse_n, index_bits());
        if (sparsity == sparsity_kind::bitmap) return packed_bytes(cols, 1);
        return 0;
    }
    std::size_t metadata_bytes() const {
        if (sparsity == sparsity_kind::block)
            return packed_bytes((rows / block_rows) * (cols / block_cols), 1);
        return static_cast<std::size_t>(rows) * metadata_row_bytes();
    }
    std::size_t scale_bytes() const { return scale_bits == 0 ? 0 : packed_bytes(scale_count(), scale_bits); }
    std::size_t zero_point_bytes() const { return has_zero_points ? packed_bytes(scale_count(), code_bits) : 0; }

    /// Checks that the numbers describe a possible matrix; throws shape_error naming the first problem.
    void validate(const char* where) const {
        auto fail = [&](auto&&... parts) { detail::throw_error<shape_error>(where, ": packed layout: ", parts...); };
        if (rows < 0 || cols < 0) fail("negative shape ", rows, "x", cols);
        // At most 2^56 elements keeps every byte count below (rows * row bytes, bit counts) from overflowing.
        // Rows are also capped at 2^31, so a hostile layout with zero columns cannot make readers loop
        // over 2^56 empty rows.
        constexpr index_t max_elements = index_t{1} << 56;
        if (rows > (index_t{1} << 31) || cols > max_elements || (rows > 0 && cols > max_elements / rows))
            fail("shape ", rows, "x", cols, " exceeds the limits (2^31 rows, 2^56 elements)");
        if (code_bits < 1 || code_bits > 16) fail("code width ", code_bits, " outside 1..16");
        if (scale_bits < 0 || scale_bits > 32) fail("scale width ", scale_bits, " outside 0..32");
        if (group_size <= 0 && cols > 0) fail("group size ", group_size, " must be positive");
        if (cols > 0 && cols % group_size != 0) fail("group size ", group_size, " does not divide ", cols, " columns");
        if (scale_cols != (cols > 0 ? cols / group_size : 0))
            fail(scale_cols, " scale columns, expected ", cols > 0 ? cols / group_size : 0);
        if (scale_rows != 1 && scale_rows != rows) fail(scale_rows, " scale rows, expected 1 or ", rows);
        switch (sparsity) {
            case sparsity_kind::dense: break;
            case sparsity_kind::n_m:
                if (sparse_m < 1 || sparse_m > 256 || sparse_n < 1 || sparse_n > sparse_m)
                    fail("invalid N:M pattern ", sparse_n, ":", sparse_m);
                if (cols % sparse_m != 0) fail(cols, " columns are not a multiple of M = ", sparse_m);
                break;
            case sparsity_kind::block:
                if (block_rows < 1 || block_cols < 1) fail("invalid block ", block_rows, "x", block_cols);
                if (rows % block_rows != 0 || cols % block_cols != 0)
                    fail("shape ", rows, "x", cols, " is not a multiple of the block ", block_rows, "x", block_cols);
                break;
            case sparsity_kind::bitmap: break;
            default: fail("unknown sparsity kind ", static_cast<int>(sparsity));
        }
    }
};

/// Non-owning view of a packed matrix over caller memory (a mapped file, another library's buffers).
/// Construct, then validate(): every later read stays inside the spans.
struct packed_view {
    packed_layout layout;
    std::span<const std::uint8_t> codes;
    std::span<const std::uint8_t> scales;
    std::span<const std::uint8_t> zero_points;
    std::span<const std::uint8_t> metadata;
    std::span<const std::uint64_t> row_offsets;  // variable-length rows only
    float tensor_scale = 1.0f;

    std::uint32_t scale_entry(index_t r, index_t group) const {
        const index_t i = (layout.scale_rows == 1 ? 0 : r) * layout.scale_cols + group;
        return layout.scale_bits == 0 ? 0u : read_packed(scales.data(), i, layout.scale_bits);
    }
    std::uint32_t zero_point_entry(index_t r, index_t group) const {
        const index_t i = (layout.scale_rows == 1 ? 0 : r) * layout.scale_cols + group;
        return read_packed(zero_points.data(), i, layout.code_bits);
    }
    const std::uint8_t* row_codes(index_t r) const {
        if (layout.fixed_row_length()) return codes.data() + static_cast<std::size_t>(r) * layout.row_code_bytes();
        return codes.data() + row_offsets[static_cast<std::size_t>(r)];
    }

    /// Columns kept in row r, in increasing order (all columns when dense).
    void kept_columns(index_t r, std::vector<index_t>& out) const {
        out.clear();
        const index_t cols = layout.cols;
        switch (layout.sparsity) {
            case sparsity_kind::dense:
                for (index_t c = 0; c < cols; ++c) out.push_back(c);
                break;
            case sparsity_kind::n_m: {
                const std::uint8_t* meta = metadata.data() + static_cast<std::size_t>(r) * layout.metadata_row_bytes();
                const index_t blocks = cols / layout.sparse_m;
                for (index_t b = 0; b < blocks; ++b)
                    for (int j = 0; j < layout.sparse_n; ++j)
                        out.push_back(b * layout.sparse_m +
                                      static_cast<index_t>(read_packed(meta, b * layout.sparse_n + j, layout.index_bits())));
                break;
            }
            case sparsity_kind::block: {
                const index_t tiles_per_row = cols / layout.block_cols;
                const index_t tile_row = r / layout.block_rows;
                for (index_t t = 0; t < tiles_per_row; ++t)
                    if (read_packed(metadata.data(), tile_row * tiles_per_row + t, 1))
                        for (index_t c = 0; c < layout.block_cols; ++c) out.push_back(t * layout.block_cols + c);
                break;
            }
            case sparsity_kind::bitmap: {
                const std::uint8_t* meta = metadata.data() + static_cast<std::size_t>(r) * layout.metadata_row_bytes();
                for (index_t c = 0; c < cols; ++c)
                    if (read_packed(meta, c, 1)) out.push_back(c);
                break;
            }
        }
    }

    /// Full consistency check of sizes and metadata (O(size)); throws shape_error naming the problem.
    void validate(const char* where) const {
        layout.validate(where);
        auto fail = [&](auto&&... parts) { detail::throw_error<shape_error>(where, ": packed data: ", parts...); };
        auto need = [&](std::size_t have, std::size_t want, const char* what) {
            if (have != want) fail(what, " has ", have, " bytes, the layout needs ", want);
        };
        need(scales.size(), layout.scale_bytes(), "scales");
        need(zero_points.size(), layout.zero_point_bytes(), "zero points");
        need(metadata.size(), layout.metadata_bytes(), "sparsity metadata");
        if (layout.fixed_row_length()) {
            need(codes.size(), static_cast<std::size_t>(layout.rows) * layout.row_code_bytes(), "codes");
            if (!row_offsets.empty()) fail("row offsets given for fixed-length rows");
        } else if (static_cast<index_t>(row_offsets.size()) != layout.rows + 1) {
            fail(row_offsets.size(), " row offsets, expected rows + 1 = ", layout.rows + 1);
        }
        if (layout.sparsity == sparsity_kind::n_m && layout.cols > 0) {
            for (index_t r = 0; r < layout.rows; ++r) {
                const std::uint8_t* meta = metadata.data() + static_cast<std::size_t>(r) * layout.metadata_row_bytes();
                for (index_t b = 0; b < layout.cols / layout.sparse_m; ++b) {
                    int previous = -1;
                    for (int j = 0; j < layout.sparse_n; ++j) {
                        const auto idx = static_cast<int>(read_packed(meta, b * layout.sparse_n + j, layout.index_bits()));
                        if (idx >= layout.sparse_m || idx <= previous)
                            fail("N:M index ", idx, " at row ", r, ", block ", b, " is out of range or not increasing");
                        previous = idx;
                    }
                }
            }
        }
        if (!layout.fixed_row_length()) {
            std::vector<index_t> kept;
            if (row_offsets[0] != 0) fail("row offset 0 is ", row_offsets[0], ", expected 0");
            for (index_t r = 0; r < layout.rows; ++r) {
                kept_columns(r, kept);
                const auto begin = row_offsets[static_cast<std::size_t>(r)];
                const auto end = row_offsets[static_cast<std::size_t>(r) + 1];
                if (end < begin || end > codes.size())
                    fail("row ", r, " codes [", begin, ", ", end, ") lie outside the ", codes.size(), "-byte buffer");
                if (end - begin != packed_bytes(static_cast<index_t>(kept.size()), layout.code_bits))
                    fail("row ", r, " has ", end - begin, " code bytes for ", kept.size(), " kept elements");
            }
            if (row_offsets.back() != codes.size()) fail("codes have ", codes.size(), " bytes, rows use ", row_offsets.back());
        }
    }
};

/// Owning storage of a packed matrix.
struct packed_buffers {
    packed_layout layout;
    std::vector<std::uint8_t> codes;
    std::vector<std::uint8_t> scales;
    std::vector<std::uint8_t> zero_points;
    std::vector<std::uint8_t> metadata;
    std::vector<std::uint64_t> row_offsets;
    float tensor_scale = 1.0f;

    packed_view view() const {
        return packed_view{layout, codes, scales, zero_points, metadata, row_offsets, tensor_scale};
    }
    /// Every byte the compressed matrix needs: codes, scales, zero points, sparsity metadata, row offsets.
    std::size_t bytes() const {
        return codes.size() + scales.size() + zero_points.size() + metadata.size() +
               row_offsets.size() * sizeof(std::uint64_t) + (layout.has_tensor_scale ? sizeof(float) : 0);
    }
};

}  // namespace tcomp
