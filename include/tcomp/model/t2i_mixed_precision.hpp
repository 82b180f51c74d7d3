// Mixed precision for the text-to-image model, the MixDQ way (model/bit_allocation.hpp solves the integer program):
//
//  1. Metric-decoupled sensitivity. Each linear layer is quantized alone to each candidate bit width (the others
//     stay FP32) and the calibration prompts are generated with a short sampler; the images are compared with
//     FP32's from the same prompts and noise. Layers fall into two groups, each scored by its own metric:
//       content  cross-attention, the MLPs and the text encoder (what the image shows): 1 - SSIM;
//       quality  self-attention, adaLN, the embedders and the final layer (how clean it is): the noise-to-signal
//                power ratio 10^(-SQNR / 10).
//     Each group is normalised on its own (divided by its mean over every layer and candidate), so neither
//     metric drowns the other.
//  2. Allocation. The budget is average stored bits per weight over the linear layers: every layer's packed
//     bytes (codes, scales, zero points: linear::stored_bytes, less the float bias) x 8 / its N K, so a budget
//     is a model size (16 / bits = x smaller than FP16 weights). It is split between the groups in a sweep of
//     content shares; each group's multiple-choice knapsack is solved exactly; the share whose recipe scores best
//     on the calibration prompts (1 - SSIM of the image against FP32's) wins.
//
// Candidates are integer weight formats "<bits>:<granularity>" ("4:g32", "4:channel", "8:channel") with the
// activations fixed for the whole model (A8: INT8 per token, or A16: float); a group size that does not divide
// a layer's K becomes per channel there.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/metrics/image.hpp"
#include "tcomp/metrics/signal.hpp"
#include "tcomp/model/bit_allocation.hpp"
#include "tcomp/model/diffusion_pipeline.hpp"
#include "tcomp/model/t2i_evaluation.hpp"

namespace tcomp::model {

enum class sensitivity_group { content, quality };

inline const char* to_string(sensitivity_group g) { return g == sensitivity_group::content ? "content" : "quality"; }

/// MixDQ's split: cross-attention, MLPs and the text encoder are content layers; the rest are quality layers.
inline sensitivity_group group_of(const std::string& layer) {
    if (layer.starts_with("text.") || layer.find(".cross_attn.") != std::string::npos ||
        layer.find(".mlp.") != std::string::npos)
        return sensitivity_group::content;
    return sensitivity_group::quality;
}

/// The policy of candidate "<bits>:<granularity>" for a layer of K inputs: "w=int<bits>:<granularity>" (per
/// channel where the group does not divide K), activations INT8 per token (a8) or float.
inline std::string candidate_policy(const std::string& candidate, index_t k, bool a8) {
    const auto colon = candidate.find(':');
    int bits = 0;
    if (colon == 1 || colon == 2) bits = std::atoi(candidate.substr(0, colon).c_str());
    std::string gran = colon == std::string::npos ? std::string() : candidate.substr(colon + 1);
    if (bits < 2 || bits > 8 || !(gran == "channel" || (gran.size() > 1 && gran[0] == 'g')))
        tcomp::detail::throw_error<value_error>("candidate \"", candidate,
                                                "\": expected <bits 2..8>:<channel | g<size>>, e.g. 4:g32");
    if (gran[0] == 'g') {
        const long g = std::atol(gran.c_str() + 1);
        if (g < 1) tcomp::detail::throw_error<value_error>("candidate \"", candidate, "\": bad group size");
        if (k % g != 0) gran = "channel";
    }
    const std::string w = "w=int" + std::to_string(bits) + ":" + gran;
    return a8 ? w + " a=int8:token" : w;
}

struct t2i_sensitivity_options {
    std::vector<std::string> candidates = {"8:channel", "4:channel", "4:g32", "3:g32", "2:g32"};
    bool a8 = true;                          // INT8 activations per token (else float)
    t2i_prompt_set prompts = t2i_calibration_prompts(1);
    int steps = 4;                           // the short sampler (DDIM, the model's spacing, no guidance)
    int threads = 2;
    std::function<void(const std::string&)> progress;  // called per layer, may be empty
    /// Builds the candidates' layers itself: a calibration method (layer_methods.hpp: method_builder, GPTQ etc.
    /// on input statistics), in the sensitivity measurement and the share search alike. Empty: RTN.
    linear_build_fn build;
};

struct layer_sensitivity {
    std::string layer;
    sensitivity_group group = sensitivity_group::quality;
    index_t out = 0, in = 0;
    std::vector<std::string> policies;  // per candidate
    std::vector<std::int64_t> bits;     // stored bits of the weights (packed bytes x 8, bias excluded)
    std::vector<double> raw;            // the group's metric: 1 - SSIM (content) or NSR (quality)
    std::vector<double> sensitivity;    // raw / the group's mean
};

/// The short-sampler configuration sensitivity and the ratio search use.
inline diffusion_config sensitivity_config(diffusion_config c, int steps) {
    c.steps = steps, c.guidance_scale = 1.0, c.sampler = sampler_kind::ddim;
    return c;
}

/// Per layer and candidate: quantize that layer alone, generate the calibration prompts, compare with FP32.
inline std::vector<layer_sensitivity> measure_t2i_sensitivity(const diffusion_config& config,
                                                              const diffusion_weights& weights,
                                                              const t2i_sensitivity_options& o) {
    if (o.candidates.empty()) tcomp::detail::throw_error<value_error>("measure_t2i_sensitivity: no candidates");
    const diffusion_config c = sensitivity_config(config, o.steps);
    const diffusion_pipeline fp32(c, {}, weights);
    const t2i_images ref = generate_images(fp32, o.prompts, o.threads);
    const index_t planes = ref.count * ref.channels;
    std::vector<layer_sensitivity> out;
    for (const linear_spec& s : diffusion_pipeline::layer_specs(c)) {
        if (o.progress) o.progress(s.name);
        layer_sensitivity L;
        L.layer = s.name, L.group = group_of(s.name), L.out = s.out, L.in = s.in;
        for (const std::string& cand : o.candidates) {
            layer_policy_map m;
            m.build = o.build;
            const std::string policy = m.layers[s.name] = candidate_policy(cand, s.in, o.a8);
            if (std::find(L.policies.begin(), L.policies.end(), policy) != L.policies.end()) continue;  // same here
            const diffusion_pipeline q(c, m, weights);
            std::int64_t bits = 0;
            q.for_each_linear([&](const linear& l) {
                if (l.name == s.name)
                    bits = 8 * static_cast<std::int64_t>(l.stored_bytes() - l.bias().size() * sizeof(float));
            });
            const t2i_images im = generate_images(q, o.prompts, o.threads);
            double raw = 0.0;
            if (L.group == sensitivity_group::content) {
                raw = 1.0 - metrics::ssim(ref.pixels, im.pixels, planes, ref.height, ref.width, 2.0);
            } else {
                const double sqnr = metrics::sqnr_db(ref.pixels, im.pixels);
                raw = std::isinf(sqnr) ? 0.0 : std::pow(10.0, -sqnr / 10.0);
            }
            L.policies.push_back(policy), L.bits.push_back(bits), L.raw.push_back(std::max(raw, 0.0));
        }
        out.push_back(std::move(L));
    }
    // Normalise each group by its mean raw value (over layers and candidates).
    for (sensitivity_group g : {sensitivity_group::content, sensitivity_group::quality}) {
        double sum = 0.0;
        std::size_t n = 0;
        for (const layer_sensitivity& L : out)
            if (L.group == g) sum += std::accumulate(L.raw.begin(), L.raw.end(), 0.0), n += L.raw.size();
        const double mean = n > 0 && sum > 0.0 ? sum / static_cast<double>(n) : 1.0;
        for (layer_sensitivity& L : out)
            if (L.group == g) {
                L.sensitivity.clear();
                for (double r : L.raw) L.sensitivity.push_back(r / mean);
            }
    }
    return out;
}

struct t2i_allocation {
    std::map<std::string, std::string> policies;  // layer -> policy
    double average_bits = 0.0;                     // stored weight bits / weights
    double content_share = 0.0;                    // the share of the bit budget the content group got
    double calibration_score = 0.0;                // 1 - SSIM on the calibration prompts (lower is better)
    bool exact = true;                             // both knapsacks solved exactly
};

/// The allocation for an average of `bits` weight bits: for each content share in `shares`, the two groups'
/// knapsacks; the recipe that scores best on the calibration prompts. The sensitivity table must list exactly
/// the pipeline's layers (else a named error).
inline t2i_allocation allocate_t2i(const diffusion_config& config, const diffusion_weights& weights,
                                   const std::vector<layer_sensitivity>& table, double bits,
                                   const t2i_sensitivity_options& o,
                                   std::vector<double> shares = {0.3, 0.4, 0.5, 0.6, 0.7}) {
    const std::vector<linear_spec> specs = diffusion_pipeline::layer_specs(config);
    if (table.size() != specs.size())
        tcomp::detail::throw_error<error>("allocate_t2i: the sensitivity table has ", table.size(),
                                          " layers, the model ", specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i)
        if (table[i].layer != specs[i].name || table[i].out != specs[i].out || table[i].in != specs[i].in ||
            table[i].policies.empty() || table[i].policies.size() != table[i].sensitivity.size() ||
            table[i].policies.size() != table[i].bits.size())
            tcomp::detail::throw_error<error>("allocate_t2i: sensitivity table row ", i, " (", table[i].layer,
                                              ") does not match the model's layer ", specs[i].name, " (", specs[i].out,
                                              " x ", specs[i].in, ")");
    if (!(bits > 0.0) || !std::isfinite(bits))
        tcomp::detail::throw_error<value_error>("allocate_t2i: budget ", bits, " bits per weight");
    std::int64_t elements = 0, cheapest = 0, dearest = 0;
    for (const layer_sensitivity& L : table) {
        elements += L.out * L.in;
        cheapest += *std::min_element(L.bits.begin(), L.bits.end());
        dearest += *std::max_element(L.bits.begin(), L.bits.end());
    }
    const auto total_budget = static_cast<std::int64_t>(std::floor(bits * static_cast<double>(elements)));
    const double lo = static_cast<double>(cheapest) / static_cast<double>(elements),
                 hi = static_cast<double>(dearest) / static_cast<double>(elements);
    if (total_budget < cheapest)
        tcomp::detail::throw_error<error>("allocate_t2i: ", bits, " bits per weight is below the cheapest assignment (",
                                          lo, "); the budget must lie in [", lo, ", ", hi, "]");
    if (bits > hi)
        tcomp::detail::throw_error<error>("allocate_t2i: ", bits, " bits per weight is above the dearest assignment (",
                                          hi, "): it constrains nothing; the budget must lie in [", lo, ", ", hi, "]");
    const diffusion_config c = sensitivity_config(config, o.steps);
    const diffusion_pipeline fp32(c, {}, weights);
    const t2i_images ref = generate_images(fp32, o.prompts, o.threads);
    t2i_allocation best;
    best.calibration_score = std::numeric_limits<double>::infinity();
    std::string last_error;
    for (double share : shares) {
        std::vector<allocation_layer> groups[2];
        std::vector<std::size_t> index[2];
        for (std::size_t i = 0; i < table.size(); ++i) {
            const int g = table[i].group == sensitivity_group::content ? 0 : 1;
            allocation_layer a;
            a.name = table[i].layer;
            for (std::size_t k = 0; k < table[i].policies.size(); ++k)
                a.candidates.push_back({table[i].policies[k], table[i].bits[k], table[i].sensitivity[k]});
            groups[g].push_back(std::move(a)), index[g].push_back(i);
        }
        const auto content_budget = static_cast<std::int64_t>(std::floor(share * static_cast<double>(total_budget)));
        const std::int64_t budgets[2] = {content_budget, total_budget - content_budget};
        t2i_allocation t;
        t.content_share = share;
        std::int64_t used = 0;
        bool ok = true;
        for (int g = 0; g < 2 && ok; ++g) {
            if (groups[g].empty()) continue;
            const auto [glo, ghi] = allocation_cost_range(groups[g]);
            const std::int64_t b = std::min(budgets[g], ghi);  // more than the dearest: the dearest
            if (b < glo) {
                ok = false;
                last_error = std::string(to_string(g == 0 ? sensitivity_group::content : sensitivity_group::quality)) +
                             " group: its share " + std::to_string(budgets[g]) + " is below its cheapest " +
                             std::to_string(glo);
                break;
            }
            const allocation_result r = allocate_bits(groups[g], b);
            t.exact = t.exact && r.exact;
            used += r.cost;
            for (std::size_t j = 0; j < r.choice.size(); ++j)
                t.policies[groups[g][j].name] = groups[g][j].candidates[r.choice[j]].policy;
        }
        if (!ok) continue;
        t.average_bits = static_cast<double>(used) / static_cast<double>(elements);
        layer_policy_map m;
        m.build = o.build;
        for (const auto& [layer, policy] : t.policies) m.layers[layer] = policy;
        const diffusion_pipeline q(c, m, weights);
        const t2i_images im = generate_images(q, o.prompts, o.threads);
        t.calibration_score = 1.0 - metrics::ssim(ref.pixels, im.pixels, ref.count * ref.channels, ref.height,
                                                  ref.width, 2.0);
        if (t.calibration_score < best.calibration_score) best = std::move(t);
    }
    if (best.policies.empty())
        tcomp::detail::throw_error<error>("allocate_t2i: no content share gives both groups a feasible budget at ",
                                          bits, " bits per weight (", last_error, ")");
    return best;
}

}  // namespace tcomp::model
