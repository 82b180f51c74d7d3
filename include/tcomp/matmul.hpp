// tcomp::matmul: the one front door for Y = X * W^T + bias with compressed W, whatever holds the weights:
//
//   matmul(x, compressed_weights<P>, y, bias, options)      the scalar reference (the oracle; no packing)
//   matmul(x, cpu::packed_weights<P>, y, bias, options)     the SIMD CPU kernels, ISA chosen at run time
//                                                           (pack once with cpu::pack; kernel/cpu/)
//   matmul(x, cuda::device_weights<P>, y, bias, options)    the CUDA kernels (pack once with cuda::pack;
//                                                           kernel/cuda/matmul.cuh, seen when nvcc compiles)
//
// X is a matrix_view of float, bfloat16 or float16 (core/float16.hpp); Y is float on the host (float, bf16 or
// fp16 on a device); one options struct (kernel/matmul_options.hpp) for every back end. Shapes, aliasing of Y
// with X or the bias, and NaN/Inf in X or the bias are errors that name what and where, checked before any
// kernel runs. Where the CPU kernels do not cover a call (no SIMD path, a composition without a kernel
// family) the oracle runs on the same weights: cpu::uses_simd() and packed_weights::unsupported_reason() say
// which and why. bf16 X reaches the weight-only kernels as it is (widened in registers); elsewhere 16-bit X is
// widened to float first, exactly.
#pragma once

#include <span>
#include <type_traits>

#include "tcomp/core/float16.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/kernel/cpu/matmul.hpp"
#include "tcomp/kernel/matmul_options.hpp"
#include "tcomp/kernel/reference/matmul.hpp"

namespace tcomp {

namespace detail {

template <class Policy, class T>
void matmul_reference(matrix_view<const T> x, const compressed_weights<Policy>& w, matrix_view<float> y,
                      std::span<const float> bias, const matmul_options& options) {
    if constexpr (std::is_same_v<T, float>) {
        reference::matmul(x, w, y, bias, options.quantize);
    } else {
        reference::detail::check_shapes(x, w.rows(), w.cols(), y, bias);
        require_finite(x, "matmul", "x");
        const dense_matrix<float> xf = widen(x);
        reference::matmul(xf.view(), w, y, bias, options.quantize);
    }
}

template <class Policy, class T>
void matmul_cpu(matrix_view<const T> x, const cpu::packed_weights<Policy>& w, matrix_view<float> y,
                std::span<const float> bias, const matmul_options& options) {
    reference::detail::check_shapes(x, w.rows(), w.cols(), y, bias);
    require_finite(x, "matmul", "x");
    if (x.rows() == 0 || w.rows() == 0) return;
    if constexpr (std::is_same_v<T, bfloat16>) {
        if (cpu::detail::run_kernels(x, w, y, bias, options.threads)) return;
    }
    if constexpr (std::is_same_v<T, float>) {
        if (cpu::detail::run_kernels(x, w, y, bias, options.threads)) return;
        reference::matmul(x, w.source(), y, bias, options.quantize);
    } else {
        const dense_matrix<float> xf = widen(x);
        if (cpu::detail::run_kernels(xf.view(), w, y, bias, options.threads)) return;
        reference::matmul(xf.view(), w.source(), y, bias, options.quantize);
    }
}

}  // namespace detail

// X's element type T is deduced (const or not), so one overload per back end takes float, bfloat16 and float16.

/// Compressed weights: the reference back end (the oracle).
template <class Policy, class T>
    requires is_activation_element<std::remove_const_t<T>>
void matmul(matrix_view<T> x, const compressed_weights<Policy>& w, matrix_view<float> y,
            std::span<const float> bias = {}, const matmul_options& options = {}) {
    detail::matmul_reference(matrix_view<const std::remove_const_t<T>>(x), w, y, bias, options);
}

/// CPU-packed weights: the SIMD kernels.
template <class Policy, class T>
    requires is_activation_element<std::remove_const_t<T>>
void matmul(matrix_view<T> x, const cpu::packed_weights<Policy>& w, matrix_view<float> y,
            std::span<const float> bias = {}, const matmul_options& options = {}) {
    detail::matmul_cpu(matrix_view<const std::remove_const_t<T>>(x), w, y, bias, options);
}

/// Y returned (host weights).
template <class Policy, class T>
    requires is_activation_element<std::remove_const_t<T>>
dense_matrix<float> matmul(matrix_view<T> x, const compressed_weights<Policy>& w, std::span<const float> bias = {},
                           const matmul_options& options = {}) {
    dense_matrix<float> y(x.rows(), w.rows());
    matmul(x, w, y.view(), bias, options);
    return y;
}
template <class Policy, class T>
    requires is_activation_element<std::remove_const_t<T>>
dense_matrix<float> matmul(matrix_view<T> x, const cpu::packed_weights<Policy>& w, std::span<const float> bias = {},
                           const matmul_options& options = {}) {
    dense_matrix<float> y(x.rows(), w.rows());
    matmul(x, w, y.view(), bias, options);
    return y;
}

}  // namespace tcomp

#if defined(__CUDACC__)
#include "tcomp/kernel/cuda/matmul.cuh"
#endif
