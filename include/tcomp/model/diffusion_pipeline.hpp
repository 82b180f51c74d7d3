// Text-to-image: prompt -> text_encoder (text_encoder.hpp) -> sampler steps (sampler.hpp) with the DiT (dit.hpp)
// predicting epsilon -> batch x C x H x W. Two kinds of weights:
//   seeded   the stand-in (no data needed): latents of shape batch x 32 x 32 x 32 for the TAEF2 image decoder
//            (roughly unit scale; the decoder starts with tanh(x / 3) * 3);
//   trained  a diffusion_weights (diffusion_checkpoint.hpp loads ../shared/models/t2i_mnist: pixel space,
//            1 x 32 x 32 in [-1, 1]).
// Classifier-free guidance (guidance_scale s != 1): eps = eps("") + s (eps(prompt) - eps("")), the conditional
// and unconditional halves run as one batch of 2B. The same config, weights, policies, prompts and seed give the
// same bits.
//
// Every linear layer of both models takes its policy from a layer_policy_map: layer name -> policy name
// (policy_registry.hpp), the default for layers it does not name. layer_names() lists the names, so a recipe
// can be resolved against them; a map naming a layer that does not exist is an error, not ignored.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/random.hpp"
#include "tcomp/model/dit.hpp"
#include "tcomp/model/policy_registry.hpp"
#include "tcomp/model/sampler.hpp"
#include "tcomp/model/text_encoder.hpp"

namespace tcomp::model {

enum class sampler_kind { ddim, lcm };

struct diffusion_config {
    text_encoder_config text;
    dit_config dit;
    int steps = 4;  // sampler steps, evenly spaced over the schedule
    timestep_spacing spacing = timestep_spacing::leading;
    sampler_kind sampler = sampler_kind::ddim;
    bool bos_fp32 = true;         // the text encoder's BOS row in float (MixDQ; text_encoder.hpp): on by default
    double guidance_scale = 1.0;  // classifier-free guidance; 1: none (one DiT call per step)
    double beta_start = 0.00085, beta_end = 0.012;  // the scaled-linear schedule

    void validate() const {
        text.validate();
        dit.validate();
        if (!std::isfinite(guidance_scale))
            tcomp::detail::throw_error<value_error>("diffusion_config: guidance_scale is not finite");
        if (dit.text_width != text.width)
            tcomp::detail::throw_error<value_error>("diffusion_config: dit.text_width ", dit.text_width,
                                                    " differs from the text encoder's width ", text.width);
        if (steps < 1 || steps > dit.train_steps)
            tcomp::detail::throw_error<value_error>("diffusion_config: steps = ", steps, ", need 1 .. ",
                                                    dit.train_steps);
    }
};

/// Per-layer policies: `layers` names a policy per layer (a key must be one of layer_names()), the others get
/// `default_policy`. `layers` has the type of recipe.hpp's policy_map, so `recipe::resolve(layer_names())` can
/// be assigned to it as is.
struct layer_policy_map {
    std::string default_policy = "fp32";
    std::map<std::string, std::string, std::less<>> layers;
    /// Builds the layers it takes itself (calibration methods: model/layer_methods.hpp); called while the
    /// pipeline is being built only (the pipeline drops it afterwards).
    linear_build_fn build;
};

/// Trained weights of both models and the tokenizer their text was encoded with.
struct diffusion_weights {
    prompt_tokenizer tokenizer = prompt_tokenizer::bytes();
    parameter_map text;  // "text.*" tensors (text_encoder::parameter_shapes)
    parameter_map dit;   // "dit.*" tensors (dit::parameter_shapes)
    std::string origin = "diffusion_weights";  // where they came from, for error messages
};

/// batch x channels x height x width, row-major.
struct latent_tensor {
    index_t batch = 0, channels = 0, height = 0, width = 0;
    std::vector<float> data;
};

class diffusion_pipeline {
public:
    /// Throws tcomp::error for a map key that is no layer or a policy name that is not known, and the policy's
    /// own error (naming the layer) for a layer whose K it cannot take.
    /// Seeded weights (the stand-in).
    explicit diffusion_pipeline(diffusion_config config, layer_policy_map policies = {})
        : config_(checked(std::move(config))),
          policies_(checked(config_, std::move(policies))),
          text_(config_.text, chooser(), config_.bos_fp32, policies_.build),
          dit_(config_.dit, chooser(), policies_.build),
          schedule_(noise_schedule::scaled_linear(static_cast<int>(config_.dit.train_steps), config_.beta_start,
                                                  config_.beta_end)),
          timesteps_(sampling_timesteps(static_cast<int>(config_.dit.train_steps), config_.steps, config_.spacing)) {
        policies_.build = nullptr;
    }

    /// Trained weights (diffusion_checkpoint::load); tcomp::error naming the tensor when they do not fit the config.
    diffusion_pipeline(diffusion_config config, layer_policy_map policies, const diffusion_weights& weights)
        : config_(checked(std::move(config))),
          policies_(checked(config_, std::move(policies))),
          text_(config_.text, weights.tokenizer, weights.text, chooser(), config_.bos_fp32, weights.origin,
                policies_.build),
          dit_(config_.dit, weights.dit, chooser(), weights.origin, policies_.build),
          schedule_(noise_schedule::scaled_linear(static_cast<int>(config_.dit.train_steps), config_.beta_start,
                                                  config_.beta_end)),
          timesteps_(sampling_timesteps(static_cast<int>(config_.dit.train_steps), config_.steps, config_.spacing)) {
        policies_.build = nullptr;
    }

    /// Every linear layer (name, out, in): the text encoder's, then the DiT's.
    static std::vector<linear_spec> layer_specs(const diffusion_config& c) {
        std::vector<linear_spec> s = text_encoder::layer_specs(c.text);
        for (linear_spec& d : dit::layer_specs(c.dit)) s.push_back(std::move(d));
        return s;
    }
    static std::vector<std::string> layer_names(const diffusion_config& c) {
        std::vector<std::string> names;
        for (const linear_spec& s : layer_specs(c)) names.push_back(s.name);
        return names;
    }
    std::vector<std::string> layer_names() const { return layer_names(config_); }

    const diffusion_config& config() const { return config_; }
    const text_encoder& text() const { return text_; }
    const dit& denoiser() const { return dit_; }
    const noise_schedule& schedule() const { return schedule_; }
    std::span<const int> timesteps() const { return timesteps_; }
    /// The policy each layer was built with.
    std::string policy_of(const std::string& layer) const {
        const auto it = policies_.layers.find(layer);
        return it == policies_.layers.end() ? policies_.default_policy : it->second;
    }

    template <class F>
    void for_each_linear(F&& f) const {
        text_.for_each_linear(f);
        dit_.for_each_linear(f);
    }
    /// Bytes of the linear layers' weights in canonical packed form (linear::stored_bytes: codes, scales, zero
    /// points; 4 N K for fp32), plus their biases: the model size a recipe gives.
    std::size_t linear_stored_bytes() const {
        std::size_t b = 0;
        for_each_linear([&](const linear& l) { b += l.stored_bytes(); });
        return b;
    }
    /// Bytes the linear layers stream (packed weights and scales, or floats), plus their biases.
    std::size_t linear_weight_bytes() const {
        std::size_t b = 0;
        for_each_linear([&](const linear& l) { b += l.weight_bytes(); });
        return b;
    }

    /// The starting noise x_T for `batch` images: element i of the batch x C x H x W tensor from (seed, i).
    latent_tensor initial_noise(index_t batch, std::uint64_t seed) const {
        latent_tensor x = empty_latents(batch);
        x.data = gaussian_noise(seed, x.data.size());
        return x;
    }

    /// Latents for each prompt; `seed` fixes the starting noise (and LCM's re-noising).
    latent_tensor generate(std::span<const std::string> prompts, std::uint64_t seed, int threads = 1) const {
        if (prompts.empty()) tcomp::detail::throw_error<value_error>("diffusion_pipeline::generate: no prompts");
        return sample(text_.encode(prompts, threads), seed, threads);
    }

    /// The sampler part of generate(), for text embeddings computed elsewhere.
    latent_tensor sample(const text_embeddings& text, std::uint64_t seed, int threads = 1) const {
        latent_tensor x = initial_noise(text.batch, seed);
        const double s = config_.guidance_scale;
        epsilon_model model;
        dit_text_context ctx;
        if (s == 1.0) {
            ctx = dit_.prepare_text(text, threads);
            model = [&](std::span<const float> x_t, int t, std::span<float> eps) {
                dit_.forward(x_t, t, ctx, eps, threads);
            };
        } else {
            // One batch of 2B: the prompts' rows, then B copies of the empty prompt's.
            ctx = dit_.prepare_text(with_unconditional(text, threads), threads);
            model = [&, s](std::span<const float> x_t, int t, std::span<float> eps) {
                std::vector<float> x2(2 * x_t.size()), e2(2 * x_t.size());
                std::copy(x_t.begin(), x_t.end(), x2.begin());
                std::copy(x_t.begin(), x_t.end(), x2.begin() + static_cast<std::ptrdiff_t>(x_t.size()));
                dit_.forward(x2, t, ctx, e2, threads);
                const std::size_t n = x_t.size();
                for (std::size_t i = 0; i < n; ++i)
                    eps[i] = static_cast<float>(e2[n + i] + s * (static_cast<double>(e2[i]) - e2[n + i]));
            };
        }
        if (config_.sampler == sampler_kind::ddim) {
            x.data = ddim_sample(schedule_, timesteps_, std::move(x.data), model);
        } else {
            // LCM's re-noising stream is derived from the seed, so it never repeats x_T's noise.
            x.data = lcm_sample(schedule_, timesteps_, std::move(x.data), model,
                                tcomp::detail::mix64(seed ^ 0x4c434d6e6f697365ull));
        }
        return x;
    }

    /// `text` followed by text.batch copies of the empty prompt's embeddings (classifier-free guidance's batch).
    text_embeddings with_unconditional(const text_embeddings& text, int threads = 1) const {
        const std::string empty;
        const text_embeddings u = text_.encode(std::span<const std::string>(&empty, 1), threads);
        text_embeddings both = text;
        both.batch = 2 * text.batch;
        for (index_t b = 0; b < text.batch; ++b) {
            both.hidden.insert(both.hidden.end(), u.hidden.begin(), u.hidden.end());
            both.pooled.insert(both.pooled.end(), u.pooled.begin(), u.pooled.end());
        }
        return both;
    }

private:
    latent_tensor empty_latents(index_t batch) const {
        latent_tensor x;
        x.batch = batch, x.channels = config_.dit.latent_channels;
        x.height = x.width = config_.dit.latent_size;
        x.data.resize(static_cast<std::size_t>(batch * x.channels * x.height * x.width));
        return x;
    }

    static diffusion_config checked(diffusion_config c) {
        c.validate();
        return c;
    }

    static layer_policy_map checked(const diffusion_config& c, layer_policy_map m) {
        require_known_policy(m.default_policy, "diffusion_pipeline: default policy");
        const std::vector<std::string> names = layer_names(c);
        for (const auto& [layer, policy] : m.layers) {
            if (std::find(names.begin(), names.end(), layer) == names.end())
                tcomp::detail::throw_error<error>("diffusion_pipeline: the policy map names layer \"", layer,
                                                  "\", which does not exist (", names.size(), " layers, e.g. \"",
                                                  names.front(), "\"; see layer_names())");
            require_known_policy(policy, "diffusion_pipeline: policy of layer \"" + layer + "\"");
        }
        return m;
    }

    layer_policy_fn chooser() const {
        return [this](const std::string& layer) { return policy_of(layer); };
    }

    diffusion_config config_;
    layer_policy_map policies_;
    text_encoder text_;
    dit dit_;
    noise_schedule schedule_;
    std::vector<int> timesteps_;
};

}  // namespace tcomp::model
