// A recipe's calibration methods, layer by layer: one layer's float weights through the method its recipe rule
// names (calib::apply with the layer's input statistics). tcomp-quantize writes the results to a file; models
// built in memory take them through a linear_build_fn (the text-to-image pipeline: tcomp-eval --stats) or a
// taef2_conv_builder (the TAEF2 decoder's convs, on the statistics of their im2col rows), so every method reaches
// every model the same way.
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
#include "tcomp/model/conv2d.hpp"
#include "tcomp/model/recipe.hpp"
#include "tcomp/model/taef2_decoder.hpp"
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

/// A taef2_conv_builder running each conv's recipe method (compress_layer) on `stats`, the statistics of its im2col
/// rows (model::collect_input_statistics around decode()): the conv's GEMM weights are taken in `order`, the
/// decoder's own. A conv's policy is policies[layer], else `default_policy`; fp32 convs and RTN convs without
/// static activation scales are left to conv2d::make. Keeps references to `r`, `policies` and `stats`.
inline taef2_conv_builder method_conv_builder(const recipe& r, const taef2_policy_map& policies,
                                              std::string default_policy, const layer_statistics& stats,
                                              std::string stats_origin,
                                              conv_weight_order order = taef2_decoder::default_weight_order) {
    return [&r, &policies, &stats, fallback = std::move(default_policy), origin = std::move(stats_origin), order](
               const std::string& layer, std::span<const float> w, index_t out, index_t in, index_t kernel,
               index_t padding, std::span<const float> bias) -> std::optional<conv2d> {
        const auto it = policies.find(layer);
        const std::string& policy = it == policies.end() ? fallback : it->second;
        if (policy == "fp32") return std::nullopt;
        const calib::method m = calib::parse_method(r.method_for(layer));
        const std::optional<descriptor> d = resolve_policy(policy, "layer " + layer);
        if (m == calib::method::rtn && !(d->activations && d->activations->calibrated)) return std::nullopt;
        const dense_matrix<float> wk = conv2d::im2col_weights(w, out, in, kernel, order);
        return conv2d::from_compressed(compress_layer(layer, policy, wk.view(), r, stats, origin), in, kernel, padding,
                                       bias, layer, order);
    };
}

}  // namespace tcomp::model
