// llama_config: the hyper-parameters of a LLaMA-style decoder, read from a Hugging Face config.json
// (LlamaForCausalLM, and MixtralForCausalLM for the mixture-of-experts FFN). Defaults are Hugging Face's own
// (LlamaConfig / MixtralConfig), so a checkpoint means the same thing here as in transformers. Strict on
// purpose: a missing required field, a field of the wrong type, a key this reader does not know, or a
// feature it does not implement (rope_scaling, another activation, sliding windows) is a tcomp::error naming
// the field, never a silently different model.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/io/small_file.hpp"

namespace tcomp::model {

struct llama_config {
    index_t hidden_size = 0;
    index_t intermediate_size = 0;
    index_t num_hidden_layers = 0;
    index_t num_attention_heads = 0;
    index_t num_key_value_heads = 0;  // defaults to num_attention_heads (multi-head attention)
    index_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
    index_t vocab_size = 0;
    index_t max_position_embeddings = 2048;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    bool tie_word_embeddings = false;  // LlamaConfig's default
    bool attention_bias = false;       // q/k/v/o biases
    bool mlp_bias = false;             // gate/up/down biases
    /// Mixture of experts (Mixtral): 0 = a dense SwiGLU MLP.
    index_t num_local_experts = 0;
    index_t num_experts_per_tok = 2;
    int bos_token_id = 1;
    int eos_token_id = 2;

    bool is_moe() const { return num_local_experts > 0; }

    /// Throws tcomp::error naming the first inconsistent field.
    void validate() const {
        auto positive = [](index_t v, const char* field) {
            if (v <= 0) tcomp::detail::throw_error<error>("llama_config: ", field, " must be > 0, got ", v);
        };
        positive(hidden_size, "hidden_size");
        positive(intermediate_size, "intermediate_size");
        positive(num_hidden_layers, "num_hidden_layers");
        positive(num_attention_heads, "num_attention_heads");
        positive(num_key_value_heads, "num_key_value_heads");
        positive(head_dim, "head_dim");
        positive(vocab_size, "vocab_size");
        positive(max_position_embeddings, "max_position_embeddings");
        if (num_attention_heads % num_key_value_heads != 0)
            tcomp::detail::throw_error<error>("llama_config: num_attention_heads (", num_attention_heads,
                                              ") is not a multiple of num_key_value_heads (", num_key_value_heads,
                                              ")");
        if (head_dim % 2 != 0)
            tcomp::detail::throw_error<error>("llama_config: head_dim ", head_dim, " is odd (rotate-half RoPE)");
        if (!(rms_norm_eps > 0.0)) tcomp::detail::throw_error<error>("llama_config: rms_norm_eps must be > 0");
        if (!(rope_theta > 0.0)) tcomp::detail::throw_error<error>("llama_config: rope_theta must be > 0");
        if (is_moe() && (num_experts_per_tok <= 0 || num_experts_per_tok > num_local_experts))
            tcomp::detail::throw_error<error>("llama_config: num_experts_per_tok (", num_experts_per_tok,
                                              ") must be in 1..num_local_experts (", num_local_experts, ")");
    }

    /// Every tensor the model reads, with its shape (PyTorch layout: Linear weights are out x in).
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> tensor_shapes() const {
        std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
        const std::int64_t h = hidden_size, q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
        const std::int64_t ff = intermediate_size;
        out.push_back({"model.embed_tokens.weight", {vocab_size, h}});
        for (index_t l = 0; l < num_hidden_layers; ++l) {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            out.push_back({p + "input_layernorm.weight", {h}});
            out.push_back({p + "post_attention_layernorm.weight", {h}});
            const std::array<std::pair<const char*, std::int64_t>, 4> attn{
                {{"q_proj", q}, {"k_proj", kv}, {"v_proj", kv}, {"o_proj", h}}};
            for (const auto& [name, rows] : attn) {
                out.push_back({p + "self_attn." + name + ".weight", {rows, name[0] == 'o' ? q : h}});
                if (attention_bias) out.push_back({p + "self_attn." + name + ".bias", {rows}});
            }
            if (is_moe()) {
                out.push_back({p + "block_sparse_moe.gate.weight", {num_local_experts, h}});
                for (index_t e = 0; e < num_local_experts; ++e) {
                    const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
                    out.push_back({x + "w1.weight", {ff, h}});
                    out.push_back({x + "w2.weight", {h, ff}});
                    out.push_back({x + "w3.weight", {ff, h}});
                }
            } else {
                const std::array<std::pair<const char*, std::vector<std::int64_t>>, 3> mlp{
                    {{"gate_proj", {ff, h}}, {"up_proj", {ff, h}}, {"down_proj", {h, ff}}}};
                for (const auto& [name, shape] : mlp) {
                    out.push_back({p + "mlp." + name + ".weight", shape});
                    if (mlp_bias) out.push_back({p + "mlp." + name + ".bias", {shape[0]}});
                }
            }
        }
        out.push_back({"model.norm.weight", {h}});
        if (!tie_word_embeddings) out.push_back({"lm_head.weight", {vocab_size, h}});
        return out;
    }

    /// From a parsed config.json.
    static llama_config from_json(const nlohmann::json& j) {
        if (!j.is_object()) tcomp::detail::throw_error<error>("llama config: the JSON is not an object");
        // Keys that carry no arithmetic (or that are checked below); anything else is an error, not silence.
        static constexpr std::array<std::string_view, 17> metadata_keys{
            "architectures",     "model_type",      "torch_dtype",         "transformers_version",
            "use_cache",         "initializer_range", "pretraining_tp",    "attention_dropout",
            "pad_token_id",      "_name_or_path",   "output_router_logits", "router_aux_loss_coef",
            "router_jitter_noise", "hidden_act",    "rope_scaling",        "sliding_window",
            "dtype"};
        static constexpr std::array<std::string_view, 17> model_keys{
            "hidden_size",         "intermediate_size",   "num_hidden_layers",   "num_attention_heads",
            "num_key_value_heads", "head_dim",            "vocab_size",          "max_position_embeddings",
            "rms_norm_eps",        "rope_theta",          "tie_word_embeddings", "attention_bias",
            "mlp_bias",            "num_local_experts",   "num_experts_per_tok", "bos_token_id",
            "eos_token_id"};
        for (const auto& [key, value] : j.items()) {
            const bool known = std::find(metadata_keys.begin(), metadata_keys.end(), key) != metadata_keys.end() ||
                               std::find(model_keys.begin(), model_keys.end(), key) != model_keys.end();
            if (!known)
                tcomp::detail::throw_error<error>("llama config: unknown field \"", key,
                                                  "\" (not read by this implementation; remove it or extend "
                                                  "llama_config if it changes the model)");
        }
        if (j.contains("model_type")) {
            const std::string t = get<std::string>(j, "model_type");
            if (t != "llama" && t != "mixtral" && t != "mistral")
                tcomp::detail::throw_error<error>("llama config: model_type \"", t,
                                                  "\" is not llama, mistral or mixtral");
        }
        if (j.contains("hidden_act") && get<std::string>(j, "hidden_act") != "silu")
            tcomp::detail::throw_error<error>("llama config: hidden_act \"", get<std::string>(j, "hidden_act"),
                                              "\" is not supported (only silu, the SwiGLU MLP)");
        for (const char* unsupported : {"rope_scaling", "sliding_window"})
            if (j.contains(unsupported) && !j.at(unsupported).is_null())
                tcomp::detail::throw_error<error>("llama config: field \"", unsupported,
                                                  "\" is set, but this implementation does not support it");

        llama_config c;
        c.hidden_size = required<index_t>(j, "hidden_size");
        c.intermediate_size = required<index_t>(j, "intermediate_size");
        c.num_hidden_layers = required<index_t>(j, "num_hidden_layers");
        c.num_attention_heads = required<index_t>(j, "num_attention_heads");
        c.vocab_size = required<index_t>(j, "vocab_size");
        c.num_key_value_heads = optional<index_t>(j, "num_key_value_heads", c.num_attention_heads);
        c.head_dim = optional<index_t>(j, "head_dim",
                                       c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
        c.max_position_embeddings = optional<index_t>(j, "max_position_embeddings", c.max_position_embeddings);
        c.rms_norm_eps = optional<double>(j, "rms_norm_eps", c.rms_norm_eps);
        c.rope_theta = optional<double>(j, "rope_theta", c.rope_theta);
        c.tie_word_embeddings = optional<bool>(j, "tie_word_embeddings", c.tie_word_embeddings);
        c.attention_bias = optional<bool>(j, "attention_bias", c.attention_bias);
        c.mlp_bias = optional<bool>(j, "mlp_bias", c.mlp_bias);
        c.num_local_experts = optional<index_t>(j, "num_local_experts", c.num_local_experts);
        c.num_experts_per_tok = optional<index_t>(j, "num_experts_per_tok", c.num_experts_per_tok);
        c.bos_token_id = optional<int>(j, "bos_token_id", c.bos_token_id);
        // Llama 3 lists several end-of-sequence ids; the first is the one generation stops at.
        if (j.contains("eos_token_id") && j.at("eos_token_id").is_array() && !j.at("eos_token_id").empty() &&
            j.at("eos_token_id")[0].is_number_integer())
            c.eos_token_id = j.at("eos_token_id")[0].get<int>();
        else
            c.eos_token_id = optional<int>(j, "eos_token_id", c.eos_token_id);
        if (c.hidden_size % std::max<index_t>(c.num_attention_heads, 1) != 0 && !j.contains("head_dim"))
            tcomp::detail::throw_error<error>("llama config: hidden_size (", c.hidden_size,
                                              ") is not a multiple of num_attention_heads and no head_dim is given");
        c.validate();
        return c;
    }

    /// A config.json larger than this is refused (they are a few hundred bytes).
    static constexpr std::uint64_t max_config_bytes = std::uint64_t{1} << 20;

    static llama_config from_file(const std::filesystem::path& path) {
        const std::string text = tcomp::detail::read_small_file<error>(path, max_config_bytes, "llama config");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            tcomp::detail::throw_error<error>("llama config: ", path.string(), " is not valid JSON: ", e.what());
        }
        try {
            return from_json(j);
        } catch (const error& e) {
            tcomp::detail::throw_error<error>(path.string(), ": ", e.what());
        }
    }

private:
    template <class T>
    static T get(const nlohmann::json& j, const char* field) {
        const nlohmann::json& v = j.at(field);
        bool ok = false;
        if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
        else if constexpr (std::is_integral_v<T>) ok = v.is_number_integer();
        else if constexpr (std::is_floating_point_v<T>) ok = v.is_number();
        else ok = v.is_string();
        if (!ok)
            tcomp::detail::throw_error<error>("llama config: field \"", field, "\" has the wrong type (", v.type_name(),
                                              ")");
        return v.get<T>();
    }
    template <class T>
    static T required(const nlohmann::json& j, const char* field) {
        if (!j.contains(field)) tcomp::detail::throw_error<error>("llama config: required field \"", field, "\" is missing");
        return get<T>(j, field);
    }
    template <class T>
    static T optional(const nlohmann::json& j, const char* field, T fallback) {
        if (!j.contains(field) || j.at(field).is_null()) return fallback;
        return get<T>(j, field);
    }
};

}  // namespace tcomp::model
