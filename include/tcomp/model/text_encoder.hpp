// A small CLIP-style text encoder for the diffusion pipeline (diffusion_pipeline.hpp), with seeded weights (the
// stand-in) or trained ones (a name -> tensor map, e.g. ../shared/models/t2i_mnist through diffusion_checkpoint):
//
//   tokens   = [BOS, ids of the prompt..., EOS, PAD...]   (prompt_tokenizer: bytes or words; fixed context)
//   x        = token_embedding[token] + position_embedding[pos]
//   per layer (pre-LN):  x += o(causal_attention(q(n), k(n), v(n)))     n = LayerNorm_1(x)
//                        x += fc2(quick_gelu(fc1(LayerNorm_2(x))))
//   hidden   = LayerNorm_final(x)           (B x T x width: what the denoiser cross-attends to)
//   pooled   = hidden at the EOS position   (CLIP's pooled output: B x width)
//
// Every projection is a model::linear with its own policy. Attention is causal, so position 0 (always BOS) sees
// only itself: its output, and its keys and values in every layer, are the same for every prompt. CLIP's BOS
// row is a huge outlier (a few "massive" channels); MixDQ keeps it out of quantization by precomputing it.
// `bos_fp32` does that: the BOS row's keys/values per layer and its final output are computed once with the
// float weights and cached; the quantized layers then only ever see positions 1..T-1. The seeded stand-in
// reproduces the outlier by giving the BOS token embedding a few channels of magnitude `bos_outlier`
// (text_encoder_config), which the residual stream carries through every layer.
//
// Also here: the few tensor ops the DiT (dit.hpp) shares: LayerNorm, GELUs, multi-head attention, seeded tensors.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/core/random.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/prompt_tokenizer.hpp"
#include "tcomp/model/sampler.hpp"

namespace tcomp::model {

/// The policy name (policy_registry.hpp) for a linear layer, given its name; empty means "fp32" everywhere.
using layer_policy_fn = std::function<std::string(const std::string& layer_name)>;

/// Builds a linear itself (a calibration method's compressed weights: model/layer_methods.hpp), or returns
/// nullopt to leave it to linear::make with the chosen policy. Called with the layer's name, its chosen policy
/// and its float weight (out x in) and bias, while the model is being built only.
using linear_build_fn = std::function<std::optional<linear>(const std::string& layer, const std::string& policy,
                                                            matrix_view<const float> weight, std::span<const float> bias)>;

/// A linear layer of a seeded model: name and W's shape (out x in), listed before the model is built so a
/// recipe can be resolved against it.
struct linear_spec {
    std::string name;
    index_t out = 0, in = 0;
};

/// Float parameters by name ("<linear>.weight" out x in row-major, "<linear>.bias", "text.token_embedding", ...).
using parameter_map = std::map<std::string, std::vector<float>>;
/// The element count each parameter must have, by name.
using parameter_sizes = std::map<std::string, index_t>;

namespace detail {

/// FNV-1a of a name: gives every tensor its own random stream, so a tensor's values do not depend on the
/// order tensors are created in or on the policies chosen.
inline std::uint64_t name_hash(std::string_view s) {
    std::uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h;
}

/// n values mean + stddev * N(0, 1) from the stream (seed, name).
inline std::vector<float> seeded_tensor(std::uint64_t seed, std::string_view name, index_t n, float stddev,
                                        float mean = 0.0f) {
    const std::uint64_t stream = tcomp::detail::mix64(seed ^ name_hash(name));
    std::vector<float> v(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
        v[static_cast<std::size_t>(i)] = mean + stddev * standard_normal(stream, static_cast<std::uint64_t>(i));
    return v;
}

inline matrix_view<const float> const_rows(const std::vector<float>& v, index_t rows, index_t cols) {
    return {v.data(), rows, cols};
}
inline matrix_view<float> mutable_rows(std::vector<float>& v, index_t rows, index_t cols) {
    return {v.data(), rows, cols};
}

/// out = (x - mean) / sqrt(var + eps) * gamma + beta per row; gamma/beta empty: no affine (DiT's norms).
inline void layer_norm_rows(matrix_view<const float> x, std::span<const float> gamma, std::span<const float> beta,
                            double eps, matrix_view<float> out) {
    const index_t n = x.cols();
    for (index_t r = 0; r < x.rows(); ++r) {
        const float* xr = &x(r, 0);
        float* o = &out(r, 0);
        double mean = 0.0, var = 0.0;
        for (index_t i = 0; i < n; ++i) mean += xr[i];
        mean /= static_cast<double>(n);
        for (index_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        const double inv = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
        for (index_t i = 0; i < n; ++i) {
            const auto v = static_cast<float>((xr[i] - mean) * inv);
            o[i] = gamma.empty() ? v : v * gamma[static_cast<std::size_t>(i)] + beta[static_cast<std::size_t>(i)];
        }
    }
}

/// CLIP's activation: x * sigmoid(1.702 x).
inline float quick_gelu(float x) { return x / (1.0f + std::exp(-1.702f * x)); }
/// GELU, tanh approximation (DiT's MLP).
inline float gelu_tanh(float x) {
    constexpr float c = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}
inline float silu_of(float x) { return x / (1.0f + std::exp(-x)); }

/// Multi-head scaled dot-product attention: out[i, h] = softmax_j(q_i,h . k_j,h / sqrt(d)) v_j,h, where head h is
/// columns [h d, (h+1) d). Causal: query i sits at position q_pos0 + i and sees keys j <= q_pos0 + i.
inline void multi_head_attention(matrix_view<const float> q, matrix_view<const float> k, matrix_view<const float> v,
                                 index_t heads, bool causal, index_t q_pos0, matrix_view<float> out) {
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using strided = Eigen::Map<const row_major, 0, Eigen::OuterStride<>>;
    const index_t nq = q.rows(), nk = k.rows(), d = q.cols() / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    row_major s(nq, nk);
    for (index_t h = 0; h < heads; ++h) {
        strided Q(q.data() + h * d, nq, d, Eigen::OuterStride<>(q.row_stride()));
        strided K(k.data() + h * d, nk, d, Eigen::OuterStride<>(k.row_stride()));
        strided V(v.data() + h * d, nk, d, Eigen::OuterStride<>(v.row_stride()));
        s.noalias() = Q * K.transpose();
        for (index_t i = 0; i < nq; ++i) {
            const index_t visible = causal ? std::min(nk, q_pos0 + i + 1) : nk;
            float mx = -std::numeric_limits<float>::infinity();
            for (index_t j = 0; j < visible; ++j) mx = std::max(mx, s(i, j) * scale);
            float sum = 0.0f;
            for (index_t j = 0; j < visible; ++j) sum += s(i, j) = std::exp(s(i, j) * scale - mx);
            for (index_t j = 0; j < visible; ++j) s(i, j) /= sum;
            for (index_t j = visible; j < nk; ++j) s(i, j) = 0.0f;
        }
        Eigen::Map<row_major, 0, Eigen::OuterStride<>> O(out.data() + h * d, nq, d,
                                                         Eigen::OuterStride<>(out.row_stride()));
        O.noalias() = s * V;
    }
}

/// The parameters a model expects, checked against what it is given: every expected name present with its
/// element count, nothing else, every value finite. tcomp::error naming `origin` and the tensor.
inline void require_parameters(const parameter_map& given, const parameter_sizes& expected, const std::string& origin) {
    for (const auto& [name, size] : expected) {
        const auto it = given.find(name);
        if (it == given.end())
            tcomp::detail::throw_error<error>(origin, ": tensor ", name, " (", size, " values) is missing");
        if (static_cast<index_t>(it->second.size()) != size)
            tcomp::detail::throw_error<shape_error>(origin, ": tensor ", name, " has ", it->second.size(),
                                                    " values, the config implies ", size);
        for (std::size_t i = 0; i < it->second.size(); ++i)
            if (!std::isfinite(it->second[i]))
                tcomp::detail::throw_error<value_error>(origin, ": tensor ", name, " holds a non-finite value at ", i);
    }
    for (const auto& [name, v] : given)
        if (!expected.contains(name))
            tcomp::detail::throw_error<error>(origin, ": tensor ", name, " (", v.size(),
                                              " values) is not a parameter of this model (another config?)");
}

/// The element counts of the linears' "<name>.weight" (out x in) and "<name>.bias" (out), added to `sizes`.
inline void add_linear_sizes(const std::vector<linear_spec>& specs, parameter_sizes& sizes) {
    for (const linear_spec& s : specs) {
        sizes[s.name + ".weight"] = s.out * s.in;
        sizes[s.name + ".bias"] = s.out;
    }
}

/// A linear from parameters "<name>.weight" / "<name>.bias", with the policy `choose` names (fp32 when empty),
/// built by `build` when it takes the layer.
inline linear make_linear(const parameter_map& params, const linear_spec& spec, const layer_policy_fn& choose,
                          const linear_build_fn& build = {}) {
    const std::string policy = choose ? choose(spec.name) : std::string("fp32");
    const matrix_view<const float> w = const_rows(params.at(spec.name + ".weight"), spec.out, spec.in);
    const std::vector<float>& bias = params.at(spec.name + ".bias");
    if (build)
        if (std::optional<linear> built = build(spec.name, policy, w, bias)) return std::move(*built);
    return linear::make(policy, w, bias, spec.name);
}

}  // namespace detail

struct text_encoder_config {
    index_t width = 64, layers = 2, heads = 4, mlp_width = 256, context = 16;
    double norm_eps = 1e-5;
    /// Magnitude of the seeded BOS embedding's massive channels (CLIP's BOS outlier); 0 gives BOS an ordinary
    /// embedding.
    float bos_outlier = 40.0f;
    index_t bos_outlier_channels = 2;
    std::uint64_t seed = 0x5eedc11b;

    void validate() const {
        auto fail = [](auto&&... parts) { tcomp::detail::throw_error<value_error>("text_encoder_config: ", parts...); };
        if (width < 1 || layers < 1 || heads < 1 || mlp_width < 1)
            fail("width, layers, heads and mlp_width must be >= 1");
        if (width % heads != 0) fail("width ", width, " is not a multiple of heads ", heads);
        if (context < 2) fail("context ", context, " leaves no room for BOS and EOS");
        if (bos_outlier_channels < 0 || bos_outlier_channels > width)
            fail("bos_outlier_channels ", bos_outlier_channels, " is outside [0, width = ", width, "]");
        if (!(norm_eps > 0.0)) fail("norm_eps must be > 0");
        if (!std::isfinite(bos_outlier)) fail("bos_outlier is not finite");
    }
};

/// Text embeddings of a batch of prompts.
struct text_embeddings {
    index_t batch = 0, tokens = 0, width = 0;
    std::vector<float> hidden;  // batch x tokens x width
    std::vector<float> pooled;  // batch x width (the EOS row)
};

class text_encoder {
public:
    struct layer {
        std::vector<float> norm1_weight, norm1_bias, norm2_weight, norm2_bias;
        linear q, k, v, o, fc1, fc2;
    };

    /// Seeded weights (the stand-in, byte tokens). `choose` gives each linear's policy (empty: fp32); with
    /// `bos_fp32` the BOS row is computed once in float and cached (see the top of the file).
    explicit text_encoder(text_encoder_config config, const layer_policy_fn& choose = {}, bool bos_fp32 = false,
                          const linear_build_fn& build_linear = {})
        : config_(checked(config)), tokenizer_(prompt_tokenizer::bytes()), params_(seeded_parameters(config_)) {
        build(choose, bos_fp32, build_linear);
    }

    /// Trained weights: `weights` must hold exactly parameter_shapes(config, tokenizer.vocab_size()) (else
    /// tcomp::error naming `origin` and the tensor).
    text_encoder(text_encoder_config config, prompt_tokenizer tokenizer, parameter_map weights,
                 const layer_policy_fn& choose = {}, bool bos_fp32 = false, const std::string& origin = "text_encoder",
                 const linear_build_fn& build_linear = {})
        : config_(checked(config)), tokenizer_(std::move(tokenizer)), params_(std::move(weights)) {
        detail::require_parameters(params_, parameter_shapes(config_, tokenizer_.vocab_size()), origin);
        build(choose, bos_fp32, build_linear);
    }

    /// Every parameter's element count for a vocabulary of `vocab_size` tokens.
    static parameter_sizes parameter_shapes(const text_encoder_config& c, index_t vocab_size) {
        parameter_sizes s{{"text.token_embedding", vocab_size * c.width},
                          {"text.position_embedding", c.context * c.width},
                          {"text.final_norm.weight", c.width},
                          {"text.final_norm.bias", c.width}};
        for (index_t l = 0; l < c.layers; ++l)
            for (const char* n : {"norm1", "norm2"})
                for (const char* p : {".weight", ".bias"})
                    s["text.layers." + std::to_string(l) + "." + n + p] = c.width;
        detail::add_linear_sizes(layer_specs(c), s);
        return s;
    }

    /// The stand-in's weights: each tensor from the stream (seed, name); linears N(0, gain^2 / in) with gain 1
    /// (0.5 for attn.o and mlp.fc2) and biases N(0, 0.02^2); BOS gets CLIP's outlier channels.
    static parameter_map seeded_parameters(const text_encoder_config& c) {
        parameter_map p;
        const index_t w = c.width;
        std::vector<float>& embed = p["text.token_embedding"] =
            detail::seeded_tensor(c.seed, "text.token_embedding", byte_tokenizer::vocab_size * w, 1.0f);
        // CLIP's BOS outlier: a few channels of huge magnitude, the rest small.
        if (c.bos_outlier != 0.0f) {
            float* bos = embed.data() + byte_tokenizer::bos * w;
            for (index_t i = 0; i < w; ++i) bos[i] *= 0.1f;
            for (index_t i = 0; i < c.bos_outlier_channels; ++i) bos[i] = (i % 2 == 0 ? 1.0f : -1.0f) * c.bos_outlier;
        }
        p["text.position_embedding"] = detail::seeded_tensor(c.seed, "text.position_embedding", c.context * w, 0.5f);
        for (const auto& [name, size] : parameter_shapes(c, byte_tokenizer::vocab_size)) {
            if (name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name == "text.final_norm.weight")
                p[name] = detail::seeded_tensor(c.seed, name, size, 0.1f, 1.0f);
            else if (name.ends_with("norm1.bias") || name.ends_with("norm2.bias") || name == "text.final_norm.bias")
                p[name] = detail::seeded_tensor(c.seed, name, size, 0.05f);
        }
        for (const linear_spec& s : layer_specs(c)) {
            const float gain = s.name.ends_with("attn.o") || s.name.ends_with("mlp.fc2") ? 0.5f : 1.0f;
            p[s.name + ".weight"] = detail::seeded_tensor(c.seed, s.name + ".weight", s.out * s.in,
                                                          gain / std::sqrt(static_cast<float>(s.in)));
            p[s.name + ".bias"] = detail::seeded_tensor(c.seed, s.name + ".bias", s.out, 0.02f);
        }
        return p;
    }

    /// The linear layers in construction order: text.layers.<l>.attn.{q,k,v,o}, text.layers.<l>.mlp.{fc1,fc2}.
    static std::vector<linear_spec> layer_specs(const text_encoder_config& c) {
        std::vector<linear_spec> s;
        for (index_t l = 0; l < c.layers; ++l) {
            const std::string p = "text.layers." + std::to_string(l) + ".";
            for (const char* n : {"attn.q", "attn.k", "attn.v", "attn.o"}) s.push_back({p + n, c.width, c.width});
            s.push_back({p + "mlp.fc1", c.mlp_width, c.width});
            s.push_back({p + "mlp.fc2", c.width, c.mlp_width});
        }
        return s;
    }

    const text_encoder_config& config() const { return config_; }
    const prompt_tokenizer& tokenizer() const { return tokenizer_; }
    bool bos_fp32() const { return !bos_hidden_.empty(); }
    /// Every float parameter by name ("text.token_embedding", "<linear>.weight", "<norm>.bias", ...): what the
    /// linears were built from, for references and inspection.
    const parameter_map& parameters() const { return params_; }
    const std::vector<layer>& layers() const { return layers_; }

    template <class F>
    void for_each_linear(F&& f) const {
        for (const layer& L : layers_)
            for (const linear* l : {&L.q, &L.k, &L.v, &L.o, &L.fc1, &L.fc2}) f(*l);
    }

    /// Tokenizes and encodes a batch of prompts.
    text_embeddings encode(std::span<const std::string> prompts, int threads = 1) const {
        if (prompts.empty()) tcomp::detail::throw_error<value_error>("text_encoder::encode: no prompts");
        std::vector<int> tokens;
        for (const std::string& p : prompts) {
            const std::vector<int> t = tokenizer_.encode(p, config_.context);
            tokens.insert(tokens.end(), t.begin(), t.end());
        }
        return forward(tokens, static_cast<index_t>(prompts.size()), threads);
    }

    /// Encodes `batch` token sequences of `context` tokens each (row-major); each must start with BOS and hold
    /// an EOS (its row is the pooled output).
    text_embeddings forward(std::span<const int> tokens, index_t batch, int threads = 1) const {
        const index_t t = config_.context;
        if (batch < 1 || static_cast<index_t>(tokens.size()) != batch * t)
            tcomp::detail::throw_error<shape_error>("text_encoder::forward: ", tokens.size(), " tokens for batch ",
                                                    batch, " x context ", t);
        std::vector<index_t> eos_pos(static_cast<std::size_t>(batch), -1);
        for (index_t b = 0; b < batch; ++b)
            for (index_t i = 0; i < t; ++i) {
                const int tok = tokens[static_cast<std::size_t>(b * t + i)];
                if (tok < 0 || tok >= tokenizer_.vocab_size())
                    tcomp::detail::throw_error<value_error>("text_encoder::forward: token ", tok, " at [", b, ", ", i,
                                                            "] is outside the vocabulary of ",
                                                            tokenizer_.vocab_size());
                if ((i == 0) != (tok == tokenizer_.bos()))
                    tcomp::detail::throw_error<value_error>("text_encoder::forward: sequence ", b,
                                                            " must have BOS at position 0 and only there (token ", tok,
                                                            " at ", i, ")");
                if (tok == tokenizer_.eos() && eos_pos[static_cast<std::size_t>(b)] < 0)
                    eos_pos[static_cast<std::size_t>(b)] = i;
            }
        for (index_t b = 0; b < batch; ++b)
            if (eos_pos[static_cast<std::size_t>(b)] < 0)
                tcomp::detail::throw_error<value_error>("text_encoder::forward: sequence ", b, " has no EOS token");

        text_embeddings out;
        out.batch = batch, out.tokens = t, out.width = config_.width;
        out.hidden = run(tokens, batch, bos_fp32() ? 1 : 0, nullptr, threads);
        const index_t w = config_.width;
        out.pooled.resize(static_cast<std::size_t>(batch * w));
        for (index_t b = 0; b < batch; ++b)
            std::copy_n(out.hidden.data() + (b * t + eos_pos[static_cast<std::size_t>(b)]) * w, w,
                        out.pooled.data() + b * w);
        return out;
    }

private:
    static text_encoder_config checked(const text_encoder_config& c) {
        c.validate();
        return c;
    }

    /// The linears and norms from params_, then the BOS cache.
    void build(const layer_policy_fn& choose, bool bos_fp32, const linear_build_fn& build_linear) {
        const std::vector<linear_spec> specs = layer_specs(config_);
        std::size_t next = 0;
        auto make = [&] { return detail::make_linear(params_, specs[next++], choose, build_linear); };
        for (index_t l = 0; l < config_.layers; ++l) {
            const std::string p = "text.layers." + std::to_string(l) + ".";
            layer L;
            L.norm1_weight = params_.at(p + "norm1.weight"), L.norm1_bias = params_.at(p + "norm1.bias");
            L.norm2_weight = params_.at(p + "norm2.weight"), L.norm2_bias = params_.at(p + "norm2.bias");
            L.q = make(), L.k = make(), L.v = make(), L.o = make();
            L.fc1 = make(), L.fc2 = make();
            layers_.push_back(std::move(L));
        }
        if (bos_fp32) cache_bos();
    }

    /// Per-layer keys/values of the positions a run skips, and their final output rows.
    struct prefix_cache {
        std::vector<std::vector<float>> k, v;  // [layer][skipped positions x width]
        std::vector<float> hidden;             // skipped positions x width
    };

    /// Runs positions [first, T) of every sequence through the layers; positions < first take their keys,
    /// values and outputs from the BOS cache. With `record`, stores the keys/values/outputs of every position.
    std::vector<float> run(std::span<const int> tokens, index_t batch, index_t first, prefix_cache* record,
                           int threads) const {
        const text_encoder_config& c = config_;
        const index_t t = c.context, w = c.width, tn = t - first, rows = batch * tn;
        const std::vector<float>& embed = params_.at("text.token_embedding");
        const std::vector<float>& pos = params_.at("text.position_embedding");
        std::vector<float> x(static_cast<std::size_t>(rows * w));
        for (index_t b = 0; b < batch; ++b)
            for (index_t i = first; i < t; ++i) {
                const int tok = tokens[static_cast<std::size_t>(b * t + i)];
                float* xr = x.data() + (b * tn + i - first) * w;
                for (index_t d = 0; d < w; ++d)
                    xr[d] = embed[static_cast<std::size_t>(tok * w + d)] + pos[static_cast<std::size_t>(i * w + d)];
            }
        std::vector<float> n(x.size()), q(x.size()), k(x.size()), v(x.size()), ctx(x.size()), y(x.size());
        std::vector<float> h(static_cast<std::size_t>(rows * c.mlp_width));
        std::vector<float> keys(static_cast<std::size_t>(t * w)), values(keys.size());
        if (record) record->k.assign(layers_.size(), {}), record->v.assign(layers_.size(), {});
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const layer& L = layers_[l];
            const auto X = detail::const_rows(x, rows, w);
            const auto N = detail::const_rows(n, rows, w);
            detail::layer_norm_rows(X, L.norm1_weight, L.norm1_bias, c.norm_eps, detail::mutable_rows(n, rows, w));
            L.q.forward(N, detail::mutable_rows(q, rows, w), threads);
            L.k.forward(N, detail::mutable_rows(k, rows, w), threads);
            L.v.forward(N, detail::mutable_rows(v, rows, w), threads);
            if (record) record->k[l] = k, record->v[l] = v;
            for (index_t b = 0; b < batch; ++b) {
                // Keys/values of the whole sequence: the cached BOS rows, then this run's rows.
                if (first > 0) {
                    std::copy_n(bos_k_[l].data(), first * w, keys.data());
                    std::copy_n(bos_v_[l].data(), first * w, values.data());
                }
                std::copy_n(k.data() + b * tn * w, tn * w, keys.data() + first * w);
                std::copy_n(v.data() + b * tn * w, tn * w, values.data() + first * w);
                detail::multi_head_attention({q.data() + b * tn * w, tn, w}, detail::const_rows(keys, t, w),
                                             detail::const_rows(values, t, w), c.heads, true, first,
                                             {ctx.data() + b * tn * w, tn, w});
            }
            L.o.forward(detail::const_rows(ctx, rows, w), detail::mutable_rows(y, rows, w), threads);
            for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
            detail::layer_norm_rows(X, L.norm2_weight, L.norm2_bias, c.norm_eps, detail::mutable_rows(n, rows, w));
            L.fc1.forward(N, detail::mutable_rows(h, rows, c.mlp_width), threads);
            for (float& e : h) e = detail::quick_gelu(e);
            L.fc2.forward(detail::const_rows(h, rows, c.mlp_width), detail::mutable_rows(y, rows, w), threads);
            for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
        }
        detail::layer_norm_rows(detail::const_rows(x, rows, w), params_.at("text.final_norm.weight"),
                                params_.at("text.final_norm.bias"), c.norm_eps, detail::mutable_rows(n, rows, w));
        if (first == 0) return n;
        std::vector<float> out(static_cast<std::size_t>(batch * t * w));
        for (index_t b = 0; b < batch; ++b) {
            std::copy_n(bos_hidden_.data(), first * w, out.data() + b * t * w);
            std::copy_n(n.data() + b * tn * w, tn * w, out.data() + (b * t + first) * w);
        }
        return out;
    }

    /// Computes the BOS row (position 0 alone, which is all it ever sees) with float copies of every layer.
    void cache_bos() {
        const text_encoder fp32(config_, tokenizer_, params_);
        const text_encoder_config& c = config_;
        // Any sequence will do: causal attention makes row 0 (and its keys/values) depend on BOS alone.
        const std::vector<int> tokens = tokenizer_.encode("", c.context);
        prefix_cache rec;
        const std::vector<float> hidden = fp32.run(tokens, 1, 0, &rec, 1);
        const index_t w = c.width;
        bos_hidden_.assign(hidden.begin(), hidden.begin() + w);
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            bos_k_.emplace_back(rec.k[l].begin(), rec.k[l].begin() + w);
            bos_v_.emplace_back(rec.v[l].begin(), rec.v[l].begin() + w);
        }
    }

    text_encoder_config config_;
    prompt_tokenizer tokenizer_;
    parameter_map params_;
    std::vector<layer> layers_;
    std::vector<float> bos_hidden_;                  // bos_fp32: BOS's final row
    std::vector<std::vector<float>> bos_k_, bos_v_;  // bos_fp32: BOS's keys/values per layer
};

}  // namespace tcomp::model
