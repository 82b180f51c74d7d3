// Sparsity patterns (which weights may be nonzero). All are along rows of W[N x K], K the reduction axis.
//   dense                 nothing pruned
//   n_m<N, M>             in every run of M consecutive weights along K, exactly N are kept (2:4 for sparse
//                         tensor cores; 1:4, 4:8 ...); K must be a multiple of M
//   block_sparse<R, C>    R x C tiles are kept or dropped whole; N % R == 0 and K % C == 0
//   unstructured          any element; the kept fraction per row is a run-time density; stored as a bitmap
// Storage (see core/packed_storage.hpp): kept codes per row in column order, plus metadata.
#pragma once

#include <concepts>

#include "tcomp/core/packed_storage.hpp"

namespace tcomp {

struct dense {
    static constexpr sparsity_kind kind = sparsity_kind::dense;
    static constexpr int n = 0, m = 0, block_rows = 0, block_cols = 0;
};

template <int N, int M>
struct n_m {
    static_assert(M >= 1 && M <= 256, "n_m<N, M>: M must be in 1..256");
    static_assert(N >= 1, "n_m<N, M>: N must be at least 1 (N = 0 prunes everything)");
    static_assert(N <= M, "n_m<N, M>: N must not exceed M (keep N of every M weights)");
    static constexpr sparsity_kind kind = sparsity_kind::n_m;
    static constexpr int n = N, m = M, block_rows = 0, block_cols = 0;
};

template <int R, int C>
struct block_sparse {
    static_assert(R >= 1 && C >= 1, "block_sparse<R, C>: block dimensions must be positive");
    static constexpr sparsity_kind kind = sparsity_kind::block;
    static constexpr int n = 0, m = 0, block_rows = R, block_cols = C;
};

/// Unstructured sparsity with a bitmap; the density is a run-time choice (compress_options::density).
struct unstructured {
    static constexpr sparsity_kind kind = sparsity_kind::bitmap;
    static constexpr int n = 0, m = 0, block_rows = 0, block_cols = 0;
};

template <class S>
concept sparsity_pattern = requires {
    { S::kind } -> std::convertible_to<sparsity_kind>;
};

}  // namespace tcomp
