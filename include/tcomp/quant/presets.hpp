// Named compositions for the common schemes of the literature, so users start from a known recipe.
// Weights are W[N x K]; activations X[M x K].
#pragma once

#include "tcomp/format/binary.hpp"
#include "tcomp/format/fixed_point.hpp"
#include "tcomp/format/integer.hpp"
#include "tcomp/format/ternary.hpp"
#include "tcomp/quant/policy.hpp"

namespace tcomp::presets {

// --- weight quantizers
/// INT8 per output channel, symmetric (SmoothQuant / ViDiT-Q W8).
using int8_per_channel = quantizer<int_format<8>, symmetric, per_channel>;
/// INT4 per group of 128 along K, symmetric (W4 of W4A8).
using int4_group128 = quantizer<int_format<4>, symmetric, per_group<128>>;
/// UINT4 per group of 128 with zero points (the GPTQ/AWQ checkpoint convention).
using uint4_group128_asymmetric = quantizer<uint_format<4>, asymmetric, per_group<128>>;
/// UINT2 per group of 64 with zero points (2-bit weight-only).
using uint2_group64_asymmetric = quantizer<uint_format<2>, asymmetric, per_group<64>>;
/// Binary weights with a per-channel mean-|w| scale (XNOR-Net).
using binary_per_channel = quantizer<binary_format, symmetric, per_channel>;
/// Ternary weights per channel, scale chosen by clip search.
using ternary_per_channel = quantizer<ternary_format, symmetric, per_channel, mse_clip_search<20>>;

// --- activation quantizers
/// INT8 per token, dynamic, symmetric.
using int8_per_token = quantizer<int_format<8>, symmetric, per_token, dynamic>;
/// UINT8 per token with zero points, dynamic.
using uint8_per_token_asymmetric = quantizer<uint_format<8>, asymmetric, per_token, dynamic>;
/// INT8 per tensor, calibrated once (static).
using int8_per_tensor_static = quantizer<int_format<8>, symmetric, per_tensor, calibrated>;
/// Binary activations per token (sign with a mean-|x| scale).
using binary_per_token = quantizer<binary_format, symmetric, per_token, dynamic>;

// --- policies (weights x activations x sparsity)
using w8a8 = policy<int8_per_channel, int8_per_token>;
using w8a8_static = policy<int8_per_channel, int8_per_tensor_static>;
using w4a8 = policy<int4_group128, int8_per_token>;
using w4a16 = policy<uint4_group128_asymmetric, float_activations>;
using w8a16 = policy<int8_per_channel, float_activations>;
using w2a16 = policy<uint2_group64_asymmetric, float_activations>;
using w1a1 = policy<binary_per_channel, binary_per_token>;
using w8a8_2of4 = policy<int8_per_channel, int8_per_token, n_m<2, 4>>;
using w4a8_2of4 = policy<int4_group128, int8_per_token, n_m<2, 4>>;

}  // namespace tcomp::presets
