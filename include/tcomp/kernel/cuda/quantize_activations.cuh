// Fused dynamic per-token activation quantizer: fp16 / bf16 / fp32 X[M x K] -> int8 codes + one float
// scale per row, the rule of quantizer<int_format<8>, symmetric, per_token, dynamic> bit for bit:
//     S = max_k |x_k| / 127 (IEEE float division), S = 1 for an all-zero row, at least FLT_MIN;
//     q = clamp(round_half_even(x / S), -128, 127).
// One block per row: the row is read twice (max, then codes), the second time from L1/L2.
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

inline constexpr int quantize_threads = 128;

/// Calls f(i, value) for the elements of one row this thread owns: 16-byte vectors when `vectors` (row
/// start aligned, K * sizeof(T) a multiple of 16), else one element at a time.
template <class T, class F>
__device__ __forceinline__ void for_row_elements(const T* in, int k, bool vectors, F&& f) {
    constexpr int per_vector = 16 / static_cast<int>(sizeof(T));
    if (vectors) {
        const auto* v = reinterpret_cast<const uint4*>(in);
        for (int j = static_cast<int>(threadIdx.x); j < k / per_vector; j += quantize_threads) {
            const uint4 raw = v[j];
            const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
            for (int q = 0; q < per_vector; ++q) f(j * per_vector + q, to_float(e[q]));
        }
    } else {
        for (int i = static_cast<int>(threadIdx.x); i < k; i += quantize_threads) f(i, to_float(in[i]));
    }
}

/// One block per row: the row is read once for its max (16-byte loads, all in flight together), then again
/// (from L1/L2) for the codes.
template <class T>
__global__ void __launch_bounds__(quantize_threads) quantize_per_token_kernel(const T* __restrict__ x, int k, bool vectors,
                                                                             std::int8_t* __restrict__ codes,
                                                                             float* __restrict__ scales, int* __restrict__ bad_row) {
    __shared__ float warp_max[quantize_threads / 32];
    __shared__ int warp_finite[quantize_threads / 32];
    const int row = static_cast<int>(blockIdx.x);
    const T* in = x + static_cast<std::size_t>(row) * static_cast<std::size_t>(k);
    float amax = 0.0f;
    bool finite = true;
    for_row_elements(in, k, vectors, [&](int, float v) {
        finite &= isfinite(v);
        amax = fmaxf(amax, fabsf(v));
    });
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const int all_finite = __all_sync(0xffffffffu, finite);
    if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax, warp_finite[threadIdx.x / 32] = all_finite;
    __syncthreads();
    amax = warp_max[0];
    bool row_finite = warp_finite[0] != 0;
#pragma unroll
    for (int w = 1; w < quantize_threads / 32; ++w) amax = fmaxf(amax, warp_max[w]), row_finite &= warp_finite[w] != 0;
    float scale = __fdiv_rn(amax, 127.0f);
    scale = scale > 0.0f ? fmaxf(scale, FLT_MIN) : 1.0f;
    if (!row_finite) {
        scale = __int_as_float(0x7fc00000);  // NaN: this row's outputs are NaN
        if (threadIdx.x == 0) atomicMin(bad_row, row);
    }
    if (threadIdx.x == 0) scales[row] = scale;
    std::int8_t* out = codes + static_cast<std::size_t>(row) * static_cast<std::size_t>(k);
    for_row_elements(in, k, vectors, [&](int i, float v) {
        int q = __float2int_rn(__fdiv_rn(v, scale));  // NaN -> 0 here; the scale marks the row
        q = q < -128 ? -128 : (q > 127 ? 127 : q);
        out[i] = static_cast<std::int8_t>(q);
    });
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
    const bool vectors = reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && (k * static_cast<index_t>(sizeof(T))) % 16 == 0;
    detail::quantize_per_token_kernel<T><<<static_cast<unsigned>(m), detail::quantize_threads, 0, stream>>>(
        x, static_cast<int>(k), vectors, codes, scales, bad_row);
    TCOMP_CUDA_CHECK_LAUNCH("cuda::quantize_per_token");
}

}  // namespace tcomp::cuda
