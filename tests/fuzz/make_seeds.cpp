// Writes the seed corpus of fuzz_safetensors into the directory argv[1]: small valid files (every dtype,
// metadata, empty and scalar tensors) and a few near-misses. Run by tests/fuzz/CMakeLists.txt at build time,
// so no binary seed is committed.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <tcomp/io/safetensors.hpp>

namespace {

void save(const std::filesystem::path& dir, const std::string& name, const std::vector<std::byte>& bytes) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> raw(const std::string& header, std::size_t data_bytes) {
    std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0x3c});
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xFF);
    std::memcpy(out.data() + 8, header.data(), header.size());
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    namespace io = tcomp::io;
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <seed directory>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);

    int k = 0;
    for (io::dtype t : io::all_dtypes) {  // one small file per dtype
        io::safetensors_writer w;
        std::vector<std::byte> data(3 * io::dtype_size(t));
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 37 + 11);
        w.add("t", t, {3}, data);
        save(dir, std::string("dtype_") + std::string(io::to_string(t)) + ".safetensors", w.to_bytes());
        ++k;
    }
    {
        io::safetensors_writer w;
        std::vector<float> a{1, -2, 3.5f, 0, 1e-3f, 65504};
        w.add_f32("model.layers.0.weight", {2, 3}, a);
        w.add("model.layers.0.bias", io::dtype::bf16, {2}, std::vector<std::byte>(4, std::byte{0x3f}));
        w.add("empty", io::dtype::i32, {0, 4}, {});
        w.add("scalar", io::dtype::f64, {}, std::vector<std::byte>(8));
        w.set_metadata("format", "pt");
        w.set_metadata("policy", "{\"w\": \"int4\"}");
        save(dir, "mixed.safetensors", w.to_bytes());
        ++k;
    }
    save(dir, "empty_header.safetensors", raw("{}", 0));
    save(dir, "metadata_only.safetensors", raw(R"({"__metadata__":{"a":"b"}})", 0));
    save(dir, "overlap.safetensors",
         raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
    save(dir, "gap.safetensors", raw(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", 3));
    save(dir, "mismatch.safetensors", raw(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})", 4));
    k += 5;
    std::printf("make_seeds: %d seeds in %s\n", k, dir.string().c_str());
    return 0;
}
