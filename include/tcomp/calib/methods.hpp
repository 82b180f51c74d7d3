// The calibration methods by name, for recipes and tools: one table row per method (its stable name, what it
// needs of the statistics, what it does), and apply() from (float weights, statistics, descriptor) to a compressed
// tensor. The names are part of recipes and command lines: they will not change.
//
//   rtn          round to nearest (no statistics; static activation scales from them when the descriptor has some)
//   imatrix      importance-weighted scale search (mean x^2)
//   gptq         GPTQ, act-order on importance-searched static scales (the best variant measured here)
//   awq          AWQ: migration strength on the Hessian output error, then the clip search
//   awq+gptq     AWQ's smoothing, then GPTQ on the smoothed weights and statistics
//   smoothquant  SmoothQuant: strength searched on the row sample with the descriptor's activation quantization
//   sparsegpt    SparseGPT N:M masks with weight update (joint quantization)
//   wanda        Wanda N:M masks (|W| x ||X||), no update
//
// Every method calibrates static activation scales (the descriptor's quantizer on the layer's smoothed inputs)
// when the descriptor has them. A method that cannot take a descriptor is a named error, never a silent RTN.
#pragma once

#include "tcomp/calib/activation_scales.hpp"
#include "tcomp/calib/awq.hpp"
#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/imatrix.hpp"
#include "tcomp/calib/method_names.hpp"
#include "tcomp/calib/smoothquant.hpp"
#include "tcomp/calib/sparsegpt.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/quant/compressed_tensor.hpp"

namespace tcomp::calib {

/// W[N x K] compressed under d by method m with the statistics of the layer's input (nullptr: none, rtn only).
inline compressed_tensor apply(method m, matrix_view<const float> w, const input_statistics* stats, const descriptor& d) {
    const method_info& mi = info(m);
    if (stats == nullptr) {
        if (mi.needs_statistics)
            tcomp::detail::throw_error<value_error>(mi.name, " needs calibration statistics of the layer's input");
        compressed_tensor t = compress(d, w);
        if (t.needs_calibration())
            tcomp::detail::throw_error<value_error>(spell(d), " has static activations: calibration statistics are "
                                                    "needed for their scales");
        return t;
    }
    compressed_tensor t;
    switch (m) {
        case method::rtn: t = compress(d, w); break;
        case method::imatrix: t = importance_quantize(w, stats->mean_square(), d); break;
        case method::gptq: {
            const scale_table scales = importance_scales(w, stats->mean_square(), d);
            t = gptq(w, *stats, d, gptq_options{.act_order = true, .scales = &scales});
            break;
        }
        case method::awq: t = awq(w, *stats, d); break;
        case method::awq_gptq: t = awq(w, *stats, d, awq_options{.gptq = true}); break;
        case method::smoothquant: t = smoothquant(w, *stats, d); break;
        case method::sparsegpt: t = sparsegpt(w, *stats, d); break;
        case method::wanda: t = wanda(w, *stats, d); break;
    }
    return with_static_activations(std::move(t), *stats);
}

}  // namespace tcomp::calib
