// Short names of common compositions: aliases of descriptors, so a recipe can say "w8a8" or "nf4" as well as
// the full spelling. The names (and what they mean) are stable: files of format version 1 stored them.
// "fp32" is not a descriptor: it keeps a layer's float weights (resolve_policy returns no descriptor for it).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "tcomp/core/error.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace tcomp {

struct policy_alias {
    std::string_view name;
    std::string_view spelling;  // canonical (a test checks spell(parse(spelling)) == spelling)
    std::string_view meaning;
};

/// Every alias, in the order messages list them.
inline constexpr std::array<policy_alias, 20> policy_aliases{{
    {"w8a8", "w=int8:channel a=int8:token", "INT8 per channel x INT8 per token (dynamic)"},
    {"w8a8_static", "w=int8:channel a=int8:tensor:static", "INT8 per channel x INT8 per tensor, calibrated"},
    {"w4a8", "w=int4:g128 a=int8:token", "INT4 per group of 128 x INT8 per token"},
    {"w4a16", "w=uint4:asym:g128", "UINT4 with zero points per group of 128, float activations (GPTQ/AWQ layout)"},
    {"w8a16", "w=int8:channel", "INT8 per channel, float activations"},
    {"w2a16", "w=uint2:asym:g64", "UINT2 with zero points per group of 64, float activations"},
    {"w8a8_2of4", "w=int8:channel a=int8:token s=2:4", "2:4 sparse W8A8"},
    {"w4a8_2of4", "w=int4:g128 a=int8:token s=2:4", "2:4 sparse W4A8"},
    {"w1a1", "w=binary:channel a=binary:token", "binary weights and activations (XNOR-Net scales)"},
    {"w4a8_g32", "w=int4:g32 a=int8:token", "W4A8 with groups of 32 (K a multiple of 32 but not 128)"},
    {"w4a16_g32", "w=uint4:asym:g32", "W4A16 with groups of 32"},
    {"w4a8_pc", "w=int4:channel a=int8:token", "W4A8 with one scale per output channel (any K)"},
    {"w4a16_pc", "w=uint4:asym:channel", "W4A16 with one scale and zero point per output channel (any K)"},
    {"nf4", "w=nf4:g64", "QLoRA NormalFloat-4 per group of 64 with a float absmax scale, float activations"},
    {"mxfp4", "w=fp4_e2m1:g32:e8m0", "OCP MXFP4: FP4 E2M1 elements, E8M0 scale per 32, float activations"},
    {"mxint8", "w=q1.6:g32:e8m0", "OCP MXINT8: Q1.6 elements, E8M0 scale per 32, float activations"},
    {"fp8", "w=fp8_e4m3:channel", "FP8 E4M3 per output channel (float scale), float activations"},
    {"fp8_a8", "w=fp8_e4m3:channel a=fp8_e4m3:token", "FP8 E4M3 weights per channel x FP8 E4M3 tokens"},
    {"fp8_w8a8", "w=fp8_e4m3:channel a=int8:token", "FP8 E4M3 weights per channel x INT8 tokens (dynamic)"},
    {"mxfp4_w4a8", "w=fp4_e2m1:g32:e8m0 a=int8:token", "MXFP4 weights x INT8 tokens (dynamic)"},
}};

/// The alias `name` stands for, or nullptr.
inline const policy_alias* find_policy_alias(std::string_view name) {
    for (const policy_alias& a : policy_aliases)
        if (a.name == name) return &a;
    return nullptr;
}

/// The alias whose descriptor is d, or "" (for display: "w8a8 (w=int8:channel a=int8:token)").
inline std::string_view alias_of(const descriptor& d) {
    static const auto parsed = [] {  // the table, parsed once
        std::array<descriptor, policy_aliases.size()> out;
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = parse_descriptor(policy_aliases[i].spelling);
        return out;
    }();
    for (std::size_t i = 0; i < parsed.size(); ++i)
        if (parsed[i] == d) return policy_aliases[i].name;
    return {};
}

namespace detail {
inline std::string policy_alias_list() {
    std::string out = "fp32";
    for (const policy_alias& a : policy_aliases) out += ", " + std::string(a.name);
    return out;
}
}  // namespace detail

/// A layer's policy text: "fp32" (no descriptor: float weights), an alias, or a spelling. Throws tcomp::error
/// naming the bad token and listing what is accepted; `where` starts the message.
inline std::optional<descriptor> resolve_policy(std::string_view text, std::string_view where = "policy") {
    if (text == "fp32") return std::nullopt;
    if (const policy_alias* a = find_policy_alias(text)) return parse_descriptor(a->spelling, where);
    if (text.find('=') == std::string_view::npos)
        detail::throw_error<error>(where, ": unknown policy \"", text, "\"; known policies: ",
                                   detail::policy_alias_list(), "; or a descriptor spelling such as "
                                   "\"w=int4:g32 a=int8:token\" (", detail::accepted_parts, ")");
    return parse_descriptor(text, where);
}

/// The canonical text of a policy: "fp32", or spell() of its descriptor (aliases are expanded).
inline std::string canonical_policy(std::string_view text, std::string_view where = "policy") {
    const std::optional<descriptor> d = resolve_policy(text, where);
    return d ? spell(*d) : std::string("fp32");
}

/// For messages and reports: "w8a8 (w=int8:channel a=int8:token)", or the spelling alone without an alias.
inline std::string policy_display(const std::optional<descriptor>& d) {
    if (!d) return "fp32";
    const std::string_view alias = alias_of(*d);
    return alias.empty() ? spell(*d) : std::string(alias) + " (" + spell(*d) + ")";
}

}  // namespace tcomp
