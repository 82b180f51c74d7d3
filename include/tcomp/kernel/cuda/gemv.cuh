// Weight-only GEMV for M <= 4 rows of fp16 / bf16 activations and 4- or 8-bit weights (W4A16 / W8A16):
// Y[M x N] = X[M x K] * W[N x K]^T. Memory-bound: the weights are read once, 16 bytes per lane per load,
// straight from global memory (no shared-memory staging, no block barrier), several loads in flight per
// lane; the tensor-core kernel of gemm_dense.cuh would spend 15/16 of its work on padding rows here.
//
// One warp per output channel n. Lane l of a warp covers, per step, the 16 bytes at byte offset 16 l of
// a 512-byte slice of the row (32 int4 or 16 int8 weights, always inside one weight group since groups
// are multiples of 32). A weight becomes the exact float (code - zero) by the float magic 2^23 + code
// (one byte permute and one subtraction); products and sums are fp32; the group scale is applied to
// the lane's sum of each slice. The lanes' sums are combined by a butterfly at the end, so the result
// differs from the oracle's double sum only by fp32 rounding (the same bound as the float path).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "tcomp/kernel/cuda/gemm_dense.cuh"

namespace tcomp::cuda::detail {

inline constexpr int gemv_max_rows = 4;
inline constexpr int gemv_warps = 8;  // per block: one output channel each
inline constexpr int gemv_unroll = 4; // 16-byte weight loads in flight per lane

template <class Act>
__device__ __forceinline__ float2 pair_to_float2(std::uint32_t bits) {
    if constexpr (std::is_same_v<Act, __half>) return __half22float2(*reinterpret_cast<const __half2*>(&bits));
    else return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
}

/// The float 2^23 + b for byte `b` of `word` (byte index `i`): exact, so subtracting 2^23 + zero gives code - zero.
__device__ __forceinline__ float byte_magic(std::uint32_t word, int i) {
    // Selector: byte i of `word` into byte 0, then bytes 1..3 of 0x4B000000 (0x00, 0x00, 0x4B).
    return __uint_as_float(__byte_perm(word, 0x4B000000u, static_cast<unsigned>(i) | 0x7650u));
}

template <class Act, int WBits, class Out>
__global__ void __launch_bounds__(gemv_warps * 32) gemv_kernel(const dense_gemm_args p) {
    const int lane = static_cast<int>(threadIdx.x % 32);
    const int n = static_cast<int>(blockIdx.x) * gemv_warps + static_cast<int>(threadIdx.x / 32);
    if (n >= p.n) return;
    constexpr int per_load = 128 / WBits;       // weights per 16-byte load
    constexpr int per_step = 32 * per_load;     // weights per warp step
    const std::size_t row_bytes = static_cast<std::size_t>(p.k) * WBits / 8;
    const auto* wrow = p.w + static_cast<std::size_t>(n) * row_bytes;
    const auto* x = static_cast<const Act*>(p.x);
    const int steps = (p.k + per_step - 1) / per_step;
    // Signed codes are two's complement: flipping the top bit makes them unsigned codes biased by 8 / 128.
    const std::uint32_t flip = !p.w_signed ? 0u : (WBits == 4 ? 0x88888888u : 0x80808080u);
    const float sign_bias = !p.w_signed ? 0.0f : (WBits == 4 ? 8.0f : 128.0f);

    float y[gemv_max_rows] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int s0 = 0; s0 < steps; s0 += gemv_unroll) {
        uint4 wv[gemv_unroll];
#pragma unroll
        for (int u = 0; u < gemv_unroll; ++u) {
            const int k0 = (s0 + u) * per_step + lane * per_load;
            wv[u] = k0 < p.k ? __ldg(reinterpret_cast<const uint4*>(wrow + static_cast<std::size_t>(k0) * WBits / 8))
                             : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < gemv_unroll; ++u) {
            const int k0 = (s0 + u) * per_step + lane * per_load;
            if (k0 >= p.k) break;
            const int g = group_of_k(p, k0);
            const float scale = __ldg(p.w_scales + static_cast<std::size_t>(g) * p.n + n);
            const float zero = (p.w_zeros != nullptr ? static_cast<float>(__ldg(p.w_zeros + static_cast<std::size_t>(g) * p.zero_stride + n)) : 0.0f) + sign_bias;
            const float magic = 8388608.0f + zero;
            // The lane's per_load weights as floats (code - zero), in k order.
            float w[per_load];
            const std::uint32_t words[4] = {wv[u].x ^ flip, wv[u].y ^ flip, wv[u].z ^ flip, wv[u].w ^ flip};
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                if constexpr (WBits == 8) {
#pragma unroll
                    for (int b = 0; b < 4; ++b) w[q * 4 + b] = byte_magic(words[q], b) - magic;
                } else {
                    const std::uint32_t lo = words[q] & 0x0F0F0F0Fu, hi = (words[q] >> 4) & 0x0F0F0F0Fu;
#pragma unroll
                    for (int b = 0; b < 4; ++b) {
                        w[q * 8 + 2 * b] = byte_magic(lo, b) - magic;      // element 2b of the word: low nibble
                        w[q * 8 + 2 * b + 1] = byte_magic(hi, b) - magic;  // element 2b + 1: high nibble
                    }
                }
            }
#pragma unroll
            for (int mm = 0; mm < gemv_max_rows; ++mm) {
                if (mm >= p.m) break;
                const auto* xv = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(mm) * p.k + k0);
                float sum = 0.0f;
#pragma unroll
                for (int v = 0; v < per_load / 8; ++v) {
                    const uint4 xx = __ldg(xv + v);
                    const std::uint32_t xw[4] = {xx.x, xx.y, xx.z, xx.w};
#pragma unroll
                    for (int h = 0; h < 4; ++h) {
                        const float2 f = pair_to_float2<Act>(xw[h]);
                        sum = fmaf(f.x, w[v * 8 + 2 * h], sum);
                        sum = fmaf(f.y, w[v * 8 + 2 * h + 1], sum);
                    }
                }
                y[mm] = fmaf(sum, scale, y[mm]);
            }
        }
    }
#pragma unroll
    for (int mm = 0; mm < gemv_max_rows; ++mm)
        for (int off = 16; off > 0; off /= 2) y[mm] += __shfl_xor_sync(0xffffffffu, y[mm], off);
    if (lane < p.m) {
        float v = y[0];
#pragma unroll
        for (int mm = 1; mm < gemv_max_rows; ++mm)
            if (lane == mm) v = y[mm];
        if (p.bias != nullptr) v = __fadd_rn(v, p.bias[n]);
        static_cast<Out*>(p.y)[static_cast<std::size_t>(lane) * p.n + n] = convert_output<Out>(v);
    }
}

}  // namespace tcomp::cuda::detail
