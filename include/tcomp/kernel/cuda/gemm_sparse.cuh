// 2:4 sparse W8A8 on sparse int8 tensor cores: Y[M x N] = X[M x K] * W[N x K]^T with W 2:4 sparse.
// mma.sp makes its A operand the sparse one, so the kernel computes Y^T = W * X^T: weight rows are the
// mma's M (16 per tile), tokens its N (8 per tile), and the output tile is written transposed.
// Per stage (BK = 128 logical k): W tile BN_W x 64 compressed bytes, X tile BM_X x 128 bytes, and the
// weight tiles' metadata words (kernel/cuda/fragments.hpp, laid out by weight_image: one 32-bit word per
// lane, per 16-row tile and 64-k chunk), all by cp.async. Epilogue as the dense int path:
//     y = y + float(acc_g) * (Sx * Sw_g) per weight group in k order, then + bias: bit-exact to the oracle.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tcomp/kernel/cuda/fragments.hpp"
#include "tcomp/kernel/cuda/gemm_dense.cuh"
#include "tcomp/kernel/cuda/mma.cuh"

namespace tcomp::cuda::detail {

struct sparse_gemm_args {
    const std::int8_t* x = nullptr;        ///< M x K int8 codes
    const float* x_scales = nullptr;       ///< M per-token scales
    const std::uint8_t* w = nullptr;       ///< N x K/2 kept int8 values
    const std::uint32_t* meta = nullptr;   ///< ceil(N/16) x K/64 x 32 words
    const float* w_scales = nullptr;       ///< groups x N (group-major)
    const float* bias = nullptr;           ///< N or null
    void* y = nullptr;                     ///< M x N
    int m = 0, n = 0, k = 0;
    int group_size = 0, groups = 0;
};

template <int BNW, int BMX, int WarpsN, int WarpsM, int Stages>
struct sparse_tile {
    static constexpr int BN = BNW, BM = BMX, warps_n = WarpsN, warps_m = WarpsM, stages = Stages;
    static constexpr int BK = 128;                  // logical k per stage (two mma.sp k64 steps)
    static constexpr int warps = WarpsN * WarpsM, threads = 32 * warps;
    static constexpr int WN = BN / WarpsN, WM = BM / WarpsM;
    static constexpr int NT = WN / 16, MT = WM / 8;  // weight tiles of 16 rows, token tiles of 8
    static_assert(WN % 16 == 0 && WM % 8 == 0, "sparse_tile: whole mma.sp tiles per warp");
    static constexpr int w_row = BK / 2 + 16, x_row = BK + 16;       // padded shared rows (bytes)
    static constexpr int meta_words = (BN / 16) * (BK / 64) * 32;   // per stage
    static constexpr int w_stage = BN * w_row, x_stage = BM * x_row;
    static constexpr int stage = w_stage + x_stage + meta_words * 4;
    static constexpr int bytes = Stages * stage;
};

template <class Tile>
__device__ __forceinline__ void sparse_load_stage(std::uint8_t* stage, const sparse_gemm_args& p, int m0, int n0, int k0) {
    // W: BN rows x BK/2 bytes.
    constexpr int w_chunks = Tile::BK / 2 / 16;
    const std::size_t w_row_bytes = static_cast<std::size_t>(p.k) / 2;
    for (int i = static_cast<int>(threadIdx.x); i < Tile::BN * w_chunks; i += Tile::threads) {
        const int r = i / w_chunks, c = i % w_chunks;
        const int row = n0 + r, kk = k0 / 2 + c * 16;  // compressed byte offset
        const bool ok = row < p.n && kk < p.k / 2;
        const std::uint8_t* src = ok ? p.w + static_cast<std::size_t>(row) * w_row_bytes + kk : p.w;
        copy_16_async(stage + r * Tile::w_row + c * 16, src, ok);
    }
    // X: BM rows x BK bytes.
    constexpr int x_chunks = Tile::BK / 16;
    const auto* x = reinterpret_cast<const std::uint8_t*>(p.x);
    std::uint8_t* xs = stage + Tile::w_stage;
    for (int i = static_cast<int>(threadIdx.x); i < Tile::BM * x_chunks; i += Tile::threads) {
        const int r = i / x_chunks, c = i % x_chunks;
        const int row = m0 + r, kk = k0 + c * 16;
        const bool ok = row < p.m && kk < p.k;
        const std::uint8_t* src = ok ? x + static_cast<std::size_t>(row) * static_cast<std::size_t>(p.k) + kk : x;
        copy_16_async(xs + r * Tile::x_row + c * 16, src, ok);
    }
    // Metadata: for each of the BN/16 tiles, BK/64 consecutive chunks of 32 words (contiguous per tile).
    constexpr int sub = Tile::BK / 64;
    constexpr int meta_chunks_per_tile = sub * 32 * 4 / 16;
    const int chunks_k = p.k / 64, tiles_n = (p.n + 15) / 16;
    std::uint8_t* ms = xs + Tile::x_stage;
    for (int i = static_cast<int>(threadIdx.x); i < (Tile::BN / 16) * meta_chunks_per_tile; i += Tile::threads) {
        const int t = i / meta_chunks_per_tile, c = i % meta_chunks_per_tile;
        const int tile = n0 / 16 + t;
        const int word = c * 4;  // first of the 4 words this copy moves, within the tile's sub*32 words
        const int kc = k0 / 64 + word / 32;
        const bool ok = tile < tiles_n && kc < chunks_k;
        const std::uint32_t* src =
            ok ? p.meta + (static_cast<std::size_t>(tile) * chunks_k + kc) * 32 + word % 32 : p.meta;
        copy_16_async(ms + (t * sub * 32 + word) * 4, src, ok);
    }
}

template <class Tile, class Out>
__global__ void __launch_bounds__(Tile::threads) sparse_gemm_kernel(const sparse_gemm_args p) {
    constexpr int NT = Tile::NT, MT = Tile::MT;
    extern __shared__ __align__(16) std::uint8_t smem[];
    const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
    const int wn = warp / Tile::warps_m, wm = warp % Tile::warps_m;
    const int n0 = static_cast<int>(blockIdx.x) * Tile::BN, m0 = static_cast<int>(blockIdx.y) * Tile::BM;
    const int n_chunks = (p.k + Tile::BK - 1) / Tile::BK;

    int acc[NT][MT][4];
    float out[NT][MT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int j = 0; j < MT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0, out[i][j][r] = 0.0f;

    // Scales this thread needs: tokens are the accumulator columns, weight rows its rows.
    float x_scale[MT][2];
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int tok = m0 + wm * Tile::WM + j * 8 + fragment::c_col(lane, h);
            x_scale[j][h] = tok < p.m ? p.x_scales[tok] : 0.0f;
        }

    for (int s = 0; s < Tile::stages - 1; ++s) {
        if (s < n_chunks) sparse_load_stage<Tile>(smem + s * Tile::stage, p, m0, n0, s * Tile::BK);
        copy_async_commit();
    }
    for (int c = 0; c < n_chunks; ++c) {
        copy_async_wait<Tile::stages - 2>();
        __syncthreads();
        {
            const int next = c + Tile::stages - 1;
            if (next < n_chunks) sparse_load_stage<Tile>(smem + (next % Tile::stages) * Tile::stage, p, m0, n0, next * Tile::BK);
            copy_async_commit();
        }
        const std::uint8_t* ws = smem + (c % Tile::stages) * Tile::stage;
        const std::uint8_t* xs = ws + Tile::w_stage;
        const auto* ms = reinterpret_cast<const std::uint32_t*>(xs + Tile::x_stage);

#pragma unroll
        for (int s = 0; s < Tile::BK / 64; ++s) {
            const int kg = c * Tile::BK + s * 64;
            if (kg >= p.k) break;
            const int group = kg / p.group_size;
            std::uint32_t b[MT][4];
#pragma unroll
            for (int j = 0; j < MT; ++j) {
                const std::uint8_t* xrow = xs + (wm * Tile::WM + j * 8 + fragment::s8_b_col(lane)) * Tile::x_row + s * 64;
#pragma unroll
                for (int r = 0; r < 4; ++r) b[j][r] = load_u32(xrow + fragment::s8_b_k(lane, r));
            }
#pragma unroll
            for (int i = 0; i < NT; ++i) {
                const int tile_row = wn * Tile::WN + i * 16;
                std::uint32_t a[4];
#pragma unroll
                for (int r = 0; r < 4; ++r)
                    a[r] = load_u32(ws + (tile_row + fragment::s8_a_row(lane, r)) * Tile::w_row + s * 32 +
                                    fragment::s8_a_col(lane, r));
                const std::uint32_t meta = ms[((tile_row / 16) * (Tile::BK / 64) + s) * 32 + lane];
#pragma unroll
                for (int j = 0; j < MT; ++j) mma_sp_s8(acc[i][j], a, b[j], meta);
            }
            const int next_kg = kg + 64;
            if (next_kg >= p.k || next_kg / p.group_size != group) {
#pragma unroll
                for (int i = 0; i < NT; ++i)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int wrow = n0 + wn * Tile::WN + i * 16 + fragment::group_of(lane) + 8 * h;
                        const float wscale = wrow < p.n ? p.w_scales[static_cast<std::size_t>(group) * p.n + wrow] : 0.0f;
#pragma unroll
                        for (int j = 0; j < MT; ++j)
#pragma unroll
                            for (int e = 0; e < 2; ++e) {
                                const int r = 2 * h + e;
                                const float scale = __fmul_rn(x_scale[j][e], wscale);
                                out[i][j][r] = __fadd_rn(out[i][j][r], __fmul_rn(__int2float_rn(acc[i][j][r]), scale));
                                acc[i][j][r] = 0;
                            }
                    }
            }
        }
    }
    copy_async_wait<0>();

#pragma unroll
    for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int j = 0; j < MT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int wrow = n0 + wn * Tile::WN + i * 16 + fragment::c_row(lane, r);
                const int tok = m0 + wm * Tile::WM + j * 8 + fragment::c_col(lane, r);
                if (wrow >= p.n || tok >= p.m) continue;
                float v = out[i][j][r];
                if (p.bias != nullptr) v = __fadd_rn(v, p.bias[wrow]);
                static_cast<Out*>(p.y)[static_cast<std::size_t>(tok) * static_cast<std::size_t>(p.n) + wrow] = convert_output<Out>(v);
            }
}

}  // namespace tcomp::cuda::detail
