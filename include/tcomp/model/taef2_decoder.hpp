// taef2_decoder: the TAEF2 tiny VAE decoder (madebyollin/taesd, FLUX.2 latent space: 32 latent channels, 8x
// upsampling) with every convolution a model::conv2d, so each one takes its own compression policy by name.
//
// The network is built from config.json's layer sequence and the weights (safetensors, F16 widened to F32):
//   ["clamp", null]          latent soft clamp, limit * tanh(x / limit)   (config "latent_clamp": "tanh(x/3)*3")
//   ["conv", [name, pad]]    conv k x k (k from `name.weight`, [Cout][Cin][k][k]), zero padding `pad`, stride 1,
//                            bias `name.bias` when the file has one (the convs after an upsample have none)
//   ["relu", null]
//   ["up", null]             nearest 2x upsample
//   ["block", name]          taesd's Block: if the file has `name.pool.*` tensors (the mid blocks, config
//                            "midblock_groupnorm"), x += pool.3(ReLU(GroupNorm(pool.1)(pool.0(x)))) with 1x1
//                            convs without bias; then x = ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(x))))) + x), 3x3
//                            convs with padding 1 and bias.
// and the output is clamped to config "output_range" ([0, 1]), as taesd's decode does (the reference output
// holds exact 0s and 1s).
//
// Layer names for policies are the tensor prefixes: "1", "3.conv.0", "3.pool.0", "7", ... ("19" is the last).
// The GEMM of a conv has K = k*k*Cin: 288 for the first conv (Cin 32), 576 for the other 3x3 convs, 64 for
// pool.0 and 256 for pool.3, so per_group<128> policies (w4a8, w4a16) fit only pool.3; the g32 variants
// (w4a8_g32, w4a16_g32) and the per-channel ones (w8a8, w8a16) fit every layer. A policy that cannot take a
// layer is an error naming the layer, never a silent change of format.
//
// Strict loading: a tensor the config implies that is missing or has another shape, a tensor the config does
// not use, an unknown config key or layer kind, or a policy for a layer that does not exist is a tcomp::error
// naming it, raised before decode can run.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/small_file.hpp"
#include "tcomp/model/conv2d.hpp"
#include "tcomp/model/group_norm.hpp"
#include "tcomp/model/policy_registry.hpp"

namespace tcomp::model {

struct taef2_config {
    enum class layer_kind { clamp, conv, relu, up, block };
    struct layer {
        layer_kind kind = layer_kind::relu;
        std::string name;     // conv and block: the tensor prefix
        index_t padding = 0;  // conv
    };

    std::string architecture = "taesd-decoder";
    index_t latent_channels = 0;
    index_t channels = 0;
    index_t upsample_factor = 0;
    bool midblock_groupnorm = false;
    index_t groupnorm_groups = 0;
    float latent_clamp_limit = 3.0f;  // "tanh(x/L)*L"
    float output_min = 0.0f, output_max = 1.0f;
    std::vector<layer> layers;

    /// Throws tcomp::error naming the first inconsistent field.
    void validate() const {
        auto positive = [](index_t v, const char* field) {
            if (v <= 0) tcomp::detail::throw_error<error>("taef2_config: ", field, " must be > 0, got ", v);
        };
        if (architecture != "taesd-decoder")
            tcomp::detail::throw_error<error>("taef2_config: architecture \"", architecture,
                                              "\" is not supported (only \"taesd-decoder\")");
        positive(latent_channels, "latent_channels");
        positive(channels, "channels");
        positive(upsample_factor, "upsample_factor");
        positive(groupnorm_groups, "groupnorm_groups");
        if (!(latent_clamp_limit > 0.0f) || !std::isfinite(latent_clamp_limit))
            tcomp::detail::throw_error<error>("taef2_config: latent_clamp limit must be finite and > 0, got ",
                                              latent_clamp_limit);
        if (!(output_min < output_max) || !std::isfinite(output_min) || !std::isfinite(output_max))
            tcomp::detail::throw_error<error>("taef2_config: output_range [", output_min, ", ", output_max,
                                              "] must be finite with min < max");
        if (layers.empty()) tcomp::detail::throw_error<error>("taef2_config: layers is empty");
        index_t factor = 1;
        for (std::size_t i = 0; i < layers.size(); ++i) {
            const layer& l = layers[i];
            if ((l.kind == layer_kind::conv || l.kind == layer_kind::block) && l.name.empty())
                tcomp::detail::throw_error<error>("taef2_config: layers[", i, "] has an empty name");
            if (l.padding < 0)
                tcomp::detail::throw_error<error>("taef2_config: layers[", i, "] (conv ", l.name, ") has padding ",
                                                  l.padding);
            if (l.kind == layer_kind::up) {
                if (factor > (index_t{1} << 20)) tcomp::detail::throw_error<error>("taef2_config: too many up layers");
                factor *= 2;
            }
        }
        if (factor != upsample_factor)
            tcomp::detail::throw_error<error>("taef2_config: upsample_factor is ", upsample_factor, " but the ",
                                              "layers upsample by ", factor);
    }

    /// Parses config.json's content; `origin` names the file in errors.
    static taef2_config from_json(const nlohmann::json& j, const std::string& origin = "config.json") {
        auto fail = [&](auto&&... parts) {
            tcomp::detail::throw_error<error>("taef2_config: ", origin, ": ", std::forward<decltype(parts)>(parts)...);
        };
        if (!j.is_object()) fail("not a JSON object");
        static constexpr std::string_view known[] = {"architecture",       "latent_channels",  "channels",
                                                     "upsample_factor",    "midblock_groupnorm", "groupnorm_groups",
                                                     "latent_clamp",       "output_range",     "layers"};
        for (const auto& [key, value] : j.items())
            if (std::find(std::begin(known), std::end(known), key) == std::end(known))
                fail("unknown key \"", key, "\"");
        auto required = [&](const char* key) -> const nlohmann::json& {
            if (!j.contains(key)) fail("missing required key \"", key, "\"");
            return j.at(key);
        };
        auto integer = [&](const char* key) {
            const nlohmann::json& v = required(key);
            if (!v.is_number_integer()) fail("\"", key, "\" must be an integer");
            return static_cast<index_t>(v.get<std::int64_t>());
        };
        taef2_config c;
        if (j.contains("architecture")) {
            if (!j.at("architecture").is_string()) fail("\"architecture\" must be a string");
            c.architecture = j.at("architecture").get<std::string>();
        }
        c.latent_channels = integer("latent_channels");
        c.channels = integer("channels");
        c.upsample_factor = integer("upsample_factor");
        c.groupnorm_groups = integer("groupnorm_groups");
        if (!required("midblock_groupnorm").is_boolean()) fail("\"midblock_groupnorm\" must be a boolean");
        c.midblock_groupnorm = j.at("midblock_groupnorm").get<bool>();
        if (!required("latent_clamp").is_string()) fail("\"latent_clamp\" must be a string");
        c.latent_clamp_limit = parse_clamp(j.at("latent_clamp").get<std::string>(), origin);
        const nlohmann::json& range = required("output_range");
        if (!range.is_array() || range.size() != 2 || !range[0].is_number() || !range[1].is_number())
            fail("\"output_range\" must be [min, max]");
        c.output_min = range[0].get<float>(), c.output_max = range[1].get<float>();
        const nlohmann::json& layers = required("layers");
        if (!layers.is_array()) fail("\"layers\" must be an array");
        for (std::size_t i = 0; i < layers.size(); ++i) {
            const nlohmann::json& e = layers[i];
            if (!e.is_array() || e.size() != 2 || !e[0].is_string()) fail("layers[", i, "] must be [kind, argument]");
            const std::string kind = e[0].get<std::string>();
            const nlohmann::json& arg = e[1];
            layer l;
            if (kind == "clamp" || kind == "relu" || kind == "up") {
                if (!arg.is_null()) fail("layers[", i, "] (", kind, ") takes no argument");
                l.kind = kind == "clamp" ? layer_kind::clamp : kind == "relu" ? layer_kind::relu : layer_kind::up;
            } else if (kind == "conv") {
                if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string() || !arg[1].is_number_integer())
                    fail("layers[", i, "] (conv) must be [\"conv\", [name, padding]]");
                l.kind = layer_kind::conv;
                l.name = arg[0].get<std::string>();
                l.padding = static_cast<index_t>(arg[1].get<std::int64_t>());
            } else if (kind == "block") {
                if (!arg.is_string()) fail("layers[", i, "] (block) must be [\"block\", name]");
                l.kind = layer_kind::block;
                l.name = arg.get<std::string>();
            } else {
                fail("layers[", i, "] has unknown kind \"", kind, "\" (known: clamp, conv, relu, up, block)");
            }
            c.layers.push_back(std::move(l));
        }
        c.validate();
        return c;
    }

    static taef2_config from_file(const std::filesystem::path& path) {
        const std::string text = tcomp::detail::read_small_file(path, std::uint64_t{1} << 20, "taef2_config:");
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded())
            tcomp::detail::throw_error<io::file_error>("taef2_config: ", path.string(), " is not valid JSON");
        return from_json(j, path.string());
    }

private:
    /// "tanh(x/L)*L" -> L (both L equal).
    static float parse_clamp(const std::string& s, const std::string& origin) {
        auto fail = [&] {
            tcomp::detail::throw_error<error>("taef2_config: ", origin, ": latent_clamp \"", s,
                                              "\" is not of the form tanh(x/L)*L");
        };
        const std::string_view head = "tanh(x/", mid = ")*";
        if (s.rfind(head, 0) != 0) fail();
        const std::size_t m = s.find(mid, head.size());
        if (m == std::string::npos) fail();
        auto number = [&](std::size_t begin, std::size_t end) {
            float v = 0.0f;
            const auto r = std::from_chars(s.data() + begin, s.data() + end, v);
            if (r.ec != std::errc{} || r.ptr != s.data() + end) fail();
            return v;
        };
        const float a = number(head.size(), m), b = number(m + mid.size(), s.size());
        if (a != b) fail();
        return a;
    }
};

/// A weight in float, PyTorch layout, with its shape.
struct taef2_tensor {
    std::vector<std::int64_t> shape;
    std::vector<float> data;
};
using taef2_weights = std::map<std::string, taef2_tensor, std::less<>>;
/// Conv layer name -> policy name (policy_registry.hpp); layers not listed take the default policy.
using taef2_policy_map = std::map<std::string, std::string, std::less<>>;
/// Makes a conv itself (e.g. compressed by a calibration method: conv2d::im2col_weights, then
/// conv2d::from_compressed), or nullopt for the policy map's conv2d::make. Arguments: layer name, PyTorch
/// weights [out][in][k][k], out, in, kernel, padding, bias.
using taef2_conv_builder = std::function<std::optional<conv2d>(const std::string& layer, std::span<const float> weight_oihw,
                                                               index_t out, index_t in, index_t kernel, index_t padding,
                                                               std::span<const float> bias)>;

class taef2_decoder {
public:
    /// The column order of every conv's GEMM weights (conv2d.hpp): what a per-group policy groups. A conv
    /// builder must compress its weights in the same order (conv2d::im2col_weights(..., order)). channels, the
    /// better one here: W4A8 g32 26.82 dB against 25.18 along taps, uint4 asymmetric g32 29.70 against 29.02
    /// (the dev latents, RTN).
    static constexpr conv_weight_order default_weight_order = conv_weight_order::channels;

    /// Builds the network of `config` from `weights` (see the file comment for what is checked); `origin`
    /// names the weights in errors.
    taef2_decoder(taef2_config config, const taef2_weights& weights, const taef2_policy_map& policies = {},
                  std::string_view default_policy = "fp32", std::string origin = "weights",
                  const taef2_conv_builder& build_conv = {}, conv_weight_order order = default_weight_order)
        : config_(std::move(config)) {
        config_.validate();
        require_known_policy(default_policy, "taef2_decoder: default policy");
        builder b{weights, policies, std::string(default_policy), std::move(origin), {}, build_conv, order};
        build(b);
        // Every policy entry must name a conv that exists: a typo would otherwise leave a layer in fp32.
        for (const auto& entry : policies) {
            const bool found =
                std::any_of(convs_.begin(), convs_.end(), [&](const conv2d* c) { return c->name == entry.first; });
            if (!found)
                tcomp::detail::throw_error<error>("taef2_decoder: the policy map names layer \"", entry.first,
                                                  "\" (", entry.second, "), which is not a conv of this model; conv "
                                                  "layers: ", layer_list());
        }
        for (const auto& [name, tensor] : weights)
            if (!b.used.count(name))
                tcomp::detail::throw_error<error>("taef2_decoder: ", b.origin, " holds tensor ", name, " (shape ",
                                                  tcomp::detail::st_shape_string(tensor.shape),
                                                  ") that the config's layer sequence does not use");
    }

    /// config.json and model.safetensors of `dir` (F16/BF16/F32 weights, widened to float).
    static taef2_decoder load(const std::filesystem::path& dir, const taef2_policy_map& policies = {},
                              std::string_view default_policy = "fp32", const taef2_conv_builder& build_conv = {},
                              conv_weight_order order = default_weight_order) {
        taef2_config config = taef2_config::from_file(dir / "config.json");
        const auto path = dir / "model.safetensors";
        return taef2_decoder(std::move(config), read_weights(path), policies, default_policy, path.string(), build_conv,
                             order);
    }

    /// Every tensor of a safetensors file (F16/BF16/F32, widened to float), by name.
    static taef2_weights read_weights(const std::filesystem::path& file) {
        const io::safetensors_file f = io::safetensors_file::open(file);
        taef2_weights weights;
        for (const io::tensor_view& t : f.tensors()) weights[t.name] = taef2_tensor{t.shape, io::to_float(t)};
        return weights;
    }

    taef2_decoder(taef2_decoder&&) noexcept = default;
    taef2_decoder& operator=(taef2_decoder&&) noexcept = default;

    const taef2_config& config() const { return config_; }
    index_t out_channels() const { return out_channels_; }
    void set_threads(int threads) { threads_ = std::max(threads, 1); }
    int threads() const { return threads_; }

    /// Every conv in execution order (name, policy, K, weight bytes, kernel note).
    const std::vector<const conv2d*>& convs() const { return convs_; }
    /// Bytes the convs stream per call: packed weights with their scales, plus float biases (GroupNorm not counted).
    std::size_t weight_bytes() const {
        std::size_t total = 0;
        for (const conv2d* c : convs_) total += c->weight_bytes();
        return total;
    }

    /// latents NCHW [batch][latent_channels][height][width] -> images NCHW
    /// [batch][out_channels][factor * height][factor * width] in the output range.
    std::vector<float> decode(std::span<const float> latents, index_t batch, index_t height, index_t width) const {
        const index_t lc = config_.latent_channels;
        if (batch < 0 || height <= 0 || width <= 0 ||
            static_cast<index_t>(latents.size()) != batch * lc * height * width)
            tcomp::detail::throw_error<shape_error>("taef2_decoder::decode: ", latents.size(),
                                                    " latent values do not make ", batch, " x ", lc, " x ", height,
                                                    " x ", width, " (NCHW, batch >= 0, height and width > 0)");
        const index_t f = config_.upsample_factor, oh = f * height, ow = f * width, oc = out_channels_;
        std::vector<float> out(static_cast<std::size_t>(batch * oc * oh * ow));
        for (index_t b = 0; b < batch; ++b) {
            feature_map x(height, width, lc);
            const float* src = latents.data() + b * lc * height * width;
            for (index_t c = 0; c < lc; ++c)
                for (index_t p = 0; p < height * width; ++p) {
                    const float v = src[c * height * width + p];
                    if (!std::isfinite(v))
                        tcomp::detail::throw_error<value_error>("taef2_decoder::decode: latent (", b, ", ", c, ", ",
                                                                p / width, ", ", p % width, ") is ",
                                                                std::isnan(v) ? "NaN" : "Inf");
                    x.data[static_cast<std::size_t>(p * lc + c)] = v;
                }
            const feature_map y = forward(x);
            float* dst = out.data() + b * oc * oh * ow;
            for (index_t p = 0; p < oh * ow; ++p)
                for (index_t c = 0; c < oc; ++c) dst[c * oh * ow + p] = y.data[static_cast<std::size_t>(p * oc + c)];
        }
        return out;
    }

    /// One latent image in NHWC -> the decoded image in NHWC, clamped to the output range.
    feature_map forward(feature_map x) const {
        x.check("taef2_decoder::forward");
        if (x.channels != config_.latent_channels)
            tcomp::detail::throw_error<shape_error>("taef2_decoder::forward: latents have ", x.channels,
                                                    " channels, the model takes ", config_.latent_channels);
        scratch buf;  // reused by every layer: large maps are allocated (and page-faulted) once per resolution
        for (const step& s : steps_) {
            switch (s.kind) {
                case taef2_config::layer_kind::clamp: tanh_clamp_inplace(x.data, config_.latent_clamp_limit); break;
                case taef2_config::layer_kind::relu: relu_inplace(x.data); break;
                case taef2_config::layer_kind::up: x = upsample_nearest2x(x); break;
                case taef2_config::layer_kind::conv:
                    convs_own_[s.index].forward(x, buf.a, threads_);
                    std::swap(x, buf.a);
                    break;
                case taef2_config::layer_kind::block: run_block(blocks_[s.index], x, buf); break;
            }
        }
        for (float& v : x.data) v = std::clamp(v, config_.output_min, config_.output_max);
        return x;
    }

private:
    struct block {
        std::string name;
        conv2d conv0, conv2, conv4;
        bool has_pool = false;
        conv2d pool0, pool3;
        group_norm norm;
    };
    struct scratch {
        feature_map a, t;
    };
    struct step {
        taef2_config::layer_kind kind;
        std::size_t index = 0;  // into convs_own_ or blocks_
    };
    struct builder {
        const taef2_weights& weights;
        const taef2_policy_map& policies;
        std::string default_policy;
        std::string origin;
        std::set<std::string, std::less<>> used;
        const taef2_conv_builder& build_conv;
        conv_weight_order order;

        const taef2_tensor* find(const std::string& name) const {
            const auto it = weights.find(name);
            return it == weights.end() ? nullptr : &it->second;
        }
        const taef2_tensor& take(const std::string& name, const std::string& implied) {
            const taef2_tensor* t = find(name);
            if (!t)
                tcomp::detail::throw_error<error>("taef2_decoder: tensor ", name, " (", implied, ") is missing from ",
                                                  origin);
            const std::int64_t expected = [&] {
                std::int64_t n = 1;
                for (std::int64_t d : t->shape) n *= d;
                return n;
            }();
            if (static_cast<std::int64_t>(t->data.size()) != expected)
                tcomp::detail::throw_error<shape_error>("taef2_decoder: tensor ", name, " has ", t->data.size(),
                                                        " values for shape ", tcomp::detail::st_shape_string(t->shape));
            used.insert(name);
            return *t;
        }
        /// The tensor with exactly `shape`.
        const taef2_tensor& take(const std::string& name, const std::vector<std::int64_t>& shape,
                                 const std::string& why) {
            const taef2_tensor& t = take(name, "shape " + tcomp::detail::st_shape_string(shape) + " implied by " + why);
            if (t.shape != shape)
                tcomp::detail::throw_error<shape_error>("taef2_decoder: tensor ", name, " in ", origin, " has shape ",
                                                        tcomp::detail::st_shape_string(t.shape), " but ", why, " implies ",
                                                        tcomp::detail::st_shape_string(shape));
            return t;
        }
        std::string policy_of(const std::string& layer) const {
            const auto it = policies.find(layer);
            return it == policies.end() ? default_policy : it->second;
        }
        conv2d conv(const std::string& layer, const taef2_tensor& w, std::span<const float> bias, index_t padding) {
            const auto d = [&](std::size_t i) { return static_cast<index_t>(w.shape[i]); };
            if (build_conv)
                if (std::optional<conv2d> c = build_conv(layer, w.data, d(0), d(1), d(2), padding, bias)) return std::move(*c);
            return conv2d::make(policy_of(layer), w.data, d(0), d(1), d(2), padding, bias, layer, order);
        }
    };

    void build(builder& b) {
        index_t c = config_.latent_channels;
        for (std::size_t i = 0; i < config_.layers.size(); ++i) {
            const taef2_config::layer& l = config_.layers[i];
            const std::string where = "config.json layers[" + std::to_string(i) + "]";
            step s{l.kind, 0};
            if (l.kind == taef2_config::layer_kind::conv) {
                const std::string wname = l.name + ".weight";
                const taef2_tensor& w = b.take(wname, "a conv [Cout, " + std::to_string(c) + ", k, k] at " + where);
                if (w.shape.size() != 4 || w.shape[1] != c || w.shape[2] != w.shape[3] || w.shape[0] <= 0 ||
                    w.shape[2] <= 0)
                    tcomp::detail::throw_error<shape_error>("taef2_decoder: tensor ", wname, " in ", b.origin,
                                                            " has shape ", tcomp::detail::st_shape_string(w.shape), " but ",
                                                            where, " implies [Cout, ", c,
                                                            ", k, k] (a square conv on ", c, " channels)");
                std::span<const float> bias;
                if (b.find(l.name + ".bias")) bias = b.take(l.name + ".bias", {w.shape[0]}, where).data;
                s.index = convs_own_.size();
                convs_own_.push_back(b.conv(l.name, w, bias, l.padding));
                c = static_cast<index_t>(w.shape[0]);
            } else if (l.kind == taef2_config::layer_kind::block) {
                if (c != config_.channels)
                    tcomp::detail::throw_error<shape_error>("taef2_decoder: block ", l.name, " (", where, ") gets ",
                                                            c, " channels but config.json's channels is ",
                                                            config_.channels);
                s.index = blocks_.size();
                blocks_.push_back(make_block(b, l.name, c, where));
            }
            steps_.push_back(s);
        }
        out_channels_ = c;
        // Pointers only after every vector has its final size.
        for (const step& s : steps_) {
            if (s.kind == taef2_config::layer_kind::conv) convs_.push_back(&convs_own_[s.index]);
            if (s.kind == taef2_config::layer_kind::block) {
                const block& k = blocks_[s.index];
                if (k.has_pool) convs_.push_back(&k.pool0), convs_.push_back(&k.pool3);
                convs_.push_back(&k.conv0), convs_.push_back(&k.conv2), convs_.push_back(&k.conv4);
            }
        }
    }

    block make_block(builder& b, const std::string& name, index_t c, const std::string& where) {
        block k;
        k.name = name;
        const std::string why = where + " (block " + name + " on " + std::to_string(c) + " channels)";
        auto conv3 = [&](const char* part) {
            const std::string layer = name + ".conv." + part;
            const taef2_tensor& w = b.take(layer + ".weight", {c, c, 3, 3}, why);
            const taef2_tensor& bias = b.take(layer + ".bias", {c}, why);
            return b.conv(layer, w, bias.data, 1);
        };
        k.conv0 = conv3("0"), k.conv2 = conv3("2"), k.conv4 = conv3("4");
        const std::string pool0 = name + ".pool.0.weight";
        if (const taef2_tensor* p = b.find(pool0)) {
            if (!config_.midblock_groupnorm)
                tcomp::detail::throw_error<error>("taef2_decoder: ", b.origin, " holds ", pool0,
                                                  " but config.json has midblock_groupnorm = false");
            const std::int64_t hidden = p->shape.size() == 4 ? p->shape[0] : 0;
            if (hidden <= 0 || hidden % config_.groupnorm_groups != 0)
                tcomp::detail::throw_error<shape_error>("taef2_decoder: tensor ", pool0, " has shape ",
                                                        tcomp::detail::st_shape_string(p->shape), "; ", why,
                                                        " implies [hidden, ", c, ", 1, 1] with hidden a multiple of ",
                                                        config_.groupnorm_groups, " groups");
            k.has_pool = true;
            const taef2_tensor& w0 = b.take(pool0, {hidden, c, 1, 1}, why);
            const taef2_tensor& gw = b.take(name + ".pool.1.weight", {hidden}, why);
            const taef2_tensor& gb = b.take(name + ".pool.1.bias", {hidden}, why);
            const taef2_tensor& w3 = b.take(name + ".pool.3.weight", {c, hidden, 1, 1}, why);
            k.pool0 = b.conv(name + ".pool.0", w0, {}, 0);
            k.norm = group_norm(config_.groupnorm_groups, static_cast<index_t>(hidden), 1e-5, true, name + ".pool.1");
            k.norm.set_affine(gw.data, gb.data);
            k.pool3 = b.conv(name + ".pool.3", w3, {}, 0);
        }
        return k;
    }

    /// ReLUs and residual adds run in the convs' tile epilogues (conv_epilogue), while each tile is in cache.
    void run_block(const block& k, feature_map& x, scratch& buf) const {
        feature_map &a = buf.a, &t = buf.t;
        if (k.has_pool) {  // x += pool.3(ReLU(GroupNorm(pool.0(x))))
            k.pool0.forward(x, a, threads_);
            k.norm.forward(a.matrix(), a.matrix());
            relu_inplace(a.data);
            k.pool3.forward(a, t, threads_, {.residual = &x});
            std::swap(x, t);
        }
        k.conv0.forward(x, a, threads_, {.relu = true});
        k.conv2.forward(a, t, threads_, {.relu = true});
        k.conv4.forward(t, a, threads_, {.residual = &x, .relu = true});  // ReLU(conv(...) + x)
        std::swap(x, a);
    }

    std::string layer_list() const {
        std::string out;
        for (const conv2d* c : convs_) out += (out.empty() ? "" : ", ") + c->name;
        return out;
    }

    taef2_config config_;
    std::vector<conv2d> convs_own_;  // the top-level convs
    std::vector<block> blocks_;
    std::vector<step> steps_;
    std::vector<const conv2d*> convs_;  // every conv, execution order
    index_t out_channels_ = 0;
    int threads_ = 1;
};

}  // namespace tcomp::model
