// A small DiT denoiser (Peebles & Xie; the seed architecture of ViDiT-Q) with cross-attention to text tokens
// (as PixArt-alpha), seeded weights (the stand-in) or trained ones (a name -> tensor map, e.g.
// ../shared/models/t2i_mnist through diffusion_checkpoint), every projection a model::linear with its own policy:
//
//   tokens = x_embedder(patchify(x_t, p)) + pos_2d_sincos          patch vector order [c][pi][pj] (Conv2d's)
//   c      = t_embedder(sinusoid(t)) + y_embedder(pooled text)     t_embedder = fc2(silu(fc1(.)))
//   per block (adaLN-Zero; chunks of adaLN(silu(c)) = shift/scale/gate for attention, then for the MLP):
//       h += gate_msa * attn.o(self_attention(attn.{q,k,v}(modulate(LN(h), shift_msa, scale_msa))))
//       h += cross_attn.o(attention(cross_attn.q(LN(h)), cross_attn.{k,v}(text)))
//       h += gate_mlp * mlp.fc2(gelu_tanh(mlp.fc1(modulate(LN(h), shift_mlp, scale_mlp))))
//   eps    = unpatchify(final.linear(modulate(LN(h), final.adaLN(silu(c)))))  output order [pi][pj][c] (DiT's)
//
// modulate(x, shift, scale) = x * (1 + scale) + shift; LN has no affine (eps norm_eps, 1e-6 as in DiT).
//
// The seeded stand-in differs from a freshly initialised DiT on purpose, so that an untrained model gives
// non-degenerate latents:
//  - adaLN-Zero zero-initialises the modulation (so gates are 0 and every block is the identity) and the final
//    linear (so eps = 0); here both are small random (gain 0.2 of a 1/sqrt(K) init); cross_attn.o, which
//    PixArt zero-initialises, gets gain 0.6, so that the prompt visibly changes the latents;
//  - DDIM divides the epsilon error by sqrt(alpha_bar(t)) (0.24 at t = 751, 0.068 at t = 999), so a denoiser
//    whose epsilon is uncorrelated with x_t blows the latents up (rms ~20 from t = 999); a trained one predicts
//    eps ~ x_t at high noise. So x_embedder is a scaled (semi-)orthogonal matrix Q and final.linear ~ Q^T
//    (plus small noise): through the LayerNorm, the untrained
//    network passes each patch of x_t through, normalised to unit RMS, and the blocks add a text- and
//    time-dependent term. This needs width >= patch_dim (C p^2 = 128 by default); a narrower DiT passes only a
//    projection of each patch through and its latents grow (rms ~3 at width 64).
#pragma once

#include <Eigen/Core>
#include <Eigen/QR>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/text_encoder.hpp"

namespace tcomp::model {

struct dit_config {
    index_t latent_channels = 32, latent_size = 32, patch = 2;
    index_t width = 128, depth = 4, heads = 4, mlp_width = 512;
    index_t text_width = 64;      // width of the text embeddings it cross-attends to
    index_t frequency_dim = 256;  // sinusoidal timestep embedding
    index_t train_steps = 1000;   // timesteps accepted: [0, train_steps)
    double norm_eps = 1e-6;       // the blocks' and the final layer's LayerNorm
    std::uint64_t seed = 0x5eedd17;  // the stand-in's weights only

    index_t tokens() const { return (latent_size / patch) * (latent_size / patch); }
    index_t patch_dim() const { return latent_channels * patch * patch; }

    void validate() const {
        auto fail = [](auto&&... parts) { tcomp::detail::throw_error<value_error>("dit_config: ", parts...); };
        if (latent_channels < 1 || latent_size < 1 || patch < 1 || width < 1 || depth < 1 || heads < 1 ||
            mlp_width < 1 || text_width < 1 || train_steps < 1)
            fail("every size must be >= 1");
        if (latent_size % patch != 0) fail("latent_size ", latent_size, " is not a multiple of patch ", patch);
        if (width % heads != 0) fail("width ", width, " is not a multiple of heads ", heads);
        if (width % 4 != 0) fail("width ", width, " must be a multiple of 4 (2-D sin-cos position embedding)");
        if (frequency_dim < 2 || frequency_dim % 2 != 0)
            fail("frequency_dim ", frequency_dim, " must be even and >= 2");
        if (!(norm_eps > 0.0) || !std::isfinite(norm_eps)) fail("norm_eps must be > 0");
    }
};

/// The text as each block sees it, computed once per generation: cross-attention keys/values per block and
/// the pooled-text embedding.
struct dit_text_context {
    index_t batch = 0, tokens = 0;
    std::vector<std::vector<float>> keys, values;  // [block][batch * tokens x width]
    std::vector<float> pooled;                     // y_embedder(pooled): batch x width
};

namespace detail {

/// DiT's timestep_embedding: [cos(t f_i), sin(t f_i)], f_i = exp(-ln(10000) i / half), i < half = dim / 2.
inline std::vector<float> timestep_sinusoid(double t, index_t dim) {
    const index_t half = dim / 2;
    std::vector<float> e(static_cast<std::size_t>(dim));
    for (index_t i = 0; i < half; ++i) {
        const double f = std::exp(-std::log(10000.0) * static_cast<double>(i) / static_cast<double>(half));
        e[static_cast<std::size_t>(i)] = static_cast<float>(std::cos(t * f));
        e[static_cast<std::size_t>(half + i)] = static_cast<float>(std::sin(t * f));
    }
    return e;
}

/// DiT's get_2d_sincos_pos_embed for a grid x grid of tokens: the first half of the channels encodes the
/// column, the second the row; each half is [sin(pos w_i), cos(pos w_i)], w_i = 10000^(-i / (dim / 4)).
inline std::vector<float> sincos_2d(index_t dim, index_t grid) {
    std::vector<float> pos(static_cast<std::size_t>(grid * grid * dim));
    const index_t quarter = dim / 4;
    for (index_t r = 0; r < grid; ++r)
        for (index_t c = 0; c < grid; ++c) {
            float* e = pos.data() + (r * grid + c) * dim;
            for (index_t half = 0; half < 2; ++half) {
                const double p = static_cast<double>(half == 0 ? c : r);
                for (index_t i = 0; i < quarter; ++i) {
                    const double w = std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(quarter));
                    e[half * 2 * quarter + i] = static_cast<float>(std::sin(p * w));
                    e[half * 2 * quarter + quarter + i] = static_cast<float>(std::cos(p * w));
                }
            }
        }
    return pos;
}

/// rows x cols with orthonormal columns (rows >= cols) or rows (rows < cols), from a seeded Gaussian by QR.
inline std::vector<float> seeded_orthogonal(std::uint64_t seed, const std::string& name, index_t rows, index_t cols) {
    const index_t tall = std::max(rows, cols), thin = std::min(rows, cols);
    const std::vector<float> g = seeded_tensor(seed, name, tall * thin, 1.0f);
    Eigen::MatrixXd a(tall, thin);
    for (index_t i = 0; i < tall; ++i)
        for (index_t j = 0; j < thin; ++j) a(i, j) = g[static_cast<std::size_t>(i * thin + j)];
    const Eigen::MatrixXd q =
        Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ() * Eigen::MatrixXd::Identity(tall, thin);
    std::vector<float> out(static_cast<std::size_t>(rows * cols));
    for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j)
            out[static_cast<std::size_t>(i * cols + j)] = static_cast<float>(rows >= cols ? q(i, j) : q(j, i));
    return out;
}

}  // namespace detail

class dit {
public:
    struct block {
        linear ada_ln;                              // silu(c) -> 6 x width
        linear q, k, v, o;                          // self-attention
        linear cross_q, cross_k, cross_v, cross_o;  // cross-attention to the text
        linear fc1, fc2;                            // MLP
    };

    /// Seeded weights (the stand-in). `choose` gives each linear's policy (empty: fp32).
    explicit dit(dit_config config, const layer_policy_fn& choose = {}, const linear_build_fn& build_linear = {})
        : config_(checked(config)), params_(seeded_parameters(config_)) {
        build(choose, build_linear);
    }

    /// Trained weights: `weights` must hold exactly parameter_shapes(config) (else tcomp::error naming `origin`
    /// and the tensor).
    dit(dit_config config, parameter_map weights, const layer_policy_fn& choose = {},
        const std::string& origin = "dit", const linear_build_fn& build_linear = {})
        : config_(checked(config)), params_(std::move(weights)) {
        detail::require_parameters(params_, parameter_shapes(config_), origin);
        build(choose, build_linear);
    }

    /// Every parameter's element count: the linears' weights and biases (the position embedding is computed).
    static parameter_sizes parameter_shapes(const dit_config& c) {
        parameter_sizes s;
        detail::add_linear_sizes(layer_specs(c), s);
        return s;
    }

    /// The stand-in's weights, each from the stream (seed, name); see the top of the file for the choices.
    static parameter_map seeded_parameters(const dit_config& c) {
        parameter_map p;
        const index_t pd = c.patch_dim(), w = c.width;
        for (const linear_spec& s : layer_specs(c)) {
            const float gain = s.name.ends_with("adaLN") ? 0.2f : s.name.ends_with("cross_attn.o") ? 0.6f : 1.0f;
            p[s.name + ".weight"] = detail::seeded_tensor(c.seed, s.name + ".weight", s.out * s.in,
                                                          gain / std::sqrt(static_cast<float>(s.in)));
            p[s.name + ".bias"] = detail::seeded_tensor(c.seed, s.name + ".bias", s.out, 0.02f);
        }
        // x_embedder = 4 Q (large against the position embedding, which would otherwise leak into eps) and
        // final.linear ~ g Q^T: see the top of the file.
        std::vector<float> q = detail::seeded_orthogonal(c.seed, "dit.x_embedder.weight", w, pd);
        p["dit.x_embedder.weight"] = q;
        for (float& e : p["dit.x_embedder.weight"]) e *= 4.0f;
        const std::vector<float> noise = detail::seeded_tensor(c.seed, "dit.final.linear.weight", pd * w,
                                                               0.02f / std::sqrt(static_cast<float>(w)));
        // LN(4 Q p + pos) ~ Q p sqrt(w / pd) / rms(p) when w >= pd; Q^T maps it back to p / rms(p).
        const float gain = w >= pd ? std::sqrt(static_cast<float>(pd) / static_cast<float>(w)) : 1.0f;
        // Output i is [pi][pj][ch] (unpatchify's order); the patch embedding reads [ch][pi][pj].
        const index_t pp = c.patch * c.patch;
        std::vector<float>& wt = p["dit.final.linear.weight"];
        for (index_t i = 0; i < pd; ++i) {
            const index_t in = (i % c.latent_channels) * pp + i / c.latent_channels;
            for (index_t j = 0; j < w; ++j)
                wt[static_cast<std::size_t>(i * w + j)] =
                    gain * q[static_cast<std::size_t>(j * pd + in)] + noise[static_cast<std::size_t>(i * w + j)];
        }
        return p;
    }

    /// The linear layers in construction order (dit.x_embedder, dit.t_embedder.fc{1,2}, dit.y_embedder,
    /// dit.blocks.<l>.{adaLN, attn.{q,k,v,o}, cross_attn.{q,k,v,o}, mlp.{fc1,fc2}}, dit.final.{adaLN,linear}).
    static std::vector<linear_spec> layer_specs(const dit_config& c) {
        const index_t w = c.width;
        std::vector<linear_spec> s{{"dit.x_embedder", w, c.patch_dim()},
                                   {"dit.t_embedder.fc1", w, c.frequency_dim},
                                   {"dit.t_embedder.fc2", w, w},
                                   {"dit.y_embedder", w, c.text_width}};
        for (index_t l = 0; l < c.depth; ++l) {
            const std::string p = "dit.blocks." + std::to_string(l) + ".";
            s.push_back({p + "adaLN", 6 * w, w});
            for (const char* n : {"attn.q", "attn.k", "attn.v", "attn.o"}) s.push_back({p + n, w, w});
            s.push_back({p + "cross_attn.q", w, w});
            s.push_back({p + "cross_attn.k", w, c.text_width});
            s.push_back({p + "cross_attn.v", w, c.text_width});
            s.push_back({p + "cross_attn.o", w, w});
            s.push_back({p + "mlp.fc1", c.mlp_width, w});
            s.push_back({p + "mlp.fc2", w, c.mlp_width});
        }
        s.push_back({"dit.final.adaLN", 2 * w, w});
        s.push_back({"dit.final.linear", c.patch_dim(), w});
        return s;
    }

    const dit_config& config() const { return config_; }
    /// Every float weight and bias by name ("<linear>.weight", "<linear>.bias").
    const parameter_map& parameters() const { return params_; }
    const std::vector<block>& blocks() const { return blocks_; }

    template <class F>
    void for_each_linear(F&& f) const {
        for (const linear* l : {&x_embedder_, &t_fc1_, &t_fc2_, &y_embedder_}) f(*l);
        for (const block& B : blocks_)
            for (const linear* l :
                 {&B.ada_ln, &B.q, &B.k, &B.v, &B.o, &B.cross_q, &B.cross_k, &B.cross_v, &B.cross_o, &B.fc1, &B.fc2})
                f(*l);
        f(final_ada_ln_);
        f(final_linear_);
    }

    /// Cross-attention keys/values and the pooled-text embedding, once per generation.
    dit_text_context prepare_text(const text_embeddings& text, int threads = 1) const {
        const dit_config& c = config_;
        if (text.width != c.text_width || text.batch < 1 || text.tokens < 1 ||
            text.hidden.size() != static_cast<std::size_t>(text.batch * text.tokens * text.width) ||
            text.pooled.size() != static_cast<std::size_t>(text.batch * text.width))
            tcomp::detail::throw_error<shape_error>("dit::prepare_text: text embeddings of batch ", text.batch, ", ",
                                                    text.tokens, " tokens, width ", text.width, " (",
                                                    text.hidden.size(), " hidden and ", text.pooled.size(),
                                                    " pooled values); the DiT expects width ", c.text_width);
        dit_text_context ctx;
        ctx.batch = text.batch, ctx.tokens = text.tokens;
        const index_t rows = text.batch * text.tokens, w = c.width;
        const auto hidden = detail::const_rows(text.hidden, rows, c.text_width);
        for (const block& B : blocks_) {
            ctx.keys.emplace_back(static_cast<std::size_t>(rows * w));
            ctx.values.emplace_back(static_cast<std::size_t>(rows * w));
            B.cross_k.forward(hidden, detail::mutable_rows(ctx.keys.back(), rows, w), threads);
            B.cross_v.forward(hidden, detail::mutable_rows(ctx.values.back(), rows, w), threads);
        }
        ctx.pooled.resize(static_cast<std::size_t>(text.batch * w));
        y_embedder_.forward(detail::const_rows(text.pooled, text.batch, c.text_width),
                            detail::mutable_rows(ctx.pooled, text.batch, w), threads);
        return ctx;
    }

    /// eps = DiT(x_t, t, text) for x_t of shape batch x C x H x W (batch = text.batch), into eps (same shape).
    void forward(std::span<const float> x_t, int t, const dit_text_context& text, std::span<float> eps,
                 int threads = 1) const {
        const dit_config& c = config_;
        const index_t batch = text.batch, image = c.latent_channels * c.latent_size * c.latent_size;
        if (x_t.size() != static_cast<std::size_t>(batch * image) || eps.size() != x_t.size() ||
            text.keys.size() != blocks_.size())
            tcomp::detail::throw_error<shape_error>("dit::forward: x_t has ", x_t.size(), " and eps ", eps.size(),
                                                    " values, text context ", text.keys.size(), " blocks; expected ",
                                                    batch, " x ", c.latent_channels, " x ", c.latent_size, " x ",
                                                    c.latent_size, " and ", blocks_.size(), " blocks");
        if (t < 0 || t >= c.train_steps)
            tcomp::detail::throw_error<value_error>("dit::forward: timestep ", t, " is outside [0, ", c.train_steps,
                                                    ")");
        const index_t w = c.width, n = c.tokens(), rows = batch * n, pd = c.patch_dim();
        const index_t p = c.patch, grid = c.latent_size / p, hw = c.latent_size;

        // Patchify: token (gi, gj) of image b holds x[b][ch][gi p + pi][gj p + pj] at [ch][pi][pj].
        std::vector<float> patches(static_cast<std::size_t>(rows * pd));
        for (index_t b = 0; b < batch; ++b)
            for (index_t gi = 0; gi < grid; ++gi)
                for (index_t gj = 0; gj < grid; ++gj) {
                    float* dst = patches.data() + ((b * n) + gi * grid + gj) * pd;
                    for (index_t ch = 0; ch < c.latent_channels; ++ch)
                        for (index_t pi = 0; pi < p; ++pi)
                            for (index_t pj = 0; pj < p; ++pj)
                                *dst++ = x_t[static_cast<std::size_t>(b * image + (ch * hw + gi * p + pi) * hw +
                                                                      gj * p + pj)];
                }
        std::vector<float> h(static_cast<std::size_t>(rows * w));
        x_embedder_.forward(detail::const_rows(patches, rows, pd), detail::mutable_rows(h, rows, w), threads);
        for (index_t r = 0; r < rows; ++r)
            for (index_t d = 0; d < w; ++d)
                h[static_cast<std::size_t>(r * w + d)] += pos_[static_cast<std::size_t>((r % n) * w + d)];

        // Conditioning: silu(t_embedder(t) + y_embedder(pooled)), one row per image.
        const std::vector<float> freq = detail::timestep_sinusoid(static_cast<double>(t), c.frequency_dim);
        std::vector<float> t1(static_cast<std::size_t>(w)), temb(static_cast<std::size_t>(w));
        t_fc1_.forward(detail::const_rows(freq, 1, c.frequency_dim), detail::mutable_rows(t1, 1, w), threads);
        for (float& e : t1) e = detail::silu_of(e);
        t_fc2_.forward(detail::const_rows(t1, 1, w), detail::mutable_rows(temb, 1, w), threads);
        std::vector<float> cond(static_cast<std::size_t>(batch * w));
        for (index_t b = 0; b < batch; ++b)
            for (index_t d = 0; d < w; ++d)
                cond[static_cast<std::size_t>(b * w + d)] = detail::silu_of(
                    temb[static_cast<std::size_t>(d)] + text.pooled[static_cast<std::size_t>(b * w + d)]);
        const auto cond_view = detail::const_rows(cond, batch, w);

        std::vector<float> mod(static_cast<std::size_t>(batch * 6 * w)), nrm(h.size()), q(h.size()), k(h.size()),
            v(h.size()), ctx(h.size()), y(h.size()), mlp(static_cast<std::size_t>(rows * c.mlp_width));
        const auto H = detail::const_rows(h, rows, w);
        const auto N = detail::const_rows(nrm, rows, w);
        // nrm = LN(h) * (1 + scale[b]) + shift[b], chunks of mod (row b, stride `chunks` x w).
        auto modulated_norm = [&](index_t chunks, index_t shift_chunk, bool modulate) {
            detail::layer_norm_rows(H, {}, {}, c.norm_eps, detail::mutable_rows(nrm, rows, w));
            if (!modulate) return;
            for (index_t r = 0; r < rows; ++r) {
                const float* m = mod.data() + (r / n) * chunks * w;
                for (index_t d = 0; d < w; ++d) {
                    float& e = nrm[static_cast<std::size_t>(r * w + d)];
                    e = e * (1.0f + m[(shift_chunk + 1) * w + d]) + m[shift_chunk * w + d];
                }
            }
        };
        auto gated_add = [&](index_t gate_chunk) {
            for (index_t r = 0; r < rows; ++r) {
                const float* g = mod.data() + (r / n) * 6 * w + gate_chunk * w;
                for (index_t d = 0; d < w; ++d)
                    h[static_cast<std::size_t>(r * w + d)] += g[d] * y[static_cast<std::size_t>(r * w + d)];
            }
        };

        for (std::size_t l = 0; l < blocks_.size(); ++l) {
            const block& B = blocks_[l];
            B.ada_ln.forward(cond_view, detail::mutable_rows(mod, batch, 6 * w), threads);
            // Self-attention over the patches of each image.
            modulated_norm(6, 0, true);
            B.q.forward(N, detail::mutable_rows(q, rows, w), threads);
            B.k.forward(N, detail::mutable_rows(k, rows, w), threads);
            B.v.forward(N, detail::mutable_rows(v, rows, w), threads);
            for (index_t b = 0; b < batch; ++b)
                detail::multi_head_attention({q.data() + b * n * w, n, w}, {k.data() + b * n * w, n, w},
                                             {v.data() + b * n * w, n, w}, c.heads, false, 0,
                                             {ctx.data() + b * n * w, n, w});
            B.o.forward(detail::const_rows(ctx, rows, w), detail::mutable_rows(y, rows, w), threads);
            gated_add(2);
            // Cross-attention to the image's text tokens.
            modulated_norm(6, 0, false);
            B.cross_q.forward(N, detail::mutable_rows(q, rows, w), threads);
            const index_t tt = text.tokens;
            for (index_t b = 0; b < batch; ++b)
                detail::multi_head_attention({q.data() + b * n * w, n, w}, {text.keys[l].data() + b * tt * w, tt, w},
                                             {text.values[l].data() + b * tt * w, tt, w}, c.heads, false, 0,
                                             {ctx.data() + b * n * w, n, w});
            B.cross_o.forward(detail::const_rows(ctx, rows, w), detail::mutable_rows(y, rows, w), threads);
            for (std::size_t i = 0; i < h.size(); ++i) h[i] += y[i];
            // MLP.
            modulated_norm(6, 3, true);
            B.fc1.forward(N, detail::mutable_rows(mlp, rows, c.mlp_width), threads);
            for (float& e : mlp) e = detail::gelu_tanh(e);
            B.fc2.forward(detail::const_rows(mlp, rows, c.mlp_width), detail::mutable_rows(y, rows, w), threads);
            gated_add(5);
        }

        // Final layer and unpatchify: output row of token (gi, gj) is [pi][pj][ch].
        final_ada_ln_.forward(cond_view, detail::mutable_rows(mod, batch, 2 * w), threads);
        modulated_norm(2, 0, true);
        final_linear_.forward(N, detail::mutable_rows(patches, rows, pd), threads);
        for (index_t b = 0; b < batch; ++b)
            for (index_t gi = 0; gi < grid; ++gi)
                for (index_t gj = 0; gj < grid; ++gj) {
                    const float* src = patches.data() + ((b * n) + gi * grid + gj) * pd;
                    for (index_t pi = 0; pi < p; ++pi)
                        for (index_t pj = 0; pj < p; ++pj)
                            for (index_t ch = 0; ch < c.latent_channels; ++ch)
                                eps[static_cast<std::size_t>(b * image + (ch * hw + gi * p + pi) * hw + gj * p + pj)] =
                                    *src++;
                }
    }

private:
    static dit_config checked(const dit_config& c) {
        c.validate();
        return c;
    }

    /// The linears from params_ (construction order of layer_specs) and the position embedding.
    void build(const layer_policy_fn& choose, const linear_build_fn& build_linear) {
        const std::vector<linear_spec> specs = layer_specs(config_);
        std::size_t next = 0;
        auto make = [&] { return detail::make_linear(params_, specs[next++], choose, build_linear); };
        x_embedder_ = make(), t_fc1_ = make(), t_fc2_ = make(), y_embedder_ = make();
        for (index_t l = 0; l < config_.depth; ++l) {
            block B;
            B.ada_ln = make();
            B.q = make(), B.k = make(), B.v = make(), B.o = make();
            B.cross_q = make(), B.cross_k = make(), B.cross_v = make(), B.cross_o = make();
            B.fc1 = make(), B.fc2 = make();
            blocks_.push_back(std::move(B));
        }
        final_ada_ln_ = make(), final_linear_ = make();
        pos_ = detail::sincos_2d(config_.width, config_.latent_size / config_.patch);
    }

    dit_config config_;
    parameter_map params_;
    linear x_embedder_, t_fc1_, t_fc2_, y_embedder_;
    std::vector<block> blocks_;
    linear final_ada_ln_, final_linear_;
    std::vector<float> pos_;  // tokens x width
};

}  // namespace tcomp::model
