// Compressed model files: a safetensors file whose linear layers are stored compressed, in the portable
// canonical form of core/packed_storage.hpp (never the ISA-specific kernel packing: loading repacks), as
// ordinary tensors that any safetensors reader (Python's `safetensors`) can open. docs/files.md is the
// reference; in short, for a layer weight tensor T compressed with policy P (a policy_registry.hpp name):
//
//   __metadata__  "tcomp.format": "tcomp-compressed", "tcomp.format_version": "1",
//                 "tcomp.policy.T": P, "tcomp.shape.T": "[N, K]"       (fp32 layers: policy "fp32", T itself F32)
//   T.codes       U8 [N, row_bytes]      each row's codes, LSB-first bit stream, row_bytes = ceil(K * bits / 8)
//   T.scales      F32 or F16 [R, K/G]    one scale per cell (R = N, or 1 for per-tensor); F16 only when exact;
//                 U8 for 1..8-bit scale entries (power-of-two exponents, shifts), one entry per byte
//   T.zeros       U8 [R, K/G]            zero-point code per cell, one per byte (asymmetric policies only)
//   T.tensor_scale F32 [1]               two-level scale kinds only
//   T.nm_indices  U8 [N, index_bytes]    N:M sparsity: kept positions, LSB-first bit stream per row
//
// Every other tensor (norms, embeddings, biases) is a plain tensor: floats as F32, integer tensors unchanged.
// A reader checks everything before use and names the tensor in each error: the format and version, unknown
// "tcomp." metadata keys, unknown policies, missing or superfluous component tensors, dtypes, shapes, a policy
// whose layout disagrees with the tensors (another group size, a K the group does not divide), zero points
// outside the code range; the packed data then passes packed_view::validate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/core/packed_storage.hpp"
#include "tcomp/format/half.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/policy_registry.hpp"
#include "tcomp/quant/compress.hpp"

namespace tcomp::io {

inline constexpr std::string_view compressed_format_name = "tcomp-compressed";
inline constexpr std::string_view compressed_format_version = "1";

/// The component tensors of a compressed tensor T are T + one of these suffixes.
namespace compressed_suffix {
inline constexpr std::string_view codes = ".codes";
inline constexpr std::string_view scales = ".scales";
inline constexpr std::string_view zeros = ".zeros";
inline constexpr std::string_view tensor_scale = ".tensor_scale";
inline constexpr std::string_view nm_indices = ".nm_indices";
}  // namespace compressed_suffix

}  // namespace tcomp::io

namespace tcomp::detail {

inline std::string cm_policy_key(std::string_view tensor) { return "tcomp.policy." + std::string(tensor); }
inline std::string cm_shape_key(std::string_view tensor) { return "tcomp.shape." + std::string(tensor); }

inline bool is_float_dtype(io::dtype t) {
    return t == io::dtype::f32 || t == io::dtype::f16 || t == io::dtype::bf16 || t == io::dtype::f64 ||
           t == io::dtype::f8_e4m3 || t == io::dtype::f8_e5m2;
}

/// The packed layout policy `name` gives an n x k weight matrix; throws (shape_error) when it cannot take it.
inline packed_layout cm_expected_layout(std::string_view policy_name, index_t n, index_t k, const char* where) {
    return model::visit_policy(policy_name, [&]<class P>(std::type_identity<P>) -> packed_layout {
        if constexpr (std::is_same_v<P, model::fp32_policy>) {
            throw_error<error>(where, ": fp32 has no packed layout");
        } else {
            using WQ = typename P::weight_quantizer;
            using S = typename P::sparsity;
            return layout_for<WQ, S>(n, k, grid_for<WQ>(n, k, false, where));
        }
    });
}

inline bool cm_half_exact(float f) {
    const float back = fp16_format::decode(fp16_format::encode(f));
    return std::memcmp(&back, &f, sizeof f) == 0;
}

/// "[N, K]" -> (N, K); nullopt for anything else.
inline std::optional<std::pair<index_t, index_t>> cm_parse_shape(const std::string& text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
    if (!j.is_array() || j.size() != 2 || !j[0].is_number_unsigned() || !j[1].is_number_unsigned())
        return std::nullopt;
    const auto n = j[0].get<std::uint64_t>(), k = j[1].get<std::uint64_t>();
    if (n > (std::uint64_t{1} << 31) || k > (std::uint64_t{1} << 40)) return std::nullopt;
    return std::pair{static_cast<index_t>(n), static_cast<index_t>(k)};
}

}  // namespace tcomp::detail

namespace tcomp::io {

/// How scales of 32-bit float kinds are written.
enum class scale_storage {
    automatic,  // F16 when every scale of the tensor is exactly an F16 (GPTQ imports), else F32
    f32,
};

/// Builds a compressed model file. Tensors are copied in; write() goes through safetensors_writer (temp file,
/// then rename).
class compressed_model_writer {
public:
    explicit compressed_model_writer(scale_storage scales = scale_storage::automatic) : scale_mode_(scales) {
        writer_.set_metadata("tcomp.format", std::string(compressed_format_name));
        writer_.set_metadata("tcomp.format_version", std::string(compressed_format_version));
    }

    /// A plain float tensor (norms, embeddings, biases), stored as F32.
    void add_float(std::string name, std::vector<std::int64_t> shape, std::span<const float> data) {
        writer_.add_f32(std::move(name), std::move(shape), data);
    }

    /// A tensor of another file: floating dtypes become F32, integer and boolean tensors are copied unchanged.
    void add_plain(const tensor_view& t) {
        if (detail::is_float_dtype(t.type)) writer_.add_f32(t.name, t.shape, to_float(t));
        else writer_.add(t);
    }

    /// A linear layer's weight W[N x K] under `policy` (a registry name): compressed here; "fp32" stores W as
    /// F32 and records the policy. Throws the policy's own error (naming the tensor) when it cannot take K.
    void add_linear(const std::string& tensor, std::string_view policy, matrix_view<const float> w) {
        model::require_known_policy(policy, "compressed_model_writer: " + tensor);
        if (policy == "fp32") {
            std::vector<float> data(static_cast<std::size_t>(w.rows() * w.cols()));
            for (index_t r = 0; r < w.rows(); ++r)
                std::copy(w.row(r).begin(), w.row(r).end(), data.begin() + r * w.cols());
            writer_.add_f32(tensor, {w.rows(), w.cols()}, data);
            record(tensor, policy, w.rows(), w.cols());
            return;
        }
        packed_buffers storage;
        try {
            storage = model::visit_policy(policy, [&]<class P>(std::type_identity<P>) -> packed_buffers {
                if constexpr (std::is_same_v<P, model::fp32_policy>) return {};
                else return compress<P>(w).weights().storage();
            });
        } catch (const shape_error& e) {
            throw shape_error("compressed_model_writer: " + tensor + " (" + std::string(policy) + "): " + e.what());
        } catch (const error& e) {
            throw error("compressed_model_writer: " + tensor + " (" + std::string(policy) + "): " + e.what());
        }
        add_compressed(tensor, policy, storage);
    }

    /// Weights already compressed under `policy` (a GPTQ import, a layer of another file): written as they are.
    /// The layout must be the one `policy` gives (shape_error naming the tensor otherwise).
    void add_compressed(const std::string& tensor, std::string_view policy, const packed_buffers& storage) {
        const std::string where = "compressed_model_writer: " + tensor;
        model::require_known_policy(policy, where);
        if (policy == "fp32") detail::throw_error<error>(where, ": fp32 layers are stored with add_linear");
        const packed_layout& l = storage.layout;
        const packed_layout want = detail::cm_expected_layout(policy, l.rows, l.cols, where.c_str());
        if (!same_layout(want, l))
            detail::throw_error<shape_error>(where, ": the packed layout is not the one policy ", policy,
                                             " gives a ", l.rows, "x", l.cols, " matrix");
        storage.view().validate(where.c_str());
        if (!l.fixed_row_length())
            detail::throw_error<error>(where, ": variable-length rows (block or unstructured sparsity) have no file "
                                              "form yet");
        const std::int64_t rows = l.rows;
        writer_.add(tensor + std::string(compressed_suffix::codes), dtype::u8,
                    {rows, static_cast<std::int64_t>(l.row_code_bytes())}, std::as_bytes(std::span(storage.codes)));
        const std::vector<std::int64_t> grid{l.scale_rows, l.scale_cols};
        const auto count = static_cast<std::size_t>(l.scale_count());
        if (l.scale_bits == 32) {
            std::vector<float> s(count);
            bool half_ok = scale_mode_ == scale_storage::automatic;
            for (std::size_t i = 0; i < count; ++i) {
                s[i] = detail::bits_float(read_packed(storage.scales.data(), static_cast<index_t>(i), 32));
                half_ok = half_ok && detail::cm_half_exact(s[i]);
            }
            if (half_ok) {
                std::vector<std::byte> b(count * 2);
                for (std::size_t i = 0; i < count; ++i)
                    detail::store_le(b.data() + 2 * i, static_cast<std::uint16_t>(fp16_format::encode(s[i])));
                writer_.add(tensor + std::string(compressed_suffix::scales), dtype::f16, grid, b);
            } else {
                writer_.add_f32(tensor + std::string(compressed_suffix::scales), grid, s);
            }
        } else if (l.scale_bits > 0) {
            writer_.add(tensor + std::string(compressed_suffix::scales), dtype::u8, grid,
                        unpack_bytes(storage.scales, count, l.scale_bits));
        }
        if (l.has_zero_points)
            writer_.add(tensor + std::string(compressed_suffix::zeros), dtype::u8, grid,
                        unpack_bytes(storage.zero_points, count, l.code_bits));
        if (l.has_tensor_scale)
            writer_.add_f32(tensor + std::string(compressed_suffix::tensor_scale), {1},
                            std::span<const float>(&storage.tensor_scale, 1));
        if (l.sparsity == sparsity_kind::n_m)
            writer_.add(tensor + std::string(compressed_suffix::nm_indices), dtype::u8,
                        {rows, static_cast<std::int64_t>(l.metadata_row_bytes())},
                        std::as_bytes(std::span(storage.metadata)));
        record(tensor, policy, l.rows, l.cols);
    }

    /// A free-form metadata entry (keys starting with "tcomp." are reserved for the format).
    void set_metadata(std::string key, std::string value) {
        if (key.starts_with("tcomp."))
            detail::throw_error<value_error>("compressed_model_writer: metadata key \"", key,
                                             "\" is reserved (\"tcomp.\" keys belong to the format)");
        writer_.set_metadata(std::move(key), std::move(value));
    }

    std::vector<std::byte> to_bytes() const { return writer_.to_bytes(); }
    void write(const std::filesystem::path& path) const { writer_.write(path); }

private:
    static bool same_layout(const packed_layout& a, const packed_layout& b) {
        return a.rows == b.rows && a.cols == b.cols && a.code_bits == b.code_bits && a.scale_bits == b.scale_bits &&
               a.scale_rows == b.scale_rows && a.scale_cols == b.scale_cols && a.group_size == b.group_size &&
               a.has_zero_points == b.has_zero_points && a.has_tensor_scale == b.has_tensor_scale &&
               a.sparsity == b.sparsity && a.sparse_n == b.sparse_n && a.sparse_m == b.sparse_m &&
               a.block_rows == b.block_rows && a.block_cols == b.block_cols;
    }

    /// Bit-stream entries of `bits` each -> one byte per entry.
    static std::vector<std::byte> unpack_bytes(const std::vector<std::uint8_t>& stream, std::size_t count, int bits) {
        std::vector<std::byte> out(count);
        for (std::size_t i = 0; i < count; ++i)
            out[i] = static_cast<std::byte>(read_packed(stream.data(), static_cast<index_t>(i), bits));
        return out;
    }

    void record(const std::string& tensor, std::string_view policy, index_t n, index_t k) {
        writer_.set_metadata(detail::cm_policy_key(tensor), std::string(policy));
        writer_.set_metadata(detail::cm_shape_key(tensor), "[" + std::to_string(n) + ", " + std::to_string(k) + "]");
    }

    safetensors_writer writer_;
    scale_storage scale_mode_;
};

/// A compressed model file opened for reading: validated completely by open()/from_bytes().
/// Also opens plain safetensors files (no "tcomp.format" metadata): they then have no layers.
class compressed_model_file {
public:
    struct layer_info {
        std::string policy;
        index_t rows = 0, cols = 0;
    };

    static compressed_model_file open(const std::filesystem::path& path) {
        return compressed_model_file(safetensors_file::open(path));
    }
    /// The caller keeps `bytes` alive while the object is used.
    static compressed_model_file from_bytes(std::span<const std::byte> bytes, std::string origin = "<memory>") {
        return compressed_model_file(safetensors_file::from_bytes(bytes, std::move(origin)));
    }

    /// Whether the file carries the tcomp-compressed format metadata.
    bool is_compressed_format() const { return compressed_format_; }
    /// Every linear layer the file records (compressed ones and "fp32" ones), by weight tensor name.
    const std::map<std::string, layer_info, std::less<>>& layers() const { return layers_; }
    bool is_layer(std::string_view tensor) const { return layers_.find(tensor) != layers_.end(); }
    bool is_compressed(std::string_view tensor) const {
        const auto it = layers_.find(tensor);
        return it != layers_.end() && it->second.policy != "fp32";
    }
    /// The tensor a component tensor (e.g. "fc1.weight.codes") belongs to; "" for other tensors.
    std::string component_of(std::string_view tensor) const {
        const auto it = owner_.find(tensor);
        return it == owner_.end() ? std::string() : it->second;
    }
    /// Names of the tensors as the model sees them: plain tensors and layer weights (not their components).
    std::vector<std::string> logical_tensors() const {
        std::vector<std::string> out;
        for (const tensor_view& t : file_.tensors())
            if (!owner_.count(t.name)) out.push_back(t.name);
        for (const auto& [name, info] : layers_)
            if (info.policy != "fp32") out.push_back(name);
        return out;
    }
    bool contains(std::string_view tensor) const {
        return is_compressed(tensor) || (file_.contains(tensor) && !owner_.count(std::string(tensor)));
    }

    /// The compressed storage of layer `tensor`, checked (its layout is exactly the policy's).
    packed_buffers compressed(std::string_view tensor) const {
        const std::string where = origin() + ": " + std::string(tensor);
        const auto it = layers_.find(tensor);
        if (it == layers_.end() || it->second.policy == "fp32")
            detail::throw_error<file_error>(where, ": not a compressed layer of this file");
        const layer_info& info = it->second;
        const std::string name(tensor);
        packed_buffers out;
        out.layout = detail::cm_expected_layout(info.policy, info.rows, info.cols, where.c_str());
        const packed_layout& l = out.layout;
        const tensor_view& codes = file_.tensor(name + std::string(compressed_suffix::codes));
        out.codes.resize(codes.data.size());
        std::memcpy(out.codes.data(), codes.data.data(), codes.data.size());
        const auto count = static_cast<std::size_t>(l.scale_count());
        if (l.scale_bits > 0) {
            out.scales.assign(l.scale_bytes(), 0);
            const tensor_view& s = file_.tensor(name + std::string(compressed_suffix::scales));
            if (l.scale_bits == 32) {
                const std::vector<float> f = to_float(s);
                for (std::size_t i = 0; i < count; ++i)
                    write_packed(out.scales.data(), static_cast<index_t>(i), 32, detail::float_bits(f[i]));
            } else {
                for (std::size_t i = 0; i < count; ++i)
                    write_packed(out.scales.data(), static_cast<index_t>(i), l.scale_bits,
                                 std::to_integer<std::uint32_t>(s.data[i]));
            }
        }
        if (l.has_zero_points) {
            out.zero_points.assign(l.zero_point_bytes(), 0);
            const tensor_view& z = file_.tensor(name + std::string(compressed_suffix::zeros));
            for (std::size_t i = 0; i < count; ++i)
                write_packed(out.zero_points.data(), static_cast<index_t>(i), l.code_bits,
                             std::to_integer<std::uint32_t>(z.data[i]));
        }
        if (l.has_tensor_scale)
            out.tensor_scale = to_float(file_.tensor(name + std::string(compressed_suffix::tensor_scale)))[0];
        if (l.sparsity == sparsity_kind::n_m) {
            const tensor_view& m = file_.tensor(name + std::string(compressed_suffix::nm_indices));
            out.metadata.resize(m.data.size());
            std::memcpy(out.metadata.data(), m.data.data(), m.data.size());
        }
        try {
            out.view().validate(where.c_str());
        } catch (const shape_error& e) {
            throw file_error(e.what());
        }
        return out;
    }

    /// A plain tensor as floats; for a layer, its weights (a compressed one dequantized).
    std::vector<float> floats(std::string_view tensor) const {
        if (is_compressed(tensor)) {
            const std::string policy = layers_.find(tensor)->second.policy;
            packed_buffers storage = compressed(tensor);
            return model::visit_policy(policy, [&]<class P>(std::type_identity<P>) -> std::vector<float> {
                if constexpr (std::is_same_v<P, model::fp32_policy>) {
                    return {};
                } else {
                    using matrix = compressed_matrix<typename P::weight_quantizer, typename P::sparsity>;
                    return dequantize(matrix(std::move(storage))).storage();
                }
            });
        }
        if (owner_.count(std::string(tensor)))
            detail::throw_error<file_error>(origin(), ": ", tensor, " is a component of compressed layer ",
                                            owner_.at(std::string(tensor)), ", not a tensor of the model");
        return to_float(file_.tensor(tensor));
    }

    /// Shape of a logical tensor (a layer's [N, K], else the tensor's own).
    std::vector<std::int64_t> shape(std::string_view tensor) const {
        if (is_compressed(tensor)) {
            const layer_info& i = layers_.find(tensor)->second;
            return {i.rows, i.cols};
        }
        return file_.tensor(tensor).shape;
    }

    const safetensors_file& file() const { return file_; }
    const std::string& origin() const { return file_.origin(); }

private:
    explicit compressed_model_file(safetensors_file file) : file_(std::move(file)) { check(); }

    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        detail::throw_error<file_error>("compressed model ", origin(), ": ", std::forward<Parts>(parts)...);
    }

    void check() {
        const auto& meta = file_.metadata();
        const auto format = meta.find("tcomp.format");
        if (format == meta.end()) {
            for (const auto& [key, value] : meta)
                if (key.starts_with("tcomp."))
                    fail("metadata key \"", key, "\" without \"tcomp.format\": not a tcomp file, or a damaged one");
            return;  // a plain safetensors file
        }
        if (format->second != compressed_format_name)
            fail("metadata \"tcomp.format\" is \"", format->second, "\", expected \"", compressed_format_name, "\"");
        const auto version = meta.find("tcomp.format_version");
        if (version == meta.end()) fail("metadata \"tcomp.format_version\" is missing");
        if (version->second != compressed_format_version)
            fail("format version \"", version->second, "\" is not supported (this reader reads version ",
                 compressed_format_version, ")");
        compressed_format_ = true;
        for (const auto& [key, value] : meta) {
            if (!key.starts_with("tcomp.") || key == "tcomp.format" || key == "tcomp.format_version") continue;
            if (key.starts_with("tcomp.shape.")) {
                if (!meta.count(detail::cm_policy_key(key.substr(12))))
                    fail("metadata \"", key, "\" has no matching \"tcomp.policy.", key.substr(12), "\"");
                continue;
            }
            if (!key.starts_with("tcomp.policy."))
                fail("unknown metadata key \"", key, "\" (known: tcomp.format, tcomp.format_version, "
                     "tcomp.policy.<tensor>, tcomp.shape.<tensor>)");
            check_layer(key.substr(13), value);
        }
    }

    void check_layer(const std::string& tensor, const std::string& policy) {
        if (!model::is_known_policy(policy))
            fail("tensor ", tensor, ": unknown policy \"", policy, "\" in metadata; known policies: ",
                 model::detail::known_policy_list());
        const auto shape_it = file_.metadata().find(detail::cm_shape_key(tensor));
        if (shape_it == file_.metadata().end()) fail("tensor ", tensor, ": metadata \"tcomp.shape.", tensor, "\" is missing");
        const auto shape = detail::cm_parse_shape(shape_it->second);
        if (!shape) fail("tensor ", tensor, ": shape \"", shape_it->second, "\" is not [N, K]");
        const auto [n, k] = *shape;
        layer_info info{policy, n, k};
        if (policy == "fp32") {
            if (!file_.contains(tensor)) fail("fp32 layer ", tensor, " is missing");
            const tensor_view& t = file_.tensor(tensor);
            if (t.shape != std::vector<std::int64_t>{n, k} || !detail::is_float_dtype(t.type))
                fail("fp32 layer ", tensor, " is ", to_string(t.type), " ", detail::st_shape_string(t.shape),
                     ", the metadata says float [", n, ", ", k, "]");
            layers_.emplace(tensor, std::move(info));
            return;
        }
        if (file_.contains(tensor))
            fail("compressed layer ", tensor, " (", policy, ") also has an uncompressed tensor of that name");
        const std::string where = "compressed model " + origin() + ": tensor " + tensor + " (" + policy + ")";
        packed_layout l;
        try {
            l = detail::cm_expected_layout(policy, n, k, where.c_str());
        } catch (const file_error&) {
            throw;
        } catch (const error& e) {
            throw file_error(std::string(e.what()) + " (the policy disagrees with the recorded shape)");
        }
        auto component = [&](std::string_view suffix, bool wanted, std::initializer_list<dtype> types,
                             std::vector<std::int64_t> want_shape) {
            const std::string name = tensor + std::string(suffix);
            if (!wanted) {
                if (file_.contains(name))
                    fail("tensor ", name, ": policy ", policy, " has no ", suffix.substr(1), " (does the policy "
                         "disagree with the tensors?)");
                return;
            }
            if (!file_.contains(name)) fail("tensor ", name, " is missing (", policy, " needs it)");
            const tensor_view& t = file_.tensor(name);
            bool type_ok = false;
            for (dtype d : types) type_ok = type_ok || d == t.type;
            if (!type_ok) fail("tensor ", name, ": dtype ", to_string(t.type), " is not what policy ", policy, " stores");
            if (t.shape != want_shape)
                fail("tensor ", name, ": shape ", detail::st_shape_string(t.shape), ", policy ", policy, " with W [", n,
                     ", ", k, "] needs ", detail::st_shape_string(want_shape), " (does the policy disagree with the "
                     "tensors?)");
            owner_.emplace(name, tensor);
        };
        const std::vector<std::int64_t> grid{l.scale_rows, l.scale_cols};
        component(compressed_suffix::codes, true, {dtype::u8}, {n, static_cast<std::int64_t>(l.row_code_bytes())});
        if (l.scale_bits == 32) component(compressed_suffix::scales, true, {dtype::f32, dtype::f16}, grid);
        else component(compressed_suffix::scales, l.scale_bits > 0, {dtype::u8}, grid);
        component(compressed_suffix::zeros, l.has_zero_points, {dtype::u8}, grid);
        component(compressed_suffix::tensor_scale, l.has_tensor_scale, {dtype::f32}, {1});
        component(compressed_suffix::nm_indices, l.sparsity == sparsity_kind::n_m, {dtype::u8},
                  {n, static_cast<std::int64_t>(l.metadata_row_bytes())});
        // Byte-per-entry tensors must hold values of their width, or packing them would spill into neighbours.
        auto in_range = [&](std::string_view suffix, int bits) {
            const tensor_view& t = file_.tensor(tensor + std::string(suffix));
            for (std::size_t i = 0; i < t.data.size(); ++i)
                if (std::to_integer<unsigned>(t.data[i]) >= (1u << bits))
                    fail("tensor ", t.name, ": entry ", i, " is ", std::to_integer<unsigned>(t.data[i]),
                         ", outside the ", bits, "-bit range of policy ", policy);
        };
        if (l.has_zero_points) in_range(compressed_suffix::zeros, l.code_bits);
        if (l.scale_bits > 0 && l.scale_bits < 8) in_range(compressed_suffix::scales, l.scale_bits);
        layers_.emplace(tensor, std::move(info));
    }

    safetensors_file file_;
    bool compressed_format_ = false;
    std::map<std::string, layer_info, std::less<>> layers_;
    std::map<std::string, std::string, std::less<>> owner_;  // component tensor -> its layer's tensor
};

}  // namespace tcomp::io
