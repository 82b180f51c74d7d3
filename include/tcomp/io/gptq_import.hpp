// GPTQ / AWQ 4-bit checkpoints -> tcomp's 4-bit per-group asymmetric weights (uint4, zero points, float
// activations: the w4a16 policies), without re-quantizing: codes, scales and zero points are carried over.
//
// Accepted layout (AutoGPTQ / GPTQ-for-LLaMa "gptq" format, also used by AWQ exports in GPTQ layout), for a
// linear layer y = x W^T with W[N x K]:
//   <layer>.qweight  I32 [K/8, N]    8 codes per int32 packed along K, low nibble first: code(k, n) =
//                                     (qweight[k/8, n] >> 4*(k%8)) & 15
//   <layer>.qzeros   I32 [K/G, N/8]  8 stored zeros per int32 packed along N, low nibble first
//   <layer>.scales   F16 [K/G, N]    (F32/BF16 accepted too)
//   <layer>.g_idx    I32 [K]         optional; only the trivial g_idx[k] = k / G (no act-order) is accepted
//   <layer>.bias     [N]             optional
// W(n, k) = scale(g, n) * (code(k, n) - z(g, n)) with g = k / G, and z from the stored zero by the convention
// the caller names (never guessed):
//   gptq_zero_convention::minus_one  stored = z - 1 (GPTQ's classic checkpoints: z = stored + 1). A z of 16
//                                    does not fit uint4 and is an error, never wrapped.
//   gptq_zero_convention::plain      stored = z (AWQ; GPTQ "v2" checkpoints).
// Group sizes: 128 -> "w4a16", 32 -> "w4a16_g32", one group over all of K (group_size -1) -> "w4a16_pc". Any
// other G is an error listing these; tcomp never regroups silently. AutoAWQ's own GEMM layout (qweight
// [K, N/8], packed along N, interleaved) is a different format and is rejected by the shape checks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/packed_storage.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"

namespace tcomp::io {

enum class gptq_zero_convention {
    minus_one,  // stored zero = z - 1 (classic GPTQ)
    plain,      // stored zero = z (AWQ, GPTQ v2)
};

struct gptq_layer {
    std::string name;     // the layer prefix, e.g. "model.layers.0.mlp.down_proj"
    std::string policy;   // "w4a16", "w4a16_g32", "w4a16_pc", or "w=uint4:asym:g<G>" for other group sizes
    index_t group_size = 0;
    packed_buffers weights;    // N x K in tcomp's canonical packed layout of `policy`
    std::vector<float> bias;   // empty when the checkpoint has none
};

namespace detail {

inline std::uint32_t gptq_word(const tensor_view& t, std::int64_t row, std::int64_t col) {
    const auto i = static_cast<std::size_t>(row * t.shape[1] + col);
    return tcomp::detail::load_le<std::uint32_t>(t.data.data() + 4 * i);
}

/// The policy for group size g of a K-column matrix: the alias where one exists ("w4a16" for 128,
/// "w4a16_g32", "w4a16_pc" for one group per row), else the descriptor "w=uint4:asym:g<G>" (any G: a
/// descriptor names every group size, so no checkpoint is refused or regrouped for its G).
inline std::string gptq_policy_for(index_t g, index_t k) {
    if (g == k) return "w4a16_pc";
    if (g == 128) return "w4a16";
    if (g == 32) return "w4a16_g32";
    return "w=uint4:asym:g" + std::to_string(g);
}

}  // namespace detail

/// Every layer prefix of `files` that has a "<prefix>.qweight" tensor, in name order.
template <class Files>
std::vector<std::string> gptq_layer_names(const Files& files) {
    std::vector<std::string> out;
    constexpr std::string_view suffix = ".qweight";
    for (const tensor_view& t : files.tensors())
        if (t.name.size() > suffix.size() && std::string_view(t.name).ends_with(suffix))
            out.push_back(t.name.substr(0, t.name.size() - suffix.size()));
    std::sort(out.begin(), out.end());
    return out;
}

/// Converts one GPTQ layer. `files`: a safetensors_file or safetensors_set. Throws file_error naming the layer
/// and tensor for a missing tensor, a wrong dtype or shape, an act-order g_idx, a zero point outside uint4, or
/// a non-finite scale.
template <class Files>
gptq_layer import_gptq_layer(const Files& files, std::string_view prefix, gptq_zero_convention convention) {
    const std::string p(prefix);
    const std::string where = "gptq import: " + p;
    auto fail = [&](auto&&... parts) { tcomp::detail::throw_error<file_error>(where, ": ", parts...); };
    auto need = [&](const std::string& suffix) -> const tensor_view& {
        if (!files.contains(p + suffix)) fail("tensor ", p + suffix, " is missing");
        return files.tensor(p + suffix);
    };
    const tensor_view& qweight = need(".qweight");
    const tensor_view& qzeros = need(".qzeros");
    const tensor_view& scales = need(".scales");
    auto require_2d = [&](const tensor_view& t, dtype type) {
        if (t.type != type || t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0)
            fail("tensor ", t.name, " is ", to_string(t.type), " ", tcomp::detail::st_shape_string(t.shape),
                 ", expected a non-empty 2-D ", to_string(type), " tensor");
    };
    require_2d(qweight, dtype::i32);
    require_2d(qzeros, dtype::i32);
    if (scales.type != dtype::f16 && scales.type != dtype::f32 && scales.type != dtype::bf16)
        fail("tensor ", scales.name, " is ", to_string(scales.type), ", expected F16 (or F32, BF16)");
    if (scales.shape.size() != 2 || scales.shape[0] <= 0)
        fail("tensor ", scales.name, " has shape ", tcomp::detail::st_shape_string(scales.shape),
             ", expected [K/G, N]");
    const index_t k = qweight.shape[0] * 8, n = qweight.shape[1], groups = scales.shape[0];
    if (scales.shape[1] != n)
        fail("tensor ", scales.name, " has ", scales.shape[1], " columns but ", qweight.name, " implies N = ", n,
             " (", qweight.name, " must be [K/8, N], packed along K; AutoAWQ's GEMM layout [K, N/8] is not "
             "supported)");
    if (k % groups != 0) fail("K = ", k, " (from ", qweight.name, ") is not a multiple of the ", groups,
                              " groups of ", scales.name);
    const index_t g = k / groups;
    const std::string policy = detail::gptq_policy_for(g, k);
    if (n % 8 != 0) fail("N = ", n, " is not a multiple of 8, so ", qzeros.name, " cannot pack 8 zeros per int32");
    if (qzeros.shape != std::vector<std::int64_t>{groups, n / 8})
        fail("tensor ", qzeros.name, " has shape ", tcomp::detail::st_shape_string(qzeros.shape), ", expected [",
             groups, ", ", n / 8, "] (K/G, N/8)");
    if (files.contains(p + ".g_idx")) {
        const tensor_view& gi = files.tensor(p + ".g_idx");
        if (gi.type != dtype::i32 || gi.shape != std::vector<std::int64_t>{k})
            fail("tensor ", gi.name, " is ", to_string(gi.type), " ", tcomp::detail::st_shape_string(gi.shape),
                 ", expected I32 [", k, "]");
        for (index_t i = 0; i < k; ++i) {
            const auto v = static_cast<std::int32_t>(tcomp::detail::load_le<std::uint32_t>(gi.data.data() + 4 * i));
            if (v != i / g)
                fail("tensor ", gi.name, ": g_idx[", i, "] = ", v, ", expected ", i / g,
                     ": act-order (desc_act) checkpoints permute K and are not supported; export without act-order");
        }
    }

    gptq_layer out;
    out.name = p;
    out.policy = policy;
    out.group_size = g;
    packed_buffers& w = out.weights;
    w.layout = tcomp::detail::cm_expected_layout(policy, n, k, where.c_str());
    const packed_layout& l = w.layout;
    const std::size_t row_bytes = l.row_code_bytes();
    w.codes.assign(static_cast<std::size_t>(n) * row_bytes, 0);
    for (index_t kk = 0; kk < k; ++kk)
        for (index_t c = 0; c < n; ++c) {
            const std::uint32_t code = (detail::gptq_word(qweight, kk / 8, c) >> (4 * (kk % 8))) & 0xFu;
            write_packed(w.codes.data() + static_cast<std::size_t>(c) * row_bytes, kk, 4, code);
        }
    const std::vector<float> s = to_float(scales);
    w.scales.assign(l.scale_bytes(), 0);
    w.zero_points.assign(l.zero_point_bytes(), 0);
    for (index_t gr = 0; gr < groups; ++gr)
        for (index_t c = 0; c < n; ++c) {
            const float scale = s[static_cast<std::size_t>(gr * n + c)];
            if (!std::isfinite(scale)) fail("tensor ", scales.name, ": scale [", gr, ", ", c, "] is not finite");
            const std::uint32_t stored = (detail::gptq_word(qzeros, gr, c / 8) >> (4 * (c % 8))) & 0xFu;
            const std::uint32_t z = convention == gptq_zero_convention::minus_one ? stored + 1 : stored;
            if (z > 15)
                fail("tensor ", qzeros.name, ": group ", gr, ", column ", c, " stores ", stored,
                     ", so z = stored + 1 = 16 does not fit uint4 (is the checkpoint's convention plain, z = stored?)");
            const index_t cell = c * groups + gr;  // tcomp: one row of cells per output channel
            write_packed(w.scales.data(), cell, 32, tcomp::detail::float_bits(scale));
            write_packed(w.zero_points.data(), cell, 4, z);
        }
    w.view().validate(where.c_str());
    if (files.contains(p + ".bias")) {
        const tensor_view& b = files.tensor(p + ".bias");
        if (b.shape != std::vector<std::int64_t>{n} || !tcomp::detail::is_float_dtype(b.type))
            fail("tensor ", b.name, " is ", to_string(b.type), " ", tcomp::detail::st_shape_string(b.shape),
                 ", expected a float [", n, "]");
        out.bias = to_float(b);
    }
    return out;
}

}  // namespace tcomp::io
