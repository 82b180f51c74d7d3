// tcomp-quantize IN OUT --recipe R.json [--stats STATS] [--method M] [--verify]
//
// Compresses a checkpoint into a tcomp compressed model file (docs/files.md). IN is a .safetensors file or a
// Hugging Face directory (model.safetensors, or model.safetensors.index.json + shards). The recipe
// (model/recipe.hpp) gives each layer a policy; which names are layers depends on IN:
//
//   * a LLaMA directory (config.json that model/llama_config.hpp accepts): the model's own layer list,
//     model::llama_layer_names(config): the projections and "lm_head" (also when the head is tied to the
//     embeddings), exactly the names the in-memory model (model::load_llama + recipe::resolve) uses, so one
//     recipe works in both. The checkpoint is checked as load_llama checks it (every tensor the config implies,
//     with its shape; nothing else but ignorable tensors). The embeddings are not a layer: they are copied as
//     F32. A tied head with a policy other than fp32 is written as the compressed layer "lm_head.weight" (a
//     compressed copy of model.embed_tokens.weight, the one the in-memory model builds); an fp32 tied head is
//     the embeddings themselves and writes nothing. A checkpoint's own copy of a tied lm_head.weight (which
//     load_llama ignores) is not written.
//     To run OUT: model::load_llama_compressed(IN/config.json, OUT, choose) with `choose` returning the policy
//     OUT records for a tensor (compressed_model_file::layers(), "fp32" otherwise), as --verify does. The loader
//     builds a tied head from the embeddings with choose("lm_head.weight") (it does not read lm_head.weight), and
//     since the file holds the embeddings exactly that head has the stored head's codes.
//   * anything else: the 2-D floating tensors; a layer's name is the tensor name without ".weight"
//     ("fc1.weight" -> "fc1").
//
// Every other tensor is copied (floats as F32, integer tensors unchanged).
// --stats STATS: the layers' input statistics (tcomp-calibrate); --method M: the calibration method of layers whose
// recipe rule names none (calib/method_names.hpp: rtn, imatrix, gptq, awq, awq+gptq, smoothquant, sparsegpt,
// wanda; the recipe's own "method" otherwise, else rtn). A method other than rtn, or a descriptor with static
// activation scales, needs the layer's statistics: a layer missing from STATS is an error naming it.
// --verify: reads OUT back (full validation). For a LLaMA directory it also loads OUT with
// model::load_llama_compressed and checks that its logits for a fixed 16-token prompt equal, bit for bit, those
// of the in-memory model built from IN with the same recipe (each layer compressed by its method).
// Exit status: 0 on success, 2 on bad arguments, 1 on any other error (the message names what and where).
#include "model_tools.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tcomp/calib/methods.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/statistics_file.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/layer_methods.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/model/recipe.hpp"

namespace tcomp::tools::quantize_cli {

namespace fs = std::filesystem;
using namespace tcomp;

constexpr const char* usage =
    "usage: tcomp-quantize IN OUT --recipe RECIPE.json [--stats STATS] [--method M] [--verify]\n"
    "  IN      a .safetensors file, or a Hugging Face model directory (model.safetensors or sharded)\n"
    "  OUT     the compressed .safetensors file to write\n"
    "  RECIPE  {\"default\": \"w8a8\", \"layers\": [{\"match\": \"*.down_proj\", \"policy\": \"fp32\"}]}\n"
    "          (layers: a LLaMA directory's model layers, \"lm_head\" included; otherwise the 2-D float\n"
    "          tensors, named without \".weight\"; first matching rule wins)\n"
    "  STATS   the layers' input statistics (tcomp-calibrate)\n"
    "  M       calibration method where the recipe names none: rtn|imatrix|gptq|awq|awq+gptq|smoothquant|sparsegpt|wanda\n"
    "  --verify  read OUT back; for a LLaMA directory also run it against the in-memory model\n"
    "  policies: ";

int usage_error(const std::string& message) {
    std::fprintf(stderr, "tcomp-quantize: %s\n%s%s\n", message.c_str(), usage,
                 tcomp::model::detail::known_policy_list().c_str());
    return 2;
}

/// The LLaMA config of IN when IN is a directory whose config.json llama_config accepts; nullopt otherwise
/// (with the reason in `why` when there is a config.json it rejects).
std::optional<model::llama_config> llama_config_of(const fs::path& in, std::string& why) {
    const fs::path config = in / "config.json";
    if (!fs::is_directory(in) || !fs::exists(config)) return std::nullopt;
    try {
        return model::llama_config::from_file(config);
    } catch (const std::exception& e) {
        why = e.what();
        return std::nullopt;
    }
}

/// load_llama's checks on the checkpoint, before anything is written.
void check_llama_tensors(const model::llama_config& config, const io::safetensors_set& files) {
    for (const io::tensor_view& t : files.tensors()) {
        bool implied = model::ignorable_tensor(config, t.name);
        for (const auto& [name, shape] : config.tensor_shapes()) implied = implied || name == t.name;
        if (!implied)
            tcomp::detail::throw_error<error>(files.origin(), " holds tensor ", t.name, " (shape ",
                                              tcomp::detail::st_shape_string(t.shape),
                                              ") that config.json does not imply");
    }
    for (const auto& [name, shape] : config.tensor_shapes()) {
        if (!files.contains(name))
            tcomp::detail::throw_error<error>("tensor ", name, " (shape ", tcomp::detail::st_shape_string(shape),
                                              " from config.json) is missing from ", files.origin());
        if (files.tensor(name).shape != shape)
            tcomp::detail::throw_error<shape_error>("tensor ", name, " has shape ",
                                                    tcomp::detail::st_shape_string(files.tensor(name).shape),
                                                    " but config.json implies ", tcomp::detail::st_shape_string(shape));
    }
}

/// --verify for a LLaMA directory: OUT through load_llama_compressed against IN through load_llama, both with
/// the recipe's policies; their logits must be equal bit for bit. Returns the message to print.
std::string verify_llama(const fs::path& in, const fs::path& out, const model::policy_map& policies,
                         const model::linear_builder& build) {
    const io::compressed_model_file file = io::compressed_model_file::open(out);
    // Layers the file stores as floats take "fp32"; the tied head takes the policy the file records for it
    // (the loader builds it from the embeddings, which the file holds exactly).
    const model::policy_chooser from_file = [&file](const std::string& tensor) -> std::string {
        const auto it = file.layers().find(tensor);
        return it == file.layers().end() ? std::string("fp32") : it->second.policy;
    };
    model::llama_model stored = model::load_llama_compressed(in / "config.json", out, from_file);
    model::llama_model direct = model::load_llama(in, model::policy_chooser_for(policies), build);
    const int vocab = static_cast<int>(stored.config().vocab_size);
    std::vector<int> prompt{1};
    for (int i = 1; i < 16; ++i) prompt.push_back((7 * i + 3) % vocab);
    const std::vector<float> a = stored.forward(prompt), b = direct.forward(prompt);
    if (a.size() != b.size())
        tcomp::detail::throw_error<error>("--verify: ", out.string(), " gives ", a.size(), " logits, the in-memory model ",
                                          b.size());
    std::size_t differ = 0;
    float worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) ++differ, worst = std::max(worst, std::abs(a[i] - b[i]));
    if (differ)
        tcomp::detail::throw_error<error>("--verify: ", out.string(), " loaded with load_llama_compressed differs from the "
                                          "in-memory model in ", differ, " of ", a.size(), " logits (max |diff| ", worst, ")");
    return "verify: " + out.string() + " loads back (load_llama_compressed) and its logits for " +
           std::to_string(prompt.size()) + " tokens equal the in-memory model's (load_llama + the recipe), bit for bit";
}

}  // namespace tcomp::tools::quantize_cli

namespace tcomp::tools::quantize_cli {

int run(int argc, char** argv) {
    std::vector<std::string> positional;
    std::string recipe_path, stats_path, method_name;
    bool verify = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s%s\n", usage, tcomp::model::detail::known_policy_list().c_str());
            return 0;
        }
        if (a == "--recipe" || a.starts_with("--recipe=")) {
            if (!recipe_path.empty()) return usage_error("--recipe given twice (one recipe per run)");
            if (a == "--recipe") {
                if (i + 1 >= argc) return usage_error("--recipe needs a file name");
                recipe_path = argv[++i];
            } else {
                recipe_path = std::string(a.substr(9));
            }
        } else if (a == "--stats" || a == "--method") {
            if (i + 1 >= argc) return usage_error(std::string(a) + " needs a value");
            (a == "--stats" ? stats_path : method_name) = argv[++i];
        } else if (a == "--verify") {
            verify = true;
        } else if (a.starts_with("-")) {
            return usage_error("unknown option " + std::string(a));
        } else {
            positional.emplace_back(a);
        }
    }
    if (positional.size() != 2) return usage_error("expected IN and OUT, got " + std::to_string(positional.size()) + " file names");
    if (recipe_path.empty()) return usage_error("--recipe is required");
    const fs::path in = positional[0], out = positional[1];

    try {
        model::recipe recipe = model::recipe::from_file(recipe_path);
        if (!method_name.empty()) {
            (void)calib::parse_method(method_name);  // a named error for an unknown method
            recipe.default_method = method_name;
        }
        const io::statistics_map stats = stats_path.empty() ? io::statistics_map{} : io::read_statistics(stats_path);
        // One layer's weights through its recipe method (with its statistics when it needs them or has them).
        auto compress_layer = [&](const std::string& layer, const std::string& policy,
                                  matrix_view<const float> w) -> compressed_tensor {
            return model::compress_layer(layer, policy, w, recipe, stats, stats_path);
        };
        const io::safetensors_set files = io::safetensors_set::open(in);
        // A tcomp file's tensors are codes and scales, not weights: quantizing them again would write a file no
        // model can use. Refuse; re-quantizing starts from the float checkpoint.
        for (const io::safetensors_file& shard : files.shards())
            if (const auto it = shard.metadata().find("tcomp.format"); it != shard.metadata().end())
                tcomp::detail::throw_error<error>(shard.origin(), " is a tcomp compressed model file (metadata "
                                                  "\"tcomp.format\": \"", it->second, "\"), not a float checkpoint: "
                                                  "quantize the original checkpoint instead");
        std::string not_llama;
        const std::optional<model::llama_config> llama = llama_config_of(in, not_llama);
        if (!not_llama.empty())
            std::printf("tcomp-quantize: %s is not a LLaMA config (%s): the layers are the 2-D float tensors\n",
                        (in / "config.json").string().c_str(), not_llama.c_str());

        std::vector<std::string> layers;
        if (llama) {
            check_llama_tensors(*llama, files);
            layers = model::llama_layer_names(*llama);
        } else {
            for (const io::tensor_view& t : files.tensors())
                if (t.shape.size() == 2 && tcomp::detail::is_float_dtype(t.type))
                    layers.push_back(model::layer_of_tensor(t.name));
        }
        const model::policy_map policies = recipe.resolve(layers, "recipe " + recipe_path);
        const bool tied = llama && llama->tie_word_embeddings;

        io::compressed_model_writer writer;
        writer.set_metadata("source", in.filename().string());
        std::size_t compressed = 0;
        for (const io::tensor_view& t : files.tensors()) {
            if (tied && t.name == "lm_head.weight") continue;  // the model's head is the embeddings (below)
            const std::string layer = model::layer_of_tensor(t.name);
            const bool is_layer = llama ? t.name != layer && policies.count(layer)
                                        : t.shape.size() == 2 && tcomp::detail::is_float_dtype(t.type);
            if (!is_layer) {
                writer.add_plain(t);
                continue;
            }
            const std::string& policy = policies.at(layer);
            const std::vector<float> w = io::to_float(t);
            const matrix_view<const float> wv(w.data(), t.shape[0], t.shape[1]);
            if (policy == "fp32") writer.add_linear(t.name, policy, wv);
            else writer.add_compressed(t.name, compress_layer(layer, policy, wv));
            compressed += policy != "fp32";
        }
        std::string head_note;
        if (tied) {
            const std::string& policy = policies.at("lm_head");
            if (policy == "fp32") {
                head_note = "; tied lm_head fp32: the embeddings, nothing extra written";
            } else {
                const io::tensor_view& e = files.tensor("model.embed_tokens.weight");
                const std::vector<float> w = io::to_float(e);
                writer.add_compressed("lm_head.weight",
                                      compress_layer("lm_head", policy, matrix_view<const float>(w.data(), e.shape[0], e.shape[1])));
                ++compressed;
                head_note = "; tied lm_head (" + policy + ") written as lm_head.weight, compressed from model.embed_tokens.weight";
            }
        }
        writer.write(out);
        std::error_code ec;
        const auto bytes = fs::file_size(out, ec);
        std::printf("tcomp-quantize: %zu tensors, %zu layers (%zu compressed) -> %s (%ju bytes)%s%s\n",
                    files.tensors().size(), layers.size(), compressed, out.string().c_str(),
                    static_cast<std::uintmax_t>(ec ? 0 : bytes), llama ? "; layers from config.json (LLaMA)" : "",
                    head_note.c_str());
        if (verify) {
            if (llama) {
                // The in-memory model compresses each layer as the file's writer did (the recipe's methods).
                const model::linear_builder build = [&](const std::string& prefix, index_t n, index_t k,
                                                        std::span<const float> bias) -> std::optional<model::linear> {
                    const std::string& policy = policies.at(prefix);
                    if (policy == "fp32") return std::nullopt;
                    const io::tensor_view& t = files.tensor(prefix == "lm_head" && tied ? "model.embed_tokens.weight"
                                                                                        : prefix + ".weight");
                    const std::vector<float> w = io::to_float(t);
                    return model::linear::from_compressed(compress_layer(prefix, policy, matrix_view<const float>(w.data(), n, k)),
                                                          bias, prefix);
                };
                std::printf("tcomp-quantize: %s\n", verify_llama(in, out, policies, build).c_str());
            } else {
                const io::compressed_model_file f = io::compressed_model_file::open(out);
                std::printf("tcomp-quantize: verify: %s reads back (%zu layers recorded)\n", out.string().c_str(),
                            f.layers().size());
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-quantize: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace tcomp::tools::quantize_cli

namespace tcomp::tools {
int quantize_main(int argc, char** argv) { return quantize_cli::run(argc, argv); }
}  // namespace tcomp::tools
