// tcomp::matmul: the one front door for Y = X * W^T with compressed W. Callers never name a back end:
//   matmul(x, compressed_weights<P>)          the scalar reference (the oracle; no packing needed)
//   matmul(x, cpu::packed_weights<P>, ...)    the SIMD CPU kernels, ISA chosen at run time
//                                             (kernel/cpu/matmul.hpp; pack once with cpu::pack)
#pragma once

#include "tcomp/kernel/cpu/matmul.hpp"
#include "tcomp/kernel/reference/matmul.hpp"

namespace tcomp {

template <class Policy>
void matmul(matrix_view<const float> x, const compressed_weights<Policy>& w, matrix_view<float> y,
            std::span<const float> bias = {}, const quantize_options& options = {}) {
    reference::matmul(x, w, y, bias, options);
}

template <class Policy>
dense_matrix<float> matmul(matrix_view<const float> x, const compressed_weights<Policy>& w,
                           std::span<const float> bias = {}, const quantize_options& options = {}) {
    dense_matrix<float> y(x.rows(), w.rows());
    matmul(x, w, y.view(), bias, options);
    return y;
}

}  // namespace tcomp
