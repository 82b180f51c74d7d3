// mlp_classifier: a multi-layer perceptron y = fcL(relu(... relu(fc1(x)))) whose layers are model::linear, each
// with its own policy from a recipe (model/recipe.hpp). Written for ../shared/models/mnist_mlp (784-500-10,
// input = pixel / 255), but any stack of "fc<i>.weight" [out x in] (+ optional "fc<i>.bias" [out]) tensors with
// matching widths loads, from a plain safetensors file or a compressed model file (io/compressed_model.hpp):
// compressed layers are used as stored (never re-quantized), float layers take the recipe's policy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/model/recipe.hpp"

namespace tcomp::model {

class mlp_classifier {
public:
    /// The layer names of a file: "fc1", "fc2", ... as long as "fc<i>.weight" exists (at least fc1).
    static std::vector<std::string> layer_names(const io::compressed_model_file& file) {
        std::vector<std::string> out;
        for (int i = 1; file.contains("fc" + std::to_string(i) + ".weight"); ++i) out.push_back("fc" + std::to_string(i));
        if (out.empty())
            tcomp::detail::throw_error<error>("mlp_classifier: ", file.origin(), " has no tensor fc1.weight");
        return out;
    }

    /// `policies`: layer name -> policy (recipe::resolve over layer_names()); empty = "fp32" for float layers.
    /// A compressed layer keeps its stored policy; a map that asks for another one is an error.
    static mlp_classifier load(const io::compressed_model_file& file, const policy_map& policies = {}) {
        mlp_classifier m;
        const std::vector<std::string> names = layer_names(file);
        for (const std::string& layer : names) {
            const std::string tensor = layer + ".weight";
            const auto wanted = policies.find(layer);
            if (!policies.empty() && wanted == policies.end())
                tcomp::detail::throw_error<error>("mlp_classifier: the policy map has no entry for layer ", layer);
            const std::vector<std::int64_t> shape = file.shape(tensor);
            if (shape.size() != 2)
                tcomp::detail::throw_error<shape_error>("mlp_classifier: ", file.origin(), ": ", tensor, " has shape ",
                                                        tcomp::detail::st_shape_string(shape), ", expected [out, in]");
            std::vector<float> bias;
            if (file.contains(layer + ".bias")) {
                bias = file.floats(layer + ".bias");
                if (file.shape(layer + ".bias") != std::vector<std::int64_t>{shape[0]})
                    tcomp::detail::throw_error<shape_error>("mlp_classifier: ", file.origin(), ": ", layer,
                                                            ".bias has shape ",
                                                            tcomp::detail::st_shape_string(file.shape(layer + ".bias")),
                                                            ", expected [", shape[0], "]");
            }
            if (!m.layers_.empty() && m.layers_.back().out_features() != shape[1])
                tcomp::detail::throw_error<shape_error>("mlp_classifier: ", file.origin(), ": ", tensor, " takes ",
                                                        shape[1], " inputs but the previous layer gives ",
                                                        m.layers_.back().out_features());
            if (file.is_compressed(tensor)) {
                const std::string& stored = file.layers().find(tensor)->second.policy;
                // The recipe may name the stored descriptor by alias or by spelling: compare descriptors.
                if (wanted != policies.end() && resolve_policy(wanted->second) != file.layers().find(tensor)->second.desc)
                    tcomp::detail::throw_error<error>("mlp_classifier: ", file.origin(), " stores ", layer, " as ",
                                                      stored, ", the recipe asks for ", wanted->second,
                                                      " (a compressed layer is not re-quantized)");
                m.layers_.push_back(linear::from_compressed(file.tensor(tensor), bias, layer));
            } else {
                const std::vector<float> w = file.floats(tensor);
                const std::string policy = wanted != policies.end() ? wanted->second : std::string("fp32");
                m.layers_.push_back(linear::make(policy, matrix_view<const float>(w.data(), shape[0], shape[1]), bias,
                                                 layer));
            }
        }
        return m;
    }

    static mlp_classifier load(const std::filesystem::path& path, const policy_map& policies = {}) {
        return load(io::compressed_model_file::open(path), policies);
    }

    /// Resolves `r` against the file's layers first (so a rule that matches no layer is an error).
    static mlp_classifier load(const std::filesystem::path& path, const recipe& r) {
        const io::compressed_model_file file = io::compressed_model_file::open(path);
        return load(file, r.resolve(layer_names(file), "recipe"));
    }

    index_t input_size() const { return layers_.empty() ? 0 : layers_.front().in_features(); }
    index_t classes() const { return layers_.empty() ? 0 : layers_.back().out_features(); }
    const std::vector<linear>& layers() const { return layers_; }

    void set_threads(int threads) { threads_ = std::max(threads, 1); }

    /// Logits (rows x classes, row-major) of x (rows x input_size).
    std::vector<float> logits(matrix_view<const float> x) const {
        if (layers_.empty()) tcomp::detail::throw_error<error>("mlp_classifier: no layers (default-constructed)");
        if (x.cols() != input_size())
            tcomp::detail::throw_error<shape_error>("mlp_classifier: input has ", x.cols(), " features, the model takes ",
                                                    input_size());
        std::vector<float> in, out;
        matrix_view<const float> cur = x;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            const linear& l = layers_[i];
            out.assign(static_cast<std::size_t>(x.rows() * l.out_features()), 0.0f);
            l.forward(cur, matrix_view<float>(out.data(), x.rows(), l.out_features()), threads_);
            if (i + 1 < layers_.size())
                for (float& v : out) v = std::max(v, 0.0f);
            in.swap(out);
            cur = matrix_view<const float>(in.data(), x.rows(), l.out_features());
        }
        return in;
    }

    /// The argmax class of each row (the first on ties).
    std::vector<int> predict(matrix_view<const float> x) const {
        const std::vector<float> y = logits(x);
        const index_t c = classes();
        std::vector<int> out(static_cast<std::size_t>(x.rows()));
        for (index_t r = 0; r < x.rows(); ++r) {
            const float* row = y.data() + r * c;
            out[static_cast<std::size_t>(r)] = static_cast<int>(std::max_element(row, row + c) - row);
        }
        return out;
    }

    /// Bytes the layers stream per call (linear::weight_bytes summed).
    std::size_t weight_bytes() const {
        std::size_t b = 0;
        for (const linear& l : layers_) b += l.weight_bytes();
        return b;
    }

private:
    std::vector<linear> layers_;
    int threads_ = 1;
};

}  // namespace tcomp::model
