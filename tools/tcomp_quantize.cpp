// tcomp-quantize IN OUT --recipe R.json
//
// Compresses a checkpoint into a tcomp compressed model file (docs/files.md). IN is a .safetensors file or a
// Hugging Face directory (model.safetensors, or model.safetensors.index.json + shards; config.json is not
// needed). The layers are the 2-D floating tensors; a layer's name is the tensor name without ".weight"
// ("model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj"), and the recipe (model/recipe.hpp)
// gives each one a policy. Every other tensor is copied (floats as F32, integer tensors unchanged).
// Exit status: 0 on success, 2 on bad arguments, 1 on any other error (the message names what and where).
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/recipe.hpp"

namespace {

constexpr const char* usage =
    "usage: tcomp-quantize IN OUT --recipe RECIPE.json\n"
    "  IN      a .safetensors file, or a Hugging Face model directory (model.safetensors or sharded)\n"
    "  OUT     the compressed .safetensors file to write\n"
    "  RECIPE  {\"default\": \"w8a8\", \"layers\": [{\"match\": \"*.down_proj\", \"policy\": \"fp32\"}]}\n"
    "          (layers = 2-D float tensors, named without \".weight\"; first matching rule wins)\n"
    "  policies: ";

int usage_error(const std::string& message) {
    std::fprintf(stderr, "tcomp-quantize: %s\n%s%s\n", message.c_str(), usage,
                 tcomp::model::detail::known_policy_list().c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> positional;
    std::string recipe_path;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s%s\n", usage, tcomp::model::detail::known_policy_list().c_str());
            return 0;
        }
        if (a == "--recipe") {
            if (i + 1 >= argc) return usage_error("--recipe needs a file name");
            recipe_path = argv[++i];
        } else if (a.starts_with("--recipe=")) {
            recipe_path = std::string(a.substr(9));
        } else if (a.starts_with("-")) {
            return usage_error("unknown option " + std::string(a));
        } else {
            positional.emplace_back(a);
        }
    }
    if (positional.size() != 2) return usage_error("expected IN and OUT, got " + std::to_string(positional.size()) + " file names");
    if (recipe_path.empty()) return usage_error("--recipe is required");
    const std::filesystem::path in = positional[0], out = positional[1];

    try {
        const tcomp::model::recipe recipe = tcomp::model::recipe::from_file(recipe_path);
        const tcomp::io::safetensors_set files = tcomp::io::safetensors_set::open(in);
        std::vector<std::string> layers;
        for (const tcomp::io::tensor_view& t : files.tensors())
            if (t.shape.size() == 2 && tcomp::detail::is_float_dtype(t.type))
                layers.push_back(tcomp::model::layer_of_tensor(t.name));
        const tcomp::model::policy_map policies = recipe.resolve(layers, "recipe " + recipe_path);

        tcomp::io::compressed_model_writer writer;
        writer.set_metadata("source", in.filename().string());
        std::size_t compressed = 0;
        for (const tcomp::io::tensor_view& t : files.tensors()) {
            const bool is_layer = t.shape.size() == 2 && tcomp::detail::is_float_dtype(t.type);
            if (!is_layer) {
                writer.add_plain(t);
                continue;
            }
            const std::string& policy = policies.at(tcomp::model::layer_of_tensor(t.name));
            const std::vector<float> w = tcomp::io::to_float(t);
            writer.add_linear(t.name, policy,
                              tcomp::matrix_view<const float>(w.data(), t.shape[0], t.shape[1]));
            compressed += policy != "fp32";
        }
        writer.write(out);
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(out, ec);
        std::printf("tcomp-quantize: %zu tensors, %zu layers (%zu compressed) -> %s (%ju bytes)\n",
                    files.tensors().size(), layers.size(), compressed, out.string().c_str(),
                    static_cast<std::uintmax_t>(ec ? 0 : bytes));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-quantize: error: %s\n", e.what());
        return 1;
    }
}
