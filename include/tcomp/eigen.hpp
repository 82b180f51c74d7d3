// Eigen interoperability: compress and multiply Eigen matrices directly. Eigen's default storage is
// column-major; tcomp's views are row-major, so inputs are copied to row-major once (weights are
// compressed once; activations per call).
#pragma once

#include <Eigen/Core>

#include "tcomp/matmul.hpp"
#include "tcomp/quant/compress.hpp"

namespace tcomp {

using row_major_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class Derived>
matrix_view<const float> view_of(const Eigen::PlainObjectBase<Derived>& m)
    requires(static_cast<bool>(Derived::IsRowMajor) && std::is_same_v<typename Derived::Scalar, float>)
{
    return {m.data(), m.rows(), m.cols()};
}

template <class Policy, class Derived>
compressed_weights<Policy> compress(const Eigen::MatrixBase<Derived>& w, const quantize_options& options = {}) {
    const row_major_matrix rm = w.template cast<float>();
    return compress<Policy>(matrix_view<const float>(rm.data(), rm.rows(), rm.cols()), options);
}

namespace detail {

template <class Weights, class Derived>
Eigen::MatrixXf eigen_matmul(const Eigen::MatrixBase<Derived>& x, const Weights& w, std::span<const float> bias,
                             const matmul_options& options) {
    const row_major_matrix rx = x.template cast<float>();
    row_major_matrix y(rx.rows(), w.rows());
    matmul(matrix_view<const float>(rx.data(), rx.rows(), rx.cols()), w,
           matrix_view<float>(y.data(), y.rows(), y.cols()), bias, options);
    return y;
}

}  // namespace detail

/// Y = X * W^T + bias on the reference back end (the oracle).
template <class Policy, class Derived>
Eigen::MatrixXf matmul(const Eigen::MatrixBase<Derived>& x, const compressed_weights<Policy>& w,
                       std::span<const float> bias = {}, const matmul_options& options = {}) {
    return detail::eigen_matmul(x, w, bias, options);
}

/// Y = X * W^T + bias on the SIMD CPU kernels (weights packed once with cpu::pack).
template <class Policy, class Derived>
Eigen::MatrixXf matmul(const Eigen::MatrixBase<Derived>& x, const cpu::packed_weights<Policy>& w,
                       std::span<const float> bias = {}, const matmul_options& options = {}) {
    return detail::eigen_matmul(x, w, bias, options);
}

inline Eigen::MatrixXf to_eigen(const dense_matrix<float>& m) {
    return Eigen::Map<const row_major_matrix>(m.data(), m.rows(), m.cols());
}

}  // namespace tcomp
