// Granularity: which elements share one scale (and zero point). Shapes are [rows x K] with K the
// reduction axis: rows are output channels for weights W[N x K] and tokens for activations X[M x K].
//   per_tensor     one scale for the whole matrix
//   per_channel    one per weight row (output channel); weights only
//   per_token      one per activation row (token), computed at run time; activations only, dynamic only
//   per_group<G>   one per run of G consecutive elements along K in each row (K must be a multiple of G;
//                  tcomp never pads or switches format silently: a K that G does not divide is an error)
#pragma once

#include "tcomp/core/config.hpp"

namespace tcomp {

struct granularity_category {};

struct per_tensor {
    using option_category = granularity_category;
    static constexpr bool per_row = false;
    static constexpr index_t group_size = 0;  // 0: the whole row
};
struct per_channel {
    using option_category = granularity_category;
    static constexpr bool per_row = true;
    static constexpr index_t group_size = 0;
};
struct per_token {
    using option_category = granularity_category;
    static constexpr bool per_row = true;
    static constexpr index_t group_size = 0;
};
template <index_t G>
struct per_group {
    static_assert(G > 0, "per_group<G>: the group size G must be positive (per_group<0> has no elements per group)");
    using option_category = granularity_category;
    static constexpr bool per_row = true;
    static constexpr index_t group_size = G;
};

}  // namespace tcomp
