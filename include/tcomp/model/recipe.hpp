// Per-layer recipes: which compression policy (policy_registry.hpp) each linear layer of a model takes, written
// as JSON so a recipe can live beside a checkpoint and be given to the tools:
//
//   {"description": "optional text",
//    "default": "w8a8",
//    "method": "gptq",                                  (optional: the calibration method, calib/method_names.hpp)
//    "layers": [{"match": "model.layers.*.mlp.down_proj", "policy": "fp32"},
//               {"match": "lm_head", "policy": "w8a16", "method": "rtn"}]}
//
// Patterns are globs over whole layer names: `*` any run of characters (dots included), `?` one character,
// everything else literal. Rules are tried in order and the FIRST match wins; a layer no rule matches takes
// "default". A recipe is strict, because a typo must not silently leave a layer uncompressed: an unknown key
// (anywhere), an unknown policy name, a rule that matches no layer of the model, and a layer that nothing
// matches while there is no default are each a tcomp::error naming the key/pattern/layer and listing what was
// valid. resolve() turns a recipe into a name -> policy map for one model's layer names; policy_chooser_for()
// adapts that map to the chooser model::llama_model / load_llama take (they ask by tensor name, "<layer>.weight").
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <system_error>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcomp/calib/method_names.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/small_file.hpp"
#include "tcomp/model/llama_config.hpp"
#include "tcomp/model/policy_registry.hpp"

namespace tcomp::model {

/// Layer name -> policy name (a name of policy_registry.hpp).
using policy_map = std::map<std::string, std::string, std::less<>>;

/// Whether `name` matches the glob `pattern` as a whole (`*` any run, `?` one character). Iterative with one
/// backtrack point, so hostile patterns ("*a*a*a*b") cost O(pattern * name), never exponential time.
constexpr bool glob_match(std::string_view pattern, std::string_view name) {
    std::size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
            ++p, ++n;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++, resume = n;
        } else if (star != std::string_view::npos) {
            p = star + 1, n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

namespace detail {

/// "a, b, c" (at most `limit` names, then "... (N in all)") for messages.
inline std::string name_list(std::span<const std::string> names, std::size_t limit = 12) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < limit; ++i) {
        if (i) out += ", ";
        out += names[i];
    }
    if (names.size() > limit) out += ", ... (" + std::to_string(names.size()) + " in all)";
    return out.empty() ? std::string("(none)") : out;
}

}  // namespace detail

struct recipe_rule {
    std::string match;   // glob over layer names
    std::string policy;  // a registry name
    std::string method;  // calibration method (calib/method_names.hpp), or "": the recipe's
};

class recipe {
public:
    std::string description;
    std::optional<std::string> default_policy;
    /// The calibration method of layers whose rule names none ("method"; absent: rtn).
    std::optional<std::string> default_method;
    std::vector<recipe_rule> rules;

    /// Every layer takes `policy`.
    static recipe uniform(std::string policy) {
        require_known_policy(policy, "recipe: \"default\"");
        recipe r;
        r.default_policy = std::move(policy);
        return r;
    }

    /// From parsed JSON; `origin` (a file name) starts every message.
    static recipe from_json(const nlohmann::json& j, std::string_view origin = "recipe") {
        const std::string where(origin);
        if (!j.is_object()) tcomp::detail::throw_error<error>(where, ": a recipe is a JSON object, got ", j.type_name());
        recipe r;
        for (const auto& [key, value] : j.items()) {
            if (key == "description") {
                r.description = string_field(value, where, "\"description\"");
            } else if (key == "default") {
                r.default_policy = string_field(value, where, "\"default\"");
                require_known_policy(*r.default_policy, where + ": \"default\"");
            } else if (key == "method") {
                r.default_method = string_field(value, where, "\"method\"");
                require_known_method(*r.default_method, where + ": \"method\"");
            } else if (key == "layers") {
                if (!value.is_array())
                    tcomp::detail::throw_error<error>(where, ": \"layers\" must be an array of {\"match\", \"policy\"}"
                                                             " objects, got ", value.type_name());
                for (std::size_t i = 0; i < value.size(); ++i) r.rules.push_back(rule_from_json(value[i], where, i));
            } else {
                tcomp::detail::throw_error<error>(where, ": unknown key \"", key,
                                                  "\"; a recipe has the keys \"default\", \"method\", \"layers\", \"description\"");
            }
        }
        if (!r.default_policy && r.rules.empty())
            tcomp::detail::throw_error<error>(where, ": the recipe has neither \"default\" nor \"layers\"");
        return r;
    }

    /// Strict JSON: a duplicate key at any level is an error (plain JSON parsers keep the last one silently).
    static recipe parse(std::string_view text, std::string_view origin = "recipe") {
        nlohmann::json j;
        try {
            j = tcomp::detail::st_parse_json(text, std::string(origin));
        } catch (const nlohmann::json::exception& e) {
            tcomp::detail::throw_error<error>(origin, ": not valid JSON: ", e.what());
        }
        return from_json(j, origin);
    }

    /// Recipes larger than this are refused unread (a recipe is a few kilobytes; /dev/zero is not one).
    static constexpr std::uintmax_t max_file_bytes = std::uintmax_t{16} << 20;

    /// Reads a regular file only: the type is checked before opening (a FIFO would block the open), and the size
    /// is capped at max_file_bytes.
    static recipe from_file(const std::filesystem::path& path) {
        const std::string where = "recipe " + path.string();
        const std::string text = tcomp::detail::read_small_file<error>(path, max_file_bytes, "recipe");
        return parse(text, where);
    }

    nlohmann::json to_json() const {
        nlohmann::json j = nlohmann::json::object();
        if (!description.empty()) j["description"] = description;
        if (default_policy) j["default"] = *default_policy;
        if (default_method) j["method"] = *default_method;
        if (!rules.empty()) {
            j["layers"] = nlohmann::json::array();
            for (const recipe_rule& r : rules) {
                nlohmann::json rule{{"match", r.match}, {"policy", r.policy}};
                if (!r.method.empty()) rule["method"] = r.method;
                j["layers"].push_back(std::move(rule));
            }
        }
        return j;
    }

    /// The policy of one layer: the first matching rule's, else the default; nullopt when neither applies.
    std::optional<std::string> policy_for(std::string_view layer) const {
        for (const recipe_rule& r : rules)
            if (glob_match(r.match, layer)) return r.policy;
        return default_policy;
    }

    /// The calibration method of one layer: the first matching rule's, else the recipe's "method", else "rtn".
    std::string method_for(std::string_view layer) const {
        for (const recipe_rule& r : rules)
            if (glob_match(r.match, layer)) return r.method.empty() ? default_method.value_or("rtn") : r.method;
        return default_method.value_or("rtn");
    }

    /// The policy of every layer in `layers` (the model's layer names). Throws tcomp::error when a rule matches
    /// none of them, or when a layer has no policy (no rule matches, no default); both list what was valid.
    policy_map resolve(std::span<const std::string> layers, std::string_view origin = "recipe") const {
        for (std::size_t i = 0; i < rules.size(); ++i) {
            bool used = false;
            for (const std::string& l : layers) used = used || glob_match(rules[i].match, l);
            if (!used)
                tcomp::detail::throw_error<error>(origin, ": layers[", i, "] pattern \"", rules[i].match,
                                                  "\" matches no layer of the model; its layers are: ",
                                                  detail::name_list(layers));
        }
        policy_map out;
        for (const std::string& l : layers) {
            std::optional<std::string> p = policy_for(l);
            if (!p) {
                std::vector<std::string> patterns;
                for (const recipe_rule& r : rules) patterns.push_back("\"" + r.match + "\"");
                tcomp::detail::throw_error<error>(origin, ": layer ", l,
                                                  " is matched by no rule and the recipe has no \"default\"; its "
                                                  "patterns are: ",
                                                  detail::name_list(patterns));
            }
            out.emplace(l, std::move(*p));
        }
        return out;
    }
    policy_map resolve(const std::vector<std::string>& layers, std::string_view origin = "recipe") const {
        return resolve(std::span<const std::string>(layers), origin);
    }

private:
    static void require_known_method(const std::string& name, const std::string& where) {
        try {
            (void)calib::parse_method(name);
        } catch (const error& e) {
            tcomp::detail::throw_error<error>(where, ": ", e.what());
        }
    }

    static std::string string_field(const nlohmann::json& v, const std::string& where, std::string_view what) {
        if (!v.is_string()) tcomp::detail::throw_error<error>(where, ": ", what, " must be a string, got ", v.type_name());
        return v.get<std::string>();
    }

    static recipe_rule rule_from_json(const nlohmann::json& e, const std::string& where, std::size_t i) {
        const std::string at = where + ": layers[" + std::to_string(i) + "]";
        if (!e.is_object())
            tcomp::detail::throw_error<error>(at, " must be an object {\"match\": ..., \"policy\": ...}, got ",
                                              e.type_name());
        for (const auto& [key, value] : e.items())
            if (key != "match" && key != "policy" && key != "method")
                tcomp::detail::throw_error<error>(at, ": unknown key \"", key,
                                                  "\"; a rule has the keys \"match\", \"policy\" and \"method\"");
        if (!e.contains("match")) tcomp::detail::throw_error<error>(at, ": \"match\" is missing");
        if (!e.contains("policy")) tcomp::detail::throw_error<error>(at, ": \"policy\" is missing");
        recipe_rule r{string_field(e.at("match"), at, "\"match\""), string_field(e.at("policy"), at, "\"policy\""), {}};
        if (r.match.empty()) tcomp::detail::throw_error<error>(at, ": \"match\" is empty");
        require_known_policy(r.policy, at + " (\"" + r.match + "\")");
        if (e.contains("method")) {
            r.method = string_field(e.at("method"), at, "\"method\"");
            require_known_method(r.method, at + " (\"" + r.match + "\")");
        }
        return r;
    }
};

/// The linear layers of a LLaMA-style model as a recipe sees them: "model.layers.<i>.self_attn.q_proj", ...,
/// and "lm_head" (also when tied to the embeddings: the head is then a compressed copy of them).
inline std::vector<std::string> llama_layer_names(const llama_config& config) {
    std::vector<std::string> out;
    constexpr std::string_view suffix = ".weight";
    for (const auto& [name, shape] : config.tensor_shapes()) {
        if (shape.size() != 2 || name == "model.embed_tokens.weight" || name == "lm_head.weight") continue;
        out.push_back(name.substr(0, name.size() - suffix.size()));
    }
    out.emplace_back("lm_head");
    return out;
}

/// The layer a weight tensor belongs to: "x.weight" -> "x"; other names unchanged.
inline std::string layer_of_tensor(std::string_view tensor) {
    constexpr std::string_view suffix = ".weight";
    if (tensor.size() > suffix.size() && tensor.substr(tensor.size() - suffix.size()) == suffix)
        tensor.remove_suffix(suffix.size());
    return std::string(tensor);
}

/// A chooser (tensor name -> policy) over a resolved map; asking for a layer the map lacks is a tcomp::error.
inline std::function<std::string(const std::string&)> policy_chooser_for(policy_map policies) {
    return [policies = std::move(policies)](const std::string& tensor) {
        const std::string layer = layer_of_tensor(tensor);
        const auto it = policies.find(layer);
        if (it == policies.end())
            tcomp::detail::throw_error<error>("recipe: no policy was resolved for layer ", layer, " (tensor ", tensor,
                                              "); the map has ", policies.size(), " layers");
        return it->second;
    };
}

}  // namespace tcomp::model
