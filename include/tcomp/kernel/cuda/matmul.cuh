// The CUDA back end: Y = X * W^T + bias on the GPU, the same policy types and the same front door as the CPU
// (tcomp/matmul.hpp includes this header when nvcc compiles):
//
//   auto w = tcomp::compress<tcomp::presets::w4a16>(weights);     // host, once
//   auto dw = tcomp::cuda::pack(w);                                // packed + uploaded, once
//   tcomp::matmul(x, dw, y, bias, {.stream = stream});             // x: matrix_view<const tcomp::float16 /
//                                                                  // bfloat16> of device memory
//
// The policy picks the kernel (cuda::kernel_for, a compile error for compositions without one); shapes the
// kernel cannot take are a shape_error before anything is launched, never a silent change of format.
// W8A8 / W4A8 / 2:4 quantize X per token on the device first (quantize_activations.cuh); with
// options.check_finite (the default) a NaN/Inf in X is a value_error naming the row, at the cost of one
// 4-byte copy and a stream synchronisation; without it the row's outputs are NaN.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <span>
#include <type_traits>

#include "tcomp/kernel/cuda/gemm_dense.cuh"
#include "tcomp/kernel/cuda/gemm_sparse.cuh"
#include "tcomp/kernel/cuda/gemv.cuh"
#include "tcomp/kernel/cuda/launch_plan.hpp"
#include "tcomp/kernel/cuda/quantize_activations.cuh"
#include "tcomp/kernel/cuda/runtime.cuh"
#include "tcomp/kernel/cuda/weight_image.hpp"
#include "tcomp/core/float16.hpp"
#include "tcomp/kernel/matmul_options.hpp"

namespace tcomp::cuda {

/// Compressed weights resident on the device, in the weight_image layout.
template <class Policy>
class device_weights {
public:
    static constexpr kernel_kind kind = kernel_for<Policy>();

    explicit device_weights(const compressed_weights<Policy>& weights, cudaStream_t stream = nullptr)
        : device_weights(make_weight_image(weights), stream) {}
    explicit device_weights(const weight_image& image, cudaStream_t stream = nullptr) {
        check_image(image, kind, "cuda::device_weights");
        shape_.kind = image.kind, shape_.rows = image.rows, shape_.cols = image.cols;
        shape_.code_bits = image.code_bits, shape_.is_signed = image.is_signed, shape_.group_size = image.group_size;
        codes_.upload(image.codes, stream);
        scales_.upload(image.scales, stream);
        zero_points_.upload(image.zero_points, stream);
        metadata_.upload(image.metadata, stream);
        TCOMP_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host image may go away after this
    }

    index_t rows() const { return shape_.rows; }
    index_t cols() const { return shape_.cols; }
    index_t group_size() const { return shape_.group_size; }
    bool is_signed() const { return shape_.is_signed; }
    /// Device bytes of the weights (codes, scales, zero points, metadata).
    std::size_t bytes() const { return codes_.bytes() + scales_.bytes() + zero_points_.bytes() + metadata_.bytes(); }

    const std::uint8_t* codes() const { return codes_.data(); }
    const float* scales() const { return scales_.data(); }
    const std::uint8_t* zero_points() const { return zero_points_.size() ? zero_points_.data() : nullptr; }
    const std::uint32_t* metadata() const { return metadata_.data(); }

private:
    weight_image shape_;  // sizes only: no host copy of the weights is kept
    device_buffer<std::uint8_t> codes_;
    device_buffer<float> scales_;
    device_buffer<std::uint8_t> zero_points_;
    device_buffer<std::uint32_t> metadata_;
};

/// Scratch memory reused across matmul calls (grown on demand, never shrunk).
struct workspace {
    device_buffer<std::int8_t> x_codes;
    device_buffer<float> x_scales;
    device_buffer<float> partial;
    device_buffer<int> partial_int;
    device_buffer<int> bad_row;
};

/// The one packing verb of this back end: the weights in the device layout (make_weight_image), uploaded.
template <class Policy>
device_weights<Policy> pack(const compressed_weights<Policy>& weights, cudaStream_t stream = nullptr) {
    return device_weights<Policy>(weights, stream);
}

namespace detail {

inline constexpr int max_cached_devices = 64;

inline int current_device() {
    int device = 0;
    TCOMP_CUDA_CHECK(cudaGetDevice(&device));
    return device;
}

/// SM count of the current device, asked once per device (a driver query per GEMV call costs as much as
/// the GEMV).
inline int multiprocessors() {
    static std::atomic<int> cache[max_cached_devices] = {};
    const int device = current_device();
    if (device < max_cached_devices) {
        if (const int known = cache[device].load(std::memory_order_relaxed)) return known;
    }
    int sms = 0;
    TCOMP_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    if (device < max_cached_devices) cache[device].store(sms, std::memory_order_relaxed);
    return sms;
}

/// Opts a kernel into more than 48 KB of dynamic shared memory, once per kernel and device.
template <auto Kernel>
void allow_shared_memory(int bytes) {
    if (bytes <= 48 * 1024) return;
    static std::atomic<std::uint64_t> done{0};
    const int device = current_device();
    const std::uint64_t bit = device < max_cached_devices ? std::uint64_t{1} << device : 0;
    if (bit != 0 && (done.load(std::memory_order_relaxed) & bit) != 0) return;
    TCOMP_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    done.fetch_or(bit, std::memory_order_relaxed);
}

// The tile configurations (see launch_plan.hpp for which one runs when).
using tile_small_int = dense_tile<16, 64, 1, 4, 1, 4>;
using tile_small_float = dense_tile<16, 64, 1, 4, 2, 4>;
using tile_medium = dense_tile<64, 64, 2, 2, 1, 4>;
using tile_large = dense_tile<128, 128, 2, 4, 1, 3>;
using sparse_small = sparse_tile<128, 32, 4, 1, 4>;
using sparse_large = sparse_tile<128, 128, 4, 2, 3>;

template <class Tile, class Act, int WBits, class Out>
void launch_dense(const dense_gemm_args& args, int splits, cudaStream_t stream) {
    using L = dense_smem<Tile, Act, WBits>;
    constexpr auto kernel = dense_gemm_kernel<Tile, Act, WBits, Out>;
    allow_shared_memory<kernel>(L::bytes);
    const dim3 grid(static_cast<unsigned>((args.n + Tile::BN - 1) / Tile::BN),
                    static_cast<unsigned>((args.m + Tile::BM - 1) / Tile::BM), static_cast<unsigned>(splits));
    kernel<<<grid, Tile::threads, L::bytes, stream>>>(args);
    TCOMP_CUDA_CHECK_LAUNCH("cuda::matmul (dense GEMM)");
}

template <class Act, int WBits, class Out>
void run_dense(const launch_plan& plan, dense_gemm_args args, workspace& ws, cudaStream_t stream) {
    constexpr bool int_path = std::is_same_v<Act, std::int8_t>;
    const int chunks = (args.k + 63) / 64;
    args.chunks_per_split = plan.splits > 1 ? plan.chunks_per_split : chunks;
    const std::size_t total = static_cast<std::size_t>(args.m) * static_cast<std::size_t>(args.n);
    if (plan.splits > 1) {
        if constexpr (int_path) {
            ws.partial_int.reserve(static_cast<std::size_t>(plan.splits) * total);
            args.partial_int = ws.partial_int.data();
        } else {
            ws.partial.reserve(static_cast<std::size_t>(plan.splits) * total);
            args.partial = ws.partial.data();
        }
    }
    switch (plan.tile) {
        case tile_shape::gemv:
            if constexpr (!int_path) {
                static_assert(gemv_max_rows == static_cast<int>(gemv_rows), "gemv.cuh and launch_plan.hpp disagree");
                const auto blocks = static_cast<unsigned>((args.n + gemv_warps - 1) / gemv_warps);
                gemv_kernel<Act, WBits, Out><<<blocks, gemv_warps * 32, 0, stream>>>(args);
                TCOMP_CUDA_CHECK_LAUNCH("cuda::matmul (GEMV)");
            }
            break;
        case tile_shape::small:
            if constexpr (int_path) launch_dense<tile_small_int, Act, WBits, Out>(args, plan.splits, stream);
            else launch_dense<tile_small_float, Act, WBits, Out>(args, plan.splits, stream);
            break;
        case tile_shape::medium: launch_dense<tile_medium, Act, WBits, Out>(args, plan.splits, stream); break;
        case tile_shape::large: launch_dense<tile_large, Act, WBits, Out>(args, plan.splits, stream); break;
    }
    if (plan.splits > 1) {
        const auto blocks = static_cast<unsigned>(std::min<std::size_t>((total + 255) / 256, 4096));
        if constexpr (int_path)
            finalize_split_k_int<Out><<<blocks, 256, 0, stream>>>(args.partial_int, plan.splits, args.m, args.n, args.x_scales,
                                                                 args.w_scales, args.bias, static_cast<Out*>(args.y));
        else
            finalize_split_k<Out><<<blocks, 256, 0, stream>>>(args.partial, plan.splits, args.m, args.n, args.bias,
                                                             static_cast<Out*>(args.y));
        TCOMP_CUDA_CHECK_LAUNCH("cuda::matmul (split-K finalize)");
    }
}

template <class Tile, class Out>
void launch_sparse(const sparse_gemm_args& args, cudaStream_t stream) {
    constexpr auto kernel = sparse_gemm_kernel<Tile, Out>;
    allow_shared_memory<kernel>(Tile::bytes);
    const dim3 grid(static_cast<unsigned>((args.n + Tile::BN - 1) / Tile::BN),
                    static_cast<unsigned>((args.m + Tile::BM - 1) / Tile::BM));
    kernel<<<grid, Tile::threads, Tile::bytes, stream>>>(args);
    TCOMP_CUDA_CHECK_LAUNCH("cuda::matmul (2:4 sparse GEMM)");
}

inline int log2_if_power_of_two(index_t v) {
    for (int s = 0; s < 31; ++s)
        if (index_t{1} << s == v) return s;
    return -1;
}

template <class T>
constexpr bool is_activation_type = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;
template <class T>
constexpr bool is_output_type = std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

}  // namespace detail

namespace detail {

/// Y[M x N] = X[M x K] * W^T (+ bias[N]) on `stream`, device pointers, row-major, X 16-byte aligned.
/// Act: __half or __nv_bfloat16. Out: float, __half or __nv_bfloat16. The front door (below) checks shapes.
template <class Policy, class Act, class Out>
void run(const Act* x, index_t m, const device_weights<Policy>& w, Out* y, const float* bias, workspace& ws,
         cudaStream_t stream, bool check_finite) {
    static_assert(detail::is_activation_type<Act>, "cuda::matmul: X must be fp16 or bf16");
    static_assert(detail::is_output_type<Out>, "cuda::matmul: Y must be float, fp16 or bf16");
    constexpr kernel_kind kind = device_weights<Policy>::kind;
    const index_t n = w.rows(), k = w.cols();
    check_matmul_arguments(kind, m, reinterpret_cast<std::uintptr_t>(x), reinterpret_cast<std::uintptr_t>(y));
    if (m == 0) return;
    const launch_plan plan = plan_launch(kind, m, n, k, k / w.group_size(), detail::multiprocessors());

    if constexpr (kind == kernel_kind::w4a16 || kind == kernel_kind::w8a16) {
        detail::dense_gemm_args args;
        args.x = x, args.w = w.codes(), args.w_scales = w.scales(), args.w_zeros = w.zero_points(), args.bias = bias;
        args.y = y, args.m = static_cast<int>(m), args.n = static_cast<int>(n), args.k = static_cast<int>(k);
        args.group_size = static_cast<int>(w.group_size()), args.groups = static_cast<int>(k / w.group_size());
        args.zero_stride = static_cast<int>((n + 3) / 4 * 4);
        args.group_shift = detail::log2_if_power_of_two(w.group_size());
        args.w_signed = w.is_signed();
        detail::run_dense<Act, kind == kernel_kind::w4a16 ? 4 : 8, Out>(plan, args, ws, stream);
    } else {
        const auto elements = static_cast<std::size_t>(m) * static_cast<std::size_t>(k);
        ws.x_codes.reserve(elements);
        ws.x_scales.reserve(static_cast<std::size_t>(m));
        ws.bad_row.reserve(1);
        quantize_per_token(x, m, k, ws.x_codes.data(), ws.x_scales.data(), ws.bad_row.data(), stream);
        if (check_finite) {
            int bad = INT_MAX;
            TCOMP_CUDA_CHECK(cudaMemcpyAsync(&bad, ws.bad_row.data(), sizeof bad, cudaMemcpyDeviceToHost, stream));
            TCOMP_CUDA_CHECK(cudaStreamSynchronize(stream));
            if (bad != INT_MAX)
                tcomp::detail::throw_error<value_error>("cuda::matmul: X row ", bad, " holds NaN or Inf (", kernel_name(kind),
                                                        " quantizes X per token; a non-finite value has no int8 code)");
        }
        if constexpr (kind == kernel_kind::w8a8_2of4) {
            detail::sparse_gemm_args args;
            args.x = ws.x_codes.data(), args.x_scales = ws.x_scales.data(), args.w = w.codes(), args.meta = w.metadata();
            args.w_scales = w.scales(), args.bias = bias, args.y = y;
            args.m = static_cast<int>(m), args.n = static_cast<int>(n), args.k = static_cast<int>(k);
            args.group_size = static_cast<int>(w.group_size()), args.groups = static_cast<int>(k / w.group_size());
            if (plan.tile == tile_shape::small) detail::launch_sparse<detail::sparse_small, Out>(args, stream);
            else detail::launch_sparse<detail::sparse_large, Out>(args, stream);
        } else {
            detail::dense_gemm_args args;
            args.x = ws.x_codes.data(), args.x_scales = ws.x_scales.data(), args.w = w.codes(), args.w_scales = w.scales();
            args.bias = bias, args.y = y;
            args.m = static_cast<int>(m), args.n = static_cast<int>(n), args.k = static_cast<int>(k);
            args.group_size = static_cast<int>(w.group_size()), args.groups = static_cast<int>(k / w.group_size());
            args.w_signed = true;
            args.group_shift = detail::log2_if_power_of_two(w.group_size());
            detail::run_dense<std::int8_t, kind == kernel_kind::w4a8 ? 4 : 8, Out>(plan, args, ws, stream);
        }
    }
}

/// The calling thread's workspace for the current device (matmul_options::workspace == nullptr).
inline workspace& default_workspace() {
    thread_local workspace per_device[max_cached_devices];
    const int device = current_device();
    if (device >= max_cached_devices)
        tcomp::detail::throw_error<error>("cuda::matmul: device ", device, " has no default workspace (at most ",
                                          max_cached_devices, " devices); pass matmul_options::workspace");
    return per_device[device];
}

/// The CUDA element type of a tcomp storage type (same bits: core/float16.hpp).
template <class T>
struct device_element {
    using type = T;
};
template <>
struct device_element<float16> {
    using type = __half;
};
template <>
struct device_element<bfloat16> {
    using type = __nv_bfloat16;
};

template <class Policy, class Act, class Out>
void matmul_views(matrix_view<const Act> x, const device_weights<Policy>& w, matrix_view<Out> y,
                  std::span<const float> bias, const matmul_options& options) {
    static_assert(std::is_same_v<Out, float> || std::is_same_v<Out, float16> || std::is_same_v<Out, bfloat16>,
                  "cuda::matmul: Y must be float, float16 or bfloat16");
    tcomp::detail::check_matmul_shapes(x, w.rows(), w.cols(), y, bias, "cuda::matmul");
    if (x.rows() > 0 && x.row_stride() != x.cols())
        tcomp::detail::throw_error<shape_error>("cuda::matmul: X's row stride ", x.row_stride(), " is not its width ",
                                                x.cols(), " (the kernels read X contiguously)");
    if (y.rows() > 0 && y.row_stride() != y.cols())
        tcomp::detail::throw_error<shape_error>("cuda::matmul: Y's row stride ", y.row_stride(), " is not its width ",
                                                y.cols(), " (the kernels write Y contiguously)");
    workspace& ws = options.workspace != nullptr ? *options.workspace : default_workspace();
    run(reinterpret_cast<const typename device_element<Act>::type*>(x.data()), x.rows(), w,
        reinterpret_cast<typename device_element<Out>::type*>(y.data()), bias.empty() ? nullptr : bias.data(), ws,
        options.stream, options.check_finite);
}

}  // namespace detail
}  // namespace tcomp::cuda

namespace tcomp {

/// Y = X * W^T + bias on the GPU. X, Y and the bias are device memory (contiguous rows; X 16-byte aligned);
/// X fp16 or bf16, Y float, fp16 or bf16. Queued on options.stream; an error is thrown before any launch.
template <class Policy, class T, class Out>
    requires(std::is_same_v<std::remove_const_t<T>, float16> || std::is_same_v<std::remove_const_t<T>, bfloat16>)
void matmul(matrix_view<T> x, const cuda::device_weights<Policy>& w, matrix_view<Out> y, std::span<const float> bias = {},
            const matmul_options& options = {}) {
    cuda::detail::matmul_views(matrix_view<const std::remove_const_t<T>>(x), w, y, bias, options);
}

}  // namespace tcomp
