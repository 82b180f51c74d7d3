// Calibration statistics files: the input statistics of every layer of a model (calib/statistics.hpp), gathered
// once (tcomp-calibrate) and reused by every method. A safetensors file (docs/files.md):
//
//   __metadata__  "tcomp.statistics": "1", and free-form entries (model, data, split)
//   <layer>.rows      I64 [1]      calibration rows seen
//   <layer>.sum_sq    F64 [K]      sum of x^2 per input channel
//   <layer>.absmax    F32 [K]      max |x|
//   <layer>.min       F32 [K]      min x
//   <layer>.max       F32 [K]      max x
//   <layer>.hessian   F64 [K, K]   sum x^T x (optional)
//   <layer>.sample    F32 [S, K]   a uniform sample of S of the rows (optional)
//   <layer>.hessian_rows I64 [1]   rows the Hessian sums, when a subset (optional; absent: every row)
//
// Loading checks everything before use: the marker, every tensor's dtype and shape against the layer's K, the
// values (input_statistics::from_parts), and no tensor left over; each error names the file and the tensor.
#pragma once

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tcomp/calib/statistics.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"

namespace tcomp::io {

using statistics_map = std::map<std::string, calib::input_statistics, std::less<>>;

}  // namespace tcomp::io

// (In tcomp::detail, not tcomp::io::detail: a tcomp::io::detail would hide tcomp::detail from the io headers.)
namespace tcomp::detail {

inline constexpr const char* statistics_marker = "tcomp.statistics";

template <class T>
std::span<const std::byte> statistics_bytes(const std::vector<T>& v) {
    return std::as_bytes(std::span<const T>(v));
}

template <class T>
std::vector<T> statistics_values(const io::tensor_view& t) {
    std::vector<T> out(t.data.size() / sizeof(T));
    std::memcpy(out.data(), t.data.data(), out.size() * sizeof(T));  // little-endian hosts (the library's target)
    return out;
}

}  // namespace tcomp::detail

namespace tcomp::io {

/// Writes `stats` (layer -> statistics) with extra metadata entries.
inline void write_statistics(const std::filesystem::path& path, const statistics_map& stats,
                             const std::map<std::string, std::string>& metadata = {}) {
    safetensors_writer w;
    w.set_metadata(tcomp::detail::statistics_marker, "1");
    for (const auto& [key, value] : metadata) w.set_metadata(key, value);
    for (const auto& [layer, s] : stats) {
        const calib::input_statistics::parts p = s.to_parts();
        const std::int64_t k = s.channels();
        const std::vector<std::int64_t> rows{p.rows};
        w.add(layer + ".rows", dtype::i64, {1}, tcomp::detail::statistics_bytes(rows));
        w.add(layer + ".sum_sq", dtype::f64, {k}, tcomp::detail::statistics_bytes(p.sum_sq));
        w.add_f32(layer + ".absmax", {k}, p.absmax);
        w.add_f32(layer + ".min", {k}, p.min);
        w.add_f32(layer + ".max", {k}, p.max);
        if (!p.hessian.empty()) w.add(layer + ".hessian", dtype::f64, {k, k}, tcomp::detail::statistics_bytes(p.hessian));
        if (p.hessian_rows > 0) {
            const std::vector<std::int64_t> hr{p.hessian_rows};
            w.add(layer + ".hessian_rows", dtype::i64, {1}, tcomp::detail::statistics_bytes(hr));
        }
        if (!p.sample.empty()) w.add_f32(layer + ".sample", {static_cast<std::int64_t>(p.sample.size()) / k, k}, p.sample);
    }
    w.write(path);
}

/// The statistics of a file write_statistics wrote; file_error / value_error / shape_error naming the file and
/// the tensor for anything else.
inline statistics_map read_statistics(const safetensors_file& f) {
    const std::string& origin = f.origin();
    const auto marker = f.metadata().find(tcomp::detail::statistics_marker);
    if (marker == f.metadata().end() || marker->second != "1")
        tcomp::detail::throw_error<value_error>("read_statistics: ", origin, " is not a tcomp statistics file (no \"",
                                                tcomp::detail::statistics_marker, "\": \"1\" in its metadata)");
    // Layers: the prefixes of "<layer>.rows".
    std::set<std::string> used;
    statistics_map out;
    for (const tensor_view& t : f.tensors()) {
        const std::string suffix = ".rows";
        if (t.name.size() <= suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string layer = t.name.substr(0, t.name.size() - suffix.size());
        auto need = [&](const char* field, dtype type, std::vector<std::int64_t> shape) -> const tensor_view& {
            const std::string name = layer + "." + field;
            if (!f.contains(name))
                tcomp::detail::throw_error<value_error>("read_statistics: ", origin, ": layer '", layer, "' has no tensor ",
                                                        name);
            const tensor_view& v = f.tensor(name);
            if (v.type != type || v.shape != shape)
                tcomp::detail::throw_error<shape_error>("read_statistics: ", origin, ": ", name, " is ",
                                                        to_string(v.type), " ", tcomp::detail::st_shape_string(v.shape),
                                                        ", expected ", to_string(type), " ",
                                                        tcomp::detail::st_shape_string(shape));
            used.insert(name);
            return v;
        };
        const std::vector<std::int64_t> rows = tcomp::detail::statistics_values<std::int64_t>(need("rows", dtype::i64, {1}));
        const std::string sum_sq_name = layer + ".sum_sq";
        if (!f.contains(sum_sq_name) || f.tensor(sum_sq_name).shape.size() != 1)
            tcomp::detail::throw_error<value_error>("read_statistics: ", origin, ": layer '", layer,
                                                    "' has no 1-D tensor ", sum_sq_name);
        const std::int64_t k = f.tensor(sum_sq_name).shape[0];
        calib::input_statistics::parts p;
        p.rows = rows[0];
        p.sum_sq = tcomp::detail::statistics_values<double>(need("sum_sq", dtype::f64, {k}));
        p.absmax = tcomp::detail::statistics_values<float>(need("absmax", dtype::f32, {k}));
        p.min = tcomp::detail::statistics_values<float>(need("min", dtype::f32, {k}));
        p.max = tcomp::detail::statistics_values<float>(need("max", dtype::f32, {k}));
        if (f.contains(layer + ".hessian")) p.hessian = tcomp::detail::statistics_values<double>(need("hessian", dtype::f64, {k, k}));
        if (f.contains(layer + ".hessian_rows"))
            p.hessian_rows = tcomp::detail::statistics_values<std::int64_t>(need("hessian_rows", dtype::i64, {1}))[0];
        if (const std::string sample = layer + ".sample"; f.contains(sample)) {
            const std::vector<std::int64_t>& shape = f.tensor(sample).shape;
            if (shape.size() != 2 || shape[0] < 1)
                tcomp::detail::throw_error<shape_error>("read_statistics: ", origin, ": ", sample, " is ",
                                                        tcomp::detail::st_shape_string(shape), ", expected [S, ", k, "]");
            p.sample = tcomp::detail::statistics_values<float>(need("sample", dtype::f32, {shape[0], k}));
        }
        out.emplace(layer, calib::input_statistics::from_parts(k, std::move(p),
                                                                "read_statistics: " + origin + ": layer '" + layer + "'"));
    }
    for (const tensor_view& t : f.tensors())
        if (!used.count(t.name))
            tcomp::detail::throw_error<value_error>("read_statistics: ", origin, ": tensor ", t.name,
                                                    " belongs to no layer (every layer has <layer>.rows)");
    return out;
}

inline statistics_map read_statistics(const std::filesystem::path& path) {
    return read_statistics(safetensors_file::open(path));
}

}  // namespace tcomp::io
