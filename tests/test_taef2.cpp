// Convolutions on the compressed GEMM (model/conv2d.hpp), GroupNorm (model/group_norm.hpp) and the TAEF2 image
// decoder (model/taef2_decoder.hpp):
//  - conv2d against a direct convolution in double written here (random shapes, odd H/W/Cin, padding, 1x1,
//    3x3, 5x5); row tiles and threads change nothing; a quantized policy equals "quantize W, then convolve"
//    (weight-only) or the GEMM oracle on an im2col built here (integer activations);
//  - GroupNorm, ReLU, tanh clamp, nearest upsampling against their formulas;
//  - a seeded tiny decoder against a direct NCHW implementation of taesd's Decoder written here; config and
//    tensor mismatches are errors naming the tensor/layer;
//  - the real taef2_decoder (../shared/models; CTest: Skipped when absent, failed under CI): FP32 vs the PyTorch reference
//    (PSNR), W8A8 / W4A8 / W4A16 on the convs (PSNR, SSIM vs FP32), which layer takes which policy.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tcomp/calib/methods.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/kernel/reference/matmul.hpp"
#include "tcomp/metrics/image.hpp"
#include "tcomp/metrics/signal.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/model/conv2d.hpp"
#include "tcomp/model/group_norm.hpp"
#include "tcomp/model/taef2_decoder.hpp"
#include "tcomp/model/taef2_mixed_precision.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace {

using namespace tcomp;
using namespace tcomp::model;

std::vector<float> gaussian_vector(std::size_t n, std::uint32_t seed, float sigma = 1.0f, float mean = 0.0f) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(mean, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = d(gen);
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Direct references, NCHW (one image: [c][y][x]), double accumulation.
// ---------------------------------------------------------------------------------------------------------

struct image {
    index_t c = 0, h = 0, w = 0;
    std::vector<double> v;
    double& at(index_t ch, index_t y, index_t x) { return v[static_cast<std::size_t>((ch * h + y) * w + x)]; }
    double at(index_t ch, index_t y, index_t x) const { return v[static_cast<std::size_t>((ch * h + y) * w + x)]; }
};

image make_image(index_t c, index_t h, index_t w) {
    return {c, h, w, std::vector<double>(static_cast<std::size_t>(c * h * w))};
}

/// out[o][y][x] = bias[o] + sum_{ci, ky, kx} w[o][ci][ky][kx] * in[ci][y + ky - pad][x + kx - pad] (zero outside).
image conv_direct(const image& in, const std::vector<float>& w, index_t cout, index_t k, const std::vector<float>& bias,
                  index_t pad) {
    image out = make_image(cout, in.h + 2 * pad - k + 1, in.w + 2 * pad - k + 1);
    for (index_t o = 0; o < cout; ++o)
        for (index_t y = 0; y < out.h; ++y)
            for (index_t x = 0; x < out.w; ++x) {
                double s = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
                for (index_t ci = 0; ci < in.c; ++ci)
                    for (index_t ky = 0; ky < k; ++ky)
                        for (index_t kx = 0; kx < k; ++kx) {
                            const index_t iy = y + ky - pad, ix = x + kx - pad;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            s += static_cast<double>(w[static_cast<std::size_t>(((o * in.c + ci) * k + ky) * k + kx)]) *
                                 in.at(ci, iy, ix);
                        }
                out.at(o, y, x) = s;
            }
    return out;
}

/// torch.nn.GroupNorm on one sample: biased variance over each group's channels and pixels.
void group_norm_direct(image& x, index_t groups, double eps, const std::vector<float>& weight,
                       const std::vector<float>& bias) {
    const index_t per = x.c / groups;
    for (index_t g = 0; g < groups; ++g) {
        double mean = 0.0, var = 0.0;
        const double n = static_cast<double>(per * x.h * x.w);
        for (index_t c = g * per; c < (g + 1) * per; ++c)
            for (index_t y = 0; y < x.h; ++y)
                for (index_t z = 0; z < x.w; ++z) mean += x.at(c, y, z);
        mean /= n;
        for (index_t c = g * per; c < (g + 1) * per; ++c)
            for (index_t y = 0; y < x.h; ++y)
                for (index_t z = 0; z < x.w; ++z) var += (x.at(c, y, z) - mean) * (x.at(c, y, z) - mean);
        var /= n;
        for (index_t c = g * per; c < (g + 1) * per; ++c)
            for (index_t y = 0; y < x.h; ++y)
                for (index_t z = 0; z < x.w; ++z) {
                    double v = (x.at(c, y, z) - mean) / std::sqrt(var + eps);
                    if (!weight.empty())
                        v = v * weight[static_cast<std::size_t>(c)] + bias[static_cast<std::size_t>(c)];
                    x.at(c, y, z) = v;
                }
    }
}

feature_map to_nhwc(const image& x) {
    feature_map f(x.h, x.w, x.c);
    for (index_t c = 0; c < x.c; ++c)
        for (index_t y = 0; y < x.h; ++y)
            for (index_t z = 0; z < x.w; ++z) f.pixel(y, z)[c] = static_cast<float>(x.at(c, y, z));
    return f;
}

image random_image(index_t c, index_t h, index_t w, std::uint32_t seed) {
    image x = make_image(c, h, w);
    const auto g = gaussian_vector(x.v.size(), seed);
    for (std::size_t i = 0; i < g.size(); ++i) x.v[i] = g[i];
    return x;
}

/// max |got - ref| / max |ref| over the whole output (NHWC result vs NCHW reference).
double relative_error(const feature_map& got, const image& ref) {
    REQUIRE(got.height == ref.h);
    REQUIRE(got.width == ref.w);
    REQUIRE(got.channels == ref.c);
    double worst = 0.0, scale = 0.0;
    for (index_t c = 0; c < ref.c; ++c)
        for (index_t y = 0; y < ref.h; ++y)
            for (index_t x = 0; x < ref.w; ++x) {
                worst = std::max(worst, std::abs(static_cast<double>(got.pixel(y, x)[c]) - ref.at(c, y, x)));
                scale = std::max(scale, std::abs(ref.at(c, y, x)));
            }
    return worst / std::max(scale, 1e-30);
}

/// PyTorch OIHW -> the GEMM's [Cout x k*k*Cin] in (ky, kx, ci) order, written independently of conv2d.hpp.
dense_matrix<float> gemm_weight(const std::vector<float>& w, index_t cout, index_t cin, index_t k) {
    dense_matrix<float> m(cout, k * k * cin);
    for (index_t o = 0; o < cout; ++o)
        for (index_t ky = 0; ky < k; ++ky)
            for (index_t kx = 0; kx < k; ++kx)
                for (index_t ci = 0; ci < cin; ++ci)
                    m(o, (ky * k + kx) * cin + ci) = w[static_cast<std::size_t>(((o * cin + ci) * k + ky) * k + kx)];
    return m;
}

std::vector<float> oihw_from_gemm(const dense_matrix<float>& m, index_t cout, index_t cin, index_t k) {
    std::vector<float> w(static_cast<std::size_t>(cout * cin * k * k));
    for (index_t o = 0; o < cout; ++o)
        for (index_t ky = 0; ky < k; ++ky)
            for (index_t kx = 0; kx < k; ++kx)
                for (index_t ci = 0; ci < cin; ++ci)
                    w[static_cast<std::size_t>(((o * cin + ci) * k + ky) * k + kx)] = m(o, (ky * k + kx) * cin + ci);
    return w;
}

/// im2col of an NCHW image, one row per output pixel, (ky, kx, ci) order.
dense_matrix<float> im2col_direct(const image& x, index_t k, index_t pad) {
    const index_t oh = x.h + 2 * pad - k + 1, ow = x.w + 2 * pad - k + 1;
    dense_matrix<float> m(oh * ow, k * k * x.c, 0.0f);
    for (index_t y = 0; y < oh; ++y)
        for (index_t z = 0; z < ow; ++z)
            for (index_t ky = 0; ky < k; ++ky)
                for (index_t kx = 0; kx < k; ++kx)
                    for (index_t ci = 0; ci < x.c; ++ci) {
                        const index_t iy = y + ky - pad, ix = z + kx - pad;
                        if (iy >= 0 && iy < x.h && ix >= 0 && ix < x.w)
                            m(y * ow + z, (ky * k + kx) * x.c + ci) = static_cast<float>(x.at(ci, iy, ix));
                    }
    return m;
}

struct conv_case {
    index_t cin, cout, h, w, k, pad;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// conv2d
// ---------------------------------------------------------------------------------------------------------

TEST_CASE("conv2d fp32 equals a direct convolution; tiles and threads change nothing", "[conv]") {
    const conv_case cases[] = {{3, 5, 7, 9, 3, 1},  {13, 8, 11, 6, 3, 0}, {7, 16, 5, 5, 1, 0},   {9, 4, 6, 13, 1, 1},
                               {5, 3, 8, 7, 5, 2},  {64, 64, 9, 17, 3, 1}, {32, 64, 5, 4, 3, 1}, {1, 2, 1, 1, 3, 1},
                               {6, 7, 3, 3, 3, 2}};
    std::uint32_t seed = 100;
    for (const conv_case& cc : cases) {
        CAPTURE(cc.cin, cc.cout, cc.h, cc.w, cc.k, cc.pad);
        const auto w = gaussian_vector(static_cast<std::size_t>(cc.cout * cc.cin * cc.k * cc.k), seed++,
                                       1.0f / std::sqrt(static_cast<float>(cc.cin * cc.k * cc.k)));
        const auto bias = gaussian_vector(static_cast<std::size_t>(cc.cout), seed++);
        const image x = random_image(cc.cin, cc.h, cc.w, seed++);
        const image ref = conv_direct(x, w, cc.cout, cc.k, bias, cc.pad);
        const feature_map xf = to_nhwc(x);

        conv2d conv = conv2d::make("fp32", w, cc.cout, cc.cin, cc.k, cc.pad, bias, "test.conv");
        CHECK(conv.k_dim() == cc.k * cc.k * cc.cin);
        const feature_map y = conv.forward(xf);
        CHECK(relative_error(y, ref) <= 1e-4);

        // One output row per tile and two threads: the same numbers (each pixel's dot product is unchanged).
        conv.im2col_budget_bytes = 1;
        const feature_map y_tiled = conv.forward(xf, 2);
        REQUIRE(y_tiled.data.size() == y.data.size());
        double worst = 0.0, scale = 0.0;
        for (std::size_t i = 0; i < y.data.size(); ++i) {
            worst = std::max(worst, double(std::abs(y.data[i] - y_tiled.data[i])));
            scale = std::max(scale, double(std::abs(y.data[i])));
        }
        CHECK(worst <= 1e-6 * scale);

        // The fused epilogue: ReLU(conv(x) + residual), against the same formula on the direct result.
        image r = random_image(cc.cout, ref.h, ref.w, seed++);
        const feature_map rf = to_nhwc(r);
        for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] = std::max(ref.v[i] + r.v[i], 0.0);
        CHECK(relative_error(conv.forward(xf, 1, {.residual = &rf, .relu = true}), r) <= 1e-4);

        // The channels column order (ci, ky, kx): the same convolution, im2col gathered in that order, tiled or not.
        conv2d by_channel = conv2d::make("fp32", w, cc.cout, cc.cin, cc.k, cc.pad, bias, "test.conv", conv_weight_order::channels);
        CHECK(by_channel.weight_order() == conv_weight_order::channels);
        CHECK(relative_error(by_channel.forward(xf), ref) <= 1e-4);
        by_channel.im2col_budget_bytes = 1;
        CHECK(relative_error(by_channel.forward(xf, 2), ref) <= 1e-4);
        // Its GEMM weights are im2col_weights in that order: column ci * k * k + ky * k + kx.
        const dense_matrix<float> wc = conv2d::im2col_weights(w, cc.cout, cc.cin, cc.k, conv_weight_order::channels);
        CHECK(wc(0, cc.k * cc.k - 1) == w[static_cast<std::size_t>(cc.k * cc.k - 1)]);
    }
    CHECK(parse_conv_weight_order(to_string(conv_weight_order::channels)) == conv_weight_order::channels);
    CHECK_THROWS_WITH(parse_conv_weight_order("cikk"), Catch::Contains("unknown conv weight order \"cikk\""));
}

TEST_CASE("conv2d with a quantized policy equals quantize-W-then-convolve", "[conv]") {
    const conv_case cases[] = {{32, 16, 7, 9, 3, 1}, {64, 24, 5, 6, 1, 0}, {64, 8, 6, 5, 3, 0}, {32, 40, 4, 7, 1, 1}};
    std::uint32_t seed = 300;
    for (const conv_case& cc : cases) {
        CAPTURE(cc.cin, cc.cout, cc.h, cc.w, cc.k, cc.pad);
        const auto w = gaussian_vector(static_cast<std::size_t>(cc.cout * cc.cin * cc.k * cc.k), seed++, 0.1f);
        const auto bias = gaussian_vector(static_cast<std::size_t>(cc.cout), seed++);
        const image x = random_image(cc.cin, cc.h, cc.w, seed++);
        const feature_map xf = to_nhwc(x);
        const dense_matrix<float> wg = gemm_weight(w, cc.cout, cc.cin, cc.k);

        // Weight-only: the convolution of the dequantized weights (float activations).
        auto weight_only = [&]<class P>(std::type_identity<P>, const char* name) {
            CAPTURE(name);
            const dense_matrix<float> w_hat = dequantize(compress<P>(wg.view()).weights());
            const image ref = conv_direct(x, oihw_from_gemm(w_hat, cc.cout, cc.cin, cc.k), cc.cout, cc.k, bias, cc.pad);
            const conv2d conv = conv2d::make(name, w, cc.cout, cc.cin, cc.k, cc.pad, bias, "q.conv");
            CHECK(conv.policy() == name);
            const double err = relative_error(conv.forward(xf), ref);
            CHECK(err <= 1e-4);
            // The quantization is real: the float weights give a visibly different answer.
            const image ref_float = conv_direct(x, w, cc.cout, cc.k, bias, cc.pad);
            CHECK(relative_error(conv.forward(xf), ref_float) > 1e-4);
        };
        weight_only(std::type_identity<presets::w8a16>{}, "w8a16");
        weight_only(std::type_identity<w4a16_g32>{}, "w4a16_g32");

        // Integer activations: each im2col row (one output pixel) is quantized per token; the GEMM oracle on an
        // im2col built here gives the same numbers (the integer kernels match the oracle bit for bit).
        const dense_matrix<float> cols = im2col_direct(x, cc.k, cc.pad);
        auto integer = [&]<class P>(std::type_identity<P>, const char* name) {
            CAPTURE(name);
            dense_matrix<float> ref(cols.rows(), cc.cout);
            reference::matmul(cols.view(), compress<P>(wg.view()), ref.view(), bias);
            conv2d conv = conv2d::make(name, w, cc.cout, cc.cin, cc.k, cc.pad, bias, "q.conv");
            conv.im2col_budget_bytes = 4096;  // several tiles
            const feature_map y = conv.forward(xf, 2);
            double worst = 0.0, scale = 0.0;
            for (index_t p = 0; p < cols.rows(); ++p)
                for (index_t o = 0; o < cc.cout; ++o) {
                    const float got = y.data[static_cast<std::size_t>(p * cc.cout + o)];
                    worst = std::max(worst, double(std::abs(got - ref(p, o))));
                    scale = std::max(scale, double(std::abs(ref(p, o))));
                }
            CHECK(worst <= 1e-6 * scale);
        };
        integer(std::type_identity<presets::w8a8>{}, "w8a8");
        integer(std::type_identity<w4a8_g32>{}, "w4a8_g32");
    }
}

TEST_CASE("conv2d errors name the layer", "[conv]") {
    const auto w = gaussian_vector(8 * 64 * 9, 1);
    // K = 64 * 9 = 576 is not a multiple of w4a8's group of 128: the policy's own error, never another format.
    CHECK_THROWS_WITH(conv2d::make("w4a8", w, 8, 64, 3, 1, {}, "blk.conv.0"),
                      Catch::Contains("blk.conv.0") && Catch::Contains("576"));
    CHECK_NOTHROW(conv2d::make("w4a8_g32", w, 8, 64, 3, 1, {}, "blk.conv.0"));
    CHECK_THROWS_AS(conv2d::make("fp32", w, 8, 64, 3, 1, std::vector<float>(7), "c"), shape_error);
    CHECK_THROWS_AS(conv2d::make("fp32", w, 8, 63, 3, 1, {}, "c"), shape_error);
    CHECK_THROWS_AS(conv2d::make("fp32", w, 8, 64, 3, -1, {}, "c"), shape_error);
    CHECK_THROWS_WITH(conv2d::make("w9a9", w, 8, 64, 3, 1, {}, "c"), Catch::Contains("unknown policy"));

    const conv2d conv = conv2d::make("fp32", w, 8, 64, 3, 0, {}, "named.conv");
    CHECK_THROWS_WITH(conv.forward(feature_map(5, 5, 32)), Catch::Contains("named.conv") && Catch::Contains("32"));
    CHECK_THROWS_WITH(conv.forward(feature_map(2, 5, 64)), Catch::Contains("named.conv") && Catch::Contains("smaller"));
    feature_map y;
    const feature_map wrong_residual(3, 3, 7);
    CHECK_THROWS_WITH(conv.forward(feature_map(5, 5, 64), y, 1, {.residual = &wrong_residual}),
                      Catch::Contains("named.conv") && Catch::Contains("residual"));
    CHECK_THROWS_AS(conv.forward(feature_map(5, 5, 64), y, 1, {.residual = &y}), error);
    feature_map broken(3, 3, 64);
    broken.data.pop_back();
    CHECK_THROWS_AS(conv.forward(broken), shape_error);
    // NaN input under an integer policy: the activation quantizer refuses it, naming the layer.
    const conv2d q = conv2d::make("w8a8", w, 8, 64, 3, 1, {}, "nan.conv");
    feature_map bad(4, 4, 64);
    bad.data[17] = std::nanf("");
    CHECK_THROWS_WITH(q.forward(bad), Catch::Contains("nan.conv") && Catch::Contains("NaN"));
}

TEST_CASE("ReLU, add, tanh clamp and nearest 2x upsampling", "[conv]") {
    auto v = gaussian_vector(257, 5, 4.0f);
    auto r = v, t = v, sum = v;
    const auto other = gaussian_vector(v.size(), 8);
    relu_inplace(r);
    add_inplace(sum, other);
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(sum[i] == v[i] + other[i]);
    CHECK_THROWS_AS(add_inplace(sum, std::vector<float>(3)), shape_error);
    tanh_clamp_inplace(t, 3.0f);
    for (std::size_t i = 0; i < v.size(); ++i) {
        CHECK(r[i] == std::max(v[i], 0.0f));
        CHECK(t[i] == Approx(3.0 * std::tanh(v[i] / 3.0)).margin(1e-6));
        CHECK(std::abs(t[i]) < 3.0f);
    }
    CHECK_THROWS_AS(tanh_clamp_inplace(t, 0.0f), value_error);

    const image x = random_image(3, 5, 7, 6);
    const feature_map up = upsample_nearest2x(to_nhwc(x));
    REQUIRE(up.height == 10);
    REQUIRE(up.width == 14);
    REQUIRE(up.channels == 3);
    for (index_t c = 0; c < 3; ++c)
        for (index_t y = 0; y < 10; ++y)
            for (index_t z = 0; z < 14; ++z) CHECK(up.pixel(y, z)[c] == static_cast<float>(x.at(c, y / 2, z / 2)));
}

TEST_CASE("group_norm equals the direct GroupNorm formula", "[conv]") {
    struct gn_case {
        index_t groups, channels, h, w;
        bool affine;
        float offset;  // a large common mean must not cost accuracy
    };
    const gn_case cases[] = {{4, 32, 7, 5, true, 0.0f}, {4, 256, 6, 6, true, 20.0f}, {1, 12, 3, 9, false, -3.0f},
                             {12, 12, 4, 4, true, 1.0f}, {3, 9, 1, 1, false, 0.0f}};
    std::uint32_t seed = 700;
    for (const gn_case& g : cases) {
        CAPTURE(g.groups, g.channels, g.h, g.w, g.affine);
        image x = random_image(g.channels, g.h, g.w, seed++);
        // Channels with different means and spreads, so the group statistics matter.
        for (index_t c = 0; c < g.channels; ++c)
            for (index_t y = 0; y < g.h; ++y)
                for (index_t z = 0; z < g.w; ++z)
                    x.at(c, y, z) = x.at(c, y, z) * (0.5 + 0.1 * double(c % 7)) + g.offset + 0.3 * double(c % 5);
        const feature_map xf = to_nhwc(x);
        // The reference sees the float inputs the layer sees.
        for (index_t c = 0; c < g.channels; ++c)
            for (index_t y = 0; y < g.h; ++y)
                for (index_t z = 0; z < g.w; ++z) x.at(c, y, z) = xf.pixel(y, z)[c];
        std::vector<float> weight, bias;
        group_norm norm(g.groups, g.channels, 1e-5, g.affine, "gn");
        if (g.affine) {
            weight = gaussian_vector(static_cast<std::size_t>(g.channels), seed++, 0.5f, 1.0f);
            bias = gaussian_vector(static_cast<std::size_t>(g.channels), seed++);
            norm.set_affine(weight, bias);
        }
        feature_map y = xf;
        norm.forward(y.matrix(), y.matrix());  // in place
        group_norm_direct(x, g.groups, 1e-5, weight, bias);
        double worst = 0.0;
        for (index_t c = 0; c < g.channels; ++c)
            for (index_t yy = 0; yy < g.h; ++yy)
                for (index_t z = 0; z < g.w; ++z)
                    worst = std::max(worst, std::abs(double(y.pixel(yy, z)[c]) - x.at(c, yy, z)) /
                                                std::max(1.0, std::abs(x.at(c, yy, z))));
        CHECK(worst <= 2e-5);
    }
    CHECK_THROWS_AS(group_norm(5, 32), shape_error);
    CHECK_THROWS_AS(group_norm(0, 32), shape_error);
    CHECK_THROWS_AS(group_norm(4, 32, -1.0), value_error);
    group_norm n(4, 32, 1e-5, true, "named.gn");
    CHECK_THROWS_WITH(n.set_affine(std::vector<float>(31), std::vector<float>(32)), Catch::Contains("named.gn"));
    group_norm plain(4, 32, 1e-5, false, "plain");
    CHECK_THROWS_AS(plain.set_affine(std::vector<float>(32), std::vector<float>(32)), error);
    feature_map f(2, 2, 16);
    CHECK_THROWS_WITH(n.forward(f.matrix(), f.matrix()), Catch::Contains("named.gn"));
}

// ---------------------------------------------------------------------------------------------------------
// The decoder: a direct NCHW implementation of taesd's Decoder (from the README / taesd.py), in double.
// ---------------------------------------------------------------------------------------------------------

namespace {

const taef2_tensor& tensor_at(const taef2_weights& w, const std::string& name) {
    const auto it = w.find(name);
    REQUIRE(it != w.end());
    return it->second;
}

image conv_named(const image& x, const taef2_weights& w, const std::string& layer, index_t pad, bool with_bias) {
    const taef2_tensor& t = tensor_at(w, layer + ".weight");
    const std::vector<float> bias = with_bias ? tensor_at(w, layer + ".bias").data : std::vector<float>{};
    return conv_direct(x, t.data, t.shape[0], t.shape[2], bias, pad);
}

void relu(image& x) {
    for (double& v : x.v) v = std::max(v, 0.0);
}

/// Decoder(x) for one NCHW latent, following config.json's sequence with taesd's definitions.
image decode_direct(const nlohmann::json& config, const taef2_weights& w, image x) {
    for (const auto& layer : config.at("layers")) {
        const std::string kind = layer[0].get<std::string>();
        if (kind == "clamp") {
            for (double& v : x.v) v = std::tanh(v / 3.0) * 3.0;
        } else if (kind == "relu") {
            relu(x);
        } else if (kind == "up") {
            image u = make_image(x.c, 2 * x.h, 2 * x.w);
            for (index_t c = 0; c < u.c; ++c)
                for (index_t y = 0; y < u.h; ++y)
                    for (index_t z = 0; z < u.w; ++z) u.at(c, y, z) = x.at(c, y / 2, z / 2);
            x = std::move(u);
        } else if (kind == "conv") {
            const std::string name = layer[1][0].get<std::string>();
            x = conv_named(x, w, name, layer[1][1].get<index_t>(), w.count(name + ".bias") > 0);
        } else if (kind == "block") {
            const std::string b = layer[1].get<std::string>();
            if (w.count(b + ".pool.0.weight")) {  // x = x + pool(x)
                image p = conv_named(x, w, b + ".pool.0", 0, false);
                group_norm_direct(p, config.at("groupnorm_groups").get<index_t>(), 1e-5,
                                  tensor_at(w, b + ".pool.1.weight").data, tensor_at(w, b + ".pool.1.bias").data);
                relu(p);
                const image q = conv_named(p, w, b + ".pool.3", 0, false);
                for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] += q.v[i];
            }
            image a = conv_named(x, w, b + ".conv.0", 1, true);
            relu(a);
            a = conv_named(a, w, b + ".conv.2", 1, true);
            relu(a);
            a = conv_named(a, w, b + ".conv.4", 1, true);
            for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = std::max(a.v[i] + x.v[i], 0.0);
        } else {
            FAIL("unknown layer kind " << kind);
        }
    }
    for (double& v : x.v) v = std::clamp(v, 0.0, 1.0);
    return x;
}

/// A 2x-per-up, 3-channel tiny decoder of the same structure: latent 4, channels 8, GroupNorm 4 on 32 channels.
nlohmann::json tiny_config() {
    return nlohmann::json::parse(R"({
      "architecture": "taesd-decoder", "latent_channels": 4, "channels": 8, "upsample_factor": 4,
      "midblock_groupnorm": true, "groupnorm_groups": 4, "latent_clamp": "tanh(x/3)*3", "output_range": [0, 1],
      "layers": [["clamp", null], ["conv", ["1", 1]], ["relu", null], ["block", "3"], ["block", "4"],
                 ["up", null], ["conv", ["6", 1]], ["block", "7"], ["up", null], ["conv", ["9", 1]],
                 ["block", "10"], ["conv", ["11", 1]]]})");
}

taef2_weights tiny_weights(std::uint32_t seed) {
    taef2_weights w;
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float sigma, float mean = 0.0f) {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        w[name] = {shape, gaussian_vector(static_cast<std::size_t>(n), seed++, sigma, mean)};
    };
    auto conv = [&](const std::string& name, std::int64_t out, std::int64_t in, bool bias) {
        add(name + ".weight", {out, in, 3, 3}, 1.2f / std::sqrt(float(in * 9)));
        if (bias) add(name + ".bias", {out}, 0.1f);
    };
    auto block = [&](const std::string& b, bool pool) {
        conv(b + ".conv.0", 8, 8, true), conv(b + ".conv.2", 8, 8, true), conv(b + ".conv.4", 8, 8, true);
        if (pool) {
            add(b + ".pool.0.weight", {32, 8, 1, 1}, 0.35f);
            add(b + ".pool.1.weight", {32}, 0.3f, 1.0f);
            add(b + ".pool.1.bias", {32}, 0.2f);
            add(b + ".pool.3.weight", {8, 32, 1, 1}, 0.15f);
        }
    };
    conv("1", 8, 4, true);
    block("3", true), block("4", true);
    conv("6", 8, 8, false);
    block("7", false);
    conv("9", 8, 8, false);
    block("10", false);
    conv("11", 3, 8, true);
    for (float& v : w["11.weight"].data) v *= 0.15f;
    w["11.bias"].data = {0.5f, 0.4f, 0.6f};  // centre the output in [0, 1] (and some pixels still clamp)
    return w;
}

image latent_image(const std::vector<float>& latents, index_t b, index_t c, index_t h, index_t w) {
    image x = make_image(c, h, w);
    for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = latents[static_cast<std::size_t>(b * c * h * w) + i];
    return x;
}

}  // namespace

TEST_CASE("taef2_decoder: a tiny seeded decoder equals the direct implementation", "[taef2]") {
    const nlohmann::json cj = tiny_config();
    const taef2_weights w = tiny_weights(11);
    const index_t batch = 2, h = 5, wd = 6;
    const auto latents = gaussian_vector(static_cast<std::size_t>(batch * 4 * h * wd), 12, 2.0f);

    taef2_decoder dec(taef2_config::from_json(cj), w);
    CHECK(dec.out_channels() == 3);
    CHECK(dec.convs().size() == 3 * 4 + 2 * 2 + 4);  // 4 blocks of 3, 2 pools of 2, 4 top-level
    const std::vector<float> out = dec.decode(latents, batch, h, wd);
    REQUIRE(out.size() == static_cast<std::size_t>(batch * 3 * 20 * 24));
    std::size_t clamped = 0;
    double worst = 0.0;
    for (index_t b = 0; b < batch; ++b) {
        const image ref = decode_direct(cj, w, latent_image(latents, b, 4, h, wd));
        REQUIRE(ref.v.size() == static_cast<std::size_t>(3 * 20 * 24));
        for (std::size_t i = 0; i < ref.v.size(); ++i) {
            worst = std::max(worst, std::abs(double(out[static_cast<std::size_t>(b) * ref.v.size() + i]) - ref.v[i]));
            clamped += ref.v[i] == 0.0 || ref.v[i] == 1.0;
        }
    }
    CHECK(worst <= 1e-5);
    CHECK(clamped < out.size() / 2);  // the test exercises the network, not just the clamp

    // Threads and per-layer policies: the map reaches exactly the named layers.
    // (3.pool.3 has K = 32, 7.conv.2 K = 72: per-channel W8A16 takes any K, groups of 32 only the first.)
    taef2_decoder mixed(taef2_config::from_json(cj), w, {{"3.pool.3", "w4a16_g32"}, {"7.conv.2", "w8a16"}});
    mixed.set_threads(2);
    for (const conv2d* c : mixed.convs())
        CHECK(c->policy() == (c->name == "3.pool.3" ? "w4a16_g32" : c->name == "7.conv.2" ? "w8a16" : "fp32"));
    const std::vector<float> out_mixed = mixed.decode(latents, batch, h, wd);
    CHECK(metrics::psnr_db(out, out_mixed) > 30.0);
    CHECK(out_mixed != out);
}

TEST_CASE("taef2 mixed precision: sensitivity per conv and candidate, allocation under budget", "[taef2][mixed]") {
    const taef2_config config = taef2_config::from_json(tiny_config());
    const taef2_weights w = tiny_weights(21);
    const auto latents = gaussian_vector(static_cast<std::size_t>(2 * 4 * 4 * 5), 22, 2.0f);
    taef2_sensitivity_options o;
    o.candidates = {"8:channel", "4:channel", "2:channel"};
    const std::vector<layer_sensitivity> table = measure_taef2_sensitivity(config, w, {latents, 2, 4, 5}, o);
    const taef2_decoder fp32(config, w);
    REQUIRE(table.size() == fp32.convs().size());
    for (const layer_sensitivity& L : table) {
        REQUIRE(L.policies.size() == 3);
        CHECK(L.policies[0] == "w=int8:channel a=int8:token");
        CHECK((L.bits[0] > L.bits[1] && L.bits[1] > L.bits[2]));  // stored weight bits, bias excluded
        CHECK(L.raw[2] >= L.raw[0]);                               // 2 bits hurt at least as much as 8
    }
    // Between the cheapest and the dearest: the budget is kept, and more bits never cost sensitivity.
    const taef2_allocation a4 = allocate_taef2(table, fp32, 4.0), a6 = allocate_taef2(table, fp32, 6.0);
    CHECK(a4.average_bits <= 4.0);
    CHECK(a6.average_bits <= 6.0);
    CHECK(a6.sensitivity <= a4.sensitivity);
    CHECK(a4.policies.size() == table.size());
    CHECK_THAT(tcomp_test::error_of([&] { (void)allocate_taef2(table, fp32, 1.0); }),
               Catch::Contains("outside [") && Catch::Contains("cheapest"));
    std::vector<layer_sensitivity> wrong = table;
    wrong[3].layer = "nope";
    CHECK_THAT(tcomp_test::error_of([&] { (void)allocate_taef2(wrong, fp32, 4.0); }),
               Catch::Contains("row 3 (nope)"));
}

TEST_CASE("taef2_decoder: config and tensor mismatches name the tensor or layer", "[taef2]") {
    const nlohmann::json cj = tiny_config();
    const taef2_weights good = tiny_weights(11);
    const taef2_config config = taef2_config::from_json(cj);
    CHECK_NOTHROW(taef2_decoder(config, good));

    auto without = [&](const std::string& name) {
        taef2_weights w = good;
        w.erase(name);
        return w;
    };
    CHECK_THROWS_WITH(taef2_decoder(config, without("7.conv.2.bias")),
                      Catch::Contains("7.conv.2.bias") && Catch::Contains("missing"));
    CHECK_THROWS_WITH(taef2_decoder(config, without("4.pool.1.weight")), Catch::Contains("4.pool.1.weight"));
    CHECK_THROWS_WITH(taef2_decoder(config, without("6.weight")), Catch::Contains("6.weight"));
    {
        taef2_weights w = good;
        w["7.conv.0.weight"] = {{8, 8, 1, 1}, std::vector<float>(64, 0.1f)};
        CHECK_THROWS_AS(taef2_decoder(config, w), shape_error);
        CHECK_THROWS_WITH(taef2_decoder(config, w),
                          Catch::Contains("7.conv.0.weight") && Catch::Contains("[8, 8, 3, 3]"));
        w = good;
        w["6.weight"] = {{8, 5, 3, 3}, std::vector<float>(8 * 5 * 9, 0.1f)};
        CHECK_THROWS_WITH(taef2_decoder(config, w), Catch::Contains("6.weight"));
        w = good;
        w["11.bias"] = {{4}, std::vector<float>(4, 0.1f)};
        CHECK_THROWS_WITH(taef2_decoder(config, w), Catch::Contains("11.bias"));
        w = good;
        w["3.pool.0.bias"] = {{32}, std::vector<float>(32, 0.1f)};  // taesd's pool convs have none
        CHECK_THROWS_WITH(taef2_decoder(config, w),
                          Catch::Contains("3.pool.0.bias") && Catch::Contains("does not use"));
    }
    // Policies: an unknown layer name, an unknown policy, a K the policy cannot take (K = 8 * 9 = 72).
    CHECK_THROWS_WITH(taef2_decoder(config, good, {{"7.conv.1", "w8a8"}}), Catch::Contains("7.conv.1"));
    CHECK_THROWS_WITH(taef2_decoder(config, good, {{"6", "w3a3"}}), Catch::Contains("w3a3"));
    CHECK_THROWS_WITH(taef2_decoder(config, good, {{"6", "w4a16_g32"}}),
                      Catch::Contains("'6'") && Catch::Contains("72"));
    CHECK_THROWS_WITH(taef2_decoder(config, good, {}, "w9"), Catch::Contains("w9"));

    auto bad_config = [&](auto edit) {
        nlohmann::json j = cj;
        edit(j);
        return j;
    };
    CHECK_THROWS_WITH(taef2_config::from_json(bad_config([](auto& j) { j["upsample_factor"] = 8; })),
                      Catch::Contains("upsample_factor"));
    CHECK_THROWS_WITH(taef2_config::from_json(bad_config([](auto& j) { j["layers"][2][0] = "gelu"; })),
                      Catch::Contains("gelu"));
    CHECK_THROWS_WITH(taef2_config::from_json(bad_config([](auto& j) { j["latent_clamp"] = "tanh(x/3)*2"; })),
                      Catch::Contains("latent_clamp"));
    CHECK_THROWS_WITH(taef2_config::from_json(bad_config([](auto& j) { j["extra"] = 1; })), Catch::Contains("extra"));
    CHECK_THROWS_WITH(taef2_config::from_json(bad_config([](auto& j) { j.erase("channels"); })),
                      Catch::Contains("channels"));
    const taef2_config no_gn = taef2_config::from_json(bad_config([](auto& j) { j["midblock_groupnorm"] = false; }));
    CHECK_THROWS_WITH(taef2_decoder(no_gn, good),
                      Catch::Contains("3.pool.0.weight") && Catch::Contains("midblock_groupnorm"));
    CHECK_THROWS_WITH(taef2_decoder(taef2_config::from_json(bad_config([](auto& j) { j["channels"] = 16; })), good),
                      Catch::Contains("block 3"));

    // load(): config.json + model.safetensors from a directory, the same network as built in memory.
    const auto dir =
        std::filesystem::temp_directory_path() / ("tcomp_test_taef2_" + std::to_string(std::random_device{}()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    CHECK_THROWS_AS(taef2_decoder::load(dir), io::file_error);  // no config.json
    std::ofstream(dir / "config.json") << cj.dump(1);
    CHECK_THROWS_AS(taef2_decoder::load(dir), io::file_error);  // no model.safetensors
    io::safetensors_writer writer;
    for (const auto& [name, t] : good) writer.add_f32(name, t.shape, t.data);
    writer.write(dir / "model.safetensors");
    const std::vector<float> latents = gaussian_vector(4 * 3 * 3, 21, 2.0f);
    CHECK(taef2_decoder::load(dir, {}, "w8a8").decode(latents, 1, 3, 3) ==
          taef2_decoder(config, good, {}, "w8a8").decode(latents, 1, 3, 3));
    std::filesystem::remove_all(dir);

    taef2_decoder dec(config, good);
    CHECK_THROWS_AS(dec.decode(std::vector<float>(4 * 5 * 6 - 1), 1, 5, 6), shape_error);
    std::vector<float> nan_latents(4 * 5 * 6, 0.5f);
    nan_latents[37] = std::nanf("");
    CHECK_THROWS_WITH(dec.decode(nan_latents, 1, 5, 6), Catch::Contains("NaN"));
}

// ---------------------------------------------------------------------------------------------------------
// The real TAEF2 decoder (../shared/models/taef2_decoder): the reference of an independent FP32 PyTorch run.
// ---------------------------------------------------------------------------------------------------------

namespace {

const std::filesystem::path taef2_dir = tcomp_test::models_dir() / "taef2_decoder";

bool have_taef2() {
    return tcomp_test::have_models("the TAEF2 reference checks",
                                   {"taef2_decoder/model.safetensors", "taef2_decoder/config.json",
                                    "taef2_decoder/taef2_dev_latents.safetensors"});
}

struct taef2_dev_set {
    std::vector<float> latents, decoded;  // 2 x 32 x 32 x 32, 2 x 3 x 256 x 256
};

taef2_dev_set load_dev() {
    const auto f = io::safetensors_file::open(taef2_dir / "taef2_dev_latents.safetensors");
    REQUIRE(f.tensor("latents").shape == std::vector<std::int64_t>{2, 32, 32, 32});
    REQUIRE(f.tensor("fp32_decoded").shape == std::vector<std::int64_t>{2, 3, 256, 256});
    return {io::to_float(f.tensor("latents")), io::to_float(f.tensor("fp32_decoded"))};
}

#ifdef NDEBUG
struct quality {
    double psnr, ssim, seconds_per_image;
};

/// Decodes both dev images with 1 thread; PSNR and SSIM against `reference`.
quality run_policy(const taef2_decoder& dec, const std::vector<float>& latents, const std::vector<float>& reference) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> y = dec.decode(latents, 2, 32, 32);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 2.0;
    return {metrics::psnr_db(reference, y), metrics::ssim(reference, y, 2 * 3, 256, 256), seconds};
}
#endif

}  // namespace

TEST_CASE("taef2_decoder: real weights, a latent crop equals the direct implementation", "[taef2]") {
    if (!have_taef2()) return;
    const taef2_dev_set dev = load_dev();
    // The library's own loader (strict: every tensor used, every shape checked) ...
    const taef2_decoder dec = taef2_decoder::load(taef2_dir);
    CHECK(dec.out_channels() == 3);
    CHECK(dec.convs().size() == 1 + 3 * 5 + 7 * 3 + 3 + 1);  // 1, 3 pooled blocks, 7 plain blocks, 7/12/17, 19
    // ... against the direct decoder on weights read here, on a 4x4 crop of image 1 (cheap enough for ASan).
    const auto f = io::safetensors_file::open(taef2_dir / "model.safetensors");
    taef2_weights w;
    for (const auto& t : f.tensors()) w[t.name] = {t.shape, io::to_float(t)};
    std::ifstream config_file(taef2_dir / "config.json");
    const nlohmann::json cj = nlohmann::json::parse(config_file);
    const index_t crop = 4;  // ~0.6 s here, ~7 s in an unoptimized ASan build
    const index_t y0 = 10, x0 = 13;
    image latent = make_image(32, crop, crop);
    std::vector<float> crop_nchw(static_cast<std::size_t>(32 * crop * crop));
    for (index_t c = 0; c < 32; ++c)
        for (index_t y = 0; y < crop; ++y)
            for (index_t x = 0; x < crop; ++x) {
                const float v = dev.latents[static_cast<std::size_t>(((1 * 32 + c) * 32 + y0 + y) * 32 + x0 + x)];
                latent.at(c, y, x) = v;
                crop_nchw[static_cast<std::size_t>((c * crop + y) * crop + x)] = v;
            }
    const image ref = decode_direct(cj, w, latent);
    const std::vector<float> got = dec.decode(crop_nchw, 1, crop, crop);
    REQUIRE(got.size() == ref.v.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - ref.v[i]));
    std::printf("[taef2] %tdx%td latent crop, fp32 vs direct double implementation: max |diff| = %.3g\n", crop, crop,
                worst);
    CHECK(worst <= 1e-4);
}

TEST_CASE("taef2_decoder: which conv takes which policy", "[taef2]") {
    if (!have_taef2()) return;
    const taef2_decoder fp32 = taef2_decoder::load(taef2_dir);
    // K = 288 (conv 1, Cin 32), 576 (the other 3x3 convs), 64 (pool.0), 256 (pool.3).
    std::map<index_t, std::vector<std::string>> k_layers;
    for (const conv2d* c : fp32.convs()) k_layers[c->k_dim()].push_back(c->name);
    REQUIRE(k_layers.size() == 4);
    const std::vector<std::string> policies = {"w8a8", "w8a16", "w4a8", "w4a16", "w2a16", "w4a8_g32", "w4a16_g32"};
    for (const auto& [k, layers] : k_layers) {
        std::string line;
        for (const std::string& p : policies) {
            bool ok = true;
            try {
                const auto w = gaussian_vector(static_cast<std::size_t>(16 * k), 3);
                conv2d::make(p, w, 16, k, 1, 0, {}, "probe");
            } catch (const error&) {
                ok = false;
            }
            line += " " + p + (ok ? ":yes" : ":no");
            // per_group<128> (w4a8, w4a16) needs K % 128, per_group<64> (w2a16) K % 64; g32 and per-channel fit all.
            const bool expected = (p == "w4a8" || p == "w4a16") ? k % 128 == 0 : p == "w2a16" ? k % 64 == 0 : true;
            CHECK(ok == expected);
        }
        std::printf("[taef2] K = %3td (%2zu layers, e.g. %s):%s\n", k, layers.size(), layers.front().c_str(),
                    line.c_str());
    }
    // A policy that cannot take a layer is an error naming it (conv 1: K = 288), never another format.
    CHECK_THROWS_WITH(taef2_decoder::load(taef2_dir, {}, "w4a8"), Catch::Contains("'1'") && Catch::Contains("288"));
    CHECK_THROWS_WITH(taef2_decoder::load(taef2_dir, {{"8.conv.2", "w4a16"}}), Catch::Contains("8.conv.2"));
}

#ifdef NDEBUG
TEST_CASE("taef2_decoder: FP32 decode of the dev latents matches the PyTorch reference", "[taef2]") {
    if (!have_taef2()) return;
    const taef2_dev_set dev = load_dev();
    const taef2_decoder dec = taef2_decoder::load(taef2_dir);
    const quality q = run_policy(dec, dev.latents, dev.decoded);
    std::printf("[taef2] fp32: PSNR %.2f dB, SSIM %.6f vs the PyTorch fp32 reference; %.3f s per 256x256 image "
                "(1 thread)\n", q.psnr, q.ssim, q.seconds_per_image);
    CHECK(q.psnr >= 60.0);
    CHECK(q.ssim >= 0.9999);
}

namespace {

/// Decodes the dev latents under a policy recipe; PSNR and SSIM against the PyTorch fp32 output (our own fp32
/// decode is 130 dB from it, so this is also "vs fp32"), asserted against bounds measured with a margin.
void check_policy(const char* label, const taef2_policy_map& map, const char* default_policy, double min_psnr,
                  double min_ssim) {
    if (!have_taef2()) return;
    CAPTURE(label);
    const taef2_dev_set dev = load_dev();
    const taef2_decoder dec = taef2_decoder::load(taef2_dir, map, default_policy);
    for (const conv2d* c : dec.convs()) CHECK(c->kernel_note().empty());  // every conv on a SIMD kernel
    const quality q = run_policy(dec, dev.latents, dev.decoded);
    std::printf("[taef2] %-34s PSNR %.2f dB, SSIM %.5f vs fp32; conv weights %zu bytes (fp32 5347852); %.3f s per "
                "256x256 image (1 thread)\n",
                label, q.psnr, q.ssim, dec.weight_bytes(), q.seconds_per_image);
    CHECK(q.psnr >= min_psnr);
    CHECK(q.ssim >= min_ssim);
    CHECK(q.psnr < 80.0);  // the policy really quantized
}

}  // namespace

// Measured (x86-64, AVX-512 VNNI path; integer paths are bit-exact across ISAs): w8a8 40.97 dB / 0.99630,
// w4a8 (g128) on pool.3 + w8a8 38.12 / 0.99242, w4a8_g32 26.82 / 0.93117, w4a16_g32 29.79 / 0.96483 (groups
// along channels, the default; along taps 25.18 and 29.10).
TEST_CASE("taef2_decoder: W8A8 on every conv", "[taef2]") {
    check_policy("w8a8 (all convs)", {}, "w8a8", 39.5, 0.994);
}

TEST_CASE("taef2_decoder: W4A8 with groups of 128 where K allows (pool.3), W8A8 elsewhere", "[taef2]") {
    if (!have_taef2()) return;
    taef2_policy_map pool3;
    for (const char* b : {"3", "4", "5"}) pool3[std::string(b) + ".pool.3"] = "w4a8";
    check_policy("w4a8 on pool.3 (K 256), w8a8 else", pool3, "w8a8", 36.5, 0.988);
}

TEST_CASE("taef2_decoder: groups along (ci, ky, kx) against (ky, kx, ci) at 4 bits, group 32", "[taef2]") {
    if (!have_taef2()) return;
    const taef2_dev_set dev = load_dev();
    // CI compares one policy; TCOMP_FULL_EVAL=1 three.
    std::vector<const char*> policies{"w=int4:g32 a=int8:token"};
    if (std::getenv("TCOMP_FULL_EVAL") != nullptr) policies.insert(policies.end(), {"w=uint4:asym:g32 a=int8:token", "w=int4:g32"});
    for (const char* policy : policies) {
        double psnr[2] = {};
        for (conv_weight_order order : {conv_weight_order::taps, conv_weight_order::channels}) {
            const taef2_decoder dec = taef2_decoder::load(taef2_dir, {}, policy, {}, order);
            const quality q = run_policy(dec, dev.latents, dev.decoded);
            psnr[order == conv_weight_order::channels] = q.psnr;
            std::printf("[taef2] %-30s groups along %-8s PSNR %.2f dB, SSIM %.5f vs fp32\n", policy,
                        std::string(to_string(order)).c_str(), q.psnr, q.ssim);
        }
        CHECK(psnr[1] > psnr[0]);
    }
}

TEST_CASE("taef2_decoder: W4A8 and W4A16 with groups of 32 on every conv", "[taef2]") {
    check_policy("w4a8_g32 (all convs)", {}, "w4a8_g32", 24.0, 0.895);
    check_policy("w4a16_g32 (all convs)", {}, "w4a16_g32", 28.0, 0.945);
}

TEST_CASE("taef2_decoder: calibrated on the calibration latents, GPTQ / AWQ / SmoothQuant beat RTN on the dev latents",
          "[taef2][calib]") {
    if (!have_taef2() || !tcomp_test::have_models("the TAEF2 calibration checks", {"taef2_decoder/taef2_calib_latents.safetensors"}))
        return;
    const taef2_dev_set dev = load_dev();
    const auto cf = io::safetensors_file::open(taef2_dir / "taef2_calib_latents.safetensors");
    REQUIRE(cf.tensor("latents").shape == std::vector<std::int64_t>{5, 32, 32, 32});
    const std::vector<float> calib_latents = io::to_float(cf.tensor("latents"));
    // Statistics of every conv's im2col rows from the FP32 decoder on the 5 calibration latents (other crops than
    // the 2 dev latents the evaluation decodes).
    const taef2_decoder fp32 = taef2_decoder::load(taef2_dir);
    // CI calibrates on the first 2 of the 5 calibration latents (the statistics' Hessians cost ~11 s a latent
    // here); TCOMP_FULL_EVAL=1 on all 5 (the report's figures). Every im2col row goes into the Hessians: summing
    // every 2nd (input_statistics' hessian_stride) costs GPTQ 1.1 dB at W4A8 and 6 dB at W8A8 here (measured).
    const bool full = std::getenv("TCOMP_FULL_EVAL") != nullptr;
    const index_t calib_count = full ? 5 : 2;
    const model::layer_statistics stats =
        model::collect_input_statistics([&] { (void)fp32.decode(std::span<const float>(calib_latents).first(static_cast<std::size_t>(calib_count * 32 * 32 * 32)), calib_count, 32, 32); });
    CHECK(stats.size() == fp32.convs().size());
    auto run = [&](const char* spelling, const char* method) {
        const descriptor d = parse_descriptor(spelling);
        const calib::method m = calib::parse_method(method);
        const taef2_conv_builder build = [&](const std::string& layer, std::span<const float> w, index_t out, index_t in,
                                             index_t kernel, index_t padding, std::span<const float> bias) {
            // In the decoder's column order: the statistics are of its im2col rows.
            const conv_weight_order order = taef2_decoder::default_weight_order;
            const dense_matrix<float> wk = conv2d::im2col_weights(w, out, in, kernel, order);
            return std::optional<conv2d>(conv2d::from_compressed(calib::apply(m, wk.view(), &stats.at(layer), d), in,
                                                                 kernel, padding, bias, layer, order));
        };
        const taef2_decoder dec = taef2_decoder::load(taef2_dir, {}, "fp32", build);
        const quality q = run_policy(dec, dev.latents, dev.decoded);
        std::printf("[taef2] %-28s %-12s PSNR %.2f dB, SSIM %.5f vs fp32 (calibrated on %d other latents)\n", spelling,
                    method, q.psnr, q.ssim, static_cast<int>(calib_count));
        return q.psnr;
    };
    // CI runs the four below; TCOMP_FULL_EVAL=1 adds AWQ + GPTQ at W4A8 and GPTQ at W8A8 (the report's).
    const double w4_rtn = run("w=int4:g32 a=int8:token", "rtn");
    const double w4_gptq = run("w=int4:g32 a=int8:token", "gptq");
    CHECK(w4_rtn == Approx(26.82).margin(0.05));  // the typed w4a8_g32 policy's figure (check_policy above)
    CHECK(w4_gptq > (full ? 31.5 : 30.5));         // measured 31.75 on 5 latents, 31.65 on 2 (regression floor)
    const double w8_rtn = run("w=int8:channel a=int8:token", "rtn");
    const double w8_sq = run("w=int8:channel a=int8:token", "smoothquant");
    CHECK(w8_rtn == Approx(40.97).margin(0.05));
    CHECK(w8_sq > 44.5);  // measured 45.42 on 5 latents, 45.02 on 2
    if (full) {
        CHECK(run("w=int4:g32 a=int8:token", "awq+gptq") > w4_rtn);  // measured 32.03
        CHECK(run("w=int8:channel a=int8:token", "gptq") > w8_rtn);   // measured 43.11
    }
}
#else
TEST_CASE("taef2_decoder: full dev-set decodes need an optimized build", "[taef2]") {
    WARN("SKIPPED in this unoptimized build: the full 2x256x256 TAEF2 decodes (fp32 >= 60 dB, W8A8/W4A8/W4A16 "
         "bounds) run only with NDEBUG (RelWithDebInfo/Release); the 4x4 latent crop check ran");
}
#endif
