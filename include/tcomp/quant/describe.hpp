// describe<P>(): the run-time descriptor of a policy type (and describe_quantizer<Q>, describe_sparsity<S>).
// A format without a run-time name (a user's own format type) fails to compile here with a message saying so;
// the typed API keeps working for it.
#pragma once

#include <type_traits>

#include "tcomp/format/formats.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/policy.hpp"
#include "tcomp/quant/quantizer_params.hpp"

namespace tcomp {

namespace detail {

template <class F>
struct format_desc_trait : std::false_type {};
template <int B>
struct format_desc_trait<int_format<B>> : std::true_type {
    static constexpr format_desc desc{format_kind::int_, B, 0, 0};
};
template <int B>
struct format_desc_trait<uint_format<B>> : std::true_type {
    static constexpr format_desc desc{format_kind::uint_, B, 0, 0};
};
template <int M, int N>
struct format_desc_trait<fixed_point_format<M, N>> : std::true_type {
    static constexpr format_desc desc{format_kind::fixed_point, 0, M, N};
};
#define TCOMP_NAMED_FORMAT(Type, Kind)                                 \
    template <>                                                        \
    struct format_desc_trait<Type> : std::true_type {                  \
        static constexpr format_desc desc{format_kind::Kind, 0, 0, 0}; \
    };
TCOMP_NAMED_FORMAT(binary_format, binary)
TCOMP_NAMED_FORMAT(ternary_format, ternary)
TCOMP_NAMED_FORMAT(fp8_e4m3, fp8_e4m3)
TCOMP_NAMED_FORMAT(fp8_e5m2, fp8_e5m2)
TCOMP_NAMED_FORMAT(fp6_e2m3, fp6_e2m3)
TCOMP_NAMED_FORMAT(fp6_e3m2, fp6_e3m2)
TCOMP_NAMED_FORMAT(fp4_e2m1, fp4_e2m1)
TCOMP_NAMED_FORMAT(fp16_format, fp16)
TCOMP_NAMED_FORMAT(bf16_format, bf16)
TCOMP_NAMED_FORMAT(nf4_format, nf4)
#undef TCOMP_NAMED_FORMAT

}  // namespace detail

template <class F>
constexpr format_desc describe_format() {
    static_assert(detail::format_desc_trait<F>::value,
                  "describe: this format has no run-time name (descriptor.hpp's format_kind); the typed API works "
                  "for it, files and recipes do not");
    return detail::format_desc_trait<F>::desc;
}

template <class Q>
constexpr quantizer_desc describe_quantizer() {
    static_assert(is_quantizer<Q>::value, "describe_quantizer<Q>: Q must be a tcomp::quantizer<...>");
    quantizer_desc q = detail::quantizer_params<Q>();
    q.format = describe_format<typename Q::format>();
    return q;
}

/// The descriptor of policy P (density 0.5 for block and unstructured sparsity: a run-time choice there).
template <class P>
descriptor describe() {
    static_assert(is_policy<P>::value, "describe<P>: P must be a tcomp::policy<...>");
    descriptor d;
    d.weights = describe_quantizer<typename P::weight_quantizer>();
    if constexpr (P::quantizes_activations) d.activations = describe_quantizer<typename P::activation_quantizer>();
    d.sparsity = describe_sparsity<typename P::sparsity>();
    return d;
}

}  // namespace tcomp
