// Per-layer recipes (model/recipe.hpp): glob matching, first-match-wins resolution, every error case on a
// synthetic LLaMA model, and a mixed recipe on stories260K (../shared/models; CTest: Skipped when absent, failed under CI)
// whose perplexity must lie between the all-FP32 and all-W8A8 ones.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/metrics/distribution.hpp"
#include "tcomp/model/llama.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/model/recipe.hpp"

namespace {

using namespace tcomp;
using namespace tcomp::model;

llama_config synthetic_config() {
    llama_config c;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 40;
    c.max_position_embeddings = 32;
    c.tie_word_embeddings = true;
    c.validate();
    return c;
}

std::map<std::string, std::vector<float>> synthetic_weights(const llama_config& c) {
    std::map<std::string, std::vector<float>> out;
    std::mt19937 gen(7);
    for (const auto& [name, shape] : c.tensor_shapes()) {
        std::int64_t n = 1;
        for (auto s : shape) n *= s;
        std::normal_distribution<float> d(shape.size() == 1 ? 1.0f : 0.0f, shape.size() == 1 ? 0.1f : 0.15f);
        std::vector<float> v(static_cast<std::size_t>(n));
        for (float& x : v) x = d(gen);
        out[name] = std::move(v);
    }
    return out;
}

using tcomp_test::error_of;

}  // namespace

TEST_CASE("recipe: glob patterns match whole names", "[recipe]") {
    STATIC_REQUIRE(glob_match("model.layers.*.mlp.down_proj", "model.layers.12.mlp.down_proj"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("*", "anything.at.all"));
    CHECK(glob_match("fc?", "fc1"));
    CHECK_FALSE(glob_match("fc?", "fc12"));
    CHECK_FALSE(glob_match("fc?", "fc"));
    CHECK(glob_match("*.q_proj", "model.layers.0.self_attn.q_proj"));
    CHECK_FALSE(glob_match("*.q_proj", "model.layers.0.self_attn.q_proj.bias"));  // whole name, not a prefix
    CHECK_FALSE(glob_match("layers.*", "model.layers.0"));                          // nor a suffix
    CHECK(glob_match("a*b*c", "a__b__b__c"));
    CHECK_FALSE(glob_match("a*b*c", "a__b__b__"));
    CHECK(glob_match("model.layers.?.*", "model.layers.3.mlp.up_proj"));
    CHECK_FALSE(glob_match("model.layers.?.*", "model.layers.10.mlp.up_proj"));
    // a hostile pattern stays linear-ish: this would take ages with naive backtracking
    const std::string long_a(4000, 'a');
    CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", long_a));
}

TEST_CASE("recipe: first match wins, default for the rest, resolved on a synthetic LLaMA", "[recipe]") {
    const llama_config c = synthetic_config();
    const std::vector<std::string> layers = llama_layer_names(c);
    REQUIRE(layers.size() == 2 * 7 + 1);
    CHECK(layers.front() == "model.layers.0.self_attn.q_proj");
    CHECK(layers.back() == "lm_head");

    const recipe r = recipe::parse(R"({
        "description": "attention of layer 0 at 16-bit activations, every down_proj fp32",
        "default": "w8a8",
        "layers": [
            {"match": "model.layers.0.self_attn.*", "policy": "w8a16"},
            {"match": "model.layers.*.mlp.down_proj", "policy": "fp32"},
            {"match": "model.layers.0.self_attn.q_proj", "policy": "w4a8_g32"},
            {"match": "lm_head", "policy": "w4a16_g32"}
        ]})",
                                   "mixed.json");
    const policy_map m = r.resolve(layers, "mixed.json");
    REQUIRE(m.size() == layers.size());
    CHECK(m.at("model.layers.0.self_attn.q_proj") == "w8a16");  // rule 0 came first; rule 2 never applies here
    CHECK(m.at("model.layers.0.self_attn.o_proj") == "w8a16");
    CHECK(m.at("model.layers.1.self_attn.q_proj") == "w8a8");
    CHECK(m.at("model.layers.0.mlp.down_proj") == "fp32");
    CHECK(m.at("model.layers.1.mlp.down_proj") == "fp32");
    CHECK(m.at("model.layers.1.mlp.gate_proj") == "w8a8");
    CHECK(m.at("lm_head") == "w4a16_g32");
    // round trip through JSON
    CHECK(recipe::from_json(r.to_json()).resolve(layers) == m);

    // The map drives the loader: every linear of the model carries the policy the recipe gave it.
    const auto weights = synthetic_weights(c);
    const weight_source source = [&](const std::string& name, std::vector<std::int64_t>) { return weights.at(name); };
    llama_model model(c, source, policy_chooser_for(m));
    std::size_t checked = 0;
    for (std::size_t l = 0; l < model.layers().size(); ++l) {
        const auto& L = model.layers()[l];
        const std::string p = "model.layers." + std::to_string(l) + ".";
        for (const auto* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
            INFO(lin->name);
            CHECK(lin->policy() == m.at(lin->name));
            ++checked;
        }
    }
    CHECK(model.lm_head().policy() == "w4a16_g32");
    CHECK(checked == 14);
    // and the model runs; its logits differ from the fp32 model's (the policies did something) but not by much
    llama_model ref(c, source);
    const std::vector<int> tokens{1, 5, 9, 33, 2, 17};
    const auto a = ref.forward(tokens), b = model.forward(tokens);
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), norm += a[i] * a[i];
    CHECK(diff > 0);
    CHECK(diff < 0.05 * norm);

    // uniform recipes
    const policy_map all = recipe::uniform("w8a16").resolve(layers);
    for (const auto& [layer, policy] : all) CHECK(policy == "w8a16");
}

TEST_CASE("recipe: errors name the key, pattern or layer and list what is valid", "[recipe]") {
    const std::vector<std::string> layers = llama_layer_names(synthetic_config());
    auto resolve = [&](const char* text) { return recipe::parse(text, "r.json").resolve(layers, "r.json"); };

    std::string e = error_of([&] { resolve(R"({"default": "w8a8", "layer": []})"); });
    CHECK_THAT(e, Catch::Contains("r.json") && Catch::Contains("unknown key \"layer\"") && Catch::Contains("\"layers\""));
    e = error_of([&] { resolve(R"({"default": "w8a8", "layers": [{"match": "lm_head", "polcy": "fp32"}]})"); });
    CHECK_THAT(e, Catch::Contains("layers[0]") && Catch::Contains("unknown key \"polcy\"") && Catch::Contains("\"match\""));
    e = error_of([&] { resolve(R"({"default": "w3a3"})"); });
    CHECK_THAT(e, Catch::Contains("\"default\"") && Catch::Contains("unknown policy \"w3a3\"") &&
                      Catch::Contains("w8a8") && Catch::Contains("w4a16_g32"));
    e = error_of([&] { resolve(R"({"layers": [{"match": "*", "policy": "w8a8"}, {"match": "lm_head", "policy": "int4"}]})"); });
    CHECK_THAT(e, Catch::Contains("layers[1]") && Catch::Contains("lm_head") && Catch::Contains("unknown policy \"int4\"") &&
                      Catch::Contains("known policies: fp32"));
    e = error_of([&] { resolve(R"({"default": "w8a8", "layers": [{"match": "model.layers.*.mlp.down_prj", "policy": "fp32"}]})"); });
    CHECK_THAT(e, Catch::Contains("layers[0]") && Catch::Contains("\"model.layers.*.mlp.down_prj\"") &&
                      Catch::Contains("matches no layer") && Catch::Contains("model.layers.0.self_attn.q_proj"));
    e = error_of([&] { resolve(R"({"layers": [{"match": "model.layers.*", "policy": "w8a8"}]})"); });
    CHECK_THAT(e, Catch::Contains("layer lm_head") && Catch::Contains("no \"default\"") &&
                      Catch::Contains("\"model.layers.*\""));
    e = error_of([&] { resolve(R"({"default": 8})"); });
    CHECK_THAT(e, Catch::Contains("\"default\" must be a string"));
    e = error_of([&] { resolve(R"({"layers": {"match": "x"}})"); });
    CHECK_THAT(e, Catch::Contains("\"layers\" must be an array"));
    e = error_of([&] { resolve(R"({"layers": [{"policy": "fp32"}]})"); });
    CHECK_THAT(e, Catch::Contains("layers[0]") && Catch::Contains("\"match\" is missing"));
    e = error_of([&] { resolve(R"({"layers": [{"match": "", "policy": "fp32"}]})"); });
    CHECK_THAT(e, Catch::Contains("\"match\" is empty"));
    e = error_of([&] { resolve(R"({})"); });
    CHECK_THAT(e, Catch::Contains("neither \"default\" nor \"layers\""));
    e = error_of([&] { resolve(R"([1, 2])"); });
    CHECK_THAT(e, Catch::Contains("a recipe is a JSON object"));
    e = error_of([&] { resolve(R"({"default": "w8a8",)"); });
    CHECK_THAT(e, Catch::Contains("r.json") && Catch::Contains("not valid JSON"));
    e = error_of([] { (void)recipe::from_file("/nonexistent/recipe.json"); });
    CHECK_THAT(e, Catch::Contains("/nonexistent/recipe.json") && Catch::Contains("cannot open"));

    // A resolved map that lacks a layer the loader asks for, and a policy that cannot take a layer's K:
    // both name the layer.
    const llama_config c = synthetic_config();
    const auto weights = synthetic_weights(c);
    const weight_source source = [&](const std::string& name, std::vector<std::int64_t>) { return weights.at(name); };
    policy_map partial = recipe::uniform("w8a8").resolve(layers);
    partial.erase("model.layers.1.mlp.up_proj");
    e = error_of([&] { llama_model m(c, source, policy_chooser_for(partial)); });
    CHECK_THAT(e, Catch::Contains("model.layers.1.mlp.up_proj"));
    const policy_map g128 = recipe::parse(R"({"default": "fp32", "layers": [{"match": "*.down_proj", "policy": "w4a8"}]})")
                                .resolve(layers);
    e = error_of([&] { llama_model m(c, source, policy_chooser_for(g128)); });
    CHECK_THAT(e, Catch::Contains("model.layers.0.mlp.down_proj") && Catch::Contains("group size 128"));
}

TEST_CASE("recipe: a mixed recipe on stories260K lies between all-FP32 and all-W8A8", "[recipe][stories260K]") {
    if (!tcomp_test::have_models("the stories260K recipe check",
                                 {"stories260K/model.safetensors", "stories260K/config.json",
                                  "stories260K/tinystories_dev_tokens.safetensors"}))
        return;
    const std::filesystem::path dir = tcomp_test::models_dir() / "stories260K";
    const llama_config c = llama_config::from_file(dir / "config.json");
    const std::vector<std::string> layers = llama_layer_names(c);
    const recipe mixed = recipe::parse(R"({
        "default": "w8a8",
        "layers": [{"match": "model.layers.*.mlp.down_proj", "policy": "fp32"},
                   {"match": "lm_head", "policy": "fp32"},
                   {"match": "model.layers.4.*", "policy": "w8a16"}]})");
    const policy_map m = mixed.resolve(layers);

    const io::safetensors_file dev = io::safetensors_file::open(dir / "tinystories_dev_tokens.safetensors");
    const std::vector<float> tok_f = io::to_float(dev.tensor("tokens"));
    const std::vector<float> off_f = io::to_float(dev.tensor("offsets"));
#ifdef NDEBUG
    // All 40 stories: the ordering is a 1e-4 effect that smaller subsets do not resolve (on 16 stories both the
    // mixed and the W8A8 model score slightly below FP32).
    const std::size_t stories = off_f.size() - 1;
#else
    const std::size_t stories = 1;  // Debug / sanitizer builds: the policies and a sanity bound only
#endif
    auto perplexity = [&](llama_model& model) {
        metrics::nll_accumulator acc;
        for (std::size_t s = 0; s < stories; ++s) {
            std::vector<int> story;
            for (auto i = std::size_t(off_f[s]); i < std::size_t(off_f[s + 1]); ++i) story.push_back(int(tok_f[i]));
            const auto logits = model.forward(story);
            acc.add(matrix_view<const float>(logits.data(), index_t(story.size()) - 1, c.vocab_size),
                    std::span<const int>(story).subspan(1));
        }
        return acc.perplexity();
    };
    llama_model fp32 = load_llama(dir);
    llama_model w8a8 = load_llama(dir, policy_chooser_for(recipe::uniform("w8a8").resolve(layers)));
    llama_model mix = load_llama(dir, policy_chooser_for(m));

    std::size_t fp32_layers = 0, w8a16_layers = 0, w8a8_layers = 0;
    mix.for_each_linear([&](const linear& l) {
        INFO(l.name);
        CHECK(l.policy() == m.at(l.name));
        fp32_layers += l.policy() == "fp32";
        w8a16_layers += l.policy() == "w8a16";
        w8a8_layers += l.policy() == "w8a8";
    });
    CHECK(fp32_layers == 5);    // every down_proj (layer 4's too: rule 0 comes before rule 2)
    CHECK(w8a16_layers == 6);   // layer 4 except down_proj
    CHECK(w8a8_layers == 4 * 6);
    CHECK(mix.lm_head().policy() == "fp32");

#ifdef NDEBUG
    // FP32: the independent reference implementation's value stored with the dev set (README: 3.473231; the
    // LLaMA tests check that this model reproduces it), which saves evaluating a third model here.
    const double p_fp32 = std::stod(dev.metadata().at("fp32_perplexity"));
    REQUIRE(p_fp32 == Approx(3.473231).margin(1e-6));
#else
    const double p_fp32 = perplexity(fp32);
#endif
    const double p_w8a8 = perplexity(w8a8), p_mix = perplexity(mix);
    std::printf("stories260K recipe (%zu stories): perplexity fp32 %.6f, mixed %.6f, w8a8 %.6f; weight bytes %zu / %zu / %zu\n",
                stories, p_fp32, p_mix, p_w8a8, fp32.weight_bytes(), mix.weight_bytes(), w8a8.weight_bytes());
#ifdef NDEBUG
    CHECK(p_fp32 < p_mix);
    CHECK(p_mix < p_w8a8);
#else
    CHECK(std::abs(p_mix / p_fp32 - 1.0) < 0.01);
#endif
    CHECK(mix.weight_bytes() < fp32.weight_bytes());
    CHECK(mix.weight_bytes() > w8a8.weight_bytes());
}
