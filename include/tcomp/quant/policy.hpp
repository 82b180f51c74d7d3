// A policy composes how a layer's operands are compressed: policy<WeightQuantizer, ActivationQuantizer,
// Sparsity>. Y = X * W^T with W[N x K] compressed by the weight quantizer (after pruning to the sparsity
// pattern) and X[M x K] quantized by the activation quantizer (or kept in float32: float_activations).
#pragma once

#include <type_traits>

#include "tcomp/quant/quantizer.hpp"
#include "tcomp/sparse/pattern.hpp"

namespace tcomp {

template <class WeightQuantizer, class ActivationQuantizer = float_activations, class Sparsity = dense>
struct policy {
    static_assert(is_quantizer<WeightQuantizer>::value,
                  "policy<W, A, S>: W must be a tcomp::quantizer<...> (the weight quantizer)");
    static_assert(is_quantizer<ActivationQuantizer>::value || std::is_same_v<ActivationQuantizer, float_activations>,
                  "policy<W, A, S>: A must be a tcomp::quantizer<...> or tcomp::float_activations");
    static_assert(sparsity_pattern<Sparsity>,
                  "policy<W, A, S>: S must be a sparsity pattern (dense, n_m<N,M>, block_sparse<R,C>, unstructured)");
    static_assert(!std::is_same_v<typename WeightQuantizer::granularity, per_token>,
                  "policy: per_token granularity is for activations; weights use per_channel, per_group<G> or "
                  "per_tensor");

    using weight_quantizer = WeightQuantizer;
    using activation_quantizer = ActivationQuantizer;
    using sparsity = Sparsity;
    static constexpr bool quantizes_activations = !std::is_same_v<ActivationQuantizer, float_activations>;

private:
    static constexpr bool activation_granularity_ok() {
        if constexpr (quantizes_activations)
            return !std::is_same_v<typename ActivationQuantizer::granularity, per_channel>;
        else
            return true;
    }
    static_assert(activation_granularity_ok(),
                  "policy: per_channel granularity is for weights (output channels); activations use per_token, "
                  "per_tensor or per_group<G>");
};

template <class T>
struct is_policy : std::false_type {};
template <class W, class A, class S>
struct is_policy<policy<W, A, S>> : std::true_type {};

}  // namespace tcomp
