// Compressed model files: a safetensors file whose linear layers are stored compressed, in the portable
// canonical form of core/packed_storage.hpp (never the ISA-specific kernel packing: loading repacks), as
// ordinary tensors that any safetensors reader (Python's `safetensors`) can open. docs/files.md is the
// reference; in short, for a layer weight tensor T compressed under descriptor D (quant/descriptor_text.hpp):
//
//   __metadata__  "tcomp.format": "tcomp-compressed", "tcomp.format_version": "2",
//                 "tcomp.policy.T": spell(D), "tcomp.shape.T": "[N, K]"   (fp32 layers: "fp32", T itself F32)
//   T.codes       U8 [N, row_bytes]      each row's codes, LSB-first bit stream, row_bytes = ceil(kept * bits / 8);
//                 U8 [bytes] for block / unstructured sparsity (rows of different lengths), with
//   T.row_offsets U64 [N + 1]            where each row's codes start
//   T.scales      F32 or F16 [R, K/G]    one scale per cell (R = N, or 1 for per-tensor); F16 only when exact;
//                 U8 for 1..8-bit scale entries (power-of-two exponents, shifts), one entry per byte
//   T.zeros       U8 [R, K/G]            zero-point code per cell, one per byte (asymmetric only)
//   T.tensor_scale F32 [1]               two-level scale kinds only
//   T.nm_indices  U8 [N, index_bytes]    N:M sparsity: kept positions, LSB-first bit stream per row
//   T.block_mask  U8 [bytes]             block sparsity: one bit per tile, row-major over the tile grid
//   T.bitmap      U8 [N, ceil(K / 8)]    unstructured sparsity: one bit per element
//   T.act_scales, T.act_zeros, T.act_tensor_scale   calibrated (static) activation scales: the same
//                 encodings as the weights' scales, one row of cells [1, K/G]
//   T.smoothing   F32 [K]                per-input-channel divisors (SmoothQuant / AWQ not folded), optional
//
// Version-1 files (policy names of the old registry in "tcomp.policy.T") still load: every such name is an
// alias of a descriptor. A reader checks everything before use and names the tensor in each error.
#pragma once

#include <cmath>
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
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/format_table.hpp"
#include "tcomp/quant/policy_names.hpp"

namespace tcomp::io {

inline constexpr std::string_view compressed_format_name = "tcomp-compressed";
inline constexpr std::string_view compressed_format_version = "2";
/// The versions this reader reads (1: policy names; 2: descriptors, every sparsity, activation scales).
inline constexpr std::string_view compressed_format_versions_read[] = {"1", "2"};

/// The component tensors of a compressed tensor T are T + one of these suffixes.
namespace compressed_suffix {
inline constexpr std::string_view codes = ".codes";
inline constexpr std::string_view scales = ".scales";
inline constexpr std::string_view zeros = ".zeros";
inline constexpr std::string_view tensor_scale = ".tensor_scale";
inline constexpr std::string_view nm_indices = ".nm_indices";
inline constexpr std::string_view row_offsets = ".row_offsets";
inline constexpr std::string_view block_mask = ".block_mask";
inline constexpr std::string_view bitmap = ".bitmap";
inline constexpr std::string_view act_scales = ".act_scales";
inline constexpr std::string_view act_zeros = ".act_zeros";
inline constexpr std::string_view act_tensor_scale = ".act_tensor_scale";
inline constexpr std::string_view smoothing = ".smoothing";
}  // namespace compressed_suffix

}  // namespace tcomp::io

namespace tcomp::detail {

inline std::string cm_policy_key(std::string_view tensor) { return "tcomp.policy." + std::string(tensor); }
inline std::string cm_shape_key(std::string_view tensor) { return "tcomp.shape." + std::string(tensor); }

inline bool is_float_dtype(io::dtype t) {
    return t == io::dtype::f32 || t == io::dtype::f16 || t == io::dtype::bf16 || t == io::dtype::f64 ||
           t == io::dtype::f8_e4m3 || t == io::dtype::f8_e5m2;
}

/// The packed layout policy `name` (an alias or a spelling) gives an n x k weight matrix; throws when it cannot
/// take it (shape_error) or is fp32 / invalid (error).
inline packed_layout cm_expected_layout(std::string_view policy_name, index_t n, index_t k, const char* where) {
    const std::optional<descriptor> d = resolve_policy(policy_name, where);
    if (!d) throw_error<error>(where, ": fp32 has no packed layout");
    return expected_layout(*d, n, k, where);
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

    /// A linear layer's weight W[N x K] under `policy` ("fp32", an alias or a spelling): compressed here; "fp32"
    /// stores W as F32 and records the policy. Throws the policy's own error (naming the tensor) when it cannot
    /// take K. A descriptor with calibrated activations needs add_compressed with the scales.
    void add_linear(const std::string& tensor, std::string_view policy, matrix_view<const float> w) {
        const std::string where = "compressed_model_writer: " + tensor;
        const std::optional<descriptor> d = resolve_policy(policy, where);
        if (!d) {
            std::vector<float> data(static_cast<std::size_t>(w.rows() * w.cols()));
            for (index_t r = 0; r < w.rows(); ++r)
                std::copy(w.row(r).begin(), w.row(r).end(), data.begin() + r * w.cols());
            writer_.add_f32(tensor, {w.rows(), w.cols()}, data);
            record(tensor, "fp32", w.rows(), w.cols());
            return;
        }
        compressed_tensor t;
        try {
            t = compress(*d, w);
        } catch (const shape_error& e) {
            throw shape_error(where + " (" + std::string(policy) + "): " + e.what());
        } catch (const error& e) {
            throw error(where + " (" + std::string(policy) + "): " + e.what());
        }
        if (t.needs_calibration())
            detail::throw_error<value_error>(where, ": ", spell(*d), " quantizes activations with calibrated scales; "
                                             "compress, calibrate and store it with add_compressed");
        add_compressed(tensor, t);
    }

    /// Weights already compressed under `policy` (a GPTQ import, a layer of another file): written as they are.
    /// The layout must be the one `policy` gives (shape_error naming the tensor otherwise).
    void add_compressed(const std::string& tensor, std::string_view policy, const packed_buffers& storage) {
        const std::string where = "compressed_model_writer: " + tensor;
        const std::optional<descriptor> d = resolve_policy(policy, where);
        if (!d) detail::throw_error<error>(where, ": fp32 layers are stored with add_linear");
        add_compressed(tensor, compressed_tensor{*d, storage, std::nullopt, {}});
    }

    /// A compressed tensor (any descriptor, with its calibrated activation scales when it has them).
    void add_compressed(const std::string& tensor, const compressed_tensor& t) {
        const std::string where = "compressed_model_writer: " + tensor;
        try {
            detail::check_tensor(t, where.c_str());
        } catch (const shape_error& e) {
            const packed_layout& l = t.storage.layout;
            throw shape_error(std::string(e.what()) + " (policy " + policy_display(t.desc) + ", " +
                              std::to_string(l.rows) + "x" + std::to_string(l.cols) + ")");
        }
        if (t.needs_calibration() && !t.activation_scales)
            detail::throw_error<value_error>(where, ": ", spell(t.desc), " quantizes activations with calibrated scales, "
                                             "and the tensor has none (calibrate() it first)");
        const packed_layout& l = t.storage.layout;
        const packed_buffers& storage = t.storage;
        const std::int64_t rows = l.rows;
        if (l.fixed_row_length()) {
            writer_.add(tensor + std::string(compressed_suffix::codes), dtype::u8,
                        {rows, static_cast<std::int64_t>(l.row_code_bytes())}, std::as_bytes(std::span(storage.codes)));
        } else {
            writer_.add(tensor + std::string(compressed_suffix::codes), dtype::u8,
                        {static_cast<std::int64_t>(storage.codes.size())}, std::as_bytes(std::span(storage.codes)));
            std::vector<std::byte> offsets(storage.row_offsets.size() * 8);
            for (std::size_t i = 0; i < storage.row_offsets.size(); ++i)
                for (int b = 0; b < 8; ++b)
                    offsets[i * 8 + static_cast<std::size_t>(b)] =
                        static_cast<std::byte>((storage.row_offsets[i] >> (8 * b)) & 0xFFu);
            writer_.add(tensor + std::string(compressed_suffix::row_offsets), dtype::u64, {rows + 1}, offsets);
        }
        add_scales(tensor, compressed_suffix::scales, compressed_suffix::zeros, compressed_suffix::tensor_scale,
                   {l.scale_rows, l.scale_cols}, l.scale_bits, storage.scales, l.has_zero_points ? l.code_bits : 0,
                   storage.zero_points, l.has_tensor_scale, storage.tensor_scale);
        if (l.sparsity == sparsity_kind::n_m)
            writer_.add(tensor + std::string(compressed_suffix::nm_indices), dtype::u8,
                        {rows, static_cast<std::int64_t>(l.metadata_row_bytes())},
                        std::as_bytes(std::span(storage.metadata)));
        if (l.sparsity == sparsity_kind::block)
            writer_.add(tensor + std::string(compressed_suffix::block_mask), dtype::u8,
                        {static_cast<std::int64_t>(storage.metadata.size())}, std::as_bytes(std::span(storage.metadata)));
        if (l.sparsity == sparsity_kind::bitmap)
            writer_.add(tensor + std::string(compressed_suffix::bitmap), dtype::u8,
                        {rows, static_cast<std::int64_t>(l.metadata_row_bytes())},
                        std::as_bytes(std::span(storage.metadata)));
        if (t.activation_scales) {
            const quantizer_desc& a = *t.desc.activations;
            const scale_table& s = *t.activation_scales;
            const int scale_bits = tcomp::detail::scale_storage_bits(a.scale, a.shift_bits);
            const format_info& f = format_info_for(a.format);
            const auto count = static_cast<index_t>(s.stored.size());
            std::vector<std::uint8_t> stream(packed_bytes(count, scale_bits), 0), zeros;
            for (index_t i = 0; i < count; ++i)
                if (scale_bits > 0) write_packed(stream.data(), i, scale_bits, s.stored[static_cast<std::size_t>(i)]);
            if (a.has_zero_point()) {
                zeros.assign(packed_bytes(count, f.bits), 0);
                for (index_t i = 0; i < count; ++i)
                    write_packed(zeros.data(), i, f.bits, f.from_integer(s.zero[static_cast<std::size_t>(i)]));
            }
            const bool two_level = a.scale == scale_kind::multi_level || a.scale == scale_kind::shiftable;
            add_scales(tensor, compressed_suffix::act_scales, compressed_suffix::act_zeros,
                       compressed_suffix::act_tensor_scale, {1, s.cols}, scale_bits, stream,
                       a.has_zero_point() ? f.bits : 0, zeros, two_level, s.tensor_scale);
        }
        if (!t.smoothing.empty())
            writer_.add_f32(tensor + std::string(compressed_suffix::smoothing), {l.cols}, t.smoothing);
        record(tensor, spell(t.desc), l.rows, l.cols);
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
    /// Scale entries (F32/F16 for 32-bit kinds, else U8 per entry), zero points (U8 per entry, `zero_bits` > 0
    /// only) and the tensor scale of one grid.
    void add_scales(const std::string& tensor, std::string_view scales_suffix, std::string_view zeros_suffix,
                    std::string_view tensor_suffix, std::vector<std::int64_t> grid, int scale_bits,
                    const std::vector<std::uint8_t>& scales, int zero_bits, const std::vector<std::uint8_t>& zeros,
                    bool has_tensor_scale, float tensor_scale) {
        const auto count = static_cast<std::size_t>(grid[0] * grid[1]);
        if (scale_bits == 32) {
            std::vector<float> s(count);
            bool half_ok = scale_mode_ == scale_storage::automatic;
            for (std::size_t i = 0; i < count; ++i) {
                s[i] = tcomp::detail::bits_float(read_packed(scales.data(), static_cast<index_t>(i), 32));
                half_ok = half_ok && detail::cm_half_exact(s[i]);
            }
            if (half_ok) {
                std::vector<std::byte> b(count * 2);
                for (std::size_t i = 0; i < count; ++i)
                    detail::store_le(b.data() + 2 * i, static_cast<std::uint16_t>(fp16_format::encode(s[i])));
                writer_.add(tensor + std::string(scales_suffix), dtype::f16, grid, b);
            } else {
                writer_.add_f32(tensor + std::string(scales_suffix), grid, s);
            }
        } else if (scale_bits == 16) {  // f16 scales: IEEE half bits, little-endian
            std::vector<std::byte> b(count * 2);
            for (std::size_t i = 0; i < count; ++i)
                detail::store_le(b.data() + 2 * i, static_cast<std::uint16_t>(read_packed(scales.data(), static_cast<index_t>(i), 16)));
            writer_.add(tensor + std::string(scales_suffix), dtype::f16, grid, b);
        } else if (scale_bits > 0) {
            writer_.add(tensor + std::string(scales_suffix), dtype::u8, grid, unpack_bytes(scales, count, scale_bits));
        }
        if (zero_bits > 0)
            writer_.add(tensor + std::string(zeros_suffix), dtype::u8, grid, unpack_bytes(zeros, count, zero_bits));
        if (has_tensor_scale)
            writer_.add_f32(tensor + std::string(tensor_suffix), {1}, std::span<const float>(&tensor_scale, 1));
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

/// A compressed model file opened for reading: validated completely by open()/from_bytes() (metadata, every
/// component's presence, dtype and shape, scale values, then each layer's contents as tensor() reads them).
/// Also opens plain safetensors files (no "tcomp.format" metadata): they then have no layers.
class compressed_model_file {
public:
    struct layer_info {
        std::string policy;             // short: "fp32", the descriptor's alias ("w8a8"), else its spelling
        std::optional<descriptor> desc;  // empty for fp32
        index_t rows = 0, cols = 0;
        bool smoothed = false;           // has T.smoothing (per-input-channel divisors)
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
    /// "1" or "2" for compressed files, "" for plain safetensors files.
    const std::string& format_version() const { return version_; }
    /// Every linear layer the file records (compressed ones and "fp32" ones), by weight tensor name.
    const std::map<std::string, layer_info, std::less<>>& layers() const { return layers_; }
    bool is_layer(std::string_view tensor) const { return layers_.find(tensor) != layers_.end(); }
    bool is_compressed(std::string_view tensor) const {
        const auto it = layers_.find(tensor);
        return it != layers_.end() && it->second.desc.has_value();
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
            if (info.desc) out.push_back(name);
        return out;
    }
    bool contains(std::string_view tensor) const {
        return is_compressed(tensor) || (file_.contains(tensor) && !owner_.count(std::string(tensor)));
    }

    /// The compressed layer `tensor`: its descriptor, packed storage (checked: exactly the descriptor's layout,
    /// packed_view::validate passed) and calibrated activation scales.
    compressed_tensor tensor(std::string_view tensor) const {
        const std::string where = origin() + ": " + std::string(tensor);
        const auto it = layers_.find(tensor);
        if (it == layers_.end() || !it->second.desc)
            detail::throw_error<file_error>(where, ": not a compressed layer of this file");
        const layer_info& info = it->second;
        const std::string name(tensor);
        auto component = [&](std::string_view suffix) -> const tensor_view& {
            return file_.tensor(name + std::string(suffix));
        };
        compressed_tensor t;
        t.desc = *info.desc;
        packed_buffers& out = t.storage;
        out.layout = expected_layout(*info.desc, info.rows, info.cols, where.c_str());
        const packed_layout& l = out.layout;
        const tensor_view& codes = component(compressed_suffix::codes);
        out.codes.assign(reinterpret_cast<const std::uint8_t*>(codes.data.data()),
                         reinterpret_cast<const std::uint8_t*>(codes.data.data()) + codes.data.size());
        if (!l.fixed_row_length()) {
            const tensor_view& o = component(compressed_suffix::row_offsets);
            out.row_offsets.resize(static_cast<std::size_t>(l.rows + 1));
            for (std::size_t i = 0; i < out.row_offsets.size(); ++i) {
                std::uint64_t v = 0;
                for (int b = 0; b < 8; ++b)
                    v |= static_cast<std::uint64_t>(std::to_integer<unsigned>(o.data[i * 8 + static_cast<std::size_t>(b)]))
                         << (8 * b);
                out.row_offsets[i] = v;
            }
        }
        read_scales(name, compressed_suffix::scales, compressed_suffix::zeros, compressed_suffix::tensor_scale,
                    static_cast<std::size_t>(l.scale_count()), l.scale_bits, out.scales,
                    l.has_zero_points ? l.code_bits : 0, out.zero_points, l.has_tensor_scale, out.tensor_scale);
        if (l.sparsity != sparsity_kind::dense) {
            const tensor_view& m = component(l.sparsity == sparsity_kind::n_m     ? compressed_suffix::nm_indices
                                             : l.sparsity == sparsity_kind::block ? compressed_suffix::block_mask
                                                                                  : compressed_suffix::bitmap);
            out.metadata.assign(reinterpret_cast<const std::uint8_t*>(m.data.data()),
                                reinterpret_cast<const std::uint8_t*>(m.data.data()) + m.data.size());
        }
        try {
            out.view().validate(where.c_str());
        } catch (const shape_error& e) {
            throw file_error(e.what());
        }
        if (t.needs_calibration()) {
            const quantizer_desc& a = *t.desc.activations;
            const format_info& f = format_info_for(a.format);
            const auto grid = tcomp::detail::grid_for(a, 1, l.cols, true, where.c_str());
            const int scale_bits = tcomp::detail::scale_storage_bits(a.scale, a.shift_bits);
            const bool two_level = a.scale == scale_kind::multi_level || a.scale == scale_kind::shiftable;
            std::vector<std::uint8_t> stream, zeros;
            float tensor_scale = 1.0f;
            const auto count = static_cast<std::size_t>(grid.cols);
            read_scales(name, compressed_suffix::act_scales, compressed_suffix::act_zeros,
                        compressed_suffix::act_tensor_scale, count, scale_bits, stream, a.has_zero_point() ? f.bits : 0,
                        zeros, two_level, tensor_scale);
            scale_table s;
            s.rows = 1, s.cols = grid.cols, s.group_size = grid.group_size, s.tensor_scale = tensor_scale;
            for (std::size_t i = 0; i < count; ++i) {
                const std::uint32_t e = scale_bits == 0 ? 0u : read_packed(stream.data(), static_cast<index_t>(i), scale_bits);
                s.stored.push_back(e);
                s.effective.push_back(tcomp::detail::decode_scale(a.scale, f, e, tensor_scale));
                s.zero.push_back(a.has_zero_point() ? f.to_integer(read_packed(zeros.data(), static_cast<index_t>(i), f.bits))
                                                    : 0);
            }
            t.activation_scales = std::move(s);
        }
        if (info.smoothed) t.smoothing = to_float(component(compressed_suffix::smoothing));
        return t;
    }

    /// The packed storage of compressed layer `tensor` (see tensor()).
    packed_buffers compressed(std::string_view name) const { return tensor(name).storage; }

    /// A plain tensor as floats; for a layer, its weights (a compressed one dequantized).
    std::vector<float> floats(std::string_view name) const {
        if (is_compressed(name)) return effective_weights(tensor(name)).storage();
        if (owner_.count(std::string(name)))
            detail::throw_error<file_error>(origin(), ": ", name, " is a component of compressed layer ",
                                            owner_.at(std::string(name)), ", not a tensor of the model");
        return to_float(file_.tensor(name));
    }

    /// Shape of a logical tensor (a layer's [N, K], else the tensor's own).
    std::vector<std::int64_t> shape(std::string_view name) const {
        if (is_compressed(name)) {
            const layer_info& i = layers_.find(name)->second;
            return {i.rows, i.cols};
        }
        return file_.tensor(name).shape;
    }

    const safetensors_file& file() const { return file_; }
    const std::string& origin() const { return file_.origin(); }

private:
    explicit compressed_model_file(safetensors_file file) : file_(std::move(file)) { check(); }

    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        detail::throw_error<file_error>("compressed model ", origin(), ": ", std::forward<Parts>(parts)...);
    }

    /// Scale entries, zero points and tensor scale of one grid back into bit streams (shapes checked earlier).
    void read_scales(const std::string& name, std::string_view scales_suffix, std::string_view zeros_suffix,
                     std::string_view tensor_suffix, std::size_t count, int scale_bits, std::vector<std::uint8_t>& scales,
                     int zero_bits, std::vector<std::uint8_t>& zeros, bool has_tensor_scale, float& tensor_scale) const {
        if (scale_bits > 0) {
            scales.assign(packed_bytes(static_cast<index_t>(count), scale_bits), 0);
            const tensor_view& s = file_.tensor(name + std::string(scales_suffix));
            if (scale_bits == 32) {
                const std::vector<float> f = to_float(s);
                for (std::size_t i = 0; i < count; ++i)
                    write_packed(scales.data(), static_cast<index_t>(i), 32, tcomp::detail::float_bits(f[i]));
            } else if (scale_bits == 16) {  // F16 (checked): the half's bits are the stored entry
                for (std::size_t i = 0; i < count; ++i)
                    write_packed(scales.data(), static_cast<index_t>(i), 16,
                                 std::to_integer<std::uint32_t>(s.data[2 * i]) | std::to_integer<std::uint32_t>(s.data[2 * i + 1]) << 8);
            } else {
                for (std::size_t i = 0; i < count; ++i)
                    write_packed(scales.data(), static_cast<index_t>(i), scale_bits, std::to_integer<std::uint32_t>(s.data[i]));
            }
        }
        if (zero_bits > 0) {
            zeros.assign(packed_bytes(static_cast<index_t>(count), zero_bits), 0);
            const tensor_view& z = file_.tensor(name + std::string(zeros_suffix));
            for (std::size_t i = 0; i < count; ++i)
                write_packed(zeros.data(), static_cast<index_t>(i), zero_bits, std::to_integer<std::uint32_t>(z.data[i]));
        }
        if (has_tensor_scale) tensor_scale = to_float(file_.tensor(name + std::string(tensor_suffix)))[0];
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
        if (version->second != "1" && version->second != "2")
            fail("format version \"", version->second, "\" is not supported (this reader reads versions 1 and 2)");
        version_ = version->second;
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
        // The contents too (N:M index order, block and bitmap counts, row offsets): the checks tensor() runs,
        // once per layer here, so that a file open() accepts is one every loader accepts, and tcomp-inspect
        // (which opens) validates exactly what loading validates.
        for (const auto& [name, info] : layers_)
            if (info.desc) (void)tensor(name);
    }

    /// Version 1 stored the names of the old policy registry; each is an alias of a descriptor.
    static bool version1_name(std::string_view policy) {
        constexpr std::string_view names[] = {"fp32",      "w8a8",      "w4a8",     "w4a16",     "w8a16",
                                              "w2a16",     "w8a8_2of4", "w4a8_2of4", "w1a1",     "w4a8_g32",
                                              "w4a16_g32", "w4a8_pc",   "w4a16_pc"};
        for (std::string_view n : names)
            if (n == policy) return true;
        return false;
    }

    void check_layer(const std::string& tensor, const std::string& policy) {
        std::optional<descriptor> desc;
        if (version_ == "1" && !version1_name(policy))
            fail("tensor ", tensor, ": unknown policy \"", policy, "\" in metadata (a version-1 file names one of: "
                 "fp32, w8a8, w4a8, w4a16, w8a16, w2a16, w8a8_2of4, w4a8_2of4, w1a1, w4a8_g32, w4a16_g32, w4a8_pc, "
                 "w4a16_pc)");
        try {
            desc = resolve_policy(policy, "policy");
        } catch (const error& e) {
            fail("tensor ", tensor, ": ", e.what());
        }
        const auto shape_it = file_.metadata().find(detail::cm_shape_key(tensor));
        if (shape_it == file_.metadata().end()) fail("tensor ", tensor, ": metadata \"tcomp.shape.", tensor, "\" is missing");
        const auto shape = detail::cm_parse_shape(shape_it->second);
        if (!shape) fail("tensor ", tensor, ": shape \"", shape_it->second, "\" is not [N, K]");
        // Plain variables, not a structured binding: the lambdas below capture them (clang 14 rejects that).
        const index_t n = shape->first, k = shape->second;
        layer_info info{"fp32", desc, n, k};
        if (desc) {
            info.policy = std::string(alias_of(*desc));
            if (info.policy.empty()) info.policy = spell(*desc);
        }
        if (!desc) {
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
            l = expected_layout(*desc, n, k, where.c_str());
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
            if (!want_shape.empty() && t.shape != want_shape)
                fail("tensor ", name, ": shape ", detail::st_shape_string(t.shape), ", policy ", policy, " with W [", n,
                     ", ", k, "] needs ", detail::st_shape_string(want_shape), " (does the policy disagree with the "
                     "tensors?)");
            if (want_shape.empty() && t.shape.size() != 1)
                fail("tensor ", name, ": shape ", detail::st_shape_string(t.shape), " is not one-dimensional");
            owner_.emplace(name, tensor);
        };
        const bool fixed = l.fixed_row_length();
        if (fixed) component(compressed_suffix::codes, true, {dtype::u8}, {n, static_cast<std::int64_t>(l.row_code_bytes())});
        else component(compressed_suffix::codes, true, {dtype::u8}, {});
        component(compressed_suffix::row_offsets, !fixed, {dtype::u64}, {n + 1});
        const std::vector<std::int64_t> grid{l.scale_rows, l.scale_cols};
        if (l.scale_bits == 32) component(compressed_suffix::scales, true, {dtype::f32, dtype::f16}, grid);
        else if (l.scale_bits == 16) component(compressed_suffix::scales, true, {dtype::f16}, grid);
        else component(compressed_suffix::scales, l.scale_bits > 0, {dtype::u8}, grid);
        component(compressed_suffix::zeros, l.has_zero_points, {dtype::u8}, grid);
        component(compressed_suffix::tensor_scale, l.has_tensor_scale, {dtype::f32}, {1});
        component(compressed_suffix::nm_indices, l.sparsity == sparsity_kind::n_m, {dtype::u8},
                  {n, static_cast<std::int64_t>(l.metadata_row_bytes())});
        component(compressed_suffix::block_mask, l.sparsity == sparsity_kind::block, {dtype::u8},
                  {static_cast<std::int64_t>(l.metadata_bytes())});
        component(compressed_suffix::bitmap, l.sparsity == sparsity_kind::bitmap, {dtype::u8},
                  {n, static_cast<std::int64_t>(l.metadata_row_bytes())});
        // Calibrated activation scales: required exactly when the descriptor has static activations.
        const bool act = desc->activations && desc->activations->calibrated;
        int act_bits = 0, act_zero_bits = 0;
        bool act_two_level = false;
        std::vector<std::int64_t> act_grid{1, 1};
        if (act) {
            const quantizer_desc& a = *desc->activations;
            const auto g = tcomp::detail::grid_for(a, 1, k, true, where.c_str());
            act_grid = {1, g.cols};
            act_bits = tcomp::detail::scale_storage_bits(a.scale, a.shift_bits);
            act_zero_bits = a.has_zero_point() ? format_info_for(a.format).bits : 0;
            act_two_level = a.scale == scale_kind::multi_level || a.scale == scale_kind::shiftable;
        }
        if (act_bits == 32) component(compressed_suffix::act_scales, true, {dtype::f32, dtype::f16}, act_grid);
        else if (act_bits == 16) component(compressed_suffix::act_scales, true, {dtype::f16}, act_grid);
        else component(compressed_suffix::act_scales, act && act_bits > 0, {dtype::u8}, act_grid);
        component(compressed_suffix::act_zeros, act && act_zero_bits > 0, {dtype::u8}, act_grid);
        component(compressed_suffix::act_tensor_scale, act && act_two_level, {dtype::f32}, {1});
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
        if (act_zero_bits > 0 && act_zero_bits < 8) in_range(compressed_suffix::act_zeros, act_zero_bits);
        if (act_bits > 0 && act_bits < 8) in_range(compressed_suffix::act_scales, act_bits);
        // Scale values: a NaN, infinite, negative or zero float scale would make every output of the layer
        // garbage (or an error blaming the next layer); an E8M0 entry 0xFF is the format's NaN. Zero is allowed
        // only for sign-grid formats (binary), whose all-zero groups keep S = 0.
        auto scales_ok = [&](std::string_view suffix, bool allow_zero) {
            const tensor_view& t = file_.tensor(tensor + std::string(suffix));
            const std::vector<float> v = to_float(t);
            for (std::size_t i = 0; i < v.size(); ++i)
                if (!std::isfinite(v[i]) || v[i] < 0.0f || (v[i] == 0.0f && !allow_zero))
                    fail("tensor ", t.name, ": element ", i, " is ", v[i], "; scales must be finite and ",
                         allow_zero ? "non-negative" : "positive");
        };
        auto e8m0_ok = [&](std::string_view suffix) {
            const tensor_view& t = file_.tensor(tensor + std::string(suffix));
            for (std::size_t i = 0; i < t.data.size(); ++i)
                if (std::to_integer<unsigned>(t.data[i]) == 0xFFu)
                    fail("tensor ", t.name, ": element ", i, " is 0xFF, the NaN of E8M0 scales");
        };
        const bool sign_grid = format_info_for(desc->weights.format).sign_grid;
        if (l.scale_bits == 32 || l.scale_bits == 16) scales_ok(compressed_suffix::scales, sign_grid);
        if (desc->weights.scale == scale_kind::e8m0) e8m0_ok(compressed_suffix::scales);
        if (l.has_tensor_scale) scales_ok(compressed_suffix::tensor_scale, false);
        if (act) {
            const bool act_sign_grid = format_info_for(desc->activations->format).sign_grid;
            if (act_bits == 32 || act_bits == 16) scales_ok(compressed_suffix::act_scales, act_sign_grid);
            if (desc->activations->scale == scale_kind::e8m0) e8m0_ok(compressed_suffix::act_scales);
            if (act_two_level) scales_ok(compressed_suffix::act_tensor_scale, false);
        }
        // Smoothing divisors: optional, F32 [K], finite and positive.
        info.smoothed = file_.contains(tensor + std::string(compressed_suffix::smoothing));
        if (info.smoothed) {
            component(compressed_suffix::smoothing, true, {dtype::f32}, {k});
            scales_ok(compressed_suffix::smoothing, false);
        }
        layers_.emplace(tensor, std::move(info));
    }

    safetensors_file file_;
    bool compressed_format_ = false;
    std::string version_;
    std::map<std::string, layer_info, std::less<>> layers_;
    std::map<std::string, std::string, std::less<>> owner_;  // component tensor -> its layer's tensor
};

}  // namespace tcomp::io
