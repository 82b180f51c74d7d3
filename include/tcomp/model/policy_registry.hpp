// The policy types whose layers run on the SIMD CPU kernels, as one table: a layer's policy is a run-time
// descriptor (quant/policy_names.hpp: an alias such as "w8a8" or a spelling such as "w=int4:g32 a=int8:token"),
// and model::linear asks visit_kernel_policy() whether a typed kernel path exists for it; every other valid
// descriptor runs on the descriptor-driven reference path (linear.hpp), with the reason reported. Keeping the
// typed set small keeps the compile time of every model flat: each entry instantiates the packers and kernels.
// "fp32" is not a descriptor (it keeps the float weights); it gets its own tag.
#pragma once

#include <array>
#include <optional>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tcomp/core/error.hpp"
#include "tcomp/format/fp8.hpp"
#include "tcomp/format/mx_elements.hpp"
#include "tcomp/format/nf4.hpp"
#include "tcomp/quant/describe.hpp"
#include "tcomp/quant/policy_names.hpp"
#include "tcomp/quant/presets.hpp"

namespace tcomp::model {

/// Marks the uncompressed float path in the registry.
struct fp32_policy {};

template <class P>
struct policy_entry {
    using type = P;
    std::string_view name;
};

/// INT4 per group of 32 with INT8 tokens: the W4A8 variant for layers whose K is a multiple of 32 but not of
/// 128 (small models: stories260K has K = 64). Named separately so the group size is never changed silently.
using w4a8_g32 = policy<quantizer<int_format<4>, symmetric, per_group<32>>, presets::int8_per_token>;
/// UINT4 per group of 32 with zero points, float activations (W4A16 for K a multiple of 32).
using w4a16_g32 = policy<quantizer<uint_format<4>, asymmetric, per_group<32>>, float_activations>;
/// INT4 per output channel with INT8 tokens: W4A8 for a K that no group size divides (MNIST's 784 and 500).
using w4a8_pc = policy<quantizer<int_format<4>, symmetric, per_channel>, presets::int8_per_token>;
/// UINT4 per output channel with zero points, float activations (W4A16 for such K).
using w4a16_pc = policy<quantizer<uint_format<4>, asymmetric, per_channel>, float_activations>;

/// NF4 per group of 64, float activations (QLoRA's layout; alias "nf4"): the weight-only kernels by table.
using nf4_g64 = policy<quantizer<nf4_format, symmetric, per_group<64>>, float_activations>;
/// OCP MXFP4: FP4 E2M1 per group of 32 with E8M0 scales, float activations (alias "mxfp4"): by table.
using mxfp4_weights = policy<quantizer<fp4_e2m1, symmetric, per_group<32>, e8m0_scale>, float_activations>;
/// FP8 E4M3 per output channel, float activations (alias "fp8"): the weight-only kernels decode by shifts.
using fp8_channel = policy<quantizer<fp8_e4m3, symmetric, per_channel>, float_activations>;
/// The same weights with quantized tokens (aliases "fp8_w8a8": INT8, "fp8_a8": FP8 E4M3; "mxfp4_w4a8": MXFP4 x
/// INT8): no integer dot product exists for a floating operand, so the weight-only kernels run them on the
/// activations quantized and decoded back to float (kernel/cpu/family_table.hpp).
using fp8_w8a8 = policy<quantizer<fp8_e4m3, symmetric, per_channel>, presets::int8_per_token>;
using fp8_a8 = policy<quantizer<fp8_e4m3, symmetric, per_channel>, quantizer<fp8_e4m3, symmetric, per_token, dynamic>>;
using mxfp4_w4a8 = policy<quantizer<fp4_e2m1, symmetric, per_group<32>, e8m0_scale>, presets::int8_per_token>;

/// Every policy a model layer can take by name, in the order known_policies() lists them.
inline constexpr auto policy_table = std::make_tuple(
    policy_entry<fp32_policy>{"fp32"}, policy_entry<presets::w8a8>{"w8a8"}, policy_entry<presets::w4a8>{"w4a8"},
    policy_entry<presets::w4a16>{"w4a16"}, policy_entry<presets::w8a16>{"w8a16"},
    policy_entry<presets::w2a16>{"w2a16"}, policy_entry<presets::w8a8_2of4>{"w8a8_2of4"},
    policy_entry<presets::w4a8_2of4>{"w4a8_2of4"}, policy_entry<presets::w1a1>{"w1a1"},
    policy_entry<w4a8_g32>{"w4a8_g32"}, policy_entry<w4a16_g32>{"w4a16_g32"}, policy_entry<w4a8_pc>{"w4a8_pc"},
    policy_entry<w4a16_pc>{"w4a16_pc"}, policy_entry<nf4_g64>{"nf4"}, policy_entry<mxfp4_weights>{"mxfp4"},
    policy_entry<fp8_channel>{"fp8"}, policy_entry<fp8_w8a8>{"fp8_w8a8"}, policy_entry<fp8_a8>{"fp8_a8"},
    policy_entry<mxfp4_w4a8>{"mxfp4_w4a8"}, policy_entry<presets::w8a8_static>{"w8a8_static"});

/// Whether a policy (a name or a spelling) quantizes activations with calibrated (static) scales: such a layer
/// needs its scales (calibrate(), or a file), so it cannot be made from float weights alone.
inline bool is_static_policy(std::string_view policy) {
    const std::optional<descriptor> d = resolve_policy(policy);
    return d && d->activations && d->activations->calibrated;
}

inline constexpr std::size_t policy_count = std::tuple_size_v<std::remove_cv_t<decltype(policy_table)>>;

/// The names of the typed table (visit_policy() accepts them).
constexpr std::array<std::string_view, policy_count> known_policies() {
    return std::apply([](const auto&... e) { return std::array<std::string_view, policy_count>{e.name...}; },
                      policy_table);
}

/// Whether `text` is a valid layer policy: "fp32", an alias or a valid spelling.
inline bool is_known_policy(std::string_view text) {
    try {
        (void)resolve_policy(text);
        return true;
    } catch (const error&) {
        return false;
    }
}

namespace detail {

inline std::string known_policy_list() { return tcomp::detail::policy_alias_list(); }

}  // namespace detail

/// Throws tcomp::error naming the bad token and listing what is accepted unless `text` is a valid policy.
inline void require_known_policy(std::string_view text, std::string_view where = "policy") {
    (void)resolve_policy(text, where);
}

namespace detail {

template <std::size_t I, class F>
decltype(auto) visit_policy_from(std::string_view name, F& f) {
    if constexpr (I + 1 == policy_count) {
        return f(std::type_identity<typename std::tuple_element_t<I, std::remove_cv_t<decltype(policy_table)>>::type>{});
    } else {
        using entry = std::tuple_element_t<I, std::remove_cv_t<decltype(policy_table)>>;
        if (std::get<I>(policy_table).name == name) return f(std::type_identity<typename entry::type>{});
        return visit_policy_from<I + 1>(name, f);
    }
}

template <std::size_t I, class F>
bool visit_kernel_policy_from(const descriptor& d, F& f) {
    if constexpr (I == policy_count) {
        return false;
    } else {
        using P = typename std::tuple_element_t<I, std::remove_cv_t<decltype(policy_table)>>::type;
        if constexpr (!std::is_same_v<P, fp32_policy>) {
            descriptor want = describe<P>();
            want.sparsity.density = d.sparsity.density;
            if (want == d) {
                f(std::type_identity<P>{});
                return true;
            }
        }
        return visit_kernel_policy_from<I + 1>(d, f);
    }
}

}  // namespace detail

/// Calls f(std::type_identity<P>{}) with the policy type named `name` (a name of the typed table; fp32_policy
/// for "fp32"); other names throw (see require_known_policy). Every instantiation of f must return the same type.
template <class F>
decltype(auto) visit_policy(std::string_view name, F&& f) {
    bool typed = false;
    for (std::string_view n : known_policies()) typed = typed || n == name;
    if (!typed)
        tcomp::detail::throw_error<error>("visit_policy: \"", name, "\" is not a policy of the typed kernel table (",
                                          [] {
                                              std::string out;
                                              for (std::string_view n : known_policies())
                                                  out += (out.empty() ? "" : ", ") + std::string(n);
                                              return out;
                                          }(),
                                          ")");
    return detail::visit_policy_from<0>(name, f);
}

/// Calls f(std::type_identity<P>{}) for the typed policy P with describe<P>() == d and returns true; false
/// (f not called) when no typed kernel path exists for d.
template <class F>
bool visit_kernel_policy(const descriptor& d, F&& f) {
    return detail::visit_kernel_policy_from<0>(d, f);
}

}  // namespace tcomp::model
