// Writes the seed corpora of fuzz_compressed (argv[1]: small compressed model files, version 2 with every kind
// of descriptor and sparsity, plus a version-1 file) and fuzz_descriptor (argv[2]: policy texts). Run by
// tests/fuzz/CMakeLists.txt at build time, so no binary seed is committed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <tcomp/io/compressed_model.hpp>
#include <tcomp/quant/policy_names.hpp>

namespace {

void save(const std::filesystem::path& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

int main(int argc, char** argv) {
    namespace io = tcomp::io;
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_compressed_seeds COMPRESSED_DIR DESCRIPTOR_DIR\n");
        return 2;
    }
    const std::filesystem::path files = argv[1], texts = argv[2];
    std::filesystem::create_directories(files);
    std::filesystem::create_directories(texts);
    const std::vector<std::string> policies = {
        "w8a8", "w4a16", "w=int4:g16:shift4 a=int8:g16", "w=fp4_e2m1:g16:e8m0", "nf4", "w=int8:channel s=2:4",
        "w=int4:g16 s=block2x8", "w=uint4:asym:g16 s=bitmap:d0.3", "w=int8:channel a=int8:tensor:static",
        "w=ternary:channel:mse8", "w1a1", "w=q1.6:g16:e8m0"};
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    tcomp::dense_matrix<float> w(4, 128), x(3, 128);
    for (tcomp::index_t r = 0; r < 4; ++r)
        for (tcomp::index_t c = 0; c < 128; ++c) w(r, c) = normal(gen);
    for (tcomp::index_t r = 0; r < 3; ++r)
        for (tcomp::index_t c = 0; c < 128; ++c) x(r, c) = normal(gen);
    int n = 0;
    for (const std::string& p : policies) {
        io::compressed_model_writer writer;
        tcomp::compressed_tensor t = tcomp::compress(*tcomp::resolve_policy(p), w.view());
        if (t.needs_calibration()) {
            const tcomp::matrix_view<const float> batches[] = {x.view()};
            tcomp::calibrate(t, batches);
        }
        writer.add_compressed("fc.weight", t);
        writer.add_float("fc.bias", {4}, std::vector<float>(4, 0.5f));
        const auto bytes = writer.to_bytes();
        save(files / ("v2_" + std::to_string(n++) + ".safetensors"), bytes.data(), bytes.size());
    }
    // A version-1 file: an old registry name.
    {
        const tcomp::compressed_tensor t = tcomp::compress(*tcomp::resolve_policy("w8a16"), w.view());
        io::safetensors_writer st;
        st.set_metadata("tcomp.format", "tcomp-compressed");
        st.set_metadata("tcomp.format_version", "1");
        st.set_metadata("tcomp.policy.fc.weight", "w8a16");
        st.set_metadata("tcomp.shape.fc.weight", "[4, 128]");
        st.add("fc.weight.codes", io::dtype::u8, {4, 128}, std::as_bytes(std::span(t.storage.codes)));
        std::vector<float> scales(4, 0.01f);
        st.add_f32("fc.weight.scales", {4, 1}, scales);
        const auto bytes = st.to_bytes();
        save(files / "v1.safetensors", bytes.data(), bytes.size());
    }
    int m = 0;
    for (const tcomp::policy_alias& a : tcomp::policy_aliases) {
        save(texts / ("alias_" + std::to_string(m) + ".txt"), a.name.data(), a.name.size());
        save(texts / ("spell_" + std::to_string(m++) + ".txt"), a.spelling.data(), a.spelling.size());
    }
    for (const std::string& p : policies) save(texts / ("p_" + std::to_string(m++) + ".txt"), p.data(), p.size());
    return 0;
}
