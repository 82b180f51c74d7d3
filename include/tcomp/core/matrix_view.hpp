// Non-owning row-major 2-D views over caller memory. Kernels and quantizers take views so that callers
// keep their own containers (Eigen, std::vector, mapped files) and nothing is copied.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tcomp {

/// rows x cols, row-major, with a row stride (in elements) >= cols so sub-blocks of a larger matrix work.
template <class T>
class matrix_view {
public:
    using value_type = std::remove_const_t<T>;

    constexpr matrix_view() = default;
    constexpr matrix_view(T* data, index_t rows, index_t cols, index_t row_stride)
        : data_(data), rows_(rows), cols_(cols), row_stride_(row_stride) {
        if (rows < 0 || cols < 0 || row_stride < cols)
            detail::throw_error<shape_error>("matrix_view: invalid shape ", rows, "x", cols, " with row stride ",
                                             row_stride);
        if (data == nullptr && rows * cols != 0)
            detail::throw_error<shape_error>("matrix_view: null data for a ", rows, "x", cols, " matrix");
    }
    constexpr matrix_view(T* data, index_t rows, index_t cols) : matrix_view(data, rows, cols, cols) {}

    /// A const view converts from a mutable one.
    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<const U, T>)
    constexpr matrix_view(const matrix_view<U>& other)
        : data_(other.data()), rows_(other.rows()), cols_(other.cols()), row_stride_(other.row_stride()) {}

    constexpr T* data() const { return data_; }
    constexpr index_t rows() const { return rows_; }
    constexpr index_t cols() const { return cols_; }
    constexpr index_t row_stride() const { return row_stride_; }
    constexpr index_t size() const { return rows_ * cols_; }
    constexpr T& operator()(index_t r, index_t c) const { return data_[r * row_stride_ + c]; }
    constexpr std::span<T> row(index_t r) const {
        return std::span<T>(data_ + r * row_stride_, static_cast<std::size_t>(cols_));
    }

private:
    T* data_ = nullptr;
    index_t rows_ = 0;
    index_t cols_ = 0;
    index_t row_stride_ = 0;
};

/// A small owning row-major matrix for results of the reference code (contiguous, stride == cols).
template <class T>
class dense_matrix {
public:
    dense_matrix() = default;
    dense_matrix(index_t rows, index_t cols, T fill = T{}) : rows_(rows), cols_(cols) {
        if (rows < 0 || cols < 0) detail::throw_error<shape_error>("dense_matrix: negative shape ", rows, "x", cols);
        data_.assign(static_cast<std::size_t>(rows * cols), fill);
    }
    index_t rows() const { return rows_; }
    index_t cols() const { return cols_; }
    T* data() { return data_.data(); }
    const T* data() const { return data_.data(); }
    T& operator()(index_t r, index_t c) { return data_[static_cast<std::size_t>(r * cols_ + c)]; }
    const T& operator()(index_t r, index_t c) const { return data_[static_cast<std::size_t>(r * cols_ + c)]; }
    matrix_view<T> view() { return {data_.data(), rows_, cols_}; }
    matrix_view<const T> view() const { return {data_.data(), rows_, cols_}; }
    std::vector<T>& storage() { return data_; }

private:
    index_t rows_ = 0;
    index_t cols_ = 0;
    std::vector<T> data_;
};

namespace detail {

/// The bytes [begin, end) a view's elements occupy (empty for an empty view), as integers: comparing pointers
/// into different objects with < is unspecified, their integer values are not.
template <class T>
std::pair<std::uintptr_t, std::uintptr_t> byte_range(matrix_view<T> m) {
    if (m.rows() == 0 || m.cols() == 0) return {0, 0};
    const auto begin = reinterpret_cast<std::uintptr_t>(m.data());
    return {begin, begin + static_cast<std::uintptr_t>(((m.rows() - 1) * m.row_stride() + m.cols()) * index_t{sizeof(T)})};
}

/// Whether the memory of two views (or a view and a span) overlaps.
template <class A, class B>
bool overlaps(matrix_view<A> a, matrix_view<B> b) {
    const auto [ab, ae] = byte_range(a);
    const auto [bb, be] = byte_range(b);
    return ab < ae && bb < be && ab < be && bb < ae;
}

/// Throws shape_error "<where>: Y overlaps X (or the bias) in memory" when y shares memory with x or with the bias:
/// the kernels write Y a tile at a time while still reading X and the bias, so in-place calls are not supported.
/// Compares addresses only (the memory may be a device's).
template <class X, class Y>
void require_no_overlap(matrix_view<X> x, matrix_view<Y> y, std::span<const float> bias, const char* where) {
    if (overlaps(x, y)) throw_error<shape_error>(where, ": Y overlaps X in memory (Y must not alias X)");
    if (!bias.empty() && overlaps(matrix_view<const float>(bias.data(), 1, static_cast<index_t>(bias.size())), y))
        throw_error<shape_error>(where, ": Y overlaps the bias in memory (Y must not alias it)");
}

/// The shapes of Y[M x N] = X[M x K] * W^T + bias for W of n x k, and no aliasing of Y: shape_error naming what
/// disagrees. Reads no element (X, Y and the bias may be in device memory).
template <class X, class Y>
void check_matmul_shapes(matrix_view<X> x, index_t n, index_t k, matrix_view<Y> y, std::span<const float> bias,
                         const char* where) {
    if (x.cols() != k)
        throw_error<shape_error>(where, ": X is ", x.rows(), "x", x.cols(), " but W is ", n, "x", k,
                                 " (Y = X * W^T needs X's columns == W's columns)");
    if (y.rows() != x.rows() || y.cols() != n)
        throw_error<shape_error>(where, ": Y is ", y.rows(), "x", y.cols(), ", expected ", x.rows(), "x", n);
    if (!bias.empty() && static_cast<index_t>(bias.size()) != n)
        throw_error<shape_error>(where, ": bias has ", bias.size(), " entries, expected N = ", n);
    require_no_overlap(x, y, bias, where);
}

/// Whether all n floats are finite: the exponent field is not all ones. Branch-free over 16 floats at a time
/// (SSE2, the x86-64 baseline) because every matmul call checks its whole input.
inline bool all_finite(const float* p, index_t n) {
    index_t i = 0;
#if defined(__SSE2__)
    const __m128i abs_mask = _mm_set1_epi32(0x7FFFFFFF), max_finite = _mm_set1_epi32(0x7F7FFFFF);
    __m128i bad = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; j += 4) {
            const __m128i v = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + j)), abs_mask);
            bad = _mm_or_si128(bad, _mm_cmpgt_epi32(v, max_finite));  // |bits| > max finite: Inf or NaN
        }
    }
    if (_mm_movemask_epi8(bad) != 0) return false;
#endif
    std::uint32_t worst = 0;
    for (; i < n; ++i) {
        std::uint32_t b;
        std::memcpy(&b, p + i, sizeof b);
        worst |= static_cast<std::uint32_t>((b & 0x7FFFFFFFu) > 0x7F7FFFFFu);
    }
    return worst == 0;
}

/// Rejects NaN/Inf with an error naming the first bad element: silent garbage is worse than a stop.
template <class T>
void require_finite(matrix_view<const T> m, const char* where, const char* what) {
    if (m.cols() == 0) return;  // (m(r, 0) would bind a reference past an empty view's data)
    for (index_t r = 0; r < m.rows(); ++r) {
        if constexpr (std::is_same_v<std::remove_const_t<T>, float>)
            if (all_finite(&m(r, 0), m.cols())) continue;
        for (index_t c = 0; c < m.cols(); ++c)
            if (!std::isfinite(static_cast<double>(m(r, c))))
                throw_error<value_error>(where, ": ", what, "(", r, ", ", c, ") is ",
                                         std::isnan(static_cast<double>(m(r, c))) ? "NaN" : "Inf",
                                         " (the first non-finite element; clean the input or clamp it)");
    }
}

inline void require_shape(bool ok, const char* where, const char* what) {
    if (!ok) throw_error<shape_error>(where, ": ", what);
}

}  // namespace detail
}  // namespace tcomp
