// Fused dynamic per-token activation quantizer: fp16 / bf16 / fp32 X[M x K] -> int8 codes + one float
// scale per row, the rule of quantizer<int_format<8>, symmetric, per_token, dynamic> bit for bit:
//     S = max_k |x_k| / 127 (IEEE float division), S = 1 for an all-zero row, at least FLT_MIN;
//     q = clamp(round_half_even(x / S), -128, 127).
// One warp per row: the row is read twice (max, then codes), the second time from L1/L2.
// A non-finite value makes the row's scale NaN (so its outputs are NaN, never finite garbage) and records
// the first such row in `bad_row` (INT_MAX when none), which matmul() turns into a value_error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <climits>
#include <cstdint>

#include "tcomp/core/config.hpp"
#include "tcomp/kernel/cuda/runtime.cuh"

namespace tcomp::cuda {

namespace detail {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__global__ void quantize_per_token_kernel(const T* __restrict__ x, int m, int k, std::int8_t* __restrict__ codes,
                                          float* __restrict__ scales, int* __restrict__ bad_row) {
    const int lane = static_cast<int>(threadIdx.x % 32);
    const int row = static_cast<int>(blockIdx.x) * static_cast<int>(blockDim.x / 32) + static_cast<int>(threadIdx.x / 32);
    if (row >= m) return;
    const T* in = x + static_cast<std::size_t>(row) * static_cast<std::size_t>(k);
    float amax = 0.0f;
    bool finite = true;
    for (int i = lane; i < k; i += 32) {
        const float v = to_float(in[i]);
        finite &= isfinite(v);
        amax = fmaxf(amax, fabsf(v));
    }
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    finite = __all_sync(0xffffffffu, finite);
    float scale = __fdiv_rn(amax, 127.0f);
    scale = scale > 0.0f ? fmaxf(scale, FLT_MIN) : 1.0f;
    if (!finite) {
        scale = __int_as_float(0x7fc00000);  // NaN: this row's outputs are NaN
        if (lane == 0) atomicMin(bad_row, row);
    }
    if (lane == 0) scales[row] = scale;
    std::int8_t* out = codes + static_cast<std::size_t>(row) * static_cast<std::size_t>(k);
    for (int i = lane; i < k; i += 32) {
        int q = __float2int_rn(__fdiv_rn(to_float(in[i]), scale));  // NaN -> 0 here; the scale marks the row
        q = q < -128 ? -128 : (q > 127 ? 127 : q);
        out[i] = static_cast<std::int8_t>(q);
    }
}

template <int = 0>
__global__ void reset_bad_row_kernel(int* bad_row) { *bad_row = INT_MAX; }

}  // namespace detail

/// Quantizes X (device, row-major M x K) per token into `codes` (M x K int8) and `scales` (M floats).
/// `bad_row` (one device int) receives the first row holding NaN/Inf, or INT_MAX. Asynchronous on `stream`.
template <class T>
void quantize_per_token(const T* x, index_t m, index_t k, std::int8_t* codes, float* scales, int* bad_row,
                        cudaStream_t stream = nullptr) {
    if (m < 0 || k <= 0 || m > INT_MAX || k > INT_MAX)
        tcomp::detail::throw_error<shape_error>("cuda::quantize_per_token: X is ", m, "x", k);
    detail::reset_bad_row_kernel<><<<1, 1, 0, stream>>>(bad_row);
    TCOMP_CUDA_CHECK_LAUNCH("cuda::quantize_per_token (reset)");
    if (m == 0) return;
    constexpr int warps_per_block = 8;
    const auto blocks = static_cast<unsigned>((m + warps_per_block - 1) / warps_per_block);
    detail::quantize_per_token_kernel<T><<<blocks, 32 * warps_per_block, 0, stream>>>(
        x, static_cast<int>(m), static_cast<int>(k), codes, scales, bad_row);
    TCOMP_CUDA_CHECK_LAUNCH("cuda::quantize_per_token");
}

}  // namespace tcomp::cuda
