// The LLaMA-style decoder (model/llama.hpp) and its runtime linear layer (model/linear.hpp):
//  - seeded tiny models (dense GQA and a 4-expert top-2 MoE) against a direct double-precision
//    implementation written here from the Hugging Face definitions; incremental decoding (step, chunked
//    append) against the full-sequence forward; RoPE on a hand case; config and policy errors;
//  - the real stories260K checkpoint (../shared/models; CTest: Skipped when absent, failed under CI): greedy text from BOS,
//    logits of the reference tokens, dev-set perplexity, and compressed runs (W8A8, W4A8, ...) with bounds.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tcomp/format/half.hpp"
#include "tcomp/metrics/metrics.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/llama.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/imatrix.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace {

using namespace tcomp;
using namespace tcomp::model;

// ---------------------------------------------------------------------------------------------------------
// Seeded tiny models and a direct reference implementation (double precision, no cache, no shortcuts).
// ---------------------------------------------------------------------------------------------------------

llama_config tiny_config(bool moe) {
    llama_config c;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 8;
    c.vocab_size = 50;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = moe;  // one variant each way
    if (moe) c.num_local_experts = 4, c.num_experts_per_tok = 2;
    c.validate();
    return c;
}

using tensor_map = std::map<std::string, std::vector<float>>;

tensor_map random_weights(const llama_config& c, std::uint32_t seed) {
    tensor_map out;
    std::mt19937 gen(seed);
    for (const auto& [name, shape] : c.tensor_shapes()) {
        std::int64_t n = 1;
        for (auto s : shape) n *= s;
        std::vector<float> v(static_cast<std::size_t>(n));
        if (shape.size() == 1) {  // norm weights near 1
            std::uniform_real_distribution<float> d(0.8f, 1.2f);
            for (auto& x : v) x = d(gen);
        } else {
            // std ~ 1/sqrt(in) keeps activations O(1); the router is sharper so top-k is not a coin toss
            const float sigma = (name.find("embed") != std::string::npos ? 1.0f : 1.0f / std::sqrt(float(shape[1]))) *
                                (name.find("moe.gate") != std::string::npos ? 3.0f : 1.0f);
            std::normal_distribution<float> d(0.0f, sigma);
            for (auto& x : v) x = d(gen);
        }
        out[name] = std::move(v);
    }
    return out;
}

weight_source source_of(const tensor_map& m) {
    return [&m](const std::string& name, std::vector<std::int64_t>) { return m.at(name); };
}

using dmat = std::vector<std::vector<double>>;  // rows

dmat linear_ref(const dmat& x, const std::vector<float>& w, std::size_t out, std::size_t in) {
    dmat y(x.size(), std::vector<double>(out, 0.0));
    for (std::size_t t = 0; t < x.size(); ++t)
        for (std::size_t o = 0; o < out; ++o) {
            double s = 0;
            for (std::size_t i = 0; i < in; ++i) s += x[t][i] * w[o * in + i];
            y[t][o] = s;
        }
    return y;
}

dmat rms_ref(const dmat& x, const std::vector<float>& w, double eps) {
    dmat y = x;
    for (auto& row : y) {
        double ss = 0;
        for (double v : row) ss += v * v;
        const double inv = 1.0 / std::sqrt(ss / double(row.size()) + eps);
        for (std::size_t i = 0; i < row.size(); ++i) row[i] = w[i] * row[i] * inv;
    }
    return y;
}

/// HF apply_rotary_pos_emb on one head: q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1).
void rope_ref(double* v, std::size_t d, std::size_t pos, double theta) {
    std::vector<double> rot(d), cs(d), sn(d);
    for (std::size_t i = 0; i < d; ++i) {
        const double inv_freq = 1.0 / std::pow(theta, double(2 * (i % (d / 2))) / double(d));  // cat(freqs, freqs)
        cs[i] = std::cos(double(pos) * inv_freq), sn[i] = std::sin(double(pos) * inv_freq);
        rot[i] = i < d / 2 ? -v[i + d / 2] : v[i - d / 2];
    }
    for (std::size_t i = 0; i < d; ++i) v[i] = v[i] * cs[i] + rot[i] * sn[i];
}

dmat swiglu_ref(const dmat& x, const std::vector<float>& g, const std::vector<float>& u, const std::vector<float>& dn,
                std::size_t h, std::size_t ff) {
    dmat a = linear_ref(x, g, ff, h), b = linear_ref(x, u, ff, h);
    for (std::size_t t = 0; t < a.size(); ++t)
        for (std::size_t i = 0; i < ff; ++i) a[t][i] = a[t][i] / (1.0 + std::exp(-a[t][i])) * b[t][i];
    return linear_ref(a, dn, h, ff);
}

/// The whole decoder for a full sequence, straight from the definitions: full T x T scores with a causal mask.
dmat reference_logits(const llama_config& c, const tensor_map& w, const std::vector<int>& tokens) {
    const auto H = std::size_t(c.hidden_size), hd = std::size_t(c.head_dim), nh = std::size_t(c.num_attention_heads);
    const auto nkv = std::size_t(c.num_key_value_heads), ff = std::size_t(c.intermediate_size), T = tokens.size();
    const auto& E = w.at("model.embed_tokens.weight");
    dmat x(T, std::vector<double>(H));
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t i = 0; i < H; ++i) x[t][i] = E[std::size_t(tokens[t]) * H + i];
    for (index_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        const dmat n = rms_ref(x, w.at(p + "input_layernorm.weight"), c.rms_norm_eps);
        dmat q = linear_ref(n, w.at(p + "self_attn.q_proj.weight"), nh * hd, H);
        dmat k = linear_ref(n, w.at(p + "self_attn.k_proj.weight"), nkv * hd, H);
        const dmat v = linear_ref(n, w.at(p + "self_attn.v_proj.weight"), nkv * hd, H);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t h = 0; h < nh; ++h) rope_ref(&q[t][h * hd], hd, t, c.rope_theta);
            for (std::size_t h = 0; h < nkv; ++h) rope_ref(&k[t][h * hd], hd, t, c.rope_theta);
        }
        dmat ctx(T, std::vector<double>(nh * hd, 0.0));
        for (std::size_t h = 0; h < nh; ++h) {
            const std::size_t kvh = h / (nh / nkv);  // repeat_kv
            for (std::size_t t = 0; t < T; ++t) {
                std::vector<double> s(T);
                for (std::size_t j = 0; j < T; ++j) {
                    double d = 0;
                    for (std::size_t e = 0; e < hd; ++e) d += q[t][h * hd + e] * k[j][kvh * hd + e];
                    s[j] = j <= t ? d / std::sqrt(double(hd)) : -INFINITY;
                }
                const double mx = *std::max_element(s.begin(), s.end());
                double sum = 0;
                for (double& e : s) sum += e = std::exp(e - mx);
                for (std::size_t j = 0; j < T; ++j)
                    for (std::size_t e = 0; e < hd; ++e) ctx[t][h * hd + e] += s[j] / sum * v[j][kvh * hd + e];
            }
        }
        const dmat o = linear_ref(ctx, w.at(p + "self_attn.o_proj.weight"), H, nh * hd);
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t i = 0; i < H; ++i) x[t][i] += o[t][i];
        const dmat n2 = rms_ref(x, w.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
        dmat f(T, std::vector<double>(H, 0.0));
        if (c.is_moe()) {
            const auto ne = std::size_t(c.num_local_experts), k_top = std::size_t(c.num_experts_per_tok);
            const dmat r = linear_ref(n2, w.at(p + "block_sparse_moe.gate.weight"), ne, H);
            for (std::size_t t = 0; t < T; ++t) {
                std::vector<double> pr(ne);
                const double mx = *std::max_element(r[t].begin(), r[t].end());
                // unnormalised softmax: the top-k weights are renormalised by their own sum below
                for (std::size_t e = 0; e < ne; ++e) pr[e] = std::exp(r[t][e] - mx);
                std::vector<std::size_t> order(ne);
                std::iota(order.begin(), order.end(), 0);
                std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return pr[a] > pr[b]; });
                double top = 0;
                for (std::size_t j = 0; j < k_top; ++j) top += pr[order[j]];
                for (std::size_t j = 0; j < k_top; ++j) {
                    const std::string xp = p + "block_sparse_moe.experts." + std::to_string(order[j]) + ".";
                    const dmat y = swiglu_ref({n2[t]}, w.at(xp + "w1.weight"), w.at(xp + "w3.weight"),
                                              w.at(xp + "w2.weight"), H, ff);
                    for (std::size_t i = 0; i < H; ++i) f[t][i] += pr[order[j]] / top * y[0][i];
                }
            }
        } else {
            f = swiglu_ref(n2, w.at(p + "mlp.gate_proj.weight"), w.at(p + "mlp.up_proj.weight"),
                           w.at(p + "mlp.down_proj.weight"), H, ff);
        }
        for (std::size_t t = 0; t < T; ++t)
            for (std::size_t i = 0; i < H; ++i) x[t][i] += f[t][i];
    }
    const dmat n = rms_ref(x, w.at("model.norm.weight"), c.rms_norm_eps);
    return linear_ref(n, w.at(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"),
                      std::size_t(c.vocab_size), H);
}

std::vector<int> random_tokens(std::size_t n, int vocab, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> d(0, vocab - 1);
    std::vector<int> t(n);
    for (auto& v : t) v = d(gen);
    return t;
}

/// SQNR floor of a linear layer per policy on Gaussian weights and activations (K = 128).
double min_sqnr(std::string_view p) {
    // measured: w8a8 41.2, w8a16 43.7, w4a8 18.1, w4a16 19.7, w4a8_g32 20.0, w4a16_g32 21.6, w2a16 6.2,
    // w8a8_2of4 8.8, w4a8_2of4 8.6 (pruning half of Gaussian weights dominates), w1a1 2.1
    if (p == "fp32") return 200.0;
    if (p.starts_with("w8") && p.find("2of4") == std::string_view::npos) return 35.0;
    if (p.find("2of4") != std::string_view::npos) return 6.0;
    if (p.starts_with("w4")) return 15.0;
    if (p == "w2a16") return 4.0;
    if (p == "nf4") return 15.0;
    if (p == "mxfp4") return 12.0;
    if (p == "fp8") return 25.0;
    return 1.0;  // w1a1
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
    return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

TEST_CASE("linear: every registered policy runs, errors name the layer", "[llama][linear]") {
    const auto w = tcomp_test::gaussian(40, 128, 11, 0.1f);
    const auto x = tcomp_test::gaussian(5, 128, 12);
    std::vector<float> bias(40);
    for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * float(i);
    const auto ref = linear::make("fp32", w.view(), bias, "ref");
    CHECK(ref.in_features() == 128);
    CHECK(ref.out_features() == 40);
    CHECK(ref.weight_bytes() == (40 * 128 + 40) * sizeof(float));
    dense_matrix<float> y_ref(5, 40), y(5, 40);
    ref.forward(x.view(), y_ref.view());
    // fp32 against a direct sum
    for (index_t r = 0; r < 5; ++r)
        for (index_t c = 0; c < 40; ++c) {
            double s = bias[std::size_t(c)];
            for (index_t k = 0; k < 128; ++k) s += double(x(r, k)) * w(c, k);
            CHECK(y_ref(r, c) == Approx(s).margin(1e-4));
        }
    // threads split the columns: same result
    dense_matrix<float> y2(5, 40);
    ref.forward(x.view(), y2.view(), 3);
    CHECK(std::equal(y2.storage().begin(), y2.storage().end(), y_ref.storage().begin()));

    for (std::string_view p : known_policies()) {
        if (is_static_policy(p)) continue;  // needs calibrated scales (test_descriptor: the file table)
        const auto l = linear::make(p, w.view(), bias, "layer." + std::string(p));
        CHECK(l.policy() == p);
        l.forward(x.view(), y.view(), 2);
        const double sq = metrics::sqnr_db(std::span(y_ref.storage()), std::span(y.storage()));
        INFO(p << ": SQNR " << sq << " dB, " << l.weight_bytes() << " bytes, kernel note '" << l.kernel_note() << "'");
        std::printf("linear %-10s SQNR %6.2f dB, %5zu bytes%s%s\n", std::string(p).c_str(), sq, l.weight_bytes(),
                    l.kernel_note().empty() ? "" : ", oracle: ", l.kernel_note().c_str());
        CHECK(sq > min_sqnr(p));
        if (p != "fp32") CHECK(l.weight_bytes() < ref.weight_bytes());
    }
    // moved-from and moved-to
    auto a = linear::make("w8a8", w.view(), {}, "moved");
    linear b = std::move(a);
    b.forward(x.view(), y.view());
    CHECK(b.name == "moved");

    // unknown names list the known ones
    CHECK_THROWS_WITH(linear::make("w3a9", w.view()), Catch::Contains("unknown policy \"w3a9\"") &&
                                                          Catch::Contains("w8a8") && Catch::Contains("w4a8_2of4"));
    // a K the group size does not divide: the library's own error, with the layer name, no fallback
    const auto w64 = tcomp_test::gaussian(8, 64, 13);
    CHECK_THROWS_AS(linear::make("w4a8", w64.view(), {}, "blk.q_proj"), shape_error);
    CHECK_THROWS_WITH(linear::make("w4a8", w64.view(), {}, "blk.q_proj"),
                      Catch::Contains("blk.q_proj") && Catch::Contains("not a multiple of the group size 128"));
    CHECK_THROWS_WITH(linear::make("w8a8_2of4", tcomp_test::gaussian(8, 66, 1).view(), {}, "blk.odd"),
                      Catch::Contains("blk.odd") && Catch::Contains("multiple of M = 4"));
    // shapes
    dense_matrix<float> bad(5, 39);
    CHECK_THROWS_WITH(ref.forward(x.view(), bad.view()), Catch::Contains("linear 'ref'"));
    CHECK_THROWS_AS(linear::make("fp32", w.view(), std::vector<float>(3)), shape_error);
}

TEST_CASE("RoPE rotate-half on a hand case", "[llama]") {
    // d = 4, theta = 10000: inv_freq = (1, 1/100); pairs (v0, v2) turn by pos * 1, (v1, v3) by pos / 100
    std::vector<float> v{1, 2, 3, 4};
    apply_rope(v, 1);
    CHECK(v[0] == Approx(1 * std::cos(1.0) - 3 * std::sin(1.0)).margin(1e-6));
    CHECK(v[2] == Approx(3 * std::cos(1.0) + 1 * std::sin(1.0)).margin(1e-6));
    CHECK(v[1] == Approx(2 * std::cos(0.01) - 4 * std::sin(0.01)).margin(1e-6));
    CHECK(v[3] == Approx(4 * std::cos(0.01) + 2 * std::sin(0.01)).margin(1e-6));
    std::vector<float> z{1, 2, 3, 4};
    apply_rope(z, 0);
    CHECK(z == std::vector<float>{1, 2, 3, 4});
    // relative positions: <rope(q, m), rope(k, n)> depends on m - n only
    std::vector<float> q{0.3f, -1.f, 0.5f, 2.f}, k{1.f, 0.2f, -0.7f, 0.4f};
    auto dot_at = [&](int m, int n) {
        auto a = q, b = k;
        apply_rope(a, m), apply_rope(b, n);
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
    };
    CHECK(dot_at(7, 3) == Approx(dot_at(24, 20)).margin(1e-5));
}

TEST_CASE("tiny LLaMA and MoE: direct reference, step == forward", "[llama]") {
    for (const bool moe : {false, true}) {
        DYNAMIC_SECTION((moe ? "MoE 4 experts top-2, tied head" : "dense GQA, separate head")) {
            const llama_config c = tiny_config(moe);
            const tensor_map w = random_weights(c, moe ? 21 : 20);
            llama_model m(c, source_of(w));
            const std::vector<int> tokens = random_tokens(13, int(c.vocab_size), 5);
            const std::vector<float> full = m.forward(tokens);
            REQUIRE(full.size() == tokens.size() * std::size_t(c.vocab_size));
            CHECK(m.position() == 13);

            // the direct double-precision implementation
            const dmat ref = reference_logits(c, w, tokens);
            double err = 0, mag = 0;
            for (std::size_t t = 0; t < tokens.size(); ++t)
                for (std::size_t v = 0; v < std::size_t(c.vocab_size); ++v) {
                    err = std::max(err, std::abs(ref[t][v] - full[t * std::size_t(c.vocab_size) + v]));
                    mag = std::max(mag, std::abs(ref[t][v]));
                }
            INFO("max |logit| " << mag << ", max error vs direct reference " << err);
            CHECK(err < 2e-5 * std::max(1.0, mag));

            // token-by-token decoding with the cache
            m.reset();
            std::vector<float> inc;
            for (int tok : tokens) {
                const auto l = m.step(tok);
                inc.insert(inc.end(), l.begin(), l.end());
            }
            CHECK(max_abs_diff(inc, full) < 1e-5);
            // chunked prefill: 5 then 8
            m.reset();
            auto chunked = m.append(std::span(tokens).first(5));
            const auto rest = m.append(std::span(tokens).subspan(5));
            chunked.insert(chunked.end(), rest.begin(), rest.end());
            CHECK(max_abs_diff(chunked, full) < 1e-5);
            // forward() after decoding resets the cache
            CHECK(max_abs_diff(m.forward(tokens), full) == 0.0);
            // threads do not change the result beyond float reassociation
            m.set_threads(2);
            CHECK(max_abs_diff(m.forward(tokens), full) < 1e-5);

            // greedy = argmax of the step logits
            const auto g = m.generate_greedy(1, 6);
            REQUIRE(g.size() == 7);
            m.reset();
            auto logits = m.step(1);
            for (int i = 1; i < 7; ++i) {
                CHECK(g[std::size_t(i)] == metrics::argmax(logits));
                logits = m.step(g[std::size_t(i)]);
            }

            // compressed layers through the chooser (K = 32 / 48: per-channel W8A8 takes every layer)
            llama_model q8(c, source_of(w), [](const std::string&) { return std::string("w8a8"); });
            const auto l8 = q8.forward(tokens);
            const matrix_view<const float> F(full.data(), 13, c.vocab_size), Q(l8.data(), 13, c.vocab_size);
            CHECK(metrics::mean_kl_divergence(F, Q) < 0.01);
            CHECK(q8.weight_bytes() < m.weight_bytes());
            q8.reset();
            std::vector<float> inc8;
            for (int tok : tokens) {
                const auto l = q8.step(tok);
                inc8.insert(inc8.end(), l.begin(), l.end());
            }
            CHECK(max_abs_diff(inc8, l8) < 1e-4);  // per-token activation scales: rows are independent

            // errors: token range, context length
            CHECK_THROWS_AS(m.step(int(c.vocab_size)), value_error);
            m.reset();
            CHECK_THROWS_WITH(m.forward(random_tokens(65, int(c.vocab_size), 1)),
                              Catch::Contains("max_position_embeddings"));
        }
    }
}

TEST_CASE("llama_config: strict parsing names the field", "[llama]") {
    nlohmann::json j = {{"hidden_size", 64},       {"intermediate_size", 172}, {"num_hidden_layers", 5},
                        {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"vocab_size", 512},
                        {"rms_norm_eps", 1e-5},     {"tie_word_embeddings", true}, {"model_type", "llama"}};
    const auto c = llama_config::from_json(j);
    CHECK(c.head_dim == 8);
    CHECK(c.rope_theta == 10000.0);
    CHECK(c.max_position_embeddings == 2048);
    CHECK(!c.is_moe());
    auto without = j;
    without.erase("vocab_size");
    CHECK_THROWS_WITH(llama_config::from_json(without), Catch::Contains("\"vocab_size\" is missing"));
    auto unknown = j;
    unknown["hiden_size"] = 64;
    CHECK_THROWS_WITH(llama_config::from_json(unknown), Catch::Contains("unknown field \"hiden_size\""));
    auto wrong_type = j;
    wrong_type["hidden_size"] = "64";
    CHECK_THROWS_WITH(llama_config::from_json(wrong_type), Catch::Contains("\"hidden_size\" has the wrong type"));
    auto scaling = j;
    scaling["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    CHECK_THROWS_WITH(llama_config::from_json(scaling), Catch::Contains("rope_scaling"));
    auto gqa = j;
    gqa["num_key_value_heads"] = 3;
    CHECK_THROWS_WITH(llama_config::from_json(gqa), Catch::Contains("num_key_value_heads"));
    auto moe = j;
    moe["num_local_experts"] = 4;
    moe["num_experts_per_tok"] = 5;
    CHECK_THROWS_WITH(llama_config::from_json(moe), Catch::Contains("num_experts_per_tok"));

    // a weight source that returns the wrong size is caught with the tensor's name
    const llama_config tc = tiny_config(false);
    tensor_map w = random_weights(tc, 1);
    w["model.layers.1.mlp.up_proj.weight"].pop_back();
    CHECK_THROWS_WITH(llama_model(tc, source_of(w)), Catch::Contains("model.layers.1.mlp.up_proj.weight"));
}

// ---------------------------------------------------------------------------------------------------------
// stories260K (../shared/models/stories260K): the references of an independent FP32 implementation.
// ---------------------------------------------------------------------------------------------------------

namespace {

nlohmann::json config_json(const llama_config& c) {
    return {{"model_type", "llama"},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"vocab_size", c.vocab_size},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tie_word_embeddings}};
}

/// Writes config.json and the tensors (split over `shards` files with an index when shards > 1).
void write_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config, const tensor_map& w,
                      const std::map<std::string, std::vector<std::int64_t>>& shapes, int shards = 1) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << config.dump(2);
    std::vector<io::safetensors_writer> writers(static_cast<std::size_t>(shards));
    nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
    int i = 0;
    for (const auto& [name, data] : w) {
        const int s = i++ % shards;
        writers[static_cast<std::size_t>(s)].add_f32(name, shapes.at(name), data);
        index["weight_map"][name] = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) +
                                    ".safetensors";
    }
    if (shards == 1) {
        writers[0].write(dir / "model.safetensors");
    } else {
        for (int s = 0; s < shards; ++s)
            writers[static_cast<std::size_t>(s)].write(dir / ("model-0000" + std::to_string(s + 1) + "-of-0000" +
                                                              std::to_string(shards) + ".safetensors"));
        std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
    }
}

}  // namespace

TEST_CASE("load_llama: HF checkpoint directories, single and sharded, checked against config.json", "[llama]") {
    const llama_config c = tiny_config(false);
    tensor_map w = random_weights(c, 30);
    std::map<std::string, std::vector<std::int64_t>> shapes;
    for (const auto& [name, shape] : c.tensor_shapes()) shapes[name] = shape;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("tcomp_test_llama_" + std::to_string(std::random_device{}()));
    const std::vector<int> tokens = random_tokens(9, int(c.vocab_size), 2);
    llama_model mem(c, source_of(w));
    const auto expected = mem.forward(tokens);

    write_checkpoint(dir, config_json(c), w, shapes);
    CHECK(load_llama(dir).forward(tokens) == expected);
    write_checkpoint(dir, config_json(c), w, shapes, 3);
    CHECK(load_llama(dir).forward(tokens) == expected);

    // a tensor whose shape disagrees with config.json
    auto bad_shapes = shapes;
    bad_shapes["model.layers.1.self_attn.k_proj.weight"] = {32, 16};
    write_checkpoint(dir, config_json(c), w, bad_shapes);
    CHECK_THROWS_WITH(load_llama(dir), Catch::Contains("model.layers.1.self_attn.k_proj.weight") &&
                                           Catch::Contains("[32, 16]") && Catch::Contains("[16, 32]"));
    // the config claims fewer layers than the file holds
    auto fewer = config_json(c);
    fewer["num_hidden_layers"] = 1;
    write_checkpoint(dir, fewer, w, shapes);
    CHECK_THROWS_WITH(load_llama(dir), Catch::Contains("model.layers.1.") && Catch::Contains("does not imply"));
    // an untied config without lm_head.weight
    auto no_head = w;
    no_head.erase("lm_head.weight");
    write_checkpoint(dir, config_json(c), no_head, shapes);
    CHECK_THROWS_WITH(load_llama(dir), Catch::Contains("lm_head.weight") && Catch::Contains("missing"));
    // the config's own errors name the file and the field
    auto bad_cfg = config_json(c);
    bad_cfg.erase("hidden_size");
    write_checkpoint(dir, bad_cfg, w, shapes);
    CHECK_THROWS_WITH(load_llama(dir), Catch::Contains("config.json") && Catch::Contains("hidden_size"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("load_llama: F16 and BF16 checkpoints load as their exact float values", "[llama]") {
    // Each weight is rounded to the 16-bit format in the test (tcomp's own encoder) and stored as raw codes;
    // the loader's widening must give exactly the decoded values, so the F16/BF16 checkpoint computes what an
    // F32 checkpoint of the rounded weights computes, bit for bit.
    const llama_config c = tiny_config(false);
    const tensor_map w = random_weights(c, 31);
    std::map<std::string, std::vector<std::int64_t>> shapes;
    for (const auto& [name, shape] : c.tensor_shapes()) shapes[name] = shape;
    const std::vector<int> tokens = random_tokens(7, int(c.vocab_size), 3);
    const auto dir = std::filesystem::temp_directory_path() /
                     ("tcomp_test_llama_half_" + std::to_string(std::random_device{}()));
    auto check = [&](auto format, io::dtype type, const char* label) {
        using F = decltype(format);
        INFO(label);
        tensor_map rounded;
        io::safetensors_writer writer;
        for (const auto& [name, data] : w) {
            std::vector<std::uint16_t> codes(data.size());
            std::vector<float> values(data.size());
            for (std::size_t i = 0; i < data.size(); ++i) {
                codes[i] = static_cast<std::uint16_t>(F::encode(data[i]));
                values[i] = F::decode(codes[i]);
            }
            rounded[name] = values;
            writer.add(name, type, shapes.at(name), std::as_bytes(std::span<const std::uint16_t>(codes)));
        }
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "config.json") << config_json(c).dump(2);
        writer.write(dir / "model.safetensors");
        llama_model from_file = load_llama(dir);
        llama_model in_memory(c, source_of(rounded));
        CHECK(from_file.forward(tokens) == in_memory.forward(tokens));
        CHECK(rounded.at("model.layers.0.mlp.up_proj.weight") != w.at("model.layers.0.mlp.up_proj.weight"));
    };
    check(fp16_format{}, io::dtype::f16, "F16");
    check(bf16_format{}, io::dtype::bf16, "BF16");
    std::filesystem::remove_all(dir);
}

namespace {

const std::filesystem::path stories_dir = tcomp_test::models_dir() / "stories260K";

/// A minimal safetensors reader for the reference data (test-only; the model loads through tcomp::io).
struct raw_tensor {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::vector<char> bytes;
    template <class T>
    std::vector<T> as() const {
        std::vector<T> v(bytes.size() / sizeof(T));
        std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
        return v;
    }
};

std::map<std::string, raw_tensor> read_safetensors(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE(in);
    std::uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, '\0');
    in.read(header.data(), std::streamsize(n));
    std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::map<std::string, raw_tensor> out;
    const nlohmann::json h = nlohmann::json::parse(header);
    for (const auto& [name, e] : h.items()) {
        if (name == "__metadata__") continue;
        const auto off = e.at("data_offsets").get<std::vector<std::size_t>>();
        REQUIRE(off[1] <= data.size());
        out[name] = {e.at("dtype").get<std::string>(), e.at("shape").get<std::vector<std::int64_t>>(),
                     std::vector<char>(data.begin() + std::ptrdiff_t(off[0]), data.begin() + std::ptrdiff_t(off[1]))};
    }
    return out;
}

bool have_stories() {
    return tcomp_test::have_models("the stories260K reference checks",
                                   {"stories260K/model.safetensors", "stories260K/config.json",
                                    "stories260K/reference_greedy.json", "stories260K/reference_logits.safetensors",
                                    "stories260K/tinystories_dev_tokens.safetensors"});
}

struct dev_set {
    std::vector<int> tokens;
    std::vector<std::int64_t> offsets;
};

dev_set load_dev_set() {
    auto t = read_safetensors(stories_dir / "tinystories_dev_tokens.safetensors");
    REQUIRE(t.at("tokens").dtype == "I32");
    REQUIRE(t.at("offsets").dtype == "I64");
    return {t.at("tokens").as<std::int32_t>(), t.at("offsets").as<std::int64_t>()};
}

struct eval_result {
    double perplexity = 0, mean_kl = 0, top1 = 0;
    std::size_t tokens = 0;
};

/// Dev-set perplexity (each story predicts tokens 1..len-1 from its prefix), and when `reference` is given
/// (the FP32 logits of every story, concatenated), mean KL and top-1 agreement against it.
eval_result evaluate(llama_model& m, const dev_set& d, std::vector<std::vector<float>>* keep,
                     const std::vector<std::vector<float>>* reference) {
    metrics::nll_accumulator acc;
    double kl = 0, top1 = 0;
    const index_t v = m.config().vocab_size;
    for (std::size_t s = 0; s + 1 < d.offsets.size(); ++s) {
        const std::span<const int> story(d.tokens.data() + d.offsets[s], std::size_t(d.offsets[s + 1] - d.offsets[s]));
        const std::vector<float> logits = m.forward(story);
        const auto rows = index_t(story.size()) - 1;
        acc.add(matrix_view<const float>(logits.data(), rows, v), story.subspan(1));
        if (reference) {
            const matrix_view<const float> a((*reference)[s].data(), rows, v), b(logits.data(), rows, v);
            kl += metrics::mean_kl_divergence(a, b) * double(rows);
            top1 += metrics::top1_agreement(a, b) * double(rows);
        }
        if (keep) keep->push_back(logits);
    }
    eval_result r;
    r.perplexity = acc.perplexity();
    r.tokens = acc.count;
    r.mean_kl = kl / double(acc.count);
    r.top1 = top1 / double(acc.count);
    return r;
}

/// K of a stories260K / LLaMA projection from its tensor name (the chooser only sees names).
index_t k_of(const llama_config& c, const std::string& name) {
    if (name.find("down_proj") != std::string::npos || name.find(".w2.") != std::string::npos)
        return c.intermediate_size;
    if (name.find("o_proj") != std::string::npos) return c.num_attention_heads * c.head_dim;
    return c.hidden_size;
}

}  // namespace

TEST_CASE("stories260K: greedy text, logits and dev perplexity match the FP32 references", "[llama][stories260K]") {
    if (!have_stories()) return;
    llama_model m = load_llama(stories_dir);
    const auto& c = m.config();
    CHECK(c.hidden_size == 64);
    CHECK(c.tie_word_embeddings);

    // greedy from BOS: bos + 60 tokens, exactly
    std::ifstream gin(stories_dir / "reference_greedy.json");
    const auto greedy = nlohmann::json::parse(gin);
    const auto expected = greedy.at("greedy_from_bos_ids").get<std::vector<int>>();
    const auto got = m.generate_greedy(c.bos_token_id, int(expected.size()) - 1);
    CHECK(got == expected);
    const auto matching = std::mismatch(got.begin(), got.end(), expected.begin()).first - got.begin();

    // logits of the 128 reference tokens
    const auto ref = read_safetensors(stories_dir / "reference_logits.safetensors");
    const auto tokens = ref.at("tokens").as<std::int32_t>();
    const auto ref_logits = ref.at("logits").as<float>();
    REQUIRE(tokens.size() == 128);
    const auto logits = m.forward(std::vector<int>(tokens.begin(), tokens.end()));
    const double err = max_abs_diff(logits, ref_logits);
    CHECK(err < 1e-4);
    // and through the cache
    m.reset();
    std::vector<float> inc;
    for (int t : tokens) {
        const auto l = m.step(t);
        inc.insert(inc.end(), l.begin(), l.end());
    }
    const double err_step = max_abs_diff(inc, ref_logits);
    CHECK(err_step < 1e-4);

#ifdef NDEBUG
    const dev_set d = load_dev_set();
    REQUIRE(d.offsets.size() == 41);
    const eval_result r = evaluate(m, d, nullptr, nullptr);
    CHECK(r.tokens == 12571);
    CHECK(r.perplexity == Approx(3.4732).margin(0.0005));
    std::printf("stories260K FP32: greedy %td/%zu ids match, max |logit err| forward %.3g step %.3g, "
                "dev perplexity %.6f over %zu tokens, %zu weight bytes\n",
                matching, expected.size(), err, err_step, r.perplexity, r.tokens, m.weight_bytes());
#else
    // The sanitizer build has run the forward pass, the cache and the greedy loop above; the 12,571-token dev
    // perplexity (45 s under ASan at -O0) runs in optimized builds.
    WARN("SKIPPED in this unoptimized build: the dev-set perplexity (greedy " << matching << "/" << expected.size()
         << " ids, logits " << err << " / " << err_step << " checked)");
#endif
}

TEST_CASE("stories260K compressed: W8A8 tight, W4A8 looser, policies that cannot take a layer say so",
          "[llama][stories260K]") {
    if (!have_stories()) return;
    const llama_config c = llama_config::from_file(stories_dir / "config.json");
    const dev_set d = load_dev_set();
    llama_model fp32 = load_llama(stories_dir);

    // Group-128 formats cannot take K = 64 (q/k/v/o, gate/up, head) or K = 172 (down): the library's error,
    // with the tensor name, never a silent fallback.
    CHECK_THROWS_WITH(load_llama(stories_dir, [](const std::string&) { return std::string("w4a8"); }),
                      Catch::Contains("model.layers.0.self_attn.q_proj") &&
                          Catch::Contains("not a multiple of the group size 128"));
    CHECK_THROWS_WITH(load_llama(stories_dir, [](const std::string&) { return std::string("w4a8_g32"); }),
                      Catch::Contains("model.layers.0.mlp.down_proj") && Catch::Contains("K = 172"));

    // A chooser that gives a layer the policy only where its K fits, else keeps it fp32 (said in the table).
    auto where_fits = [&](std::string policy, index_t group) {
        return [&c, policy, group](const std::string& name) {
            return k_of(c, name) % group == 0 ? policy : std::string("fp32");
        };
    };
    struct run {
        const char* label;
        policy_chooser choose;
        double max_ppl_ratio, max_kl;
    };
    // Bounds: measured values (see the table this test prints) with headroom; W8A8 is tight.
    // Measured (x86-64, any ISA path: the integer kernels are bit-exact): w8a8 3.477544 (x1.0012, KL 0.0016,
    // top-1 0.978); w8a16 3.472702 (x0.9998, KL 0.0006); w4a8_g32 3.979830 (x1.146, KL 0.134, top-1 0.82);
    // w4a16_g32 3.803606 (x1.095, KL 0.093); w8a8_2of4 155.66 (x44.8, KL 3.81: magnitude 2:4 pruning without
    // retraining breaks this model; the bound only guards against worse). A 260K-parameter model with hidden 64
    // has no redundancy to spare, hence the large 4-bit and 2:4 losses.
    const std::vector<run> runs{
        {"w8a8 (all layers + head)", [](const std::string&) { return std::string("w8a8"); }, 1.004, 0.003},
        {"w8a16 (all layers + head)", [](const std::string&) { return std::string("w8a16"); }, 1.003, 0.002},
        {"w4a8 g128 (no layer fits: all fp32)", where_fits("w4a8", 128), 1.0 + 1e-12, 1e-12},
        {"w4a8_g32 (down_proj fp32)", where_fits("w4a8_g32", 32), 1.20, 0.16},
        {"w4a16_g32 (down_proj fp32)", where_fits("w4a16_g32", 32), 1.15, 0.11},
        {"w8a8_2of4 (all layers + head)", [](const std::string&) { return std::string("w8a8_2of4"); }, 60.0, 5.0},
    };
#ifndef NDEBUG
    // Debug builds (the ASan stage) run every kernel at -O0: seven dev-set evaluations take minutes there. The
    // errors above ran; the quality bounds run in the optimized (dev) stage.
    WARN("SKIPPED in this unoptimized build: the per-policy perplexity bounds (they run in optimized builds)");
    return;
#endif
    std::vector<std::vector<float>> ref;
    const eval_result base = evaluate(fp32, d, &ref, nullptr);
    std::printf("stories260K dev set: FP32 perplexity %.6f, %zu weight bytes\n", base.perplexity, fp32.weight_bytes());
    for (const run& r : runs) {
        llama_model m = load_llama(stories_dir, r.choose);
        const eval_result e = evaluate(m, d, nullptr, &ref);
        std::printf("  %-36s perplexity %.6f (x%.4f), mean KL %.5f, top-1 agreement %.4f, %zu weight bytes\n", r.label,
                    e.perplexity, e.perplexity / base.perplexity, e.mean_kl, e.top1, m.weight_bytes());
        INFO(r.label << ": perplexity " << e.perplexity << " vs fp32 " << base.perplexity << ", KL " << e.mean_kl);
        CHECK(e.perplexity / base.perplexity <= r.max_ppl_ratio);
        CHECK(e.mean_kl <= r.max_kl);
    }
}

TEST_CASE("stories260K: GPTQ and importance-weighted scales against RTN (calibration split, dev-set KL)",
          "[llama][stories260K][calib]") {
    if (!have_stories() || !tcomp_test::have_models("the stories260K calibration checks",
                                                    {"stories260K/tinystories_calib_tokens.safetensors"}))
        return;
#ifndef NDEBUG
    WARN("SKIPPED in this unoptimized build: the calibrated dev-set evaluations (they run in optimized builds)");
    return;
#endif
    const llama_config config = llama_config::from_file(stories_dir / "config.json");
    const io::safetensors_set files = io::safetensors_set::open(stories_dir);
    const weight_source source = [&](const std::string& name, const std::vector<std::int64_t>&) {
        return io::to_float(files.tensor(name));
    };
    // Statistics of every projection's input, from the FP32 model on the 160 calibration stories (disjoint from
    // the 40 dev stories the evaluation uses).
    auto calib = read_safetensors(stories_dir / "tinystories_calib_tokens.safetensors");
    const std::vector<int> calib_tokens = calib.at("tokens").as<std::int32_t>();
    const std::vector<std::int64_t> calib_offsets = calib.at("offsets").as<std::int64_t>();
    llama_model fp32(config, source);
    // CI calibrates on the first 40 of the 160 calibration stories; TCOMP_FULL_EVAL=1 on all (the report's).
    const bool full = std::getenv("TCOMP_FULL_EVAL") != nullptr;
    const std::size_t calib_stories = full ? calib_offsets.size() - 1 : std::min<std::size_t>(40, calib_offsets.size() - 1);
    const model::layer_statistics stats = model::collect_input_statistics([&] {
        for (std::size_t s = 0; s < calib_stories; ++s)
            (void)fp32.forward(std::span<const int>(calib_tokens.data() + calib_offsets[s],
                                                    std::size_t(calib_offsets[s + 1] - calib_offsets[s])));
    });
    CHECK(stats.count("lm_head") == 1);
    CHECK(stats.count("model.layers.0.mlp.down_proj") == 1);
    CHECK(stats.at("model.layers.0.self_attn.q_proj").rows() == calib_offsets[calib_stories]);

    const dev_set d = load_dev_set();
    std::vector<std::vector<float>> ref;
    const eval_result base = evaluate(fp32, d, &ref, nullptr);

    // Every projection whose K the group size divides (all but down_proj, K = 172) and the tied head.
    enum class method { rtn, imatrix, gptq, gptq_static, gptq_act_order, gptq_imatrix };
    auto run = [&](const char* spelling, method how) {
        const descriptor desc = parse_descriptor(spelling);
        const linear_builder build = [&](const std::string& prefix, index_t out, index_t in,
                                         std::span<const float> bias) -> std::optional<linear> {
            if (in % 32 != 0) return std::nullopt;  // fp32 (the chooser below is empty)
            const std::vector<float> w = source(prefix == "lm_head" ? "model.embed_tokens.weight" : prefix + ".weight", {});
            const matrix_view<const float> wv(w.data(), out, in);
            const calib::input_statistics& st = stats.at(prefix);
            compressed_tensor t;
            switch (how) {
                case method::rtn: t = compress(desc, wv); break;
                case method::imatrix: t = calib::importance_quantize(wv, st.mean_square(), desc); break;
                case method::gptq: t = calib::gptq(wv, st, desc); break;
                case method::gptq_static: t = calib::gptq(wv, st, desc, {.static_groups = true}); break;
                case method::gptq_act_order: t = calib::gptq(wv, st, desc, {.act_order = true}); break;
                case method::gptq_imatrix: {
                    const scale_table scales = calib::importance_scales(wv, st.mean_square(), desc);
                    t = calib::gptq(wv, st, desc, {.act_order = true, .scales = &scales});
                    break;
                }
            }
            return linear::from_compressed(std::move(t), bias, prefix);
        };
        llama_model m(config, source, {}, build);
        return evaluate(m, d, nullptr, &ref);
    };
    const char* names[] = {"RTN", "imatrix", "GPTQ", "GPTQ static", "GPTQ act-order", "GPTQ+imatrix act"};
    // CI runs the three methods the checks need at 4 and 3 bits; TCOMP_FULL_EVAL=1 prints the whole table of
    // docs/quantization-methods.md (every method, 2 bits too).
    std::vector<const char*> spellings{"w=int4:g32 a=int8:token", "w=int3:g32"};
    std::vector<int> methods{0, 1, 5};
    if (full) spellings.push_back("w=int2:g32"), methods = {0, 1, 2, 3, 4, 5};
    std::printf("stories260K dev set (40 stories; calibration: %zu other stories), FP32 perplexity %.4f\n",
                calib_stories, base.perplexity);
    for (const char* spelling : spellings) {
        eval_result r[6];
        for (int i : methods) {
            r[i] = run(spelling, static_cast<method>(i));
            std::printf("  %-26s %-16s perplexity %9.4f (x%.3f), mean KL %.4f, top-1 %.4f\n", spelling, names[i],
                        r[i].perplexity, r[i].perplexity / base.perplexity, r[i].mean_kl, r[i].top1);
        }
        INFO(spelling << ": KL RTN " << r[0].mean_kl << ", imatrix " << r[1].mean_kl << ", GPTQ+imatrix act-order "
                      << r[5].mean_kl);
        CHECK(r[1].mean_kl < r[0].mean_kl);
        CHECK(r[5].mean_kl < r[1].mean_kl);
        for (int i : methods)
            if (i != 0) CHECK(r[i].mean_kl < r[0].mean_kl);
    }
}
