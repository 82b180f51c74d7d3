// The MNIST MLP (model/mlp_classifier.hpp) on ../shared/models/mnist_mlp (CTest: Skipped when absent, failed under CI):
// FP32 accuracy exactly as the model's README states (98.31% on the 10k test set), W8A8 within 0.3 points,
// 4-bit per-channel weights (K = 784 and 500: no group size of 32 or 128 divides them) within a looser bound,
// a mixed recipe, and a compressed file of the real model that loads with bit-identical logits.
// Debug / sanitizer builds evaluate the first 500 images only (the 98.31% check needs all 10000).
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/metrics/classification.hpp"
#include "tcomp/model/mlp_classifier.hpp"
#include "tcomp/model/recipe.hpp"

namespace {

using namespace tcomp;

const std::filesystem::path mnist_dir = tcomp_test::models_dir() / "mnist_mlp";

bool have_mnist() {
    return tcomp_test::have_models("the MNIST MLP checks",
                                   {"mnist_mlp/model.safetensors", "mnist_mlp/test_set.safetensors"});
}

struct test_set {
    std::vector<float> pixels;  // images x 784, pixel / 255
    std::vector<int> labels;
    index_t images = 0;
};

test_set load_test_set() {
    const io::safetensors_file f = io::safetensors_file::open(mnist_dir / "test_set.safetensors");
    const io::tensor_view& images = f.tensor("images");
    const io::tensor_view& labels = f.tensor("labels");
    REQUIRE(images.type == io::dtype::u8);
    REQUIRE(images.shape == std::vector<std::int64_t>{10000, 28, 28});
    REQUIRE(labels.shape == std::vector<std::int64_t>{10000});
#ifdef NDEBUG
    const index_t n = 10000;
#else
    const index_t n = 500;  // Debug / sanitizer builds: Eigen unoptimised
#endif
    test_set t;
    t.images = n;
    t.pixels.resize(static_cast<std::size_t>(n * 784));
    for (std::size_t i = 0; i < t.pixels.size(); ++i)
        t.pixels[i] = static_cast<float>(std::to_integer<int>(images.data[i])) / 255.0f;
    for (index_t i = 0; i < n; ++i) t.labels.push_back(std::to_integer<int>(labels.data[static_cast<std::size_t>(i)]));
    return t;
}

double accuracy_of(const model::mlp_classifier& m, const test_set& t) {
    const std::vector<float> logits = m.logits(matrix_view<const float>(t.pixels.data(), t.images, 784));
    return metrics::accuracy(matrix_view<const float>(logits.data(), t.images, m.classes()), t.labels);
}

model::policy_map uniform(const char* policy) {
    return model::recipe::uniform(policy).resolve(std::vector<std::string>{"fc1", "fc2"});
}

}  // namespace

TEST_CASE("mnist MLP: FP32 98.31%, W8A8 within 0.3 points, 4-bit per channel within 0.5 points", "[mnist]") {
    if (!have_mnist()) return;
    const test_set t = load_test_set();
    const auto path = mnist_dir / "model.safetensors";
    const model::mlp_classifier fp32 = model::mlp_classifier::load(path);
    REQUIRE(fp32.input_size() == 784);
    REQUIRE(fp32.classes() == 10);
    const double base = accuracy_of(fp32, t);

    struct run {
        const char* label;
        model::policy_map policies;
        double max_drop;  // accuracy points below FP32
    };
    // Measured on the 10k set (x86-64; the integer kernels are bit-exact on every ISA path): w8a8 98.32% (+0.01),
    // w8a16 98.32% (+0.01), w4a8_pc 98.25% (-0.06), w4a16_pc 98.20% (-0.11), fc1 w4a8_pc + fc2 w8a8 98.29% (-0.02).
    const std::vector<run> runs{
        {"w8a8", uniform("w8a8"), 0.3},
        {"w8a16", uniform("w8a16"), 0.3},
        {"w4a8_pc", uniform("w4a8_pc"), 0.5},
        {"w4a16_pc", uniform("w4a16_pc"), 0.5},
        {"fc1 w4a8_pc, fc2 w8a8",
         model::recipe::parse(R"({"default": "w8a8", "layers": [{"match": "fc1", "policy": "w4a8_pc"}]})")
             .resolve(std::vector<std::string>{"fc1", "fc2"}),
         0.5},
    };
    std::printf("MNIST MLP on %td test images: fp32 accuracy %.2f%%, %zu weight bytes\n", t.images, 100 * base,
                fp32.weight_bytes());
#ifdef NDEBUG
    CHECK(base == Approx(0.9831).margin(0.0001));
#endif
    for (const run& r : runs) {
        const model::mlp_classifier m = model::mlp_classifier::load(path, r.policies);
        const double acc = accuracy_of(m, t);
        std::printf("  %-24s accuracy %.2f%% (%+.2f points), %zu weight bytes\n", r.label, 100 * acc,
                    100 * (acc - base), m.weight_bytes());
        INFO(r.label << ": accuracy " << acc << " vs fp32 " << base);
#ifdef NDEBUG
        constexpr double slack = 0.0;
#else
        constexpr double slack = 1.0;  // 500 images: one image is 0.2 points
#endif
        CHECK(100 * (base - acc) <= r.max_drop + slack);
        CHECK(m.weight_bytes() < fp32.weight_bytes());
    }
    // A group size that does not divide K = 784 is the library's error, naming the layer.
    CHECK_THROWS_WITH(model::mlp_classifier::load(path, uniform("w4a8_g32")),
                      Catch::Contains("fc1") && Catch::Contains("K = 784"));
    // A recipe with a rule for a layer the model does not have.
    CHECK_THROWS_WITH(model::mlp_classifier::load(path, model::recipe::parse(
                                                            R"({"default": "w8a8", "layers": [{"match": "fc3", "policy": "fp32"}]})")),
                      Catch::Contains("\"fc3\"") && Catch::Contains("matches no layer") && Catch::Contains("fc1, fc2"));
}

TEST_CASE("mnist MLP: a compressed file of the real model gives bit-identical logits", "[mnist][compressed_io]") {
    if (!have_mnist()) return;
    const test_set t = load_test_set();
    const auto path = mnist_dir / "model.safetensors";
    const model::policy_map policies{{"fc1", "w4a16_pc"}, {"fc2", "w8a8"}};
    const model::mlp_classifier in_memory = model::mlp_classifier::load(path, policies);

    const io::safetensors_file src = io::safetensors_file::open(path);
    io::compressed_model_writer writer;
    for (const io::tensor_view& tv : src.tensors()) {
        const std::string layer = model::layer_of_tensor(tv.name);
        if (tv.shape.size() == 2 && policies.count(layer)) {
            const std::vector<float> w = io::to_float(tv);
            writer.add_linear(tv.name, policies.at(layer), matrix_view<const float>(w.data(), tv.shape[0], tv.shape[1]));
        } else {
            writer.add_plain(tv);
        }
    }
    const auto out = std::filesystem::temp_directory_path() / ("tcomp_test_mnist_" + std::to_string(::getpid()) + ".safetensors");
    writer.write(out);
    const model::mlp_classifier from_file = model::mlp_classifier::load(out);
    const matrix_view<const float> x(t.pixels.data(), t.images, 784);
    const std::vector<float> a = in_memory.logits(x), b = from_file.logits(x);
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    const auto before = std::filesystem::file_size(path), after = std::filesystem::file_size(out);
    std::printf("MNIST MLP file: %ju bytes fp32 -> %ju bytes (fc1 w4a16_pc, fc2 w8a8), %.2fx smaller\n",
                std::uintmax_t(before), std::uintmax_t(after), double(before) / double(after));
    CHECK(after * 6 < before);
    std::filesystem::remove(out);
}
