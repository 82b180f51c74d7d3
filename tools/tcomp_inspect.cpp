// tcomp-inspect FILE
//
// Lists the tensors of a safetensors file (a tcomp compressed model file or any other): per logical tensor its
// dtype, shape, policy, bytes and bits per weight; a compressed layer is one line (dtype "packed", its [N, K]
// shape, the bytes of all its component tensors), then its descriptor (the canonical spelling) and the CPU
// path a model would run it on (the SIMD kernels, or the reason it runs on the scalar oracle / the
// descriptor-driven reference path), then its components, indented. Ends with a total line.
// The whole file is validated first (io/compressed_model.hpp), so a damaged file is an error, not a listing.
// Exit status: 0 on success, 2 on bad arguments, 1 when the file cannot be read or is invalid.
#include "model_tools.hpp"

#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/model/linear.hpp"

namespace tcomp::tools::inspect_cli {

constexpr const char* usage = "usage: tcomp-inspect FILE.safetensors\n";

std::string shape_text(const std::vector<std::int64_t>& s) { return tcomp::detail::st_shape_string(s); }

}  // namespace tcomp::tools::inspect_cli

namespace tcomp::tools::inspect_cli {

int run(int argc, char** argv) {
    if (argc == 2 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
        std::printf("%s", usage);
        return 0;
    }
    if (argc != 2 || std::string_view(argv[1]).starts_with("-")) {
        std::fprintf(stderr, "tcomp-inspect: expected one file name\n%s", usage);
        return 2;
    }
    try {
        const tcomp::io::compressed_model_file file = tcomp::io::compressed_model_file::open(argv[1]);
        const tcomp::io::safetensors_file& st = file.file();
        // component tensors grouped under their layer
        std::map<std::string, std::vector<const tcomp::io::tensor_view*>> components;
        for (const tcomp::io::tensor_view& t : st.tensors()) {
            const std::string owner = file.component_of(t.name);
            if (!owner.empty()) components[owner].push_back(&t);
        }
        std::printf("%s: %s, %zu tensors in the file\n", argv[1],
                    file.is_compressed_format()
                        ? ("tcomp compressed model (format version " + file.format_version() + ")").c_str()
                        : "plain safetensors",
                    st.tensors().size());
        std::printf("%-48s %-7s %-14s %-10s %12s %10s\n", "tensor", "dtype", "shape", "policy", "bytes", "bits/weight");
        std::uint64_t total_bytes = 0, layer_params = 0, layer_bytes = 0;
        std::size_t layer_count = 0, compressed_count = 0;
        for (const tcomp::io::tensor_view& t : st.tensors()) {
            if (!file.component_of(t.name).empty()) continue;
            total_bytes += t.data.size();
            const bool layer = file.is_layer(t.name);
            const std::string policy = layer ? file.layers().at(t.name).policy : "-";
            const auto n = static_cast<std::uint64_t>(t.numel());
            char bits[32] = "-";
            if (n > 0) std::snprintf(bits, sizeof bits, "%.3f", 8.0 * double(t.data.size()) / double(n));
            if (layer) layer_params += n, layer_bytes += t.data.size(), ++layer_count;
            std::printf("%-48s %-7s %-14s %-10s %12zu %10s\n", t.name.c_str(), std::string(to_string(t.type)).c_str(),
                        shape_text(t.shape).c_str(), policy.c_str(), t.data.size(), bits);
        }
        for (const auto& [name, info] : file.layers()) {
            if (!info.desc) continue;
            std::uint64_t bytes = 0;
            for (const auto* c : components[name]) bytes += c->data.size();
            const auto n = static_cast<std::uint64_t>(info.rows) * static_cast<std::uint64_t>(info.cols);
            total_bytes += bytes, layer_params += n, layer_bytes += bytes, ++layer_count, ++compressed_count;
            std::printf("%-48s %-7s %-14s %-10s %12ju %10.3f\n", name.c_str(), "packed",
                        shape_text({info.rows, info.cols}).c_str(), info.policy.c_str(), static_cast<std::uintmax_t>(bytes),
                        n ? 8.0 * double(bytes) / double(n) : 0.0);
            // The path a model layer takes: packing it here answers exactly what loading would.
            const tcomp::model::linear layer = tcomp::model::linear::from_compressed(file.tensor(name), {}, name);
            const std::string note = layer.kernel_note();
            std::printf("  descriptor: %s\n  cpu: %s\n", tcomp::spell(*info.desc).c_str(),
                        note.empty() ? "SIMD kernels" : note.c_str());
            for (const auto* c : components[name])
                std::printf("  %-46s %-7s %-14s %-10s %12zu\n", c->name.c_str(), std::string(to_string(c->type)).c_str(),
                            shape_text(c->shape).c_str(), "", c->data.size());
        }
        std::printf("total: %ju bytes of tensor data (file %zu bytes); %zu layers (%zu compressed), %ju weights in "
                    "%ju bytes = %.3f bits/weight\n",
                    static_cast<std::uintmax_t>(total_bytes), st.bytes().size(), layer_count, compressed_count,
                    static_cast<std::uintmax_t>(layer_params), static_cast<std::uintmax_t>(layer_bytes),
                    layer_params ? 8.0 * double(layer_bytes) / double(layer_params) : 0.0);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-inspect: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace tcomp::tools::inspect_cli

namespace tcomp::tools {
int inspect_main(int argc, char** argv) { return inspect_cli::run(argc, argv); }
}  // namespace tcomp::tools
