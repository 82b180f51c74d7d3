// A matrix compressed by quantizer Q and sparsity pattern S: typed owning storage (compressed_matrix) and
// a typed non-owning view (compressed_view) over any memory, both on the byte layout of
// core/packed_storage.hpp. quantize<Q>() makes one; dequantize() reads one back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/core/packed_storage.hpp"
#include "tcomp/quant/element.hpp"
#include "tcomp/quant/quantizer.hpp"
#include "tcomp/quant/quantizer_params.hpp"
#include "tcomp/quant/scale_selection.hpp"
#include "tcomp/sparse/pattern.hpp"
#include "tcomp/sparse/prune.hpp"

namespace tcomp {

/// Run-time choices of quantize() and compress().
struct quantize_options {
    /// Seed of stochastic rounding: required when the quantizer rounds stochastically.
    std::optional<std::uint64_t> seed;
    /// Kept fraction for block_sparse and unstructured pruning (N:M fixes its own).
    double density = 0.5;
};

namespace detail {

/// The packed layout that quantizer q (format row f) with sparsity s gives a rows x cols matrix.
inline packed_layout layout_for(const format_info& f, const quantizer_desc& q, const sparsity_desc& s, index_t rows,
                                index_t cols, const scale_grid& grid) {
    packed_layout l;
    l.rows = rows, l.cols = cols;
    l.code_bits = f.bits;
    l.scale_bits = scale_storage_bits(q.scale, q.shift_bits);
    l.scale_rows = grid.rows, l.scale_cols = grid.cols, l.group_size = grid.group_size;
    l.has_zero_points = q.has_zero_point();
    l.has_tensor_scale = q.scale == scale_kind::multi_level || q.scale == scale_kind::shiftable;
    l.sparsity = s.kind;
    l.sparse_n = s.n, l.sparse_m = s.m, l.block_rows = s.block_rows, l.block_cols = s.block_cols;
    return l;
}
template <class Q, class S>
packed_layout layout_for(index_t rows, index_t cols, const scale_grid& grid) {
    return layout_for(format_info_of<typename Q::format>(), quantizer_params<Q>(), describe_sparsity<S>(), rows, cols,
                      grid);
}

/// Throws unless `layout` is what Q and S produce (a view over foreign memory must match its type).
template <class Q, class S>
void require_layout_matches(const packed_layout& l, const char* where) {
    const auto grid_rows_ok = l.scale_rows == 1 || (Q::granularity::per_row && l.scale_rows == l.rows);
    const index_t want_group = Q::granularity::group_size > 0 ? Q::granularity::group_size : std::max<index_t>(l.cols, 1);
    if (l.code_bits != Q::code_bits || l.scale_bits != Q::scale::storage_bits ||
        l.has_zero_points != Q::has_zero_point || l.has_tensor_scale != Q::scale::has_tensor_scale ||
        l.sparsity != S::kind || l.sparse_n != S::n || l.sparse_m != S::m || l.block_rows != S::block_rows ||
        l.block_cols != S::block_cols || !grid_rows_ok || l.group_size != want_group)
        throw_error<shape_error>(where, ": the packed layout (", l.code_bits, "-bit codes, ", l.scale_bits,
                                 "-bit scales, group ", l.group_size, ", sparsity ", static_cast<int>(l.sparsity),
                                 ") does not match the quantizer and sparsity types");
}

inline std::uint64_t require_seed(bool stochastic, const quantize_options& options, const char* where) {
    if (stochastic && !options.seed)
        throw_error<value_error>(where, ": stochastic rounding needs an explicit seed (quantize_options::seed)");
    return options.seed.value_or(0);
}

/// Encodes x's kept elements with the decided scales into packed buffers.
inline packed_buffers encode(const format_info& f, const quantizer_desc& q, const sparsity_desc& s,
                             matrix_view<const float> x, const std::vector<std::uint8_t>& mask, const scale_table& table,
                             const quantize_options& options, const char* where) {
    const std::uint64_t seed = require_seed(q.rounding == rounding_kind::stochastic, options, where);
    const index_t rows = x.rows(), cols = x.cols();
    packed_buffers out;
    out.layout = layout_for(f, q, s, rows, cols, scale_grid{table.rows, table.cols, table.group_size});
    out.layout.validate(where);
    const packed_layout& l = out.layout;

    // Scales and zero points.
    if (l.scale_bits > 0) {
        out.scales.assign(l.scale_bytes(), 0);
        for (std::size_t i = 0; i < table.stored.size(); ++i)
            write_packed(out.scales.data(), static_cast<index_t>(i), l.scale_bits, table.stored[i]);
    }
    if (q.has_zero_point()) {
        out.zero_points.assign(l.zero_point_bytes(), 0);
        for (std::size_t i = 0; i < table.zero.size(); ++i)
            write_packed(out.zero_points.data(), static_cast<index_t>(i), l.code_bits, f.from_integer(table.zero[i]));
    }
    out.tensor_scale = table.tensor_scale;

    // Sparsity metadata from the mask.
    auto kept = [&](index_t r, index_t c) { return mask.empty() || mask[static_cast<std::size_t>(r * cols + c)] != 0; };
    out.metadata.assign(l.metadata_bytes(), 0);
    if (s.kind == sparsity_kind::n_m) {
        for (index_t r = 0; r < rows; ++r) {
            std::uint8_t* meta = out.metadata.data() + static_cast<std::size_t>(r) * l.metadata_row_bytes();
            for (index_t b = 0; b < cols / s.m; ++b) {
                int found = 0;
                for (int j = 0; j < s.m; ++j)
                    if (kept(r, b * s.m + j)) {
                        if (found == s.n) break;
                        write_packed(meta, b * s.n + found, l.index_bits(), static_cast<std::uint32_t>(j));
                        ++found;
                    }
                if (found != s.n)
                    throw_error<value_error>(where, ": mask keeps ", found, " of ", s.m, " in row ", r, ", block ", b,
                                             "; n_m<", s.n, ", ", s.m, "> needs exactly ", s.n);
            }
        }
    } else if (s.kind == sparsity_kind::block) {
        const index_t tiles_per_row = cols / s.block_cols;
        for (index_t tr = 0; tr < rows / s.block_rows; ++tr)
            for (index_t tc = 0; tc < tiles_per_row; ++tc)
                if (kept(tr * s.block_rows, tc * s.block_cols))
                    write_packed(out.metadata.data(), tr * tiles_per_row + tc, 1, 1u);
    } else if (s.kind == sparsity_kind::bitmap) {
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < cols; ++c)
                if (kept(r, c)) write_packed(out.metadata.data() + r * l.metadata_row_bytes(), c, 1, 1u);
    }

    // Codes, row by row, kept columns in order (the metadata decides which those are).
    const packed_view meta_view{l, {}, {}, {}, out.metadata, {}, 1.0f};
    std::vector<index_t> columns;
    std::vector<std::uint32_t> row_codes;
    if (!l.fixed_row_length()) out.row_offsets.push_back(0);
    for (index_t r = 0; r < rows; ++r) {
        meta_view.kept_columns(r, columns);
        row_codes.clear();
        for (index_t c : columns) {
            const index_t cell = table.cell(r, c);
            row_codes.push_back(quantize_value(f, q.rounding, x(r, c), table.effective[static_cast<std::size_t>(cell)],
                                                  table.zero[static_cast<std::size_t>(cell)], seed,
                                                  static_cast<std::uint64_t>(r * cols + c)));
        }
        const std::size_t row_bytes = packed_bytes(static_cast<index_t>(row_codes.size()), l.code_bits);
        const std::size_t start = out.codes.size();
        out.codes.resize(start + row_bytes, 0);
        for (std::size_t i = 0; i < row_codes.size(); ++i)
            write_packed(out.codes.data() + start, static_cast<index_t>(i), l.code_bits, row_codes[i]);
        if (!l.fixed_row_length()) out.row_offsets.push_back(out.codes.size());
    }
    return out;
}

template <class Q, class S>
packed_buffers encode(matrix_view<const float> x, const std::vector<std::uint8_t>& mask, const scale_table& table,
                      const quantize_options& options, const char* where) {
    return encode(format_info_of<typename Q::format>(), quantizer_params<Q>(), describe_sparsity<S>(), x, mask, table,
                  options, where);
}

/// Prunes w to pattern s by magnitude, then quantizes the kept weights: the one compression path (typed
/// compress_matrix<Q, S> and descriptors both come here).
inline packed_buffers compress_packed(const format_info& f, const quantizer_desc& q, const sparsity_desc& s,
                                      matrix_view<const float> w, const quantize_options& options) {
    require_finite(w, "compress", "weights");
    std::vector<std::uint8_t> mask;
    if (s.kind != sparsity_kind::dense)
        mask = magnitude_mask(s.kind, s.n, s.m, s.block_rows, s.block_cols, w, options.density);
    const auto grid = grid_for(q, w.rows(), w.cols(), false, "compress");
    const scale_table table = scales_from_cells(f, q, grid, gather_cells(w, grid, mask));
    return encode(f, q, s, w, mask, table, options, "compress");
}

/// The float matrix packed data stands for (pruned elements are 0); the data must have passed validate().
inline dense_matrix<float> dequantize_packed(const format_info& f, const quantizer_desc& q, const packed_view& m) {
    const packed_layout& l = m.layout;
    dense_matrix<float> out(l.rows, l.cols);
    std::vector<index_t> columns;
    for (index_t r = 0; r < l.rows; ++r) {
        m.kept_columns(r, columns);
        const std::uint8_t* codes = m.row_codes(r);
        for (std::size_t i = 0; i < columns.size(); ++i) {
            const index_t c = columns[i], g = c / l.group_size;
            const float scale = decode_scale(q.scale, f, m.scale_entry(r, g), m.tensor_scale);
            const int zero = l.has_zero_points ? f.to_integer(m.zero_point_entry(r, g)) : 0;
            out(r, c) = dequantize_value(f, read_packed(codes, static_cast<index_t>(i), l.code_bits), scale, zero);
        }
    }
    return out;
}

}  // namespace detail

/// Typed non-owning view: a packed_view whose layout was checked against Q and S.
template <class Q, class S = dense>
class compressed_view {
public:
    using quantizer_type = Q;
    using sparsity_type = S;

    explicit compressed_view(const packed_view& data) : data_(data) {
        data_.validate("compressed_view");
        detail::require_layout_matches<Q, S>(data_.layout, "compressed_view");
    }
    const packed_view& packed() const { return data_; }
    index_t rows() const { return data_.layout.rows; }
    index_t cols() const { return data_.layout.cols; }

    /// Scale S and zero point z of the cell holding element (r, k).
    float scale(index_t r, index_t k) const {
        return Q::scale::template decode<typename Q::format>(data_.scale_entry(r, k / data_.layout.group_size),
                                                             data_.tensor_scale);
    }
    int zero_point(index_t r, index_t k) const {
        if constexpr (Q::has_zero_point)
            return Q::format::to_integer(data_.zero_point_entry(r, k / data_.layout.group_size));
        else
            return 0;
    }

    /// Calls f(column, code) for each stored element of row r, in column order.
    template <class Fn>
    void for_each_in_row(index_t r, std::vector<index_t>& columns, Fn&& f) const {
        data_.kept_columns(r, columns);
        const std::uint8_t* codes = data_.row_codes(r);
        for (std::size_t i = 0; i < columns.size(); ++i)
            f(columns[i], read_packed(codes, static_cast<index_t>(i), data_.layout.code_bits));
    }

private:
    packed_view data_;
};

/// Owning compressed matrix.
template <class Q, class S = dense>
class compressed_matrix {
public:
    using quantizer_type = Q;
    using sparsity_type = S;

    compressed_matrix() = default;
    explicit compressed_matrix(packed_buffers storage) : storage_(std::move(storage)) {
        (void)view();  // validates
    }

    index_t rows() const { return storage_.layout.rows; }
    index_t cols() const { return storage_.layout.cols; }
    /// All bytes stored: codes, scales, zero points, sparsity metadata.
    std::size_t bytes() const { return storage_.bytes(); }
    /// Stored bits per logical element (rows x cols), everything included.
    double bits_per_weight() const {
        const auto n = static_cast<double>(rows() * cols());
        return n == 0 ? 0.0 : 8.0 * static_cast<double>(bytes()) / n;
    }
    compressed_view<Q, S> view() const { return compressed_view<Q, S>(storage_.view()); }
    const packed_buffers& storage() const { return storage_; }

private:
    packed_buffers storage_;
};

/// Quantizes x (no pruning) with Q's own scale choice, or with fixed scales (calibrated activations).
template <class Q>
compressed_matrix<Q> quantize(matrix_view<const float> x, const quantize_options& options = {},
                              const scale_table* fixed_scales = nullptr) {
    detail::require_finite(x, "quantize", "x");
    const std::vector<std::uint8_t> all_kept;
    if (fixed_scales != nullptr) {
        const auto grid = detail::grid_for<Q>(x.rows(), x.cols(), true, "quantize");
        if (fixed_scales->cols != grid.cols || fixed_scales->group_size != grid.group_size || fixed_scales->rows != 1)
            detail::throw_error<shape_error>("quantize: calibrated scales have ", fixed_scales->cols,
                                             " groups of ", fixed_scales->group_size, ", the input needs ", grid.cols,
                                             " of ", grid.group_size);
        return compressed_matrix<Q>(detail::encode<Q, dense>(x, all_kept, *fixed_scales, options, "quantize"));
    }
    const scale_table table = choose_scales<Q>(x);
    return compressed_matrix<Q>(detail::encode<Q, dense>(x, all_kept, table, options, "quantize"));
}

/// Prunes w to pattern S by magnitude, then quantizes the kept weights with Q.
template <class Q, class S = dense>
compressed_matrix<Q, S> compress_matrix(matrix_view<const float> w, const quantize_options& options = {}) {
    return compressed_matrix<Q, S>(detail::compress_packed(format_info_of<typename Q::format>(),
                                                           detail::quantizer_params<Q>(), describe_sparsity<S>(), w,
                                                           options));
}

/// The float matrix a compressed one stands for (pruned elements are 0).
template <class Q, class S>
dense_matrix<float> dequantize(const compressed_view<Q, S>& m) {
    dense_matrix<float> out(m.rows(), m.cols());
    std::vector<index_t> columns;
    for (index_t r = 0; r < m.rows(); ++r)
        m.for_each_in_row(r, columns, [&](index_t c, std::uint32_t code) {
            out(r, c) = detail::dequantize_value<Q>(code, m.scale(r, c), m.zero_point(r, c));
        });
    return out;
}
template <class Q, class S>
dense_matrix<float> dequantize(const compressed_matrix<Q, S>& m) {
    return dequantize(m.view());
}

}  // namespace tcomp
