// Dense tensor-core GEMM Y[M x N] = X[M x K] * W[N x K]^T with the scale epilogue fused, for four weight
// formats on one code path (the format only changes how a weight fragment is made from shared memory):
//   int path   (X int8, per-token scales):   W int8 (W8A8) or int4 unpacked to int8 in registers (W4A8);
//              mma.sync m16n8k32 s8, exact int32 accumulation per weight group, then, in k order,
//                  y = y + float(acc_g) * (Sx * Sw_g)     (no FMA: the oracle's order, bit for bit)
//              and y = y + bias once at the end, as kernel/reference/matmul.hpp defines.
//   float path (X fp16 / bf16):              W int8 (W8A16) or 4-bit (W4A16) turned into exact fp16/bf16
//              integers (code - zero) in registers; mma.sync m16n8k16, fp32 accumulation per group, then
//                  y = fma(acc_g, Sw_g, y)
//              so the scale is applied in fp32 (not rounded to 16 bits as in Marlin-style kernels).
//
// Structure: a BM x BN block tile, BK = 64 along K per stage, STAGES-deep cp.async pipeline
// (global -> shared, 16-byte copies, zero-fill past M / N / K), warps tiled WARPS_M x WARPS_N over the
// block tile and WARPS_K along K (float path only: the int path keeps one warp per output for the exact
// k order). Shared rows are padded by 16 bytes so the 32-bit fragment loads of a warp hit 32 distinct
// banks. Each stage also carries the scales / zero points of the groups it touches (no global load in
// the main loop). Split-K across blocks (grid.z, where launch_plan.hpp finds SMs idle): float paths write
// fp32 partial sums (finalize_split_k), per-channel int paths exact int32 sums (finalize_split_k_int,
// which then applies the oracle's epilogue); both add the slices in a fixed order (deterministic).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "tcomp/kernel/cuda/fragments.hpp"
#include "tcomp/kernel/cuda/mma.cuh"

namespace tcomp::cuda::detail {

/// Arguments of one dense GEMM launch (device pointers).
struct dense_gemm_args {
    const void* x = nullptr;               ///< M x K: int8 codes (int path) or fp16 / bf16
    const float* x_scales = nullptr;       ///< int path: M per-token scales
    const std::uint8_t* w = nullptr;       ///< N x row_bytes weight codes (weight_image layout)
    const float* w_scales = nullptr;       ///< groups x N (group-major)
    const std::uint8_t* w_zeros = nullptr; ///< groups x zero_stride, or null (symmetric)
    const float* bias = nullptr;           ///< N, or null
    void* y = nullptr;                     ///< M x N output (row-major)
    float* partial = nullptr;              ///< float path split-K: splits x M x N fp32 partial sums (else null)
    int* partial_int = nullptr;            ///< int path split-K (per-channel weights): splits x M x N int32 sums
    int m = 0, n = 0, k = 0;
    int group_size = 0, groups = 0, zero_stride = 0;
    int group_shift = -1;                  ///< log2(group_size) when it is a power of two, else -1
    int chunks_per_split = 0;              ///< BK-chunks per grid.z slice
    bool w_signed = true;
};

template <int BM_, int BN_, int WarpsM, int WarpsN, int WarpsK, int Stages>
struct dense_tile {
    static constexpr int BM = BM_, BN = BN_, warps_m = WarpsM, warps_n = WarpsN, warps_k = WarpsK, stages = Stages;
    static constexpr int BK = 64;
    static constexpr int warps = WarpsM * WarpsN * WarpsK, threads = 32 * warps;
    static constexpr int WM = BM / WarpsM, WN = BN / WarpsN;
    static constexpr int MT = WM / 16, NT = WN / 8;
    static_assert(WM % 16 == 0 && WN % 8 == 0, "dense_tile: a warp tile is a whole number of 16x8 mma tiles");
    static_assert(Stages >= 2, "dense_tile: the pipeline needs at least two stages");
};

/// Shared-memory layout of one configuration (bytes). A stage holds the X rows, the W rows, and the scales
/// and zero points of the (at most two: groups are >= 32 wide) weight groups its 64 k touch, so no global
/// load waits inside the main loop.
template <class Tile, class Act, int WBits>
struct dense_smem {
    static constexpr int a_row = Tile::BK * static_cast<int>(sizeof(Act)) + 16;
    static constexpr int b_row = Tile::BK * WBits / 8 + 16;
    static constexpr int a_stage = Tile::BM * a_row;
    static constexpr int scales_at = a_stage + Tile::BN * b_row;  // 2 x BN floats
    static constexpr int zeros_at = scales_at + 2 * Tile::BN * 4;  // 2 x BN bytes
    static constexpr int stage = zeros_at + (2 * Tile::BN + 15) / 16 * 16;
    static constexpr int pipeline = Tile::stages * stage;
    static constexpr int reduction = (Tile::warps_k - 1) * Tile::BM * Tile::BN * 4;
    static constexpr int bytes = pipeline > reduction ? pipeline : reduction;
    static_assert(a_row % 16 == 0 && b_row % 16 == 0, "dense_smem: cp.async needs 16-byte aligned rows");
};

/// k / group_size without a division in the common cases (one group per row; power-of-two groups).
__device__ __forceinline__ int group_of_k(const dense_gemm_args& p, int k) {
    if (p.groups == 1) return 0;  // callers only ask for k < K, or use the answer with a k >= K check
    return p.group_shift >= 0 ? k >> p.group_shift : k / p.group_size;
}

/// The copies one thread makes for every stage. Which rows and 16-byte pieces a thread copies never
/// changes, so their addresses are computed once; per stage only k advances (an add and a tail check).
template <class Tile, class Act, int WBits>
struct dense_stage_loader {
    using L = dense_smem<Tile, Act, WBits>;
    static constexpr int a_elems = 16 / static_cast<int>(sizeof(Act));  // X elements per copy
    static constexpr int a_pieces = Tile::BK / a_elems;
    static constexpr int a_total = Tile::BM * a_pieces;
    static constexpr int a_iters = (a_total + Tile::threads - 1) / Tile::threads;
    static constexpr int b_elems = 128 / WBits;  // weight codes per copy
    static constexpr int b_pieces = Tile::BK / b_elems;
    static constexpr int b_total = Tile::BN * b_pieces;
    static constexpr int b_iters = (b_total + Tile::threads - 1) / Tile::threads;
    static constexpr int s_total = 2 * Tile::BN;      // scales of two groups
    static constexpr int s_iters = (s_total + Tile::threads - 1) / Tile::threads;
    static constexpr int z_total = 2 * Tile::BN / 4;  // zero points of two groups, 4 bytes per copy
    static constexpr int z_iters = (z_total + Tile::threads - 1) / Tile::threads;

    const std::uint8_t* a_src[a_iters];  // at k = 0
    int a_dst[a_iters], a_k[a_iters];
    bool a_ok[a_iters];
    const std::uint8_t* b_src[b_iters];
    int b_dst[b_iters], b_k[b_iters];
    bool b_ok[b_iters];

    __device__ __forceinline__ dense_stage_loader(const dense_gemm_args& p, int m0, int n0) {
        const auto* x = static_cast<const std::uint8_t*>(p.x);
#pragma unroll
        for (int it = 0; it < a_iters; ++it) {
            const int i = static_cast<int>(threadIdx.x) + it * Tile::threads;
            const int r = i / a_pieces, c = i % a_pieces;
            a_ok[it] = i < a_total && m0 + r < p.m;
            a_k[it] = c * a_elems;
            a_dst[it] = r * L::a_row + c * 16;
            a_src[it] = a_ok[it] ? x + (static_cast<std::size_t>(m0 + r) * static_cast<std::size_t>(p.k) + a_k[it]) * sizeof(Act) : x;
        }
        const std::size_t w_row = static_cast<std::size_t>(p.k) * WBits / 8;
#pragma unroll
        for (int it = 0; it < b_iters; ++it) {
            const int i = static_cast<int>(threadIdx.x) + it * Tile::threads;
            const int r = i / b_pieces, c = i % b_pieces;
            b_ok[it] = i < b_total && n0 + r < p.n;
            b_k[it] = c * b_elems;
            b_dst[it] = L::a_stage + r * L::b_row + c * 16;
            b_src[it] = b_ok[it] ? p.w + static_cast<std::size_t>(n0 + r) * w_row + static_cast<std::size_t>(b_k[it]) * WBits / 8 : p.w;
        }
    }

    __device__ __forceinline__ void load(std::uint8_t* stage, const dense_gemm_args& p, int n0, int k0) const {
#pragma unroll
        for (int it = 0; it < a_iters; ++it) {
            if (a_total % Tile::threads != 0 && static_cast<int>(threadIdx.x) + it * Tile::threads >= a_total) break;
            const bool ok = a_ok[it] && k0 + a_k[it] < p.k;
            copy_16_async(stage + a_dst[it], a_src[it] + (ok ? static_cast<std::size_t>(k0) * sizeof(Act) : 0), ok);
        }
#pragma unroll
        for (int it = 0; it < b_iters; ++it) {
            if (b_total % Tile::threads != 0 && static_cast<int>(threadIdx.x) + it * Tile::threads >= b_total) break;
            const bool ok = b_ok[it] && k0 + b_k[it] < p.k;
            copy_16_async(stage + b_dst[it], b_src[it] + (ok ? static_cast<std::size_t>(k0) * WBits / 8 : 0), ok);
        }
        // Scales (and zero points) of the groups this chunk touches: g0 and, when it ends inside, g0 + 1.
        const int g0 = group_of_k(p, k0);
        const int g_last = group_of_k(p, min(k0 + Tile::BK, p.k) - 1);
        auto* ss = reinterpret_cast<float*>(stage + L::scales_at);
#pragma unroll
        for (int it = 0; it < s_iters; ++it) {
            const int i = static_cast<int>(threadIdx.x) + it * Tile::threads;
            if (s_total % Tile::threads != 0 && i >= s_total) break;
            const int g = g0 + i / Tile::BN, col = n0 + i % Tile::BN;
            const bool ok = g <= g_last && col < p.n;
            copy_4_async(ss + i, ok ? p.w_scales + static_cast<std::size_t>(g) * p.n + col : p.w_scales, ok);
        }
        if (p.w_zeros != nullptr) {
            std::uint8_t* zs = stage + L::zeros_at;
#pragma unroll
            for (int it = 0; it < z_iters; ++it) {
                const int i = static_cast<int>(threadIdx.x) + it * Tile::threads;
                if (z_total % Tile::threads != 0 && i >= z_total) break;
                const int g = g0 + i / (Tile::BN / 4), col = n0 + 4 * (i % (Tile::BN / 4));
                const bool ok = g <= g_last && col < p.zero_stride;
                copy_4_async(zs + 4 * i, ok ? p.w_zeros + static_cast<std::size_t>(g) * p.zero_stride + col : p.w_zeros, ok);
            }
        }
    }
};

template <class Out>
__device__ __forceinline__ Out convert_output(float v) {
    if constexpr (std::is_same_v<Out, float>) return v;
    else if constexpr (std::is_same_v<Out, __half>) return __float2half_rn(v);
    else return __float2bfloat16_rn(v);
}

__device__ __forceinline__ std::uint32_t load_u32(const std::uint8_t* p) { return *reinterpret_cast<const std::uint32_t*>(p); }
__device__ __forceinline__ std::uint32_t load_u16(const std::uint8_t* p) { return *reinterpret_cast<const std::uint16_t*>(p); }

/// The kernel. Act: std::int8_t (int path), __half or __nv_bfloat16 (float path). WBits: 4 or 8.
template <class Tile, class Act, int WBits, class Out>
__global__ void __launch_bounds__(Tile::threads) dense_gemm_kernel(const dense_gemm_args p) {
    constexpr bool int_path = std::is_same_v<Act, std::int8_t>;
    static_assert(!int_path || Tile::warps_k == 1, "dense_gemm: the int path keeps the k order of the oracle (warps_k = 1)");
    using L = dense_smem<Tile, Act, WBits>;
    using acc_t = std::conditional_t<int_path, int, float>;
    constexpr int MT = Tile::MT, NT = Tile::NT;
    constexpr int step_k = int_path ? 32 : 16;  // k of one mma
    constexpr int steps = Tile::BK / step_k;
    static_assert(steps % Tile::warps_k == 0, "dense_gemm: warps_k must divide the mma steps of a stage");

    extern __shared__ __align__(16) std::uint8_t smem[];
    const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
    const int wk = warp / (Tile::warps_m * Tile::warps_n);
    const int wmn = warp % (Tile::warps_m * Tile::warps_n);
    const int wm = wmn / Tile::warps_n, wn = wmn % Tile::warps_n;
    const int m0 = static_cast<int>(blockIdx.y) * Tile::BM, n0 = static_cast<int>(blockIdx.x) * Tile::BN;
    const int chunks_total = (p.k + Tile::BK - 1) / Tile::BK;
    const int chunk_begin = static_cast<int>(blockIdx.z) * p.chunks_per_split;
    const int chunk_end = min(chunks_total, chunk_begin + p.chunks_per_split);
    const int n_chunks = chunk_end - chunk_begin;
    const int k_end = min(p.k, chunk_end * Tile::BK);

    acc_t acc[MT][NT][4];
    float out[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0, out[i][j][r] = 0.0f;

    // Int path: this thread's per-token scales (rows g and g + 8 of each m tile).
    float x_scale[MT][2];
    if constexpr (int_path) {
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int row = m0 + wm * Tile::WM + i * 16 + fragment::group_of(lane) + 8 * h;
                x_scale[i][h] = row < p.m ? p.x_scales[row] : 0.0f;
            }
    }
    // Float path: per-column subtrahends for the 16-bit weight conversion, refreshed per group.
    std::uint32_t bias_pair[NT];
    int zero[NT];
    int cached_group = -1;

    const dense_stage_loader<Tile, Act, WBits> loader(p, m0, n0);
    for (int s = 0; s < Tile::stages - 1; ++s) {
        if (s < n_chunks) loader.load(smem + s * L::stage, p, n0, (chunk_begin + s) * Tile::BK);
        copy_async_commit();
    }

    for (int c = 0; c < n_chunks; ++c) {
        copy_async_wait<Tile::stages - 2>();
        __syncthreads();
        {
            const int next = c + Tile::stages - 1;
            if (next < n_chunks) loader.load(smem + (next % Tile::stages) * L::stage, p, n0, (chunk_begin + next) * Tile::BK);
            copy_async_commit();
        }
        const std::uint8_t* as = smem + (c % Tile::stages) * L::stage;
        const std::uint8_t* bs = as + L::a_stage;
        const auto* ss = reinterpret_cast<const float*>(as + L::scales_at);
        const std::uint8_t* zs = as + L::zeros_at;
        const int kc0 = (chunk_begin + c) * Tile::BK;
        const int g_first = group_of_k(p, kc0);  // the stage's scales start at this group

#pragma unroll
        for (int s = 0; s < steps; ++s) {
            if (s % Tile::warps_k != wk) continue;
            const int kg = kc0 + s * step_k;
            if (kg >= k_end) break;
            const int group = group_of_k(p, kg);

            std::uint32_t a[MT][4];
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const int row = wm * Tile::WM + i * 16 + (int_path ? fragment::s8_a_row(lane, r) : fragment::h_a_row(lane, r));
                    const int col = s * step_k + (int_path ? fragment::s8_a_col(lane, r) : fragment::h_a_col(lane, r));
                    a[i][r] = load_u32(as + row * L::a_row + col * static_cast<int>(sizeof(Act)));
                }

            if constexpr (!int_path) {
                if (group != cached_group) {
                    cached_group = group;
#pragma unroll
                    for (int j = 0; j < NT; ++j) {
                        const int col = wn * Tile::WN + j * 8 + fragment::h_b_col(lane);
                        zero[j] = p.w_zeros != nullptr ? zs[(group - g_first) * Tile::BN + col] : 0;
                        if constexpr (WBits == 4) bias_pair[j] = nibble_bias_pair<Act>(p.w_signed ? 8 : zero[j]);
                    }
                }
            }

#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const std::uint8_t* brow = bs + (wn * Tile::WN + j * 8 + fragment::group_of(lane)) * L::b_row;
                std::uint32_t b[2];
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    if constexpr (int_path) {
                        const int k = s * step_k + fragment::s8_b_k(lane, r);
                        b[r] = WBits == 8 ? load_u32(brow + k) : int4x4_to_int8x4(load_u16(brow + k / 2));
                    } else {
                        const int k = s * step_k + fragment::h_b_k(lane, r);
                        if constexpr (WBits == 4) {
                            const std::uint32_t byte = brow[k / 2];
                            b[r] = nibbles_to_pair<Act>(p.w_signed ? byte ^ 0x88u : byte, bias_pair[j]);
                        } else {
                            b[r] = bytes_to_pair<Act>(load_u16(brow + k), p.w_signed, zero[j]);
                        }
                    }
                }
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    if constexpr (int_path) mma_s8(acc[i][j], a[i], b);
                    else mma_16bit<Act>(acc[i][j], a[i], b);
                }
            }

            // End of this warp's share of a group (or of its k range): apply the group's scales.
            // (Int path split-K: per-channel weights only; the finalize kernel applies the one scale.)
            const int next_kg = kg + step_k * Tile::warps_k;
            if ((next_kg >= k_end || group_of_k(p, next_kg) != group) && p.partial_int == nullptr) {
#pragma unroll
                for (int j = 0; j < NT; ++j)
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const float ws = ss[(group - g_first) * Tile::BN + wn * Tile::WN + j * 8 + fragment::c_col(lane, r)];
#pragma unroll
                        for (int i = 0; i < MT; ++i) {
                            if constexpr (int_path) {
                                const float scale = __fmul_rn(x_scale[i][r >> 1], ws);
                                out[i][j][r] = __fadd_rn(out[i][j][r], __fmul_rn(__int2float_rn(acc[i][j][r]), scale));
                            } else {
                                out[i][j][r] = __fmaf_rn(acc[i][j][r], ws, out[i][j][r]);
                            }
                            acc[i][j][r] = 0;
                        }
                    }
            }
        }
    }
    copy_async_wait<0>();
    __syncthreads();

    // Warps along K: add the partial tiles in a fixed order (warp slice 0 first).
    if constexpr (Tile::warps_k > 1) {
        float* red = reinterpret_cast<float*>(smem);
        if (wk > 0) {
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j)
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int row = wm * Tile::WM + i * 16 + fragment::c_row(lane, r);
                        const int col = wn * Tile::WN + j * 8 + fragment::c_col(lane, r);
                        red[((wk - 1) * Tile::BM + row) * Tile::BN + col] = out[i][j][r];
                    }
        }
        __syncthreads();
        if (wk > 0) return;
        for (int w = 1; w < Tile::warps_k; ++w)
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j)
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int row = wm * Tile::WM + i * 16 + fragment::c_row(lane, r);
                        const int col = wn * Tile::WN + j * 8 + fragment::c_col(lane, r);
                        out[i][j][r] += red[((w - 1) * Tile::BM + row) * Tile::BN + col];
                    }
    }

#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int row = m0 + wm * Tile::WM + i * 16 + fragment::c_row(lane, r);
                const int col = n0 + wn * Tile::WN + j * 8 + fragment::c_col(lane, r);
                if (row >= p.m || col >= p.n) continue;
                const std::size_t at = static_cast<std::size_t>(row) * static_cast<std::size_t>(p.n) + static_cast<std::size_t>(col);
                if constexpr (int_path) {
                    if (p.partial_int != nullptr) {
                        p.partial_int[static_cast<std::size_t>(blockIdx.z) * static_cast<std::size_t>(p.m) * p.n + at] =
                            static_cast<int>(acc[i][j][r]);
                        continue;
                    }
                }
                if (p.partial != nullptr) {
                    p.partial[static_cast<std::size_t>(blockIdx.z) * static_cast<std::size_t>(p.m) * p.n + at] = out[i][j][r];
                } else {
                    float v = out[i][j][r];
                    if (p.bias != nullptr) v = __fadd_rn(v, p.bias[col]);
                    static_cast<Out*>(p.y)[at] = convert_output<Out>(v);
                }
            }
}

/// Split-K epilogue: y = (partial_0 + partial_1 + ...) + bias, in that order.
template <class Out>
__global__ void finalize_split_k(const float* __restrict__ partial, int splits, int m, int n, const float* __restrict__ bias,
                                 Out* __restrict__ y) {
    const std::size_t total = static_cast<std::size_t>(m) * static_cast<std::size_t>(n);
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        float v = partial[i];
        for (int s = 1; s < splits; ++s) v += partial[static_cast<std::size_t>(s) * total + i];
        if (bias != nullptr) v = __fadd_rn(v, bias[i % static_cast<std::size_t>(n)]);
        y[i] = convert_output<Out>(v);
    }
}

/// Int path split-K epilogue (per-channel weights): the exact int32 sum of the slices, then the oracle's
/// y = 0 + float(acc) * (Sx * Sw), + bias.
template <class Out>
__global__ void finalize_split_k_int(const int* __restrict__ partial, int splits, int m, int n,
                                     const float* __restrict__ x_scales, const float* __restrict__ w_scales,
                                     const float* __restrict__ bias, Out* __restrict__ y) {
    const std::size_t total = static_cast<std::size_t>(m) * static_cast<std::size_t>(n);
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        int acc = partial[i];
        for (int s = 1; s < splits; ++s) acc += partial[static_cast<std::size_t>(s) * total + i];
        const auto row = static_cast<int>(i / static_cast<std::size_t>(n)), col = static_cast<int>(i % static_cast<std::size_t>(n));
        float v = __fadd_rn(0.0f, __fmul_rn(__int2float_rn(acc), __fmul_rn(x_scales[row], w_scales[col])));
        if (bias != nullptr) v = __fadd_rn(v, bias[col]);
        y[i] = convert_output<Out>(v);
    }
}

}  // namespace tcomp::cuda::detail
