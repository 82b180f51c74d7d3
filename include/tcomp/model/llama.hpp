// llama_model: a LLaMA-style decoder computed exactly as Hugging Face's LlamaForCausalLM (and
// MixtralForCausalLM for the mixture-of-experts FFN) define it, with every projection a model::linear so that
// each can take its own compression policy:
//
//   x = embed_tokens[token]
//   per layer:  h = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = RMSNorm(x)
//               x = h + ffn(RMSNorm(h))
//   ffn   = down(silu(gate(x)) * up(x))                                    (dense)
//         = sum over the top-k experts e of w_e * w2_e(silu(w1_e(x)) * w3_e(x))   (Mixtral MoE: softmax over
//           the router logits, top-k, the k weights renormalised to sum to 1)
//   logits = lm_head(RMSNorm(x))     (lm_head = embed_tokens when tie_word_embeddings)
//
// RMSNorm: w * x / sqrt(mean(x^2) + eps). RoPE: rotate-half (x[i], x[i + d/2]) pairs, angle pos * theta^(-2i/d),
// with the frequencies and angles rounded to float as transformers computes them. Grouped-query attention:
// query head h reads key/value head h / (heads / kv_heads), scores scaled by 1/sqrt(head_dim), causal.
//
// The KV cache holds every position processed since reset(): forward() resets it and runs a whole sequence
// (leaving the cache full, so step() can continue); append()/step() continue from the cache.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/llama_config.hpp"

namespace tcomp::model {

/// Returns the float data of a tensor, given its name and the shape the model expects (it may check the shape
/// and must return exactly prod(shape) values, row-major).
using weight_source =
    std::function<std::vector<float>(const std::string& name, std::vector<std::int64_t> expected_shape)>;
/// The policy name (policy_registry.hpp) for a weight tensor, e.g. "model.layers.0.mlp.up_proj.weight"; the
/// tied head is asked for as "lm_head.weight". An empty chooser means "fp32" everywhere.
using policy_chooser = std::function<std::string(const std::string& tensor_name)>;
/// Optional: builds a projection from something other than float weights and a policy (weights stored
/// compressed in a file, see load_llama_compressed): gets the layer prefix ("model.layers.0.mlp.up_proj"), N, K
/// and the bias, and returns nullopt to leave the layer to weight_source + policy_chooser.
using linear_builder = std::function<std::optional<linear>(const std::string& prefix, index_t out, index_t in,
                                                           std::span<const float> bias)>;

namespace detail {

/// cos/sin of the rotate-half RoPE for positions [0, max_positions), float as transformers rounds them:
/// inv_freq = 1 / theta^(float(2i) / d) in float, angle = float(pos) * inv_freq in float.
class rope_table {
public:
    rope_table() = default;
    rope_table(index_t head_dim, index_t max_positions, double theta) : half_(head_dim / 2) {
        std::vector<float> inv(static_cast<std::size_t>(half_));
        for (index_t i = 0; i < half_; ++i) {
            const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
            inv[static_cast<std::size_t>(i)] = 1.0f / static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
        }
        cos_.resize(static_cast<std::size_t>(max_positions * half_));
        sin_.resize(cos_.size());
        for (index_t p = 0; p < max_positions; ++p)
            for (index_t i = 0; i < half_; ++i) {
                const float angle = static_cast<float>(p) * inv[static_cast<std::size_t>(i)];
                cos_[static_cast<std::size_t>(p * half_ + i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
                sin_[static_cast<std::size_t>(p * half_ + i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
            }
    }
    /// v[i] <- v[i] cos - v[i + d/2] sin, v[i + d/2] <- v[i + d/2] cos + v[i] sin (q*cos + rotate_half(q)*sin).
    void apply(float* v, index_t position) const {
        const float* c = cos_.data() + position * half_;
        const float* s = sin_.data() + position * half_;
        for (index_t i = 0; i < half_; ++i) {
            const float a = v[i], b = v[i + half_];
            v[i] = a * c[i] - b * s[i];
            v[i + half_] = b * c[i] + a * s[i];
        }
    }

private:
    index_t half_ = 0;
    std::vector<float> cos_, sin_;
};

/// out = w * x / sqrt(mean(x^2) + eps), the mean in double (transformers: float32 throughout).
inline void rms_norm(const float* x, const float* w, float* out, index_t n, double eps) {
    double ss = 0.0;
    for (index_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const auto inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
    for (index_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }

inline matrix_view<const float> cview(const std::vector<float>& v, index_t rows, index_t cols) {
    return {v.data(), rows, cols};
}
inline matrix_view<float> mview(std::vector<float>& v, index_t rows, index_t cols) { return {v.data(), rows, cols}; }

}  // namespace detail

/// Rotate-half RoPE of one head vector (even length d) at `position`, in place.
inline void apply_rope(std::span<float> head, index_t position, double theta = 10000.0) {
    const auto d = static_cast<index_t>(head.size());
    if (d % 2 != 0) tcomp::detail::throw_error<shape_error>("apply_rope: head dimension ", d, " is odd");
    detail::rope_table(d, position + 1, theta).apply(head.data(), position);
}

class llama_model {
public:
    struct expert {
        linear w1, w2, w3;  // gate, down, up (Mixtral's names)
    };
    struct layer {
        std::vector<float> input_norm, post_norm;
        linear q, k, v, o;
        linear gate, up, down;        // dense MLP
        linear router;                // MoE: block_sparse_moe.gate
        std::vector<expert> experts;  // MoE
        std::vector<float> k_cache, v_cache;  // [position][kv_heads * head_dim]
    };

    llama_model(llama_config config, const weight_source& weights, const policy_chooser& choose = {},
                const linear_builder& build = {})
        : config_(std::move(config)) {
        config_.validate();
        const llama_config& c = config_;
        auto load = [&](const std::string& name, std::vector<std::int64_t> shape) {
            std::int64_t n = 1;
            for (auto s : shape) n *= s;
            std::vector<float> data = weights(name, shape);
            if (static_cast<std::int64_t>(data.size()) != n)
                tcomp::detail::throw_error<shape_error>("llama_model: tensor ", name, " has ", data.size(),
                                                        " values, expected ", n);
            return data;
        };
        auto make_linear = [&](const std::string& prefix, index_t out, index_t in, bool has_bias) {
            const std::string weight = prefix + ".weight";
            std::vector<float> b;
            if (has_bias) b = load(prefix + ".bias", {out});
            if (build)
                if (std::optional<linear> built = build(prefix, out, in, b)) return std::move(*built);
            const std::vector<float> w = load(weight, {out, in});
            const std::string policy = choose ? choose(weight) : std::string("fp32");
            return linear::make(policy, detail::cview(w, out, in), b, prefix);
        };
        const index_t h = c.hidden_size, qd = c.num_attention_heads * c.head_dim;
        const index_t kvd = c.num_key_value_heads * c.head_dim, ff = c.intermediate_size;
        embed_ = load("model.embed_tokens.weight", {c.vocab_size, h});
        layers_.resize(static_cast<std::size_t>(c.num_hidden_layers));
        for (index_t l = 0; l < c.num_hidden_layers; ++l) {
            layer& L = layers_[static_cast<std::size_t>(l)];
            const std::string p = "model.layers." + std::to_string(l) + ".";
            L.input_norm = load(p + "input_layernorm.weight", {h});
            L.post_norm = load(p + "post_attention_layernorm.weight", {h});
            L.q = make_linear(p + "self_attn.q_proj", qd, h, c.attention_bias);
            L.k = make_linear(p + "self_attn.k_proj", kvd, h, c.attention_bias);
            L.v = make_linear(p + "self_attn.v_proj", kvd, h, c.attention_bias);
            L.o = make_linear(p + "self_attn.o_proj", h, qd, c.attention_bias);
            if (c.is_moe()) {
                L.router = make_linear(p + "block_sparse_moe.gate", c.num_local_experts, h, false);
                for (index_t e = 0; e < c.num_local_experts; ++e) {
                    const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
                    expert E;
                    E.w1 = make_linear(x + "w1", ff, h, false);
                    E.w2 = make_linear(x + "w2", h, ff, false);
                    E.w3 = make_linear(x + "w3", ff, h, false);
                    L.experts.push_back(std::move(E));
                }
            } else {
                L.gate = make_linear(p + "mlp.gate_proj", ff, h, c.mlp_bias);
                L.up = make_linear(p + "mlp.up_proj", ff, h, c.mlp_bias);
                L.down = make_linear(p + "mlp.down_proj", h, ff, c.mlp_bias);
            }
        }
        final_norm_ = load("model.norm.weight", {h});
        if (c.tie_word_embeddings) {
            // A builder may hold the tied head already compressed (a file tcomp-quantize wrote); else it is
            // made from the embeddings with the chooser's policy.
            std::optional<linear> built;
            if (build) built = build("lm_head", c.vocab_size, h, {});
            if (built) {
                lm_head_ = std::move(*built);
            } else {
                const std::string policy = choose ? choose("lm_head.weight") : std::string("fp32");
                lm_head_ = linear::make(policy, detail::cview(embed_, c.vocab_size, h), {}, "lm_head");
            }
        } else {
            lm_head_ = make_linear("lm_head", c.vocab_size, h, false);
        }
        rope_ = detail::rope_table(c.head_dim, c.max_position_embeddings, c.rope_theta);
    }

    const llama_config& config() const { return config_; }
    const std::vector<layer>& layers() const { return layers_; }
    const linear& lm_head() const { return lm_head_; }

    /// Threads for the projections and attention (the caller's included).
    void set_threads(int threads) { threads_ = std::max(threads, 1); }
    int threads() const { return threads_; }

    /// Empties the KV cache.
    void reset() { position_ = 0; }
    /// Positions held in the KV cache.
    index_t position() const { return position_; }

    /// Resets the cache and runs `tokens` at positions 0..T-1: logits T x vocab, row-major (row t predicts
    /// token t+1). The cache then holds the sequence, so step() continues it.
    std::vector<float> forward(std::span<const int> tokens) {
        reset();
        return append(tokens);
    }

    /// Runs `tokens` at the positions after the cache (chunked prefill); logits T x vocab.
    std::vector<float> append(std::span<const int> tokens) {
        const llama_config& c = config_;
        const auto t = static_cast<index_t>(tokens.size());
        if (t == 0) return {};
        if (position_ + t > c.max_position_embeddings)
            tcomp::detail::throw_error<shape_error>("llama_model: ", position_ + t,
                                                    " positions exceed max_position_embeddings = ",
                                                    c.max_position_embeddings);
        const index_t h = c.hidden_size;
        std::vector<float> x(static_cast<std::size_t>(t * h));
        for (index_t i = 0; i < t; ++i) {
            const int tok = tokens[static_cast<std::size_t>(i)];
            if (tok < 0 || tok >= c.vocab_size)
                tcomp::detail::throw_error<value_error>("llama_model: token ", tok, " at index ", i,
                                                        " is outside the vocabulary of ", c.vocab_size);
            std::copy_n(embed_.data() + tok * h, h, x.data() + i * h);
        }
        std::vector<float> n(x.size()), y(x.size());
        for (layer& L : layers_) {
            for (index_t i = 0; i < t; ++i)
                detail::rms_norm(&x[static_cast<std::size_t>(i * h)], L.input_norm.data(),
                                 &n[static_cast<std::size_t>(i * h)], h, c.rms_norm_eps);
            attention(L, n, y, t);
            for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
            for (index_t i = 0; i < t; ++i)
                detail::rms_norm(&x[static_cast<std::size_t>(i * h)], L.post_norm.data(),
                                 &n[static_cast<std::size_t>(i * h)], h, c.rms_norm_eps);
            if (c.is_moe()) moe_ffn(L, n, y, t);
            else dense_ffn(L, n, y, t);
            for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
        }
        position_ += t;
        for (index_t i = 0; i < t; ++i)
            detail::rms_norm(&x[static_cast<std::size_t>(i * h)], final_norm_.data(),
                             &n[static_cast<std::size_t>(i * h)], h, c.rms_norm_eps);
        std::vector<float> logits(static_cast<std::size_t>(t * c.vocab_size));
        lm_head_.forward(detail::cview(n, t, h), detail::mview(logits, t, c.vocab_size), threads_);
        return logits;
    }

    /// One decode step: the logits (vocab) of the next token after `token` at the cache's next position.
    std::vector<float> step(int token) { return append(std::span<const int>(&token, 1)); }

    /// Greedy decoding from `bos`: resets the cache and returns bos followed by n generated ids (the argmax,
    /// the first on ties; generation does not stop at EOS).
    std::vector<int> generate_greedy(int bos, int n) {
        reset();
        std::vector<int> out{bos};
        std::vector<float> logits = step(bos);
        for (int i = 0; i < n; ++i) {
            const int next = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            out.push_back(next);
            if (i + 1 < n) logits = step(next);
        }
        return out;
    }

    /// Bytes of all weights as stored for inference: embeddings and norms (fp32) plus every linear layer's
    /// weight_bytes() (packed codes and scales for compressed ones; a tied head counts its own copy).
    std::size_t weight_bytes() const {
        std::size_t b = (embed_.size() + final_norm_.size()) * sizeof(float) + lm_head_.weight_bytes();
        for_each_linear([&](const linear& l) { b += l.weight_bytes(); });
        for (const layer& L : layers_) b += (L.input_norm.size() + L.post_norm.size()) * sizeof(float);
        return b;
    }

    /// Calls f(const linear&) for every projection in the layers (not the head).
    template <class F>
    void for_each_linear(F&& f) const {
        for (const layer& L : layers_) {
            for (const linear* l : {&L.q, &L.k, &L.v, &L.o}) f(*l);
            if (config_.is_moe()) {
                f(L.router);
                for (const expert& E : L.experts)
                    for (const linear* l : {&E.w1, &E.w2, &E.w3}) f(*l);
            } else {
                for (const linear* l : {&L.gate, &L.up, &L.down}) f(*l);
            }
        }
    }

private:
    /// y[t x hidden] = o_proj(causal GQA over the cache and the t new positions).
    void attention(layer& L, const std::vector<float>& n, std::vector<float>& y, index_t t) {
        const llama_config& c = config_;
        const index_t h = c.hidden_size, hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
        const index_t qd = nh * hd, kvd = nkv * hd, group = nh / nkv, total = position_ + t;
        std::vector<float> q(static_cast<std::size_t>(t * qd));
        L.q.forward(detail::cview(n, t, h), detail::mview(q, t, qd), threads_);
        L.k_cache.resize(static_cast<std::size_t>(total * kvd));
        L.v_cache.resize(static_cast<std::size_t>(total * kvd));
        // New keys and values go straight into the cache rows of their positions.
        matrix_view<float> k_new(L.k_cache.data() + position_ * kvd, t, kvd);
        matrix_view<float> v_new(L.v_cache.data() + position_ * kvd, t, kvd);
        L.k.forward(detail::cview(n, t, h), k_new, threads_);
        L.v.forward(detail::cview(n, t, h), v_new, threads_);
        for (index_t i = 0; i < t; ++i) {
            for (index_t hq = 0; hq < nh; ++hq) rope_.apply(&q[static_cast<std::size_t>(i * qd + hq * hd)], position_ + i);
            for (index_t hk = 0; hk < nkv; ++hk) rope_.apply(&k_new(i, hk * hd), position_ + i);
        }
        std::vector<float> ctx(static_cast<std::size_t>(t * qd));
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        const float* kc = L.k_cache.data();
        const float* vc = L.v_cache.data();
        const index_t start = position_;
        auto head_task = [&](index_t task) {
            const index_t i = task / nh, hq = task % nh, kvh = hq / group, last = start + i;  // causal: <= last
            const float* qi = &q[static_cast<std::size_t>(i * qd + hq * hd)];
            std::vector<float> p(static_cast<std::size_t>(last + 1));
            float mx = -std::numeric_limits<float>::infinity();
            for (index_t j = 0; j <= last; ++j) {
                const float* kj = kc + j * kvd + kvh * hd;
                float s = 0.0f;
                for (index_t d = 0; d < hd; ++d) s += qi[d] * kj[d];
                p[static_cast<std::size_t>(j)] = s * scale;
                mx = std::max(mx, s * scale);
            }
            float sum = 0.0f;
            for (float& v : p) sum += v = std::exp(v - mx);
            float* out = &ctx[static_cast<std::size_t>(i * qd + hq * hd)];
            std::fill_n(out, hd, 0.0f);
            for (index_t j = 0; j <= last; ++j) {
                const float w = p[static_cast<std::size_t>(j)] / sum;
                const float* vj = vc + j * kvd + kvh * hd;
                for (index_t d = 0; d < hd; ++d) out[d] += w * vj[d];
            }
        };
        if (threads_ > 1 && t * nh > 1) cpu::thread_pool::instance().run(threads_, t * nh, head_task);
        else
            for (index_t task = 0; task < t * nh; ++task) head_task(task);
        L.o.forward(detail::cview(ctx, t, qd), detail::mview(y, t, h), threads_);
    }

    /// y = down(silu(gate(n)) * up(n)) for the t rows of n (width hidden).
    void swiglu(const linear& gate, const linear& up, const linear& down, matrix_view<const float> n,
                matrix_view<float> y) const {
        const index_t t = n.rows(), ff = gate.out_features();
        std::vector<float> g(static_cast<std::size_t>(t * ff)), u(g.size());
        gate.forward(n, detail::mview(g, t, ff), threads_);
        up.forward(n, detail::mview(u, t, ff), threads_);
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = detail::silu(g[i]) * u[i];
        down.forward(detail::cview(g, t, ff), y, threads_);
    }

    void dense_ffn(const layer& L, const std::vector<float>& n, std::vector<float>& y, index_t t) const {
        const index_t h = config_.hidden_size;
        swiglu(L.gate, L.up, L.down, detail::cview(n, t, h), detail::mview(y, t, h));
    }

    /// Mixtral: softmax over the router logits, the top k (the lower expert first on ties), weights renormalised
    /// to sum to 1; each expert runs once on the batch of rows routed to it.
    void moe_ffn(const layer& L, const std::vector<float>& n, std::vector<float>& y, index_t t) const {
        const llama_config& c = config_;
        const index_t h = c.hidden_size, ne = c.num_local_experts, k = c.num_experts_per_tok;
        std::vector<float> logits(static_cast<std::size_t>(t * ne));
        L.router.forward(detail::cview(n, t, h), detail::mview(logits, t, ne), threads_);
        std::vector<std::vector<std::pair<index_t, float>>> routed(static_cast<std::size_t>(ne));  // (row, weight)
        std::vector<index_t> order(static_cast<std::size_t>(ne));
        std::vector<float> prob(static_cast<std::size_t>(ne));
        for (index_t i = 0; i < t; ++i) {
            const float* r = &logits[static_cast<std::size_t>(i * ne)];
            const float mx = *std::max_element(r, r + ne);
            float sum = 0.0f;
            for (index_t e = 0; e < ne; ++e) sum += prob[static_cast<std::size_t>(e)] = std::exp(r[e] - mx);
            for (float& p : prob) p /= sum;
            std::iota(order.begin(), order.end(), index_t{0});
            std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
                return prob[static_cast<std::size_t>(a)] > prob[static_cast<std::size_t>(b)];
            });
            float top = 0.0f;
            for (index_t j = 0; j < k; ++j) top += prob[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])];
            for (index_t j = 0; j < k; ++j) {
                const index_t e = order[static_cast<std::size_t>(j)];
                routed[static_cast<std::size_t>(e)].push_back({i, prob[static_cast<std::size_t>(e)] / top});
            }
        }
        std::fill(y.begin(), y.begin() + t * h, 0.0f);
        std::vector<float> xin, xout;
        for (index_t e = 0; e < ne; ++e) {
            const auto& rows = routed[static_cast<std::size_t>(e)];
            if (rows.empty()) continue;
            const auto m = static_cast<index_t>(rows.size());
            xin.resize(static_cast<std::size_t>(m * h));
            xout.resize(xin.size());
            for (index_t r = 0; r < m; ++r)
                std::copy_n(&n[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)].first * h)], h,
                            &xin[static_cast<std::size_t>(r * h)]);
            const expert& E = L.experts[static_cast<std::size_t>(e)];
            swiglu(E.w1, E.w3, E.w2, detail::cview(xin, m, h), detail::mview(xout, m, h));
            for (index_t r = 0; r < m; ++r) {
                const auto [row, w] = rows[static_cast<std::size_t>(r)];
                for (index_t d = 0; d < h; ++d)
                    y[static_cast<std::size_t>(row * h + d)] += w * xout[static_cast<std::size_t>(r * h + d)];
            }
        }
    }

    llama_config config_;
    std::vector<float> embed_, final_norm_;
    std::vector<layer> layers_;
    linear lm_head_;
    detail::rope_table rope_;
    index_t position_ = 0;
    int threads_ = 1;
};

}  // namespace tcomp::model
