// load_llama: a llama_model from a Hugging Face checkpoint directory: config.json plus either model.safetensors
// or the shards named by model.safetensors.index.json (io::safetensors_set). F32/F16/BF16 tensors are widened
// by io::to_float. Every tensor the config implies must exist with exactly the config's shape, and the files
// must hold nothing else; a mismatch is a tcomp::error naming the tensor, both shapes and the file, raised
// before any layer is built.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string_view>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/llama.hpp"
#include "tcomp/model/llama_config.hpp"

namespace tcomp::model {
/// True for tensors a checkpoint may carry that the model does not read: the rotary inv_freq buffers older
/// exports saved, and lm_head.weight when the head is tied (transformers ties it to the embeddings then).
inline bool ignorable_tensor(const llama_config& c, std::string_view name) {
    const std::string_view suffix = ".rotary_emb.inv_freq";
    if (name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix) return true;
    return c.tie_word_embeddings && name == "lm_head.weight";
}

/// Loads config.json and the weights of `dir`; `choose` picks each projection's policy (all fp32 if empty);
/// `build`, when given, makes a projection's layer itself (e.g. compressed by a calibration method).
/// Strict both ways: a tensor the config implies that is missing or has another shape, and a tensor in the
/// files that the config does not imply (other than ignorable_tensor), are tcomp::errors naming the tensor.
inline llama_model load_llama(const std::filesystem::path& dir, const policy_chooser& choose = {},
                              const linear_builder& build = {}) {
    const llama_config config = llama_config::from_file(dir / "config.json");
    const io::safetensors_set files = io::safetensors_set::open(dir);
    std::map<std::string, std::vector<std::int64_t>, std::less<>> expected;
    for (auto& [name, shape] : config.tensor_shapes()) expected.emplace(name, shape);
    for (const io::tensor_view& t : files.tensors())
        if (!expected.count(t.name) && !ignorable_tensor(config, t.name))
            tcomp::detail::throw_error<error>("load_llama: ", files.origin(), " holds tensor ", t.name, " (shape ",
                                              tcomp::detail::st_shape_string(t.shape),
                                              ") that config.json does not imply (another layer count, MoE or "
                                              "bias setting?)");
    for (const auto& [name, shape] : expected) {
        if (!files.contains(name))
            tcomp::detail::throw_error<error>("load_llama: tensor ", name, " (shape ", tcomp::detail::st_shape_string(shape),
                                              " from config.json) is missing from ", files.origin());
        const io::tensor_view& t = files.tensor(name);
        if (t.shape != shape)
            tcomp::detail::throw_error<shape_error>("load_llama: tensor ", name, " in ",
                                                    files.shard_of(name).origin(), " has shape ",
                                                    tcomp::detail::st_shape_string(t.shape), " but config.json implies ",
                                                    tcomp::detail::st_shape_string(shape));
    }
    // Shapes are all checked above, so a half-built model never holds a wrongly shaped tensor.
    const weight_source source = [&](const std::string& name, const std::vector<std::int64_t>&) {
        return io::to_float(files.tensor(name));
    };
    return llama_model(config, source, choose, build);
}

/// A llama_model from config.json and a compressed model file (io/compressed_model.hpp, docs/files.md; e.g.
/// written by tcomp-quantize). Compressed projections run exactly as stored (never re-quantized), so the model
/// computes what the in-memory model compressed with the same policies computes. Float projections take
/// `choose`'s policy (fp32 if empty); other tensors are read as floats (a compressed tensor the model reads as
/// floats, such as an embedding a recipe compressed, is dequantized). Checked as strictly as load_llama.
inline llama_model load_llama_compressed(const std::filesystem::path& config_json, const std::filesystem::path& file,
                                         const policy_chooser& choose = {}) {
    const llama_config config = llama_config::from_file(config_json);
    const io::compressed_model_file f = io::compressed_model_file::open(file);
    std::map<std::string, std::vector<std::int64_t>, std::less<>> expected;
    for (auto& [name, shape] : config.tensor_shapes()) expected.emplace(name, shape);
    for (const std::string& name : f.logical_tensors())
        if (!expected.count(name) && !ignorable_tensor(config, name))
            tcomp::detail::throw_error<error>("load_llama_compressed: ", f.origin(), " holds tensor ", name, " (shape ",
                                              tcomp::detail::st_shape_string(f.shape(name)), ") that ", config_json.string(),
                                              " does not imply");
    for (const auto& [name, shape] : expected) {
        if (!f.contains(name))
            tcomp::detail::throw_error<error>("load_llama_compressed: tensor ", name, " (shape ",
                                              tcomp::detail::st_shape_string(shape), ") is missing from ", f.origin());
        if (f.shape(name) != shape)
            tcomp::detail::throw_error<shape_error>("load_llama_compressed: tensor ", name, " in ", f.origin(),
                                                    " has shape ", tcomp::detail::st_shape_string(f.shape(name)), " but ",
                                                    config_json.string(), " implies ", tcomp::detail::st_shape_string(shape));
    }
    const weight_source source = [&](const std::string& name, const std::vector<std::int64_t>&) {
        return f.floats(name);
    };
    const linear_builder build = [&](const std::string& prefix, index_t, index_t,
                                     std::span<const float> bias) -> std::optional<linear> {
        const std::string tensor = prefix + ".weight";
        if (!f.is_compressed(tensor)) return std::nullopt;
        return linear::from_compressed(f.tensor(tensor), bias, prefix);
    };
    return llama_model(config, source, choose, build);
}

}  // namespace tcomp::model
