// The trained text-to-image model (../shared/models/t2i_mnist; CTest: Skipped when absent, failed under CI):
//  - the word-level tokenizer and the loader against the files (tokens, shapes, named errors for bad files);
//  - FP32 text embeddings, one denoiser call, the DDIM-20 trajectory and LCM-4 against the PyTorch references,
//    within bounds stated below; the MNIST MLP reads the DDIM-20 images as the reference's metadata says;
//  - classifier-free guidance: eps("") + s (eps(prompt) - eps("")) step by step, s = 1 is the plain sampler;
//  - the evaluation (t2i_evaluation.hpp): prompt sets disjoint, scores of FP32 against itself, a quantized
//    recipe below FP32 in PSNR, and the same recipe calibrated with GPTQ (layer_methods.hpp) above RTN.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/model/diffusion_checkpoint.hpp"
#include "tcomp/model/layer_methods.hpp"
#include "tcomp/model/mlp_classifier.hpp"
#include "tcomp/metrics/signal.hpp"
#include "tcomp/model/t2i_evaluation.hpp"
#include "tcomp/model/t2i_mixed_precision.hpp"

using namespace tcomp;
using tcomp_test::error_of;

namespace {

std::filesystem::path t2i_dir() { return tcomp_test::models_dir() / "t2i_mnist"; }

bool have_t2i(std::string_view what) {
    return tcomp_test::have_models(what, {"t2i_mnist/config.json", "t2i_mnist/tokenizer.json",
                                          "t2i_mnist/model.safetensors", "t2i_mnist/reference.safetensors"});
}

std::vector<float> ref_floats(const io::safetensors_file& f, const std::string& name) {
    return io::to_float(f.tensor(name));
}
std::vector<int> ref_ints(const io::safetensors_file& f, const std::string& name) {
    const io::tensor_view& t = f.tensor(name);
    REQUIRE(t.type == io::dtype::i32);
    std::vector<int> v(static_cast<std::size_t>(t.numel()));
    std::memcpy(v.data(), t.data.data(), v.size() * sizeof(int));
    return v;
}

std::vector<std::string> dev_prompts() {
    std::ifstream in(t2i_dir() / "dev_prompts.json");
    return nlohmann::json::parse(in).get<std::vector<std::string>>();
}

/// max |a - b| / max |b|: the error relative to the tensor's scale.
double relative_max_error(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double err = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return err / scale;
}

/// A copy of the model directory in a temporary folder, for tests that break one file.
struct model_copy {
    std::filesystem::path dir;
    explicit model_copy(const std::string& tag) {
        dir = std::filesystem::temp_directory_path() / ("tcomp_t2i_" + tag + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        for (const char* f : {"config.json", "tokenizer.json", "model.safetensors"}) {
            std::filesystem::copy_file(t2i_dir() / f, dir / f);
            std::filesystem::permissions(dir / f, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
        }
    }
    ~model_copy() { std::filesystem::remove_all(dir); }
    nlohmann::json json(const char* file) const {
        std::ifstream in(dir / file);
        return nlohmann::json::parse(in);
    }
    void write(const char* file, const nlohmann::json& j) const { std::ofstream(dir / file) << j.dump(1); }
};

}  // namespace

TEST_CASE("prompt tokenizer: bytes and words, truncation, unknown words, bad files", "[t2i]") {
    const auto bytes = model::prompt_tokenizer::bytes();
    CHECK(bytes.encode("hi", 6) == model::byte_tokenizer::encode("hi", 6));
    const std::string json = R"({"type": "word-level", "lowercase": true, "split": "whitespace", "pad_id": 0,
        "bos_id": 1, "eos_id": 2, "unk_id": 3, "vocab": {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3, "a": 4,
        "seven": 5, "7": 6}})";
    const auto words = model::prompt_tokenizer::parse(json);
    CHECK(words.vocab_size() == 7);
    CHECK(words.encode("A  Seven\t7 eight", 8) == std::vector<int>{1, 4, 5, 6, 3, 2, 0, 0});
    CHECK(words.encode("a a a a a a a", 5) == std::vector<int>{1, 4, 4, 4, 2});  // context - 2 words kept
    CHECK(words.encode("", 3) == std::vector<int>{1, 2, 0});
    CHECK(words.encode("   ", 2) == std::vector<int>{1, 2});
    CHECK_THROWS_AS(words.encode("a", 1), value_error);

    auto parse_error = [&](const std::string& from, const std::string& to) {
        std::string bad = json;
        const auto at = bad.find(from);
        REQUIRE(at != std::string::npos);
        bad.replace(at, from.size(), to);
        return error_of([&] { model::prompt_tokenizer::parse(bad, "tok.json"); });
    };
    CHECK_THAT(parse_error("word-level", "bpe"), Catch::Contains("tok.json") && Catch::Contains("word-level"));
    CHECK_THAT(parse_error("\"7\": 6", "\"7\": 5"), Catch::Contains("id 5 is given to two words"));
    CHECK_THAT(parse_error("\"7\": 6", "\"7\": 9"), Catch::Contains("\"7\"") && Catch::Contains("[0, 7)"));
    CHECK_THAT(parse_error("\"unk_id\": 3", "\"unk_id\": 2"), Catch::Contains("distinct"));
    CHECK_THAT(parse_error("\"unk_id\": 3", "\"unk_id\": 70"), Catch::Contains("unk_id"));
    CHECK_THAT(parse_error("\"whitespace\"", "\"bpe\""), Catch::Contains("split"));
    CHECK_THAT(parse_error("\"seven\": 5", "\"two words\": 5"), Catch::Contains("whitespace"));
    CHECK_THAT(error_of([&] { model::prompt_tokenizer::parse("{", "tok.json"); }), Catch::Contains("not valid JSON"));
}

TEST_CASE("t2i_mnist: the loader reads the files; tokens equal the reference", "[t2i]") {
    if (!have_t2i("the t2i_mnist loader")) return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    CHECK(ck.config.text.width == 64);
    CHECK(ck.config.dit.latent_channels == 1);
    CHECK(ck.config.dit.patch == 4);
    CHECK(ck.config.steps == 20);
    CHECK(ck.config.guidance_scale == 1.0);
    CHECK(ck.weights.text.size() + ck.weights.dit.size() == 136);  // the model card's tensor count
    CHECK(ck.image_pad == 2);

    const auto ref = io::safetensors_file::open(t2i_dir() / "reference.safetensors");
    const std::vector<std::string> prompts = dev_prompts();
    std::vector<int> tokens;
    for (const std::string& p : prompts) {
        const std::vector<int> t = ck.weights.tokenizer.encode(p, ck.config.text.context);
        tokens.insert(tokens.end(), t.begin(), t.end());
    }
    CHECK(tokens == ref_ints(ref, "tokens"));
    CHECK(ck.weights.tokenizer.encode("", ck.config.text.context) == ref_ints(ref, "uncond_tokens"));

    const model::diffusion_pipeline pipe(ck.config, {}, ck.weights);
    CHECK(std::vector<int>(pipe.timesteps().begin(), pipe.timesteps().end()) == ref_ints(ref, "ddim20_timesteps"));
}

TEST_CASE("t2i_mnist: FP32 text embeddings and one denoiser call match the PyTorch reference", "[t2i]") {
    if (!have_t2i("the t2i_mnist references")) return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    const model::diffusion_pipeline pipe(ck.config, {}, ck.weights);
    const auto ref = io::safetensors_file::open(t2i_dir() / "reference.safetensors");
    const std::vector<std::string> prompts = dev_prompts();

    // Float32 against float32 with other summation orders: the error relative to the tensor's largest value is
    // a few ulps (measured 3.5e-7 for the hidden states, 1.9e-7 pooled, 4.3e-7 for eps); the bounds leave 20x+.
    const model::text_embeddings text = pipe.text().encode(prompts);
    CHECK(relative_max_error(text.hidden, ref_floats(ref, "text_hidden")) < 1e-5);
    CHECK(relative_max_error(text.pooled, ref_floats(ref, "text_pooled")) < 1e-5);
    const std::string empty;
    const model::text_embeddings u = pipe.text().encode(std::span<const std::string>(&empty, 1));
    CHECK(relative_max_error(u.hidden, ref_floats(ref, "uncond_hidden")) < 1e-5);
    CHECK(relative_max_error(u.pooled, ref_floats(ref, "uncond_pooled")) < 1e-5);

    const std::vector<float> x_t = ref_floats(ref, "denoise_x_t");
    const int t = ref_ints(ref, "denoise_t").at(0);
    std::vector<float> eps(x_t.size());
    pipe.denoiser().forward(x_t, t, pipe.denoiser().prepare_text(text), eps);
    const double e = relative_max_error(eps, ref_floats(ref, "denoise_eps"));
    INFO("eps relative max error " << e);
    CHECK(e < 1e-5);

    // The pipeline precomputes the BOS row in float by default (bos_fp32); without it, FP32 embeddings are the
    // same up to rounding.
    CHECK(pipe.text().bos_fp32());
    model::diffusion_config no_bos = ck.config;
    no_bos.bos_fp32 = false;
    const model::diffusion_pipeline pipe_no_bos(no_bos, {}, ck.weights);
    CHECK(relative_max_error(pipe_no_bos.text().encode(prompts).hidden, text.hidden) < 1e-6);
}

TEST_CASE("t2i_mnist: DDIM-20 and LCM-4 images match the reference; the MLP reads them as its metadata says", "[t2i]") {
    if (!have_t2i("the t2i_mnist sampler references") ||
        !tcomp_test::have_models("the MNIST judge", {"mnist_mlp/model.safetensors"}))
        return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    const auto ref = io::safetensors_file::open(t2i_dir() / "reference.safetensors");
    std::vector<std::string> prompts = dev_prompts();
    const model::diffusion_pipeline pipe(ck.config, {}, ck.weights);
    CHECK(pipe.initial_noise(8, 2024).data == ref_floats(ref, "ddim20_x_T"));  // bit for bit
#ifdef NDEBUG
    const std::size_t n = 8;
#else
    const std::size_t n = 2;  // Debug / sanitizer builds: the first two images (image b's noise does not depend on
                              // the batch size: elements [1024 b, 1024 (b + 1)) of the seed's stream)
#endif
    prompts.resize(n);
    auto first = [&](const char* name) {
        std::vector<float> v = ref_floats(ref, name);
        v.resize(n * 1024);
        return v;
    };

    const model::latent_tensor x = pipe.generate(prompts, 2024, 2);
    // 20 steps compound the per-call rounding differences (measured 9.1e-6 of the image scale; LCM-4 4.3e-6).
    const double e = relative_max_error(x.data, first("ddim20_final"));
    INFO("DDIM-20 final relative max error " << e);
    CHECK(e < 2e-4);

    model::diffusion_config lcm = ck.config;
    lcm.sampler = model::sampler_kind::lcm, lcm.steps = 4;
    const model::diffusion_pipeline pipe_lcm(lcm, {}, ck.weights);
    CHECK(std::vector<int>(pipe_lcm.timesteps().begin(), pipe_lcm.timesteps().end()) == ref_ints(ref, "lcm4_timesteps"));
    const double el = relative_max_error(pipe_lcm.generate(prompts, 2024, 2).data, first("lcm4_final"));
    INFO("LCM-4 final relative max error " << el);
    CHECK(el < 1e-4);

    // The metadata records what the MLP makes of the reference images.
    auto meta = nlohmann::json::parse(ref.metadata().at("ddim20_final_classified_as")).get<std::vector<int>>();
    meta.resize(n);
    const model::mlp_classifier judge = model::mlp_classifier::load(tcomp_test::models_dir() / "mnist_mlp/model.safetensors");
    model::t2i_images im;
    im.count = static_cast<index_t>(n), im.channels = 1, im.height = im.width = 32;
    im.pixels = x.data;
    im.digits.assign(n, 0);
    CHECK(model::classify_images(im, judge, {ck.image_min, ck.image_max, ck.image_pad}) == meta);
}

TEST_CASE("t2i_mnist: classifier-free guidance is eps(\"\") + s (eps(prompt) - eps(\"\")); s = 1 is no guidance", "[t2i]") {
    if (!have_t2i("classifier-free guidance")) return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    model::diffusion_config c = ck.config;
    c.steps = 1;  // one DDIM step from t = 1: x0 = (x - sqrt(1 - a) eps) / sqrt(a), checked by hand
    const std::vector<std::string> prompts{"a bold four", "the digit 7"};
    const model::diffusion_pipeline plain(c, {}, ck.weights);
    c.guidance_scale = 1.0;
    const model::diffusion_pipeline one(c, {}, ck.weights);
    CHECK(one.generate(prompts, 5).data == plain.generate(prompts, 5).data);

    c.guidance_scale = 3.0;
    const model::diffusion_pipeline cfg(c, {}, ck.weights);
    const model::latent_tensor x = cfg.generate(prompts, 5);
    // By hand: conditional and unconditional eps from the DiT, combined, one DDIM step to t_prev = 0 (a = 1).
    const model::text_embeddings cond = cfg.text().encode(prompts);
    const std::vector<std::string> empties(2, "");
    const model::text_embeddings uncond = cfg.text().encode(empties);
    const std::vector<float> x_t = cfg.initial_noise(2, 5).data;
    const int t = cfg.timesteps()[0];
    std::vector<float> ec(x_t.size()), eu(x_t.size());
    cfg.denoiser().forward(x_t, t, cfg.denoiser().prepare_text(cond), ec);
    cfg.denoiser().forward(x_t, t, cfg.denoiser().prepare_text(uncond), eu);
    const double a = cfg.schedule().alpha_bar(t);
    double err = 0.0;
    for (std::size_t i = 0; i < x_t.size(); ++i) {
        const double eps = eu[i] + 3.0 * (static_cast<double>(ec[i]) - eu[i]);
        const double x0 = (x_t[i] - std::sqrt(1.0 - a) * eps) / std::sqrt(a);
        err = std::max(err, std::abs(x0 - x.data[i]));
    }
    CHECK(err < 1e-4);
    CHECK(x.data != plain.generate(prompts, 5).data);

    c.guidance_scale = std::nan("");
    CHECK_THROWS_WITH(model::diffusion_pipeline(c, {}, ck.weights), Catch::Contains("guidance_scale"));
}

TEST_CASE("t2i_mnist: bad checkpoints fail naming the file and the field or tensor", "[t2i]") {
    if (!have_t2i("the t2i_mnist loader errors")) return;
    auto load_error = [](const model_copy& m) { return error_of([&] { model::diffusion_checkpoint::load(m.dir); }); };
    {
        const model_copy m("activation");
        auto j = m.json("config.json");
        j["dit"]["mlp_activation"] = "gelu";
        m.write("config.json", j);
        CHECK_THAT(load_error(m), Catch::Contains("dit.mlp_activation") && Catch::Contains("gelu_tanh"));
    }
    {
        const model_copy m("width");
        auto j = m.json("config.json");
        j["dit"]["width"] = 96;
        m.write("config.json", j);
        CHECK_THAT(load_error(m), Catch::Contains("model.safetensors") && Catch::Contains("config.json implies"));
    }
    {
        const model_copy m("vocab");
        auto j = m.json("tokenizer.json");
        j["vocab"]["extra"] = 45;
        j.erase("vocab_size");
        m.write("tokenizer.json", j);
        CHECK_THAT(load_error(m), Catch::Contains("46 words") && Catch::Contains("vocab_size 45"));
    }
    {
        const model_copy m("format");
        auto j = m.json("config.json");
        j.erase("format");
        m.write("config.json", j);
        CHECK_THAT(load_error(m), Catch::Contains("\"format\""));
    }
    {
        const model_copy m("eta");
        auto j = m.json("config.json");
        j["sampler"]["eta"] = 0.5;
        m.write("config.json", j);
        CHECK_THAT(load_error(m), Catch::Contains("sampler.eta"));
    }
    {
        // A weights map that lacks a tensor, or holds a stranger: the models name it.
        const auto ck = model::diffusion_checkpoint::load(t2i_dir());
        model::diffusion_weights w = ck.weights;
        w.dit.erase("dit.blocks.2.mlp.fc1.bias");
        CHECK_THAT(error_of([&] { model::diffusion_pipeline(ck.config, {}, w); }),
                   Catch::Contains("dit.blocks.2.mlp.fc1.bias") && Catch::Contains("missing"));
        w = ck.weights;
        w.text["text.extra"] = {1.0f};
        CHECK_THAT(error_of([&] { model::diffusion_pipeline(ck.config, {}, w); }),
                   Catch::Contains("text.extra") && Catch::Contains("not a parameter"));
        w = ck.weights;
        w.text["text.final_norm.bias"][3] = std::nanf("");
        CHECK_THAT(error_of([&] { model::diffusion_pipeline(ck.config, {}, w); }),
                   Catch::Contains("text.final_norm.bias") && Catch::Contains("non-finite"));
    }
}

TEST_CASE("t2i evaluation: prompt sets are disjoint; FP32 against itself; W4A8 RTN loses PSNR", "[t2i]") {
    const model::t2i_prompt_set eval = model::t2i_evaluation_prompts(), calib = model::t2i_calibration_prompts(3);
    CHECK(eval.images() == 200);
    for (const std::string& p : calib.prompts)
        CHECK(std::find(eval.prompts.begin(), eval.prompts.end(), p) == eval.prompts.end());
    for (std::uint64_t s : calib.seeds) CHECK(std::find(eval.seeds.begin(), eval.seeds.end(), s) == eval.seeds.end());
    CHECK(eval.prompts[7] == "a handwritten seven");
    CHECK(eval.prompts[17] == "the digit 7");
    CHECK(eval.digits[17] == 7);

    if (!have_t2i("the t2i evaluation") || !tcomp_test::have_models("the MNIST judge", {"mnist_mlp/model.safetensors"}))
        return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    const model::mlp_classifier judge = model::mlp_classifier::load(tcomp_test::models_dir() / "mnist_mlp/model.safetensors");
    const model::t2i_image_format format{ck.image_min, ck.image_max, ck.image_pad};
    model::diffusion_config c = ck.config;
    c.steps = 4;  // a short sampler keeps this test quick; the report's figures use the model's own settings
    model::t2i_prompt_set set = model::t2i_evaluation_prompts(1);
#ifndef NDEBUG
    set.prompts.resize(10), set.digits.resize(10);  // Debug / sanitizer builds: "a handwritten <digit>" only
#endif
    const model::diffusion_pipeline fp32(c, {}, ck.weights);
    const model::t2i_images ref = model::generate_images(fp32, set, 2);
    CHECK(ref.count == static_cast<index_t>(set.prompts.size()));
    const model::t2i_scores self = model::score_images(ref, judge, format, &ref);
    CHECK(std::isinf(self.psnr_db));
    CHECK(self.ssim == Approx(1.0));
    CHECK(self.adherence > 0.3);  // 4-step DDIM without guidance; a sanity floor, not a quality claim

    model::layer_policy_map w4;
    w4.default_policy = "w4a8_g32";
    w4.layers["dit.x_embedder"] = "w8a8";  // K = 16: no group of 32
    const model::diffusion_pipeline q(c, w4, ck.weights);
    const model::t2i_scores s = model::score_images(model::generate_images(q, set, 2), judge, format, &ref);
    INFO("W4A8 g32 RTN: PSNR " << s.psnr_db << " dB, SSIM " << s.ssim << ", adherence " << s.adherence);
    CHECK(s.psnr_db > 10.0);
    CHECK(std::isfinite(s.psnr_db));
    CHECK(s.ssim < 1.0);

    // Calibration (model/layer_methods.hpp): statistics of every layer's input on the calibration prompts (other
    // templates, other seeds), then the same recipe with GPTQ beats RTN on the evaluation images (optimised
    // builds: the sanitizer build covers GPTQ in test_calib.cpp and the builder's error path below).
    const model::recipe gptq = model::recipe::parse(
        R"({"default": "w4a8_g32", "method": "gptq", "layers": [{"match": "dit.x_embedder", "policy": "w8a8"}]})");
#ifdef NDEBUG
    const model::layer_statistics stats =
        model::collect_input_statistics([&] { (void)model::generate_images(fp32, model::t2i_calibration_prompts(1), 2); });
    CHECK(stats.size() == model::diffusion_pipeline::layer_names(c).size());
    model::layer_policy_map w4_gptq = w4;
    w4_gptq.build = model::method_builder(gptq, stats, "the calibration prompts");
    const model::diffusion_pipeline qg(c, w4_gptq, ck.weights);
    const model::t2i_scores g = model::score_images(model::generate_images(qg, set, 2), judge, format, &ref);
    INFO("W4A8 g32 GPTQ: PSNR " << g.psnr_db << " dB, SSIM " << g.ssim << ", adherence " << g.adherence);
    CHECK(g.psnr_db > s.psnr_db + 1.0);  // measured 33.10 against 24.24 (regression floor)
#endif
    // A method that needs statistics without them: the layer, its policy and the method are named.
    model::layer_policy_map no_stats = w4;
    const model::layer_statistics none;
    no_stats.build = model::method_builder(gptq, none, "");
    CHECK_THAT(error_of([&] { (void)model::diffusion_pipeline(c, no_stats, ck.weights); }),
               Catch::Contains("layer text.layers.0.attn.q (w4a8_g32, method gptq): no statistics given"));

    model::t2i_images wrong = ref;
    wrong.digits.pop_back(), wrong.count -= 1, wrong.pixels.resize(wrong.pixels.size() - 1024);
    CHECK_THROWS_AS(model::score_images(wrong, judge, format, &ref), shape_error);
}

TEST_CASE("BOS-aware text embeddings with per-tensor activation scales: the stand-in's outlier and the trained model", "[t2i]") {
    // Per-tensor dynamic INT8 activations: one scale per tensor, so a BOS row of magnitude 40 (the stand-in's
    // CLIP-like outlier) sets the step for every other token; the float BOS row (bos_fp32) takes it out.
    const auto per_tensor = [](const std::string&) { return std::string("w=int8:channel a=int8:tensor"); };
    std::vector<std::string> prompts = model::t2i_calibration_prompts(1).prompts;
#ifndef NDEBUG
    prompts.resize(8);  // Debug / sanitizer builds; the figures in the comments are from all 40
#endif
    auto sqnr = [&](const model::text_encoder& ref, const model::text_encoder& q) {
        const model::text_embeddings r = ref.encode(prompts), t = q.encode(prompts);
        return std::pair{metrics::sqnr_db(r.hidden, t.hidden), metrics::sqnr_db(r.pooled, t.pooled)};
    };
    const model::text_encoder_config sc;  // the stand-in: seeded, bos_outlier 40
    const model::text_encoder s_fp32(sc), s_plain(sc, per_tensor), s_bos(sc, per_tensor, true);
    const auto [s_h0, s_p0] = sqnr(s_fp32, s_plain);
    const auto [s_h1, s_p1] = sqnr(s_fp32, s_bos);
    std::printf("[t2i] BOS-aware, per-tensor W8A8 text encoder, stand-in: hidden SQNR %.2f -> %.2f dB, pooled %.2f -> "
                "%.2f dB\n", s_h0, s_h1, s_p0, s_p1);
    CHECK(s_h1 > s_h0 + 1.0);  // measured 38.32 -> 40.10 dB
    if (!have_t2i("BOS-aware embeddings on the trained model")) return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    const model::text_encoder t_fp32(ck.config.text, ck.weights.tokenizer, ck.weights.text),
        t_plain(ck.config.text, ck.weights.tokenizer, ck.weights.text, per_tensor),
        t_bos(ck.config.text, ck.weights.tokenizer, ck.weights.text, per_tensor, true);
    const auto [t_h0, t_p0] = sqnr(t_fp32, t_plain);
    const auto [t_h1, t_p1] = sqnr(t_fp32, t_bos);
    std::printf("[t2i] BOS-aware, per-tensor W8A8 text encoder, t2i_mnist (no BOS outlier): hidden SQNR %.2f -> %.2f dB, "
                "pooled %.2f -> %.2f dB\n", t_h0, t_h1, t_p0, t_p1);
    CHECK(t_h1 > t_h0 - 1.0);  // measured 40.17 -> 40.45 dB: no outlier to remove, a small gain all the same
}

TEST_CASE("mixed precision: candidates, groups, sensitivity table and allocation under budget", "[t2i][mixed]") {
    CHECK(model::candidate_policy("4:g32", 64, true) == "w=int4:g32 a=int8:token");
    CHECK(model::candidate_policy("4:g32", 16, true) == "w=int4:channel a=int8:token");  // 32 does not divide 16
    CHECK(model::candidate_policy("8:channel", 16, false) == "w=int8:channel");
    CHECK_THROWS_WITH(model::candidate_policy("9:g32", 64, true), Catch::Contains("<bits 2..8>"));
    CHECK_THROWS_WITH(model::candidate_policy("4:block", 64, true), Catch::Contains("4:block"));
    CHECK(model::group_of("dit.blocks.1.cross_attn.k") == model::sensitivity_group::content);
    CHECK(model::group_of("dit.blocks.1.mlp.fc2") == model::sensitivity_group::content);
    CHECK(model::group_of("text.layers.0.attn.q") == model::sensitivity_group::content);
    CHECK(model::group_of("dit.blocks.1.attn.q") == model::sensitivity_group::quality);
    CHECK(model::group_of("dit.blocks.1.adaLN") == model::sensitivity_group::quality);
    CHECK(model::group_of("dit.final.linear") == model::sensitivity_group::quality);

    if (!have_t2i("mixed precision on t2i_mnist")) return;
    const auto ck = model::diffusion_checkpoint::load(t2i_dir());
    model::t2i_sensitivity_options o;
    o.candidates = {"8:channel", "3:g32"};
    o.steps = 1;
    const std::vector<model::linear_spec> specs = model::diffusion_pipeline::layer_specs(ck.config);
#ifdef NDEBUG
    o.prompts.prompts.resize(4), o.prompts.digits.resize(4);
    const std::vector<model::layer_sensitivity> table = model::measure_t2i_sensitivity(ck.config, ck.weights, o);
    REQUIRE(table.size() == specs.size());
    double mean[2] = {0, 0};
    std::size_t count[2] = {0, 0};
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& L = table[i];
        CHECK(L.layer == specs[i].name);
        REQUIRE(L.policies.size() == 2);
        // 8-bit per channel: 8 N K code bits + 32 N scale bits; 3-bit groups: 3 N K + 32 N K / 32 (or per channel).
        const std::int64_t nk = L.out * L.in;
        CHECK(L.bits[0] == 8 * nk + 32 * L.out);
        CHECK(L.bits[1] == (L.in % 32 == 0 ? 3 * nk + nk : 3 * nk + 32 * L.out));
        for (std::size_t k = 0; k < 2; ++k) {
            CHECK(std::isfinite(L.sensitivity[k]));
            CHECK(L.sensitivity[k] >= 0.0);
            const int g = L.group == model::sensitivity_group::content ? 0 : 1;
            mean[g] += L.sensitivity[k], ++count[g];
        }
    }
    CHECK(mean[0] / static_cast<double>(count[0]) == Approx(1.0));  // each group normalised to mean 1
    CHECK(mean[1] / static_cast<double>(count[1]) == Approx(1.0));
    // 3-bit groups hurt more than 8-bit channels on average (per layer it is measured, not assumed).
    double s8 = 0, s3 = 0;
    for (const auto& L : table) s8 += L.sensitivity[0], s3 += L.sensitivity[1];
    CHECK(s3 > s8);
#else
    // Debug / sanitizer builds: 124 single-layer pipelines at -O0 take minutes (122 s under ASan); the table is
    // built here with the bit counts the measurement gives, and the allocation below runs on it.
    o.prompts.prompts.resize(1), o.prompts.digits.resize(1);
    std::vector<model::layer_sensitivity> table;
    for (const model::linear_spec& sp : specs) {
        model::layer_sensitivity L;
        L.layer = sp.name, L.group = model::group_of(sp.name), L.out = sp.out, L.in = sp.in;
        const std::int64_t nk = sp.out * sp.in;
        L.policies = {model::candidate_policy("8:channel", sp.in, true), model::candidate_policy("3:g32", sp.in, true)};
        L.bits = {8 * nk + 32 * sp.out, sp.in % 32 == 0 ? 4 * nk : 3 * nk + 32 * sp.out};
        L.raw = L.sensitivity = {0.01, 1.0 + static_cast<double>(table.size() % 7)};
        table.push_back(std::move(L));
    }
    WARN("SKIPPED in this unoptimized build: the sensitivity measurement (the allocation runs on a built table)");
#endif

    const model::t2i_allocation a = model::allocate_t2i(ck.config, ck.weights, table, 6.0, o, {0.4, 0.6});
    CHECK(a.average_bits <= 6.0);
    CHECK(a.average_bits > 5.0);
    CHECK(a.policies.size() == table.size());
    CHECK(a.exact);
    CHECK_THAT(error_of([&] { model::allocate_t2i(ck.config, ck.weights, table, 3.5, o); }),
               Catch::Contains("below the cheapest assignment"));
    CHECK_THAT(error_of([&] { model::allocate_t2i(ck.config, ck.weights, table, 9.0, o); }),
               Catch::Contains("above the dearest assignment"));
    auto wrong = table;
    wrong[5].layer = "text.layers.0.mlp.fc3";
    CHECK_THAT(error_of([&] { model::allocate_t2i(ck.config, ck.weights, wrong, 6.0, o); }),
               Catch::Contains("row 5 (text.layers.0.mlp.fc3)") && Catch::Contains("text.layers.0.mlp.fc2"));
    wrong = table;
    wrong.pop_back();
    CHECK_THAT(error_of([&] { model::allocate_t2i(ck.config, ck.weights, wrong, 6.0, o); }),
               Catch::Contains("61 layers, the model 62"));
}
