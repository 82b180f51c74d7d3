// Which tile configuration and split-K a CUDA matmul runs with, and the argument checks made before any
// launch. Host-only C++ (tested without a GPU); kernel/cuda/matmul.cuh maps the plan onto kernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "tcomp/core/error.hpp"
#include "tcomp/kernel/cuda/weight_image.hpp"

namespace tcomp::cuda {

/// Dense tiles (M x N): gemv (float paths, M <= 4: one warp per output channel, CUDA cores, no tile),
/// small 16 x 64 (M <= 16), medium 64 x 64, large 128 x 128.
/// 2:4 tiles (tokens x weight rows): small 32 x 128 (M <= 32), large 128 x 128.
enum class tile_shape { gemv, small, medium, large };

/// Rows up to which the float paths run the GEMV kernel (kernel/cuda/gemv.cuh).
inline constexpr index_t gemv_rows = 4;

struct launch_plan {
    tile_shape tile = tile_shape::large;
    int splits = 1;            ///< grid.z slices of K
    int chunks_per_split = 0;  ///< 64-element K chunks per slice
};

inline bool is_int8_activation_kernel(kernel_kind kind) {
    return kind == kernel_kind::w8a8 || kind == kernel_kind::w4a8 || kind == kernel_kind::w8a8_2of4;
}

/// The plan for an M x N x K problem with `groups` weight groups per row on a device with `multiprocessors`
/// SMs: the largest tile that still gives every SM a block; when the tile leaves SMs idle, K is split until
/// there are about two blocks per SM (float paths: fp32 partial sums; int paths with one group per row:
/// exact int32 partial sums; int paths with several groups keep the oracle's k order and never split).
inline launch_plan plan_launch(kernel_kind kind, index_t m, index_t n, index_t k, index_t groups, int multiprocessors) {
    launch_plan plan;
    const index_t chunks = (k + 63) / 64;
    const index_t sms = std::max(multiprocessors, 1);
    plan.chunks_per_split = static_cast<int>(chunks);
    if (kind == kernel_kind::w8a8_2of4) {
        plan.tile = m <= 32 ? tile_shape::small : tile_shape::large;
        return plan;
    }
    // Split K only where the result stays as exact as without: float paths (fp32 partials; the float path
    // is compared within a bound anyway) and int paths with one group per row (exact int32 partials).
    const bool splittable = !is_int8_activation_kernel(kind) || groups == 1;
    auto split = [&](index_t blocks, index_t min_chunks) {
        if (!splittable || blocks >= sms) return;
        const index_t want = (2 * sms + blocks - 1) / blocks;
        const index_t splits = std::clamp<index_t>(want, 1, std::max<index_t>(1, std::min<index_t>(16, chunks / min_chunks)));
        const index_t per = (chunks + splits - 1) / splits;
        plan.chunks_per_split = static_cast<int>(per);
        plan.splits = static_cast<int>((chunks + per - 1) / per);
    };
    if (m > 16) {
        const index_t large_blocks = ((m + 127) / 128) * ((n + 127) / 128);
        plan.tile = large_blocks >= sms ? tile_shape::large : tile_shape::medium;
        // A medium tile that still leaves SMs idle splits K too, keeping >= 8 chunks (512 k) per slice.
        if (plan.tile == tile_shape::medium) split(((m + 63) / 64) * ((n + 63) / 64), 8);
        return plan;
    }
    if (!is_int8_activation_kernel(kind) && m <= gemv_rows) {
        plan.tile = tile_shape::gemv;
        return plan;
    }
    // N / 64 blocks alone cannot fill the GPU (4096 / 64 = 64 blocks for 132 SMs): split K, keeping at
    // least 4 chunks (256 k) per slice.
    plan.tile = tile_shape::small;
    split((n + 63) / 64, 4);
    return plan;
}

/// Throws before any launch when the activation / output arguments cannot be run.
inline void check_matmul_arguments(kernel_kind kind, index_t m, std::uintptr_t x, std::uintptr_t y) {
    if (m < 0) tcomp::detail::throw_error<shape_error>("cuda::matmul: M = ", m, " is negative");
    // grid.y counts M tiles (at most 65535); the largest M tile is 128 rows.
    constexpr index_t max_m = index_t{65535} * 128;
    if (m > max_m)
        tcomp::detail::throw_error<shape_error>("cuda::matmul: M = ", m, " exceeds ", max_m,
                                                " rows (65535 tiles of 128: split the batch into several calls)");
    if (m == 0) return;
    if (x == 0 || y == 0)
        tcomp::detail::throw_error<shape_error>("cuda::matmul (", kernel_name(kind), "): X or Y is a null pointer");
    if (x % 16 != 0)
        tcomp::detail::throw_error<shape_error>("cuda::matmul (", kernel_name(kind),
                                                "): X must be 16-byte aligned (rows are copied 16 bytes at a time)");
}

}  // namespace tcomp::cuda
