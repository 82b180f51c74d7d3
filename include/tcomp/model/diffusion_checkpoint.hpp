// diffusion_checkpoint: a trained text-to-image model from a directory (../shared/models/t2i_mnist's layout):
//   config.json        every hyper-parameter of the text encoder, the DiT, the schedule and the sampler, plus the
//                      image range; the fields that name a computation (activations, norms, patch orders,
//                      prediction type) must name the one text_encoder.hpp / dit.hpp implement, else the load
//                      fails naming the field: a model that computes something else is never run silently;
//   tokenizer.json     a word-level vocabulary (prompt_tokenizer);
//   model.safetensors  "text.*" and "dit.*" tensors (F32, F16 or BF16, widened), exactly the ones the config
//                      implies, with their shapes ([out, in] for a linear's weight).
//
//   const auto ck = model::diffusion_checkpoint::load(dir);
//   model::diffusion_pipeline pipe(ck.config, policies, ck.weights);
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/small_file.hpp"
#include "tcomp/model/diffusion_pipeline.hpp"
#include "tcomp/model/dit.hpp"
#include "tcomp/model/prompt_tokenizer.hpp"
#include "tcomp/model/text_encoder.hpp"

namespace tcomp::model {

struct diffusion_checkpoint {
    diffusion_config config;   // the file's sampler settings (steps, spacing, guidance) as defaults
    diffusion_weights weights;
    float image_min = -1.0f, image_max = 1.0f;  // the pixel range the model was trained on ("image.range")
    index_t image_pad = 0;                      // pixels of padding around the content ("image.pad")

    static constexpr const char* format = "tcomp-t2i-mnist-v1";

    /// config.json + tokenizer.json + model.safetensors of `dir`; io::file_error (or tcomp::error) naming the
    /// file and the field or tensor for anything missing or inconsistent, or a computation tcomp does not have.
    static diffusion_checkpoint load(const std::filesystem::path& dir) {
        diffusion_checkpoint ck;
        const std::filesystem::path config_path = dir / "config.json";
        const index_t vocab_size = ck.read_config(config_path);
        const std::filesystem::path tok_path = dir / "tokenizer.json";
        ck.weights.tokenizer = prompt_tokenizer::load(tok_path);
        const prompt_tokenizer& tok = ck.weights.tokenizer;
        if (tok.vocab_size() != vocab_size)
            throw io::file_error(tok_path.string() + ": " + std::to_string(tok.vocab_size()) + " words, " +
                                 config_path.string() + " says text.vocab_size " + std::to_string(vocab_size));
        if (tok.context() != 0 && tok.context() != ck.config.text.context)
            throw io::file_error(tok_path.string() + ": context " + std::to_string(tok.context()) + ", " +
                                 config_path.string() + " says text.context " +
                                 std::to_string(ck.config.text.context));
        ck.read_weights(dir / "model.safetensors", vocab_size);
        return ck;
    }

private:
    /// Fills config and the image fields; returns text.vocab_size (the tokenizer and the embedding must agree).
    index_t read_config(const std::filesystem::path& path) {
        const std::string text = tcomp::detail::read_small_file(path, std::uint64_t{1} << 20, "diffusion config");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            throw io::file_error(path.string() + ": not valid JSON (" + e.what() + ")");
        }
        const std::string origin = path.string();
        auto fail = [&](const std::string& field, const std::string& what) {
            throw io::file_error(origin + ": \"" + field + "\" " + what);
        };
        if (!j.is_object()) throw io::file_error(origin + ": not a JSON object");
        auto section = [&](const char* name) -> const nlohmann::json& {
            if (!j.contains(name) || !j[name].is_object()) fail(name, "must be an object");
            return j[name];
        };
        auto integer = [&](const nlohmann::json& s, const std::string& sec, const char* key, long long lo) {
            const std::string field = sec + "." + key;
            if (!s.contains(key) || !s[key].is_number_integer()) fail(field, "must be an integer");
            const long long v = s[key].get<long long>();
            if (v < lo || v > (1 << 24)) fail(field, "= " + std::to_string(v) + " is out of range");
            return static_cast<index_t>(v);
        };
        auto number = [&](const nlohmann::json& s, const std::string& sec, const char* key) {
            const std::string field = sec + "." + key;
            if (!s.contains(key) || !s[key].is_number()) fail(field, "must be a number");
            return s[key].get<double>();
        };
        // A field naming a computation: absent is fine (the default is what the C++ computes), any other value fails.
        auto must_be = [&](const nlohmann::json& s, const std::string& sec, const char* key, const nlohmann::json& want) {
            if (s.contains(key) && s[key] != want)
                fail(sec + "." + key, "is " + s[key].dump() + "; tcomp implements only " + want.dump());
        };
        if (!j.contains("format") || j["format"] != format)
            fail("format", std::string("must be \"") + format + "\" (got " + (j.contains("format") ? j["format"].dump()
                                                                                                   : "nothing") + ")");

        const nlohmann::json& t = section("text");
        text_encoder_config& tc = config.text;
        tc.width = integer(t, "text", "width", 1), tc.layers = integer(t, "text", "layers", 1);
        tc.heads = integer(t, "text", "heads", 1), tc.mlp_width = integer(t, "text", "mlp_width", 1);
        tc.context = integer(t, "text", "context", 2), tc.norm_eps = number(t, "text", "norm_eps");
        const index_t vocab_size = integer(t, "text", "vocab_size", 4);
        tc.bos_outlier = 0.0f, tc.bos_outlier_channels = 0;  // seeded-init choices: trained weights have none
        must_be(t, "text", "activation", "quick_gelu");
        must_be(t, "text", "causal", true);
        must_be(t, "text", "norm", "LayerNorm (affine)");

        const nlohmann::json& d = section("dit");
        dit_config& dc = config.dit;
        dc.latent_channels = integer(d, "dit", "latent_channels", 1), dc.latent_size = integer(d, "dit", "latent_size", 1);
        dc.patch = integer(d, "dit", "patch", 1), dc.width = integer(d, "dit", "width", 1);
        dc.depth = integer(d, "dit", "depth", 1), dc.heads = integer(d, "dit", "heads", 1);
        dc.mlp_width = integer(d, "dit", "mlp_width", 1), dc.text_width = integer(d, "dit", "text_width", 1);
        dc.frequency_dim = integer(d, "dit", "frequency_dim", 2), dc.train_steps = integer(d, "dit", "train_steps", 2);
        dc.norm_eps = number(d, "dit", "norm_eps");
        must_be(d, "dit", "norm", "LayerNorm (no affine)");
        must_be(d, "dit", "mlp_activation", "gelu_tanh");
        must_be(d, "dit", "prediction", "epsilon");
        must_be(d, "dit", "learn_sigma", false);
        must_be(d, "dit", "pos_embed", "2d sin-cos (fixed, not stored)");
        must_be(d, "dit", "patch_order_in", "[c][pi][pj]");
        must_be(d, "dit", "patch_order_out", "[pi][pj][c]");

        const nlohmann::json& s = section("schedule");
        must_be(s, "schedule", "type", "scaled_linear");
        if (integer(s, "schedule", "train_steps", 2) != dc.train_steps)
            fail("schedule.train_steps", "differs from dit.train_steps");
        config.beta_start = number(s, "schedule", "beta_start"), config.beta_end = number(s, "schedule", "beta_end");

        const nlohmann::json& sm = section("sampler");
        if (sm.contains("default")) {
            if (sm["default"] == "ddim") config.sampler = sampler_kind::ddim;
            else if (sm["default"] == "lcm") config.sampler = sampler_kind::lcm;
            else fail("sampler.default", "is " + sm["default"].dump() + "; tcomp implements \"ddim\" and \"lcm\"");
        }
        config.steps = static_cast<int>(integer(sm, "sampler", "steps", 1));
        if (sm.contains("spacing")) {
            if (sm["spacing"] == "leading") config.spacing = timestep_spacing::leading;
            else if (sm["spacing"] == "trailing") config.spacing = timestep_spacing::trailing;
            else fail("sampler.spacing", "is " + sm["spacing"].dump() + "; tcomp implements leading and trailing");
        }
        if (sm.contains("eta") && (!sm["eta"].is_number() || sm["eta"].get<double>() != 0.0))
            fail("sampler.eta", "must be 0 (deterministic DDIM: the only one tcomp implements)");
        if (sm.contains("guidance_scale")) config.guidance_scale = number(sm, "sampler", "guidance_scale");
        must_be(sm, "sampler", "uncond_prompt", "");

        if (j.contains("image")) {
            const nlohmann::json& im = j["image"];
            must_be(im, "image", "space", "pixel");
            if (im.contains("range")) {
                if (!im["range"].is_array() || im["range"].size() != 2 || !im["range"][0].is_number() ||
                    !im["range"][1].is_number() || !(im["range"][0].get<double>() < im["range"][1].get<double>()))
                    fail("image.range", "must be [min, max] with min < max");
                image_min = im["range"][0].get<float>(), image_max = im["range"][1].get<float>();
            }
            if (im.contains("pad")) image_pad = integer(im, "image", "pad", 0);
        }
        try {
            config.validate();
        } catch (const error& e) {
            throw io::file_error(origin + ": " + e.what());
        }
        return vocab_size;
    }

    void read_weights(const std::filesystem::path& path, index_t vocab_size) {
        const io::safetensors_file file = io::safetensors_file::open(path);
        const std::string origin = path.string();
        // The shape each tensor must have: [out, in] for a linear, [vocab, width] / [context, width] for the
        // embeddings, one dimension for the rest.
        std::map<std::string, std::vector<std::int64_t>> want;
        for (const auto& [name, n] : text_encoder::parameter_shapes(config.text, vocab_size)) want[name] = {n};
        for (const auto& [name, n] : dit::parameter_shapes(config.dit)) want[name] = {n};
        for (const linear_spec& s : diffusion_pipeline::layer_specs(config)) want[s.name + ".weight"] = {s.out, s.in};
        want["text.token_embedding"] = {vocab_size, config.text.width};
        want["text.position_embedding"] = {config.text.context, config.text.width};
        for (const io::tensor_view& t : file.tensors()) {
            const auto it = want.find(t.name);
            if (it == want.end())
                throw io::file_error(origin + ": tensor " + t.name + " " + tcomp::detail::st_shape_string(t.shape) +
                                     " is not a parameter of the model config.json describes");
            if (t.shape != it->second)
                throw io::file_error(origin + ": tensor " + t.name + " has shape " +
                                     tcomp::detail::st_shape_string(t.shape) + ", config.json implies " +
                                     tcomp::detail::st_shape_string(it->second));
            (t.name.starts_with("text.") ? weights.text : weights.dit)[t.name] = io::to_float(t);
        }
        weights.origin = origin;
        // Missing tensors and non-finite values: named by the models' own checks.
        detail::require_parameters(weights.text, text_encoder::parameter_shapes(config.text, vocab_size), origin);
        detail::require_parameters(weights.dit, dit::parameter_shapes(config.dit), origin);
    }
};

}  // namespace tcomp::model
