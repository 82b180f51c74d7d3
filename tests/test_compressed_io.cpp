// Compressed model files (io/compressed_model.hpp) and the GPTQ/AWQ import (io/gptq_import.hpp):
//  - every registry policy: save -> load gives the same packed bytes and bit-identical layer outputs;
//  - a small MLP saved compressed and loaded again gives bit-identical logits, in fewer bytes;
//  - hostile variants of a file are errors naming the tensor;
//  - GPTQ checkpoints written here (random codes, zeros, F16 scales) import to exactly the weights an
//    independent unpacking gives, run through model::linear, and survive a compressed save/load.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/gptq_import.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/model/recipe.hpp"
#include "tcomp/model/mlp_classifier.hpp"

namespace {

using namespace tcomp;

using tcomp_test::error_of;

std::vector<float> run(const model::linear& l, const dense_matrix<float>& x) {
    std::vector<float> y(static_cast<std::size_t>(x.rows() * l.out_features()));
    l.forward(x.view(), matrix_view<float>(y.data(), x.rows(), l.out_features()));
    return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::filesystem::path temp_path(const std::string& name) {
    return std::filesystem::temp_directory_path() / ("tcomp_test_" + std::to_string(::getpid()) + "_" + name);
}

/// A copy of `file` with tensors and metadata edited: `edit_tensor` returns false to drop a tensor, and may
/// replace it (writing into the writer itself); `meta` maps keys to new values ("" removes the key).
std::vector<std::byte> rewrite(const io::safetensors_file& file,
                               const std::function<bool(const io::tensor_view&, io::safetensors_writer&)>& edit_tensor,
                               const std::map<std::string, std::string>& meta) {
    io::safetensors_writer w;
    for (const auto& t : file.tensors())
        if (edit_tensor(t, w)) w.add(t);
    std::map<std::string, std::string> m = file.metadata();
    for (const auto& [k, v] : meta) {
        if (v.empty()) m.erase(k);
        else m[k] = v;
    }
    for (const auto& [k, v] : m) w.set_metadata(k, v);
    return w.to_bytes();
}

bool keep(const io::tensor_view&, io::safetensors_writer&) { return true; }

}  // namespace

TEST_CASE("compressed file: every policy round-trips to the same bytes and bit-identical outputs",
          "[compressed_io]") {
    // K = 256 and N = 48 fit every registry policy (groups 128/64/32, 2:4, per channel).
    const auto w = tcomp_test::gaussian(48, 256, 21, 0.05f);
    const auto x = tcomp_test::gaussian(7, 256, 22);
    std::vector<float> bias(48);
    for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * float(i) - 0.2f;

    io::compressed_model_writer writer;
    // (w8a8_static needs calibrated activation scales: the descriptor file table covers it, test_descriptor.cpp.)
    for (std::string_view p : model::known_policies())
        if (!model::is_static_policy(p)) writer.add_linear("layer_" + std::string(p) + ".weight", p, w.view());
    writer.add_float("bias", {48}, bias);
    const std::vector<std::byte> bytes = writer.to_bytes();
    const io::compressed_model_file file = io::compressed_model_file::from_bytes(bytes, "all_policies");
    CHECK(file.is_compressed_format());
    CHECK(file.layers().size() == model::policy_count - 1);
    CHECK(file.floats("bias") == bias);

    for (std::string_view p : model::known_policies()) {
        if (model::is_static_policy(p)) continue;
        const std::string name = "layer_" + std::string(p) + ".weight";
        INFO(name);
        REQUIRE(file.layers().at(name).policy == p);
        const model::linear in_memory = model::linear::make(p, w.view(), bias, name);
        if (p == "fp32") {
            CHECK_FALSE(file.is_compressed(name));
            CHECK(file.floats(name) == std::vector<float>(w.data(), w.data() + 48 * 256));
            continue;
        }
        REQUIRE(file.is_compressed(name));
        const packed_buffers loaded = file.compressed(name);
        // the portable form is exactly the in-memory compressed form
        const packed_buffers original = model::visit_policy(p, [&]<class P>(std::type_identity<P>) {
            if constexpr (std::is_same_v<P, model::fp32_policy>) return packed_buffers{};
            else return compress<P>(w.view()).weights().storage();
        });
        CHECK(loaded.codes == original.codes);
        CHECK(loaded.scales == original.scales);
        CHECK(loaded.zero_points == original.zero_points);
        CHECK(loaded.metadata == original.metadata);
        CHECK(loaded.tensor_scale == original.tensor_scale);
        const model::linear from_file = model::linear::from_compressed(p, loaded, bias, name);
        CHECK(from_file.policy() == p);
        CHECK(same_bits(run(from_file, x), run(in_memory, x)));
        // dequantized weights stay close to the originals (sanity of the whole path)
        const std::vector<float> deq = file.floats(name);
        REQUIRE(deq.size() == 48u * 256u);
    }
    // a layer whose layout is not the policy's is refused by the layer itself
    const packed_buffers w8 = file.compressed("layer_w8a8.weight");
    CHECK_THROWS_WITH(model::linear::from_compressed("w4a16", w8, {}, "mislabelled"),
                      Catch::Contains("mislabelled") && Catch::Contains("w4a16"));
    // wrong policy in the writer
    CHECK_THROWS_WITH(writer.add_compressed("again.weight", "w4a16", w8),
                      Catch::Contains("again.weight") && Catch::Contains("w4a16"));
    CHECK_THROWS_WITH(writer.add_linear("odd.weight", "w4a16", tcomp_test::gaussian(4, 100, 1).view()),
                      Catch::Contains("odd.weight") && Catch::Contains("group size 128"));
    CHECK_THROWS_WITH(writer.set_metadata("tcomp.policy.x", "w8a8"), Catch::Contains("reserved"));
}

TEST_CASE("compressed file: an MLP saved compressed loads with bit-identical logits, in fewer bytes",
          "[compressed_io]") {
    // fc1 256 -> 64 (w4a16: group 128), fc2 64 -> 32 (w8a8), fc3 32 -> 10 (fp32)
    const auto w1 = tcomp_test::gaussian(64, 256, 31, 0.06f), w2 = tcomp_test::gaussian(32, 64, 32, 0.12f);
    const auto w3 = tcomp_test::gaussian(10, 32, 33, 0.2f);
    const auto b1 = tcomp_test::gaussian(1, 64, 34, 0.1f), b2 = tcomp_test::gaussian(1, 32, 35, 0.1f);
    const auto b3 = tcomp_test::gaussian(1, 10, 36, 0.1f);
    const auto span_of = [](const dense_matrix<float>& m) { return std::span<const float>(m.data(), std::size_t(m.rows() * m.cols())); };

    io::safetensors_writer plain;
    plain.add_f32("fc1.weight", {64, 256}, span_of(w1));
    plain.add_f32("fc1.bias", {64}, span_of(b1));
    plain.add_f32("fc2.weight", {32, 64}, span_of(w2));
    plain.add_f32("fc2.bias", {32}, span_of(b2));
    plain.add_f32("fc3.weight", {10, 32}, span_of(w3));
    plain.add_f32("fc3.bias", {10}, span_of(b3));
    const auto plain_path = temp_path("mlp_plain.safetensors"), packed_path = temp_path("mlp_packed.safetensors");
    plain.write(plain_path);

    const model::policy_map policies{{"fc1", "w4a16"}, {"fc2", "w8a8"}, {"fc3", "fp32"}};
    io::compressed_model_writer writer;
    writer.add_linear("fc1.weight", "w4a16", w1.view());
    writer.add_float("fc1.bias", {64}, span_of(b1));
    writer.add_linear("fc2.weight", "w8a8", w2.view());
    writer.add_float("fc2.bias", {32}, span_of(b2));
    writer.add_linear("fc3.weight", "fp32", w3.view());
    writer.add_float("fc3.bias", {10}, span_of(b3));
    writer.set_metadata("source", "test_compressed_io");
    writer.write(packed_path);

    const model::mlp_classifier in_memory = model::mlp_classifier::load(plain_path, policies);
    const model::mlp_classifier from_file = model::mlp_classifier::load(packed_path);
    REQUIRE(from_file.layers().size() == 3);
    CHECK(from_file.layers()[0].policy() == "w4a16");
    CHECK(from_file.layers()[1].policy() == "w8a8");
    CHECK(from_file.layers()[2].policy() == "fp32");
    const auto x = tcomp_test::gaussian(9, 256, 37);
    const auto a = in_memory.logits(x.view()), b = from_file.logits(x.view());
    CHECK(same_bits(a, b));
    CHECK(in_memory.predict(x.view()) == from_file.predict(x.view()));
    // the same policies asked of the compressed file are fine; another one for a compressed layer is not
    CHECK_NOTHROW(model::mlp_classifier::load(packed_path, policies));
    CHECK_THROWS_WITH(model::mlp_classifier::load(packed_path, model::policy_map{{"fc1", "w8a8"}, {"fc2", "w8a8"}, {"fc3", "fp32"}}),
                      Catch::Contains("fc1") && Catch::Contains("w4a16") && Catch::Contains("not re-quantized"));

    const auto plain_bytes = std::filesystem::file_size(plain_path), packed_bytes = std::filesystem::file_size(packed_path);
    std::printf("MLP 256-64-32-10 file: %ju bytes fp32, %ju bytes compressed (fc1 w4a16, fc2 w8a8, fc3 fp32)\n",
                std::uintmax_t(plain_bytes), std::uintmax_t(packed_bytes));
    CHECK(packed_bytes * 3 < plain_bytes);
    std::filesystem::remove(plain_path);
    std::filesystem::remove(packed_path);
}

TEST_CASE("compressed file: hostile variants are errors naming the tensor", "[compressed_io]") {
    const auto w = tcomp_test::gaussian(16, 256, 41, 0.05f);
    io::compressed_model_writer writer;
    writer.add_linear("a.weight", "w4a16", w.view());  // uint4, group 128, zero points
    writer.add_linear("b.weight", "w8a8", w.view());   // int8 per channel
    writer.add_float("norm", {4}, std::vector<float>{1, 2, 3, 4});
    const std::vector<std::byte> good = writer.to_bytes();
    const io::safetensors_file base = io::safetensors_file::from_bytes(good, "good");
    REQUIRE_NOTHROW(io::compressed_model_file::from_bytes(good, "good"));

    auto load_error = [&](const std::vector<std::byte>& bytes) {
        return error_of([&] { (void)io::compressed_model_file::from_bytes(bytes, "hostile"); });
    };
    auto replace = [](std::string name, io::dtype type, std::vector<std::int64_t> shape, std::vector<std::byte> data) {
        return [=](const io::tensor_view& t, io::safetensors_writer& out) {
            if (t.name != name) return true;
            out.add(name, type, shape, data);
            return false;
        };
    };
    auto drop = [](std::string name) { return [=](const io::tensor_view& t, io::safetensors_writer&) { return t.name != name; }; };

    // unknown policy in the metadata
    std::string e = load_error(rewrite(base, keep, {{"tcomp.policy.a.weight", "w5a5"}}));
    CHECK_THAT(e, Catch::Contains("hostile") && Catch::Contains("a.weight") && Catch::Contains("unknown policy \"w5a5\"") &&
                      Catch::Contains("w4a16_g32"));
    // codes of the wrong size
    e = load_error(rewrite(base, replace("a.weight.codes", io::dtype::u8, {16, 100}, std::vector<std::byte>(1600)), {}));
    CHECK_THAT(e, Catch::Contains("a.weight.codes") && Catch::Contains("[16, 100]") && Catch::Contains("[16, 128]"));
    // codes of the wrong dtype
    e = load_error(rewrite(base, replace("b.weight.codes", io::dtype::i8, {16, 256}, std::vector<std::byte>(4096)), {}));
    CHECK_THAT(e, Catch::Contains("b.weight.codes") && Catch::Contains("dtype I8"));
    // missing scales, missing zeros
    e = load_error(rewrite(base, drop("a.weight.scales"), {}));
    CHECK_THAT(e, Catch::Contains("a.weight.scales") && Catch::Contains("missing"));
    e = load_error(rewrite(base, drop("a.weight.zeros"), {}));
    CHECK_THAT(e, Catch::Contains("a.weight.zeros") && Catch::Contains("missing"));
    // a policy that disagrees with the tensors: group 32 where the scales say group 128; symmetric where zeros exist
    e = load_error(rewrite(base, keep, {{"tcomp.policy.a.weight", "w4a16_g32"}}));
    CHECK_THAT(e, Catch::Contains("a.weight.scales") && Catch::Contains("w4a16_g32") && Catch::Contains("[16, 8]"));
    e = load_error(rewrite(base, keep, {{"tcomp.policy.a.weight", "w4a8"}}));
    CHECK_THAT(e, Catch::Contains("a.weight.zeros") && Catch::Contains("w4a8") && Catch::Contains("has no zeros"));
    e = load_error(rewrite(base, keep, {{"tcomp.policy.b.weight", "w4a16"}}));
    CHECK_THAT(e, Catch::Contains("b.weight") && Catch::Contains("w4a16"));
    // a recorded shape the policy cannot take, and one that is not [N, K]
    e = load_error(rewrite(base, keep, {{"tcomp.shape.a.weight", "[16, 200]"}}));
    CHECK_THAT(e, Catch::Contains("a.weight") && Catch::Contains("K = 200") && Catch::Contains("disagrees"));
    e = load_error(rewrite(base, keep, {{"tcomp.shape.a.weight", "[16]"}}));
    CHECK_THAT(e, Catch::Contains("a.weight") && Catch::Contains("is not [N, K]"));
    e = load_error(rewrite(base, keep, {{"tcomp.shape.b.weight", ""}}));
    CHECK_THAT(e, Catch::Contains("tcomp.shape.b.weight") && Catch::Contains("missing"));
    // zero points outside the 4-bit range
    e = load_error(rewrite(base, replace("a.weight.zeros", io::dtype::u8, {16, 2}, std::vector<std::byte>(32, std::byte{16})), {}));
    CHECK_THAT(e, Catch::Contains("a.weight.zeros") && Catch::Contains("16") && Catch::Contains("4-bit range"));
    // format version, unknown format keys, a layer that also has an uncompressed tensor
    e = load_error(rewrite(base, keep, {{"tcomp.format_version", "3"}}));
    CHECK_THAT(e, Catch::Contains("version \"3\"") && Catch::Contains("not supported"));
    e = load_error(rewrite(base, keep, {{"tcomp.format", "other"}}));
    CHECK_THAT(e, Catch::Contains("\"other\""));
    e = load_error(rewrite(base, keep, {{"tcomp.layers", "{}"}}));
    CHECK_THAT(e, Catch::Contains("unknown metadata key \"tcomp.layers\""));
    e = load_error(rewrite(base, keep, {{"tcomp.format", ""}}));
    CHECK_THAT(e, Catch::Contains("without \"tcomp.format\""));
    e = load_error(rewrite(base, [](const io::tensor_view& t, io::safetensors_writer& out) {
        if (t.name == "norm") out.add_f32("a.weight", {16, 256}, std::vector<float>(16 * 256, 0.5f));
        return true;
    }, {}));
    CHECK_THAT(e, Catch::Contains("a.weight") && Catch::Contains("also has an uncompressed tensor"));
    // a plain tensor asked for as a layer, a component asked for as a tensor
    const io::compressed_model_file ok = io::compressed_model_file::from_bytes(good, "good");
    CHECK_THROWS_WITH(ok.compressed("norm"), Catch::Contains("norm") && Catch::Contains("not a compressed layer"));
    CHECK_THROWS_WITH(ok.floats("a.weight.codes"), Catch::Contains("component of compressed layer a.weight"));
    // N:M index out of order: caught by packed_view::validate, already when the file is opened (so tcomp-inspect,
    // which opens, rejects what a loader rejects)
    io::compressed_model_writer nm;
    nm.add_linear("s.weight", "w8a8_2of4", w.view());
    const std::vector<std::byte> nm_bytes = nm.to_bytes();
    const io::safetensors_file nm_file = io::safetensors_file::from_bytes(nm_bytes, "nm");
    const auto& idx = nm_file.tensor("s.weight.nm_indices");
    std::vector<std::byte> bad(idx.data.begin(), idx.data.end());
    bad[0] = std::byte{0x05};  // indices 1, 1: not increasing
    const auto bad_nm = rewrite(nm_file, replace("s.weight.nm_indices", io::dtype::u8, idx.shape, bad), {});
    CHECK_THAT(load_error(bad_nm), Catch::Contains("s.weight") && Catch::Contains("not increasing"));
}

namespace {

// Writes config.json and the compressed file the way tcomp-quantize does (2-D tensors are layers, the
// embedding kept fp32 by the recipe), then compares load_llama_compressed with the model compressed in memory.
// Returns the file's size.
std::uintmax_t llama_round_trip(const model::llama_config& c, const std::filesystem::path& config_json,
                                const std::function<std::vector<float>(const std::string&)>& weights,
                                const char* recipe_text, const std::filesystem::path& out,
                                const std::vector<int>& tokens) {
    std::vector<std::string> layers;
    for (const auto& [name, shape] : c.tensor_shapes())
        if (shape.size() == 2) layers.push_back(model::layer_of_tensor(name));
    const model::policy_map file_policies = model::recipe::parse(recipe_text).resolve(layers);
    io::compressed_model_writer writer;
    for (const auto& [name, shape] : c.tensor_shapes()) {
        const std::vector<float> w = weights(name);
        if (shape.size() == 2)
            writer.add_linear(name, file_policies.at(model::layer_of_tensor(name)),
                              matrix_view<const float>(w.data(), shape[0], shape[1]));
        else
            writer.add_float(name, shape, w);
    }
    writer.write(out);
    // the model's own view: its projections and the (tied) head
    std::vector<std::string> model_layers = model::llama_layer_names(c);  // the projections and lm_head
    model_layers.emplace_back("model.embed_tokens");
    const model::policy_map model_policies = model::recipe::parse(recipe_text).resolve(model_layers);
    const model::weight_source source = [&](const std::string& name, std::vector<std::int64_t>) { return weights(name); };
    model::llama_model in_memory(c, source, model::policy_chooser_for(model_policies));
    model::llama_model loaded = model::load_llama_compressed(config_json, out, model::policy_chooser_for(model_policies));
    loaded.for_each_linear([&](const model::linear& l) {
        INFO(l.name);
        CHECK(l.policy() == model_policies.at(l.name));
    });
    CHECK(loaded.lm_head().policy() == in_memory.lm_head().policy());
    CHECK(same_bits(in_memory.forward(tokens), loaded.forward(tokens)));
    return std::filesystem::file_size(out);
}

}  // namespace

TEST_CASE("compressed file: a LLaMA saved compressed loads with bit-identical logits", "[compressed_io]") {
    // synthetic: dense GQA, tied head
    const auto dir = temp_path("llama");
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << R"({"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40, "max_position_embeddings": 32,
        "tie_word_embeddings": true, "rms_norm_eps": 1e-5})";
    const model::llama_config c = model::llama_config::from_file(dir / "config.json");
    std::map<std::string, std::vector<float>> w;
    std::mt19937 gen(5);
    for (const auto& [name, shape] : c.tensor_shapes()) {
        std::normal_distribution<float> d(shape.size() == 1 ? 1.0f : 0.0f, shape.size() == 1 ? 0.1f : 0.15f);
        auto& v = w[name];
        v.resize(std::size_t(shape.size() == 1 ? shape[0] : shape[0] * shape[1]));
        for (float& x : v) x = d(gen);
    }
    const char* file_recipe = R"({"default": "w8a8", "layers": [
        {"match": "model.embed_tokens", "policy": "fp32"},
        {"match": "*.down_proj", "policy": "w4a16_g32"},
        {"match": "model.layers.1.self_attn.*", "policy": "fp32"},
        {"match": "model.layers.0.self_attn.q_proj", "policy": "w8a8_2of4"}]})";
    llama_round_trip(c, dir / "config.json", [&](const std::string& n) { return w.at(n); }, file_recipe,
                     dir / "model.tcomp.safetensors", {1, 4, 9, 16, 25, 36, 3, 7});
    // a file that lacks a tensor the config implies, or holds one it does not
    io::compressed_model_writer partial;
    partial.add_float("model.norm.weight", {64}, w.at("model.norm.weight"));
    partial.write(dir / "partial.safetensors");
    CHECK_THROWS_WITH(model::load_llama_compressed(dir / "config.json", dir / "partial.safetensors"),
                      Catch::Contains("is missing") && Catch::Contains("partial.safetensors"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("compressed file: stories260K saved compressed loads with bit-identical logits, in under half the bytes",
          "[compressed_io][stories260K]") {
    if (!tcomp_test::have_models("the stories260K file round trip",
                                 {"stories260K/model.safetensors", "stories260K/config.json"}))
        return;
    const std::filesystem::path stories = tcomp_test::models_dir() / "stories260K";
    const model::llama_config sc = model::llama_config::from_file(stories / "config.json");
    const io::safetensors_set files = io::safetensors_set::open(stories);
    const auto out = temp_path("stories.tcomp.safetensors");
    std::vector<int> tokens;
    for (int i = 0; i < 48; ++i) tokens.push_back(1 + (i * 37) % 500);
    const auto bytes = llama_round_trip(
        sc, stories / "config.json", [&](const std::string& n) { return io::to_float(files.tensor(n)); },
        R"({"default": "w8a8", "layers": [{"match": "model.embed_tokens", "policy": "fp32"},
            {"match": "*.down_proj", "policy": "w8a16"}, {"match": "*.mlp.*_proj", "policy": "w4a16_g32"}]})",
        out, tokens);
    const auto before = std::filesystem::file_size(stories / "model.safetensors");
    std::printf("stories260K file: %ju bytes fp32 -> %ju bytes compressed (w8a8, MLP w4a16_g32, down_proj w8a16; "
                "embedding fp32)\n", std::uintmax_t(before), std::uintmax_t(bytes));
    CHECK(bytes < before / 2);
    std::filesystem::remove(out);
}

// ---------------------------------------------------------------------------------------------------------
// GPTQ import
// ---------------------------------------------------------------------------------------------------------

namespace {

struct gptq_case {
    int k = 256, n = 64, g = 128;
    io::gptq_zero_convention convention = io::gptq_zero_convention::minus_one;
    std::vector<std::uint8_t> codes;  // [k][n]
    std::vector<std::uint8_t> zeros;  // stored zeros [k/g][n]
    std::vector<std::uint16_t> scales;  // F16 bits [k/g][n]
    std::vector<std::uint16_t> bias;    // F16 bits [n]
};

gptq_case random_gptq(int k, int n, int g, io::gptq_zero_convention convention, std::uint32_t seed) {
    gptq_case c;
    c.k = k, c.n = n, c.g = g, c.convention = convention;
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> code(0, 15), zero(0, convention == io::gptq_zero_convention::minus_one ? 14 : 15);
    std::uniform_real_distribution<float> scale(0.001f, 0.05f), b(-0.5f, 0.5f);
    for (int i = 0; i < k * n; ++i) c.codes.push_back(std::uint8_t(code(gen)));
    for (int i = 0; i < k / g * n; ++i) {
        c.zeros.push_back(std::uint8_t(zero(gen)));
        c.scales.push_back(std::uint16_t(fp16_format::encode(scale(gen))));
    }
    for (int i = 0; i < n; ++i) c.bias.push_back(std::uint16_t(fp16_format::encode(b(gen))));
    return c;
}

std::vector<std::byte> i32_bytes(const std::vector<std::uint32_t>& v) {
    std::vector<std::byte> out(v.size() * 4);
    for (std::size_t i = 0; i < v.size(); ++i)
        for (int j = 0; j < 4; ++j) out[4 * i + j] = std::byte((v[i] >> (8 * j)) & 0xFF);
    return out;
}
std::vector<std::byte> f16_bytes(const std::vector<std::uint16_t>& v) {
    std::vector<std::byte> out(v.size() * 2);
    for (std::size_t i = 0; i < v.size(); ++i) out[2 * i] = std::byte(v[i] & 0xFF), out[2 * i + 1] = std::byte(v[i] >> 8);
    return out;
}

/// Writes the case in the GPTQ layout under prefix "layer".
void write_gptq(const gptq_case& c, io::safetensors_writer& w, bool with_g_idx = true, bool with_bias = true) {
    std::vector<std::uint32_t> qweight(std::size_t(c.k / 8 * c.n), 0), qzeros(std::size_t(c.k / c.g * c.n / 8), 0);
    for (int k = 0; k < c.k; ++k)
        for (int n = 0; n < c.n; ++n) qweight[std::size_t(k / 8 * c.n + n)] |= std::uint32_t(c.codes[std::size_t(k * c.n + n)]) << (4 * (k % 8));
    for (int g = 0; g < c.k / c.g; ++g)
        for (int n = 0; n < c.n; ++n) qzeros[std::size_t(g * c.n / 8 + n / 8)] |= std::uint32_t(c.zeros[std::size_t(g * c.n + n)]) << (4 * (n % 8));
    w.add("layer.qweight", io::dtype::i32, {c.k / 8, c.n}, i32_bytes(qweight));
    w.add("layer.qzeros", io::dtype::i32, {c.k / c.g, c.n / 8}, i32_bytes(qzeros));
    w.add("layer.scales", io::dtype::f16, {c.k / c.g, c.n}, f16_bytes(c.scales));
    if (with_g_idx) {
        std::vector<std::uint32_t> g_idx(std::size_t(c.k));
        for (int k = 0; k < c.k; ++k) g_idx[std::size_t(k)] = std::uint32_t(k / c.g);
        w.add("layer.g_idx", io::dtype::i32, {c.k}, i32_bytes(g_idx));
    }
    if (with_bias) w.add("layer.bias", io::dtype::f16, {c.n}, f16_bytes(c.bias));
}

/// The independent unpacking: W[n][k] = scale * (code - z), z = stored + 1 (minus_one) or stored (plain).
std::vector<float> reference_weights(const gptq_case& c) {
    std::vector<float> w(std::size_t(c.n * c.k));
    for (int n = 0; n < c.n; ++n)
        for (int k = 0; k < c.k; ++k) {
            const std::size_t cell = std::size_t(k / c.g * c.n + n);
            const int z = c.zeros[cell] + (c.convention == io::gptq_zero_convention::minus_one ? 1 : 0);
            const float s = fp16_format::decode(c.scales[cell]);
            w[std::size_t(n * c.k + k)] = s * float(int(c.codes[std::size_t(k * c.n + n)]) - z);
        }
    return w;
}

}  // namespace

TEST_CASE("gptq import: weights equal an independent unpacking; matmul and compressed save agree", "[gptq]") {
    struct variant {
        int g;
        io::gptq_zero_convention convention;
        const char* policy;
    };
    for (const variant v : {variant{128, io::gptq_zero_convention::minus_one, "w4a16"},
                            variant{32, io::gptq_zero_convention::plain, "w4a16_g32"},
                            variant{256, io::gptq_zero_convention::minus_one, "w4a16_pc"}}) {
        INFO("group " << v.g << ", policy " << v.policy);
        const gptq_case c = random_gptq(256, 64, v.g, v.convention, 100 + std::uint32_t(v.g));
        io::safetensors_writer sw;
        write_gptq(c, sw);
        const auto bytes = sw.to_bytes();
        const io::safetensors_file f = io::safetensors_file::from_bytes(bytes, "gptq");
        CHECK(io::gptq_layer_names(f) == std::vector<std::string>{"layer"});
        const io::gptq_layer imported = io::import_gptq_layer(f, "layer", v.convention);
        CHECK(imported.policy == v.policy);
        CHECK(imported.group_size == v.g);
        REQUIRE(imported.bias.size() == 64);
        CHECK(imported.bias[5] == fp16_format::decode(c.bias[5]));

        const std::vector<float> ref = reference_weights(c);
        const std::vector<float> deq = model::visit_policy(v.policy, [&]<class P>(std::type_identity<P>) -> std::vector<float> {
            if constexpr (std::is_same_v<P, model::fp32_policy>) return {};
            else return dequantize(compressed_matrix<typename P::weight_quantizer>(imported.weights)).storage();
        });
        CHECK(same_bits(deq, ref));

        // y = x W^T + b through the imported layer against a double-precision sum over the reference weights
        const model::linear layer = model::linear::from_compressed(imported.policy, imported.weights, imported.bias, "layer");
        const auto x = tcomp_test::gaussian(5, 256, 7);
        const std::vector<float> y = run(layer, x);
        double worst = 0;
        for (int m = 0; m < 5; ++m)
            for (int n = 0; n < 64; ++n) {
                double s = imported.bias[std::size_t(n)];
                for (int k = 0; k < 256; ++k) s += double(x(m, k)) * double(ref[std::size_t(n * 256 + k)]);
                worst = std::max(worst, std::abs(s - double(y[std::size_t(m * 64 + n)])) / (1.0 + std::abs(s)));
            }
        CHECK(worst < 1e-5);

        // a compressed file keeps the F16 scales as F16 (they are exact) and gives the same layer back
        io::compressed_model_writer cw;
        cw.add_compressed("layer.weight", imported.policy, imported.weights);
        cw.add_float("layer.bias", {64}, imported.bias);
        const auto cbytes = cw.to_bytes();
        const io::compressed_model_file cf = io::compressed_model_file::from_bytes(cbytes, "converted");
        CHECK(cf.file().tensor("layer.weight.scales").type == io::dtype::f16);
        const packed_buffers back = cf.compressed("layer.weight");
        CHECK(back.codes == imported.weights.codes);
        CHECK(back.scales == imported.weights.scales);
        CHECK(back.zero_points == imported.weights.zero_points);
        CHECK(cbytes.size() < bytes.size() + 1024);  // about the GPTQ checkpoint's own size
    }
}

TEST_CASE("gptq import: unsupported checkpoints are errors naming the tensor", "[gptq]") {
    auto import_error = [](const std::function<void(io::safetensors_writer&)>& build, io::gptq_zero_convention conv) {
        io::safetensors_writer w;
        build(w);
        const auto bytes = w.to_bytes();
        const io::safetensors_file f = io::safetensors_file::from_bytes(bytes, "gptq");
        return error_of([&] { (void)io::import_gptq_layer(f, "layer", conv); });
    };
    const auto minus_one = io::gptq_zero_convention::minus_one, plain = io::gptq_zero_convention::plain;
    // act-order g_idx
    std::string e = import_error([](io::safetensors_writer& w) {
        gptq_case c = random_gptq(256, 64, 128, io::gptq_zero_convention::minus_one, 1);
        write_gptq(c, w, false);
        std::vector<std::uint32_t> g_idx(256);
        for (int k = 0; k < 256; ++k) g_idx[std::size_t(k)] = std::uint32_t((k % 2) == 0 ? 0 : 1);
        w.add("layer.g_idx", io::dtype::i32, {256}, i32_bytes(g_idx));
    }, minus_one);
    CHECK_THAT(e, Catch::Contains("layer.g_idx") && Catch::Contains("act-order"));
    // a stored zero of 15 under "minus one" means z = 16
    e = import_error([](io::safetensors_writer& w) {
        gptq_case c = random_gptq(256, 64, 128, io::gptq_zero_convention::minus_one, 2);
        c.zeros[70] = 15;
        write_gptq(c, w);
    }, minus_one);
    CHECK_THAT(e, Catch::Contains("layer.qzeros") && Catch::Contains("group 1, column 6") && Catch::Contains("16"));
    // ... which the plain convention takes
    CHECK(import_error([](io::safetensors_writer& w) {
        gptq_case c = random_gptq(256, 64, 128, io::gptq_zero_convention::plain, 2);
        c.zeros[70] = 15;
        write_gptq(c, w);
    }, plain) == "(no error)");
    // a group size without an alias imports under its descriptor, never regrouped
    {
        io::safetensors_writer w;
        write_gptq(random_gptq(256, 64, 64, plain, 3), w);
        const auto bytes = w.to_bytes();
        const io::safetensors_file f = io::safetensors_file::from_bytes(bytes, "gptq");
        const io::gptq_layer layer = io::import_gptq_layer(f, "layer", plain);
        CHECK(layer.policy == "w=uint4:asym:g64");
        CHECK(layer.weights.layout.group_size == 64);
    }
    // AutoAWQ's GEMM layout (packed along N): scales have 8x the columns qweight implies
    e = import_error([](io::safetensors_writer& w) {
        w.add("layer.qweight", io::dtype::i32, {256, 8}, std::vector<std::byte>(256 * 8 * 4));
        w.add("layer.qzeros", io::dtype::i32, {2, 8}, std::vector<std::byte>(2 * 8 * 4));
        w.add("layer.scales", io::dtype::f16, {2, 64}, std::vector<std::byte>(2 * 64 * 2));
    }, plain);
    CHECK_THAT(e, Catch::Contains("layer.scales") && Catch::Contains("AutoAWQ"));
    // missing and mistyped tensors
    e = import_error([](io::safetensors_writer& w) {
        w.add("layer.qweight", io::dtype::i32, {32, 64}, std::vector<std::byte>(32 * 64 * 4));
        w.add("layer.scales", io::dtype::f16, {2, 64}, std::vector<std::byte>(2 * 64 * 2));
    }, plain);
    CHECK_THAT(e, Catch::Contains("layer.qzeros") && Catch::Contains("missing"));
    e = import_error([](io::safetensors_writer& w) {
        w.add("layer.qweight", io::dtype::u8, {32, 64}, std::vector<std::byte>(32 * 64));
        w.add("layer.qzeros", io::dtype::i32, {2, 8}, std::vector<std::byte>(2 * 8 * 4));
        w.add("layer.scales", io::dtype::f16, {2, 64}, std::vector<std::byte>(2 * 64 * 2));
    }, plain);
    CHECK_THAT(e, Catch::Contains("layer.qweight") && Catch::Contains("I32"));
    e = import_error([](io::safetensors_writer& w) {
        w.add("layer.qweight", io::dtype::i32, {32, 64}, std::vector<std::byte>(32 * 64 * 4));
        w.add("layer.qzeros", io::dtype::i32, {2, 4}, std::vector<std::byte>(2 * 4 * 4));
        w.add("layer.scales", io::dtype::f16, {2, 64}, std::vector<std::byte>(2 * 64 * 2));
    }, plain);
    CHECK_THAT(e, Catch::Contains("layer.qzeros") && Catch::Contains("[2, 8]"));
}
