// Run-time names for compression policies, so a per-layer recipe (a JSON file, a command line) can pick the
// policy of each layer while the policy itself stays a compile-time type. One constexpr table maps each name
// to a preset; visit_policy() turns a name into a call with the policy type. "fp32" is not a policy (it keeps
// the float weights); it gets its own tag.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tcomp/core/error.hpp"
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

/// Every policy a model layer can take by name, in the order known_policies() lists them.
inline constexpr auto policy_table = std::make_tuple(
    policy_entry<fp32_policy>{"fp32"}, policy_entry<presets::w8a8>{"w8a8"}, policy_entry<presets::w4a8>{"w4a8"},
    policy_entry<presets::w4a16>{"w4a16"}, policy_entry<presets::w8a16>{"w8a16"},
    policy_entry<presets::w2a16>{"w2a16"}, policy_entry<presets::w8a8_2of4>{"w8a8_2of4"},
    policy_entry<presets::w4a8_2of4>{"w4a8_2of4"}, policy_entry<presets::w1a1>{"w1a1"},
    policy_entry<w4a8_g32>{"w4a8_g32"}, policy_entry<w4a16_g32>{"w4a16_g32"}, policy_entry<w4a8_pc>{"w4a8_pc"},
    policy_entry<w4a16_pc>{"w4a16_pc"});

inline constexpr std::size_t policy_count = std::tuple_size_v<std::remove_cv_t<decltype(policy_table)>>;

/// The names visit_policy() accepts.
constexpr std::array<std::string_view, policy_count> known_policies() {
    return std::apply([](const auto&... e) { return std::array<std::string_view, policy_count>{e.name...}; },
                      policy_table);
}

constexpr bool is_known_policy(std::string_view name) {
    for (std::string_view n : known_policies())
        if (n == name) return true;
    return false;
}

namespace detail {

inline std::string known_policy_list() {
    std::string out;
    for (std::string_view n : known_policies()) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

}  // namespace detail

/// Throws tcomp::error listing the known names when `name` is not one of them.
inline void require_known_policy(std::string_view name, std::string_view where = "policy") {
    if (!is_known_policy(name))
        tcomp::detail::throw_error<error>(where, ": unknown policy \"", name,
                                          "\"; known policies: ", detail::known_policy_list());
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

}  // namespace detail

/// Calls f(std::type_identity<P>{}) with the policy type named `name` (fp32_policy for "fp32");
/// unknown names throw (see require_known_policy). Every instantiation of f must return the same type.
template <class F>
decltype(auto) visit_policy(std::string_view name, F&& f) {
    require_known_policy(name);
    return detail::visit_policy_from<0>(name, f);
}

}  // namespace tcomp::model
