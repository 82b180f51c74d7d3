// A recipe's calibration methods, layer by layer: one layer's float weights through the method its recipe rule
// names (calib::apply with the layer's input statistics). tcomp-quantize writes the results to a file; models
// built in memory take them through a linear_build_fn (the text-to-image pipeline: tcomp-eval --stats), so every
// method reaches every model the same way.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "tcomp/calib/method_names.hpp"
#include "tcomp/calib/methods.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/recipe.hpp"
#include "tcomp/model/text_encoder.hpp"
#include "tcomp/quant/policy_names.hpp"

namespace tcomp::model {

/// Layer `layer` (policy `policy`, not "fp32") through its recipe method. Its statistics come from `stats`; a
/// layer without any, when the method needs them or the policy has static activation scales, is a tcomp::error
/// naming the layer, its policy, the method and `stats_origin` (empty: "no statistics given"), as is any error
/// of the method itself.
inline compressed_tensor compress_layer(const std::string& layer, const std::string& policy, matrix_view<const float> w,
                                        const recipe& r, const layer_statistics& stats, std::string_view stats_origin) {
    const calib::method m = calib::parse_method(r.method_for(layer));
    const std::optional<descriptor> d = resolve_policy(policy, "layer " + layer);
    if (!d) tcomp::detail::throw_error<error>("compress_layer: layer ", layer, " has policy fp32 (nothing to compress)");
    const auto it = stats.find(layer);
    if (it == stats.end() && (calib::info(m).needs_statistics || (d->activations && d->activations->calibrated)))
        tcomp::detail::throw_error<error>("layer ", layer, " (", policy, ", method ", calib::info(m).name, "): ",
                                          stats_origin.empty() ? std::string("no statistics given")
                                                               : std::string(stats_origin) + " has no statistics for it");
    try {
        return calib::apply(m, w, it == stats.end() ? nullptr : &it->second, *d);
    } catch (const error& e) {
        tcomp::detail::throw_error<error>("layer ", layer, " (", policy, ", method ", calib::info(m).name, "): ", e.what());
    }
}

/// A linear_build_fn running each layer's recipe method (compress_layer) on `stats`. Layers in fp32, and RTN
/// layers without static activation scales, are left to linear::make (which computes what RTN does). The
/// function keeps references to `r` and `stats`: they must outlive the model's construction (not the model).
inline linear_build_fn method_builder(const recipe& r, const layer_statistics& stats, std::string stats_origin) {
    return [&r, &stats, origin = std::move(stats_origin)](const std::string& layer, const std::string& policy,
                                                           matrix_view<const float> w,
                                                           std::span<const float> bias) -> std::optional<linear> {
        if (policy == "fp32") return std::nullopt;
        const calib::method m = calib::parse_method(r.method_for(layer));
        const std::optional<descriptor> d = resolve_policy(policy, "layer " + layer);
        if (m == calib::method::rtn && !(d->activations && d->activations->calibrated)) return std::nullopt;
        return linear::from_compressed(compress_layer(layer, policy, w, r, stats, origin), bias, layer);
    };
}

}  // namespace tcomp::model
