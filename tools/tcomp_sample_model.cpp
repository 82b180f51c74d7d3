// tcomp_sample_model DIR: writes the small inputs of the tools' CTest checks (tools/CMakeLists.txt) into DIR:
// sample.safetensors (an MLP-shaped checkpoint: fc1 [32 x 128], fc2 [10 x 32], biases, a norm vector, an I32
// tensor), good.json (a mixed recipe), descriptors.json (spelled-out descriptors), bad.json (a recipe naming an
// unknown policy) and, where there are FIFOs, fifo.safetensors and fifo.json (named pipes nobody writes to: the
// tools must refuse them, not block opening them). Seeded, so every run writes the same bytes.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "tcomp/io/safetensors.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <sys/types.h>
#define TCOMP_SAMPLE_FIFO 1
#endif

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: tcomp_sample_model DIR\n");
        return 2;
    }
    try {
        const std::filesystem::path dir = argv[1];
        std::filesystem::create_directories(dir);
        std::mt19937 gen(2024);
        auto gaussian = [&](std::size_t n, float sigma) {
            std::normal_distribution<float> d(0.0f, sigma);
            std::vector<float> v(n);
            for (float& x : v) x = d(gen);
            return v;
        };
        tcomp::io::safetensors_writer w;
        w.add_f32("fc1.weight", {32, 128}, gaussian(32 * 128, 0.1f));
        w.add_f32("fc1.bias", {32}, gaussian(32, 0.1f));
        w.add_f32("fc2.weight", {10, 32}, gaussian(10 * 32, 0.2f));
        w.add_f32("fc2.bias", {10}, gaussian(10, 0.1f));
        w.add_f32("head.weight", {4, 32}, gaussian(4 * 32, 0.2f));
        w.add_f32("norm.weight", {32}, gaussian(32, 1.0f));
        const std::vector<std::byte> ids{std::byte{1}, {}, {}, {}, std::byte{2}, {}, {}, {}};
        w.add("token_ids", tcomp::io::dtype::i32, {2}, ids);
        w.write(dir / "sample.safetensors");
        std::ofstream(dir / "good.json") << R"({"default": "w8a8", "layers": [)"
                                            R"({"match": "fc1", "policy": "w4a16"}, {"match": "head", "policy": "fp32"}]})";
        // Descriptors without SIMD kernels: NF4, 2:4-sparse int4 with shiftable scales, unstructured-sparse FP8.
        std::ofstream(dir / "descriptors.json") << R"({"default": "nf4", "layers": [)"
                                                   R"({"match": "fc2", "policy": "w=int4:g32:shift4 s=2:4"},)"
                                                   R"({"match": "head", "policy": "w=fp8_e4m3:channel s=bitmap"}]})";
        std::ofstream(dir / "bad.json") << R"({"default": "w8a8", "layers": [{"match": "fc?", "policy": "w3a8"}]})";
#ifdef TCOMP_SAMPLE_FIFO
        for (const char* name : {"fifo.safetensors", "fifo.json"}) {
            const std::filesystem::path p = dir / name;
            std::error_code ec;
            std::filesystem::remove(p, ec);
            if (::mkfifo(p.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + p.string() + " failed");
        }
#endif
        std::printf("wrote %s\n", (dir / "sample.safetensors").string().c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp_sample_model: error: %s\n", e.what());
        return 1;
    }
}
