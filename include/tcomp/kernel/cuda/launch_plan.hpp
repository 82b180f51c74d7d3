// Which tile configuration and split-K a CUDA matmul runs with, and the argument checks made before any
// launch. Host-only C++ (tested without a GPU); kernel/cuda/matmul.cuh maps the plan onto kernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "tcomp/core/error.hpp"
#include "tcomp/kernel/cuda/weight_image.hpp"

namespace tcomp::cuda {

/// Dense tiles: small 16 x 64 (M <= 16: GEMV-shaped), medium 64 x 128, large 128 x 128 (M x N).
/// 2:4 tiles: small 32 tokens x 128 weight rows (M <= 32), large 128 x 128.
enum class tile_shape { small, medium, large };

struct launch_plan {
    tile_shape tile = tile_shape::large;
    int splits = 1;            ///< grid.z slices of K (float path at small M only; the int paths keep k order)
    int chunks_per_split = 0;  ///< 64-element K chunks per slice
};

inline bool is_int8_activation_kernel(kernel_kind kind) {
    return kind == kernel_kind::w8a8 || kind == kernel_kind::w4a8 || kind == kernel_kind::w8a8_2of4;
}

/// The plan for an M x N x K problem on a device with `multiprocessors` SMs.
inline launch_plan plan_launch(kernel_kind kind, index_t m, index_t n, index_t k, int multiprocessors) {
    launch_plan plan;
    const index_t chunks = (k + 63) / 64;
    plan.chunks_per_split = static_cast<int>(chunks);
    if (kind == kernel_kind::w8a8_2of4) {
        plan.tile = m <= 32 ? tile_shape::small : tile_shape::large;
        return plan;
    }
    plan.tile = m <= 16 ? tile_shape::small : (m <= 64 ? tile_shape::medium : tile_shape::large);
    if (plan.tile == tile_shape::small && !is_int8_activation_kernel(kind)) {
        // GEMV-shaped: N / 64 blocks alone cannot fill the GPU (4096 / 64 = 64 blocks for 132 SMs), so K is
        // split until there are about two blocks per SM, keeping at least 4 chunks (256 k) per slice.
        const index_t blocks_n = (n + 63) / 64;
        const index_t want = (2 * static_cast<index_t>(std::max(multiprocessors, 1)) + blocks_n - 1) / blocks_n;
        const index_t splits = std::clamp<index_t>(want, 1, std::max<index_t>(1, std::min<index_t>(16, chunks / 4)));
        const index_t per = (chunks + splits - 1) / splits;
        plan.chunks_per_split = static_cast<int>(per);
        plan.splits = static_cast<int>((chunks + per - 1) / per);
    }
    return plan;
}

/// Throws before any launch when the activation / output arguments cannot be run.
inline void check_matmul_arguments(kernel_kind kind, index_t m, index_t n, index_t k, std::uintptr_t x,
                                   std::uintptr_t y) {
    if (m < 0) tcomp::detail::throw_error<shape_error>("cuda::matmul: M = ", m, " is negative");
    if (m > (index_t{1} << 30))
        tcomp::detail::throw_error<shape_error>("cuda::matmul: M = ", m, " exceeds the 2^30 rows the kernels index");
    if (static_cast<double>(m) * static_cast<double>(std::max(n, k)) > 4.0e18)
        tcomp::detail::throw_error<shape_error>("cuda::matmul: ", m, "x", std::max(n, k), " elements overflow the indexing");
    if (m == 0) return;
    if (x == 0 || y == 0)
        tcomp::detail::throw_error<shape_error>("cuda::matmul (", kernel_name(kind), "): X or Y is a null pointer");
    if (x % 16 != 0)
        tcomp::detail::throw_error<shape_error>("cuda::matmul (", kernel_name(kind),
                                                "): X must be 16-byte aligned (rows are copied 16 bytes at a time)");
}

}  // namespace tcomp::cuda
