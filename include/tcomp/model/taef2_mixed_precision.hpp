// Mixed precision for the TAEF2 decoder (the MixDQ recipe of t2i_mixed_precision.hpp on an image decoder): every
// conv quantized alone to each candidate, the calibration latents decoded, the noise-to-signal ratio of the image
// against FP32's (10^(-SQNR/10)) as its sensitivity; one multiple-choice knapsack (bit_allocation.hpp) over the
// convs under a budget of stored bits per weight. A decoder has one output metric, so one group (no content /
// quality split). Candidates are built by a calibration method when the options carry a conv builder
// (layer_methods.hpp: method_conv_builder), as the final recipe will be.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/metrics/signal.hpp"
#include "tcomp/model/bit_allocation.hpp"
#include "tcomp/model/t2i_mixed_precision.hpp"
#include "tcomp/model/taef2_decoder.hpp"

namespace tcomp::model {

struct taef2_sensitivity_options {
    std::vector<std::string> candidates = {"8:channel", "4:channel", "4:g32", "3:g32", "2:g32"};
    bool a8 = true;  // INT8 activations per token (else float)
    /// Makes the conv builder for a policy map (the candidates' method, e.g. method_conv_builder on statistics);
    /// empty: RTN. Called once per decoder built, with the map that decoder is built from.
    std::function<taef2_conv_builder(const taef2_policy_map&)> builder;
    std::function<void(const std::string&)> progress;  // called per conv, may be empty
};

/// The calibration latents (batch x C x H x W) a sensitivity measurement decodes.
struct taef2_latents {
    std::span<const float> values;
    index_t batch = 0, height = 0, width = 0;
};

/// One row per conv (in the decoder's order): candidates' policies, stored weight bits, NSR against FP32.
inline std::vector<layer_sensitivity> measure_taef2_sensitivity(const taef2_config& config, const taef2_weights& weights,
                                                                const taef2_latents& latents,
                                                                const taef2_sensitivity_options& o) {
    if (o.candidates.empty()) tcomp::detail::throw_error<value_error>("measure_taef2_sensitivity: no candidates");
    auto build = [&](const taef2_policy_map& m) {
        return taef2_decoder(config, weights, m, "fp32", "taef2 weights", o.builder ? o.builder(m) : taef2_conv_builder{});
    };
    const taef2_decoder fp32 = build({});
    const std::vector<float> ref = fp32.decode(latents.values, latents.batch, latents.height, latents.width);
    std::vector<layer_sensitivity> out;
    for (const conv2d* c : fp32.convs()) {
        if (o.progress) o.progress(c->name);
        layer_sensitivity L;
        L.layer = c->name, L.group = sensitivity_group::quality, L.out = c->out_channels(), L.in = c->k_dim();
        for (const std::string& cand : o.candidates) {
            taef2_policy_map m;
            const std::string policy = m[c->name] = candidate_policy(cand, c->k_dim(), o.a8);
            if (std::find(L.policies.begin(), L.policies.end(), policy) != L.policies.end()) continue;
            const taef2_decoder q = build(m);
            std::int64_t bits = 0;
            for (const conv2d* qc : q.convs())
                if (qc->name == c->name)
                    bits = 8 * static_cast<std::int64_t>(qc->gemm().stored_bytes() - qc->gemm().bias().size() * sizeof(float));
            const std::vector<float> y = q.decode(latents.values, latents.batch, latents.height, latents.width);
            const double sqnr = metrics::sqnr_db(ref, y);
            L.policies.push_back(policy), L.bits.push_back(bits);
            L.raw.push_back(std::isinf(sqnr) ? 0.0 : std::pow(10.0, -sqnr / 10.0));
        }
        out.push_back(std::move(L));
    }
    double sum = 0.0;
    std::size_t n = 0;
    for (const layer_sensitivity& L : out)
        for (double r : L.raw) sum += r, ++n;
    const double mean = n > 0 && sum > 0.0 ? sum / static_cast<double>(n) : 1.0;
    for (layer_sensitivity& L : out)
        for (double r : L.raw) L.sensitivity.push_back(r / mean);
    return out;
}

struct taef2_allocation {
    std::map<std::string, std::string> policies;  // conv -> policy
    double average_bits = 0.0;                     // stored weight bits / weights
    double sensitivity = 0.0;                      // the summed normalised sensitivity of the choice
    bool exact = true;                             // the knapsack solved exactly
};

/// The policy per conv minimising the summed sensitivity under `bits` stored bits per weight (named errors for a
/// budget outside [cheapest, dearest] and for a table that does not list the decoder's convs).
inline taef2_allocation allocate_taef2(const std::vector<layer_sensitivity>& table, const taef2_decoder& decoder,
                                     double bits) {
    const std::vector<const conv2d*>& convs = decoder.convs();
    if (table.size() != convs.size())
        tcomp::detail::throw_error<error>("allocate_taef2: the sensitivity table has ", table.size(), " convs, the decoder ",
                                          convs.size());
    std::vector<allocation_layer> layers;
    std::int64_t elements = 0;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const layer_sensitivity& L = table[i];
        if (L.layer != convs[i]->name || L.in != convs[i]->k_dim() || L.out != convs[i]->out_channels() ||
            L.policies.empty() || L.bits.size() != L.policies.size() || L.sensitivity.size() != L.policies.size())
            tcomp::detail::throw_error<error>("allocate_taef2: sensitivity table row ", i, " (", L.layer,
                                              ") does not match the decoder's conv ", convs[i]->name);
        allocation_layer a;
        a.name = L.layer;
        for (std::size_t k = 0; k < L.policies.size(); ++k) a.candidates.push_back({L.policies[k], L.bits[k], L.sensitivity[k]});
        layers.push_back(std::move(a));
        elements += L.out * L.in;
    }
    if (!(bits > 0.0) || !std::isfinite(bits))
        tcomp::detail::throw_error<value_error>("allocate_taef2: budget ", bits, " bits per weight");
    const auto [lo, hi] = allocation_cost_range(layers);
    const auto budget = static_cast<std::int64_t>(std::floor(bits * static_cast<double>(elements)));
    if (budget < lo || budget > hi)
        tcomp::detail::throw_error<error>("allocate_taef2: ", bits, " bits per weight is outside [",
                                          static_cast<double>(lo) / static_cast<double>(elements), ", ",
                                          static_cast<double>(hi) / static_cast<double>(elements),
                                          "], the cheapest and the dearest assignment");
    const allocation_result r = allocate_bits(layers, budget);
    taef2_allocation out;
    out.exact = r.exact;
    out.average_bits = static_cast<double>(r.cost) / static_cast<double>(elements);
    out.sensitivity = r.sensitivity;
    for (std::size_t i = 0; i < layers.size(); ++i) out.policies[layers[i].name] = layers[i].candidates[r.choice[i]].policy;
    return out;
}

}  // namespace tcomp::model
