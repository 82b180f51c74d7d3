// tcomp demo: compresses one seeded random weight matrix with several policies and prints what each
// costs (bits per weight, bytes, size against FP16) and what it keeps (weight SQNR, relative error of the
// weights and of a layer output Y = X * W^T). Runs on the scalar reference kernels.
//
//   tcomp_demo [--rows N] [--cols K] [--tokens M] [--seed S] [--outliers F]
#include <tcomp/tcomp.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

namespace {

struct settings {
    tcomp::index_t rows = 512;     // N: output channels
    tcomp::index_t cols = 1024;    // K: reduction axis
    tcomp::index_t tokens = 8;     // M: activation rows for the output-error column
    unsigned seed = 2026;
    double outliers = 0.002;       // fraction of weights scaled x8 (real weights have heavy tails)
};

struct row {
    std::string name;
    double bits_per_weight = 0, sqnr_db = 0, weight_error = 0, output_error = 0, milliseconds = 0;
    std::size_t bytes = 0;
};

double relative_error(const tcomp::row_major_matrix& a, const tcomp::row_major_matrix& b) {
    return (a - b).norm() / b.norm();
}

template <class Policy>
row measure(const char* name, const tcomp::row_major_matrix& w, const tcomp::row_major_matrix& x,
            const tcomp::row_major_matrix& reference_y, const tcomp::quantize_options& options = {}) {
    const auto start = std::chrono::steady_clock::now();
    auto compressed = tcomp::compress<Policy>(tcomp::view_of(w), options);
    if constexpr (tcomp::compressed_weights<Policy>::calibrated_activations()) compressed.calibrate(tcomp::view_of(x));
    const auto y = tcomp::matmul(tcomp::view_of(x), compressed, {}, options);
    const auto stop = std::chrono::steady_clock::now();

    const auto dequantized = tcomp::dequantize(compressed.weights());
    const tcomp::row_major_matrix w_hat = Eigen::Map<const tcomp::row_major_matrix>(dequantized.data(), w.rows(), w.cols());
    const tcomp::row_major_matrix y_hat = Eigen::Map<const tcomp::row_major_matrix>(y.data(), x.rows(), w.rows());

    row r;
    r.name = name;
    r.bytes = compressed.bytes();
    r.bits_per_weight = compressed.bits_per_weight();
    const double noise = (w - w_hat).squaredNorm();
    r.sqnr_db = noise == 0 ? INFINITY : 10.0 * std::log10(w.squaredNorm() / noise);
    r.weight_error = relative_error(w_hat, w);
    r.output_error = relative_error(y_hat, reference_y);
    r.milliseconds = std::chrono::duration<double, std::milli>(stop - start).count();
    return r;
}

[[noreturn]] void usage(const char* message) {
    std::fprintf(stderr,
                 "tcomp_demo: %s\nusage: tcomp_demo [--rows N] [--cols K] [--tokens M] [--seed S] [--outliers F]\n"
                 "  K must be a multiple of 128 (the group size of the grouped policies)\n",
                 message);
    std::exit(2);
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") usage("compress a random matrix with several policies");
        if (i + 1 >= argc) usage(("missing value after " + std::string(arg)).c_str());
        char* end = nullptr;
        const char* value = argv[++i];
        const double v = std::strtod(value, &end);
        if (end == value || *end != '\0' || !std::isfinite(v)) usage(("not a number: " + std::string(value)).c_str());
        if (arg == "--rows") s.rows = static_cast<tcomp::index_t>(v);
        else if (arg == "--cols") s.cols = static_cast<tcomp::index_t>(v);
        else if (arg == "--tokens") s.tokens = static_cast<tcomp::index_t>(v);
        else if (arg == "--seed") s.seed = static_cast<unsigned>(v);
        else if (arg == "--outliers") s.outliers = v;
        else usage(("unknown option " + std::string(arg)).c_str());
    }
    if (s.rows < 4 || s.rows > 16384 || s.tokens < 1 || s.tokens > 4096) usage("rows must be in 4..16384, tokens in 1..4096");
    if (s.cols < 128 || s.cols > 65536 || s.cols % 128 != 0) usage("cols must be a multiple of 128 in 128..65536");
    if (s.outliers < 0 || s.outliers > 0.5) usage("outliers must be in [0, 0.5]");
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace tcomp;
    const settings s = parse(argc, argv);

    std::mt19937 rng(s.seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::bernoulli_distribution outlier(s.outliers);
    row_major_matrix w(s.rows, s.cols), x(s.tokens, s.cols);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(rng) * (outlier(rng) ? 8.0f : 1.0f);
    std::normal_distribution<float> activation(0.0f, 1.0f);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = activation(rng);
    const row_major_matrix reference_y = x * w.transpose();

    std::printf("tcomp %d.%d.%d demo: W is %td x %td (seed %u, %.1f%% outliers x8), X is %td x %td; scalar reference kernels\n\n",
                TCOMP_VERSION_MAJOR, TCOMP_VERSION_MINOR, TCOMP_VERSION_PATCH, s.rows, s.cols, s.seed,
                100.0 * s.outliers, s.tokens, s.cols);

    quantize_options stochastic_options;
    stochastic_options.seed = s.seed;
    using int4_g128_stochastic = quantizer<int_format<4>, per_group<128>, stochastic>;
    using int4_g128_clip = quantizer<int_format<4>, per_group<128>, mse_clip_search<20>>;

    const row rows[] = {
        measure<policy<quantizer<fp16_format, unit_scale>>>("FP16 storage", w, x, reference_y),
        measure<policy<quantizer<bf16_format, unit_scale>>>("BF16 storage", w, x, reference_y),
        measure<presets::w8a8>("W8A8 (int8/ch, int8/token)", w, x, reference_y),
        measure<presets::w8a8_static>("W8A8 static activations", w, x, reference_y),
        measure<policy<quantizer<fp8_e4m3, per_channel>, quantizer<fp8_e4m3, per_token>>>("FP8 e4m3 W and A", w, x,
                                                                                            reference_y),
        measure<policy<quantizer<fixed_point_format<1, 6>, per_group<32>, e8m0_scale>>>("MXINT8 (A16)", w, x, reference_y),
        measure<policy<quantizer<fp8_e4m3, per_group<32>, e8m0_scale>>>("MXFP8 e4m3 (A16)", w, x, reference_y),
        measure<policy<quantizer<fp6_e2m3, per_group<32>, e8m0_scale>>>("MXFP6 e2m3 (A16)", w, x, reference_y),
        measure<policy<quantizer<fp4_e2m1, per_group<32>, e8m0_scale>>>("MXFP4 (A16)", w, x, reference_y),
        measure<presets::w4a8>("W4A8 (int4 g128, int8/token)", w, x, reference_y),
        measure<presets::w4a16>("W4A16 (uint4 g128 + zero)", w, x, reference_y),
        measure<policy<int4_g128_clip>>("W4A16 int4 g128 clip search", w, x, reference_y),
        measure<policy<int4_g128_stochastic>>("W4A16 int4 g128 stochastic", w, x, reference_y, stochastic_options),
        measure<policy<quantizer<int_format<4>, per_group<32>, shiftable_scale<2>>>>("W4 shiftable g32 (2-bit shift)", w,
                                                                                     x, reference_y),
        measure<presets::w4a8_2of4>("W4A8 + 2:4 sparsity", w, x, reference_y),
        measure<presets::w8a8_2of4>("W8A8 + 2:4 sparsity", w, x, reference_y),
        measure<presets::w2a16>("W2A16 (uint2 g64 + zero)", w, x, reference_y),
        measure<policy<presets::ternary_per_channel>>("Ternary/ch (A16)", w, x, reference_y),
        measure<presets::w1a1>("W1A1 (binary W and A)", w, x, reference_y),
    };

    const double fp16_bytes = 2.0 * static_cast<double>(s.rows * s.cols);
    std::printf("%-32s %8s %10s %8s %9s %9s %9s %9s\n", "policy", "bits/w", "bytes", "x<FP16", "SQNR dB", "W relerr",
                "Y relerr", "ms");
    std::printf("%.*s\n", 102, "------------------------------------------------------------------------------------------------------------");
    for (const row& r : rows)
        std::printf("%-32s %8.3f %10zu %8.2f %9.2f %9.4f %9.4f %9.1f\n", r.name.c_str(), r.bits_per_weight, r.bytes,
                    fp16_bytes / static_cast<double>(r.bytes), r.sqnr_db, r.weight_error, r.output_error, r.milliseconds);
    std::printf("\nbits/w and bytes count everything stored (codes, scales, zero points, sparsity metadata).\n"
                "SQNR and W relerr compare the dequantized weights with W (pruning included); Y relerr compares\n"
                "X * W^T under the policy (activations quantized as it says) with the float product.\n");
    return 0;
}
