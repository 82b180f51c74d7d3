// Inputs from strangers that used to pass silently: non-finite or non-positive scales in a compressed file,
// finite weights whose asymmetric range overflows float, duplicate keys in a recipe, recipes that are not
// regular files or are too large, model files that are FIFOs or devices (a blocking open hung the tools), an output
// that aliases the input. Each file here is built by the test itself.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <tcomp/io/compressed_model.hpp>
#include <tcomp/matmul.hpp>
#include <tcomp/kernel/reference/matmul.hpp>
#include <tcomp/model/linear.hpp>
#include <tcomp/model/llama_config.hpp>
#include <tcomp/model/recipe.hpp>
#include <tcomp/model/taef2_decoder.hpp>
#include <tcomp/model/tokenizer.hpp>
#include <tcomp/quant/presets.hpp>
#include <tcomp/quant/compressed_tensor.hpp>
#include <tcomp/quant/policy_names.hpp>

#include "test_support.hpp"

using namespace tcomp;
using tcomp_test::error_of;
using tcomp_test::gaussian;

namespace {

/// A compressed file of one layer whose F32 scale tensor (or tensor scale) has element `at` replaced.
std::vector<std::byte> file_with_scale(const std::string& policy, const std::string& suffix, std::size_t at, float value) {
    const auto w = gaussian(8, 64, 3);
    io::compressed_model_writer writer(io::scale_storage::f32);
    writer.add_linear("fc.weight", policy, w.view());
    const std::vector<std::byte> bytes = writer.to_bytes();
    const io::safetensors_file f = io::safetensors_file::from_bytes(bytes, "good");
    io::safetensors_writer out;
    for (const auto& [k, v] : f.metadata()) out.set_metadata(k, v);
    for (const io::tensor_view& t : f.tensors()) {
        if (t.name != "fc.weight" + suffix) {
            out.add(t);
            continue;
        }
        std::vector<float> v = io::to_float(t);
        v.at(at) = value;
        out.add_f32(t.name, t.shape, v);
    }
    return out.to_bytes();
}

}  // namespace

TEST_CASE("compressed file: NaN, infinite, negative and zero scales are errors naming the tensor and element",
          "[hostile][compressed_io]") {
    using Catch::Contains;
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    for (float bad : {nan, inf, -inf, -0.5f, 0.0f}) {
        INFO(bad);
        const auto bytes = file_with_scale("w8a8", ".scales", 5, bad);
        CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(bytes, "hostile"); }),
                   Contains("fc.weight.scales") && Contains("element 5") && Contains("finite and positive"));
    }
    // The tensor scale of two-level kinds, too.
    const auto ts = file_with_scale("w=int4:g32:ml2", ".tensor_scale", 0, inf);
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(ts, "hostile"); }),
               Contains("fc.weight.tensor_scale") && Contains("element 0"));
    // Binary weights keep S = 0 for all-zero groups: zero is valid there, negative is not.
    CHECK(error_of([&] {
              const auto b = file_with_scale("w=binary:channel", ".scales", 2, 0.0f);
              (void)io::compressed_model_file::from_bytes(b, "binary");
          }) == "(no error)");
    const auto neg = file_with_scale("w=binary:channel", ".scales", 2, -1.0f);
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(neg, "hostile"); }),
               Contains("fc.weight.scales") && Contains("non-negative"));
}

TEST_CASE("compressed file: an E8M0 scale of 0xFF (its NaN) is an error", "[hostile][compressed_io]") {
    const auto w = gaussian(4, 64, 4);
    io::compressed_model_writer writer;
    writer.add_linear("fc.weight", "mxfp4", w.view());
    const std::vector<std::byte> bytes = writer.to_bytes();
    const io::safetensors_file f = io::safetensors_file::from_bytes(bytes, "good");
    io::safetensors_writer out;
    for (const auto& [k, v] : f.metadata()) out.set_metadata(k, v);
    for (const io::tensor_view& t : f.tensors()) {
        if (t.name != "fc.weight.scales") {
            out.add(t);
            continue;
        }
        std::vector<std::byte> d(t.data.begin(), t.data.end());
        d[3] = std::byte{0xFF};
        out.add(t.name, t.type, t.shape, d);
    }
    const auto hostile = out.to_bytes();
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(hostile, "hostile"); }),
               Catch::Contains("fc.weight.scales") && Catch::Contains("element 3") && Catch::Contains("0xFF"));
}

TEST_CASE("compress: finite weights near the float limit get finite asymmetric scales", "[hostile][quantizer]") {
    dense_matrix<float> w(2, 32);
    for (index_t r = 0; r < 2; ++r)
        for (index_t c = 0; c < 32; ++c) w(r, c) = (c % 2 ? 3.0e38f : -3.0e38f) * (c < 16 ? 1.0f : 0.25f);
    for (const char* policy : {"w=uint8:asym:channel", "w=uint4:asym:g16", "w=uint8:asym:tensor"}) {
        INFO(policy);
        const compressed_tensor t = compress(*resolve_policy(policy), w.view());
        const auto back = dequantize(t);
        for (index_t r = 0; r < 2; ++r)
            for (index_t c = 0; c < 32; ++c) REQUIRE(std::isfinite(back(r, c)));
        // And the file it makes loads (the reader rejects non-finite scales).
        io::compressed_model_writer writer;
        writer.add_compressed("fc.weight", t);
        const auto bytes = writer.to_bytes();
        CHECK(io::compressed_model_file::from_bytes(bytes, "extreme").tensor("fc.weight").storage.scales ==
              t.storage.scales);
    }
}

TEST_CASE("recipes: duplicate keys at any level are errors; files must be regular and small", "[hostile][recipe]") {
    using Catch::Contains;
    CHECK_THAT(error_of([] { (void)model::recipe::parse(R"({"default": "w8a8", "default": "fp32"})", "dup"); }),
               Contains("dup") && Contains("duplicate") && Contains("default"));
    CHECK_THAT(error_of([] {
                   (void)model::recipe::parse(R"({"layers": [{"match": "a", "policy": "w8a8", "policy": "fp32"}]})", "dup");
               }),
               Contains("duplicate") && Contains("policy"));
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tcomp-hostile-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    // A FIFO: refused from its type, without opening (which would block).
    const fs::path fifo = dir / "recipe.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THAT(error_of([&] { (void)model::recipe::from_file(fifo); }), Contains("not a regular file"));
    CHECK_THAT(error_of([&] { (void)model::recipe::from_file(dir); }), Contains("not a regular file"));
    CHECK_THAT(error_of([] { (void)model::recipe::from_file("/dev/zero"); }), Contains("not a regular file"));
    CHECK_THAT(error_of([&] { (void)model::recipe::from_file(dir / "missing.json"); }), Contains("no such file"));
    // Too large: refused unread.
    const fs::path big = dir / "big.json";
    {
        std::ofstream out(big, std::ios::binary);
        const std::string block(1 << 20, ' ');
        for (int i = 0; i < 17; ++i) out << block;
    }
    CHECK_THAT(error_of([&] { (void)model::recipe::from_file(big); }), Contains("-byte limit"));
    const fs::path ok = dir / "ok.json";
    std::ofstream(ok) << R"({"default": "nf4"})";
    CHECK(model::recipe::from_file(ok).default_policy == std::string("nf4"));
    fs::remove_all(dir);
}

TEST_CASE("every file reader refuses a FIFO or a device at once, without blocking", "[hostile][io]") {
    using Catch::Contains;
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tcomp-fifo-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path fifo = dir / "model.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // Opening a FIFO for reading blocks until a writer comes: were any of these to open first, the test would hang
    // (and CTest's timeout fail it).
    for (const fs::path& p : {fifo, fs::path("/dev/zero")}) {
        INFO(p.string());
        CHECK_THAT(error_of([&] { (void)io::safetensors_file::open(p); }), Contains(p.string()) && Contains("not a regular file"));
        CHECK_THAT(error_of([&] { (void)io::safetensors_set::open(p); }), Contains("not a regular file"));
        CHECK_THAT(error_of([&] { (void)io::compressed_model_file::open(p); }), Contains("not a regular file"));
        CHECK_THAT(error_of([&] { (void)model::llama_config::from_file(p); }), Contains("not a regular file"));
        CHECK_THAT(error_of([&] { (void)model::bpe_tokenizer::load(p); }), Contains("not a regular file"));
        CHECK_THAT(error_of([&] { (void)model::taef2_config::from_file(p); }), Contains("not a regular file"));
    }
    // A sharded index naming a FIFO as its shard.
    std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"w": "model.fifo"}})";
    CHECK_THAT(error_of([&] { (void)io::safetensors_set::open(dir); }), Contains("not a regular file"));
    fs::remove_all(dir);
}

TEST_CASE("matmul and linear refuse an output that overlaps the input", "[hostile][matmul]") {
    using Catch::Contains;
    const auto w = gaussian(16, 16, 5);
    dense_matrix<float> buf = gaussian(4, 16, 6);
    const matrix_view<const float> x = buf.view();
    const matrix_view<float> y = buf.view();
    const auto cw = compress<presets::w8a8>(w.view());
    CHECK_THAT(error_of([&] { reference::matmul(x, cw, y); }), Contains("must not alias"));
    const auto packed = cpu::pack(cw);
    CHECK_THAT(error_of([&] { matmul(x, packed, y); }), Contains("must not alias"));
    // a partial overlap: y starts on x's last row
    dense_matrix<float> big(7, 16);
    const matrix_view<const float> x4(big.data(), 4, 16);
    const matrix_view<float> y4(big.data() + 3 * 16, 4, 16);
    CHECK_THAT(error_of([&] { matmul(x4, packed, y4); }), Contains("must not alias"));
    // adjacent is fine
    const matrix_view<float> y_next(big.data() + 3 * 16, 3, 16);
    CHECK_NOTHROW(matmul(matrix_view<const float>(big.data(), 3, 16), packed, y_next));
    // the bias
    std::vector<float> bias_and_y(16 + 16, 0.5f);
    CHECK_THAT(error_of([&] {
                   matmul(matrix_view<const float>(buf.data(), 1, 16), packed, matrix_view<float>(bias_and_y.data() + 8, 1, 16),
                          std::span<const float>(bias_and_y.data(), 16));
               }),
               Contains("must not alias"));
    const model::linear layer = model::linear::make("w8a8", w.view(), {}, "fc");
    CHECK_THAT(error_of([&] { layer.forward(x, y); }), Contains("fc") && Contains("must not alias"));
}
