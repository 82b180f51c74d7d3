// Calibration statistics of a whole model in one pass: `feed` runs calibration data through any model (LLaMA,
// TAEF2, DiT and text encoder, MLP) while an input_tap hands every model::linear's input to that layer's
// calib::input_statistics. Memory is bounded by the layers' widths (K, plus K x K for the Hessians), not by the
// amount of calibration data.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "tcomp/calib/statistics.hpp"
#include "tcomp/model/input_tap.hpp"

namespace tcomp::model {

/// Layer name -> statistics of its inputs.
using layer_statistics = std::map<std::string, calib::input_statistics, std::less<>>;

struct statistics_options {
    /// Also the Hessians sum x^T x (GPTQ needs them; importance and SmoothQuant statistics do not).
    bool hessian = true;
    /// Rows kept per layer as a uniform sample (SmoothQuant's and the static activation scales' searches).
    index_t sample_rows = 256;
    /// The Hessians sum every s-th row of each layer's input (see input_statistics): convolutions have many,
    /// strongly correlated im2col rows.
    index_t hessian_stride = 1;
};

/// Runs feed() under a tap; returns the statistics of every layer it reached. A layer seen with two widths (two
/// layers sharing a name) is a shape_error naming it.
inline layer_statistics collect_input_statistics(const std::function<void()>& feed, const statistics_options& options = {}) {
    layer_statistics out;
    input_tap tap([&](const std::string& layer, matrix_view<const float> x) {
        auto it = out.find(layer);
        if (it == out.end()) it = out.emplace(layer, calib::input_statistics(x.cols(), options.hessian, options.sample_rows, options.hessian_stride)).first;
        if (it->second.channels() != x.cols())
            tcomp::detail::throw_error<shape_error>("collect_input_statistics: layer '", layer, "' was seen with ",
                                                    it->second.channels(), " and with ", x.cols(),
                                                    " input channels (two layers with one name?)");
        it->second.observe(x);
    });
    feed();
    return out;
}

}  // namespace tcomp::model
