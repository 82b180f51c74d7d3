// Calibration methods (include/tcomp/calib/): the streaming input statistics, GPTQ, the importance-weighted
// scale search, AWQ, SmoothQuant, SparseGPT, Wanda and static activation scales. Each method must beat round to nearest on the layer's output error measured on inputs held apart
// from its calibration inputs; GPTQ with an identity Hessian must be RTN bit for bit; and the MNIST MLP with
// 2-bit weights is calibrated on the first half of the MNIST test set and evaluated on the second half.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "tcomp/calib/activation_scales.hpp"
#include "tcomp/calib/awq.hpp"
#include "tcomp/calib/gptq.hpp"
#include "tcomp/calib/imatrix.hpp"
#include "tcomp/calib/smoothquant.hpp"
#include "tcomp/calib/sparsegpt.hpp"
#include "tcomp/calib/statistics.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/statistics_file.hpp"
#include "tcomp/model/linear.hpp"
#include "tcomp/quant/descriptor_text.hpp"

namespace {

using namespace tcomp;
using tcomp_test::gaussian;

/// Activations with what makes real ones hard: correlated channels and a few channels 10x larger.
dense_matrix<float> correlated_inputs(index_t rows, index_t k, std::uint32_t seed) {
    const dense_matrix<float> z = gaussian(rows, k, seed);
    const dense_matrix<float> mix = gaussian(k, k, 4242, 0.6f / std::sqrt(static_cast<float>(k)) * 3.0f);
    dense_matrix<float> x(rows, k);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < k; ++c) {
            double acc = z(r, c);
            for (index_t j = 0; j < k; j += 7) acc += static_cast<double>(z(r, j)) * mix(j, c);  // a sparse mix
            const float scale = (c % 17 == 3) ? 10.0f : 1.0f + 0.5f * static_cast<float>(c % 5);
            x(r, c) = static_cast<float>(acc) * scale;
        }
    return x;
}

/// ||X (W - Q)^T||^2 / ||X W^T||^2.
double output_error(const dense_matrix<float>& x, matrix_view<const float> w, const dense_matrix<float>& q) {
    double num = 0.0, den = 0.0;
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t n = 0; n < w.rows(); ++n) {
            double y = 0.0, yq = 0.0;
            for (index_t c = 0; c < x.cols(); ++c) y += static_cast<double>(x(r, c)) * w(n, c), yq += static_cast<double>(x(r, c)) * q(n, c);
            num += (y - yq) * (y - yq), den += y * y;
        }
    return num / den;
}

calib::input_statistics statistics_of(const dense_matrix<float>& x, bool hessian = true, index_t sample = 0) {
    calib::input_statistics s(x.cols(), hessian, sample);
    // In two batches, as a model run would deliver them.
    const index_t half = x.rows() / 2;
    s.observe(matrix_view<const float>(x.data(), half, x.cols()));
    s.observe(matrix_view<const float>(x.data() + half * x.cols(), x.rows() - half, x.cols()));
    return s;
}

}  // namespace

TEST_CASE("input statistics: streaming sums equal the direct ones; merge equals one pass", "[calib]") {
    const auto x = gaussian(37, 12, 11, 2.0f);
    const calib::input_statistics s = statistics_of(x);
    REQUIRE(s.rows() == 37);
    const std::vector<float> ms = s.mean_square();
    const Eigen::MatrixXd h = s.hessian();
    for (index_t c = 0; c < 12; ++c) {
        double sq = 0.0;
        float amax = 0.0f, lo = x(0, c), hi = x(0, c);
        for (index_t r = 0; r < 37; ++r)
            sq += static_cast<double>(x(r, c)) * x(r, c), amax = std::max(amax, std::fabs(x(r, c))),
                lo = std::min(lo, x(r, c)), hi = std::max(hi, x(r, c));
        CHECK(ms[static_cast<std::size_t>(c)] == Approx(sq / 37).epsilon(1e-6));
        CHECK(s.absmax()[static_cast<std::size_t>(c)] == amax);
        CHECK(s.channel_min()[static_cast<std::size_t>(c)] == lo);
        CHECK(s.channel_max()[static_cast<std::size_t>(c)] == hi);
        for (index_t j = 0; j < 12; ++j) {
            double hij = 0.0;
            for (index_t r = 0; r < 37; ++r) hij += static_cast<double>(x(r, c)) * x(r, j);
            // Off the diagonal each batch's sum is taken in float: |error| <= rows * 2^-23 * sum |x_c x_j|, and
            // sum |x_c x_j| <= sqrt(S_c S_j) (Cauchy-Schwarz). The diagonal is the double sum of squares.
            double sc = 0.0, sj = 0.0;
            for (index_t r = 0; r < 37; ++r) sc += static_cast<double>(x(r, c)) * x(r, c), sj += static_cast<double>(x(r, j)) * x(r, j);
            if (c == j) CHECK(h(c, j) == sq);
            else CHECK(std::fabs(h(c, j) - hij) <= 37.0 * std::ldexp(1.0, -23) * std::sqrt(sc * sj));
        }
    }
    calib::input_statistics a(12), b(12);
    a.observe(matrix_view<const float>(x.data(), 20, 12));
    b.observe(matrix_view<const float>(x.data() + 20 * 12, 17, 12));
    a.merge(b);
    CHECK(a.rows() == 37);
    // Other batch boundaries than statistics_of's (18 + 19 rows): the float batch sums differ within the bound.
    CHECK((a.hessian() - h).cwiseAbs().maxCoeff() <= 37.0 * std::ldexp(1.0, -23) * h.diagonal().maxCoeff());
    for (index_t c = 0; c < 12; ++c) CHECK(a.hessian()(c, c) == a.to_parts().sum_sq[static_cast<std::size_t>(c)]);
    CHECK(a.mean_square() == ms);
}

TEST_CASE("input statistics: bad input is a named error and changes nothing", "[calib][hostile]") {
    calib::input_statistics s(8);
    CHECK_THROWS_WITH(s.mean_square(), Catch::Contains("no calibration rows"));
    CHECK_THROWS_WITH(s.hessian(), Catch::Contains("empty calibration set"));
    auto x = gaussian(3, 8, 1);
    x(2, 5) = std::nanf("");
    CHECK_THROWS_WITH(s.observe(x.view()), Catch::Contains("x(2, 5)") && Catch::Contains("NaN"));
    CHECK(s.rows() == 0);
    CHECK_THROWS_AS(s.observe(gaussian(3, 9, 1).view()), shape_error);
    CHECK_THROWS_AS(s.merge(calib::input_statistics(9)), shape_error);
    CHECK_THROWS_AS(calib::input_statistics(0), shape_error);
    calib::input_statistics no_h(8, false);
    no_h.observe(gaussian(3, 8, 2).view());
    CHECK_THROWS_WITH(no_h.hessian(), Catch::Contains("without the Hessian"));
}

TEST_CASE("gptq: with an identity Hessian it is round to nearest, bit for bit", "[calib]") {
    // H = sum x^T x = I: no column's error can be compensated by another, so every code is RTN's.
    const index_t k = 64;
    dense_matrix<float> eye(k, k);
    for (index_t i = 0; i < k; ++i) eye(i, i) = 1.0f;
    const calib::input_statistics s = statistics_of(eye);
    const auto w = gaussian(24, k, 5);
    for (const char* text : {"w=int4:g32", "w=uint3:asym:g16", "w=int8:channel", "w=int4:g32:shift3", "w=nf4:g32"}) {
        const descriptor d = parse_descriptor(text);
        const compressed_tensor rtn = compress(d, w.view());
        for (bool act_order : {false, true}) {
            INFO(text << (act_order ? " act_order" : ""));
            const compressed_tensor g = calib::gptq(w.view(), s, d, {.act_order = act_order});
            CHECK(g.storage.codes == rtn.storage.codes);
            CHECK(g.storage.scales == rtn.storage.scales);
            CHECK(g.storage.zero_points == rtn.storage.zero_points);
        }
    }
}

TEST_CASE("gptq beats round to nearest on held-out inputs, for every integer width and scale kind", "[calib]") {
    const index_t n = 48, k = 128;
    // 512 calibration rows for K = 128 (with half as many GPTQ overfits them: calibration proxy 0.20 against RTN's
    // 0.46, held-out 0.45 against 0.45 at 2 bits). Unoptimized builds evaluate on fewer held-out rows.
#ifdef NDEBUG
    const index_t held_rows = 512;
#else
    const index_t held_rows = 192;
#endif
    const auto w = gaussian(n, k, 77);
    const auto calib_x = correlated_inputs(512, k, 1001);
    const auto held_out = correlated_inputs(held_rows, k, 2002);  // other draws: the evaluation split
    const calib::input_statistics s = statistics_of(calib_x);
    for (const char* text : {"w=int2:g32", "w=int3:g32", "w=int4:g32", "w=uint4:asym:g32", "w=int8:channel",
                             "w=int4:g32:pow2", "w=int4:g16:shift4", "w=int4:g32:ml4", "w=ternary:channel",
                             "w=int4:channel a=int8:token", "w=nf4:g32"}) {
        const descriptor d = parse_descriptor(text);
        const double rtn = output_error(held_out, w.view(), dequantize(compress(d, w.view())));
        const scale_table importance = calib::importance_scales(w.view(), s.mean_square(), d);
        double held[4] = {};
        for (int variant = 0; variant < 4; ++variant) {  // dynamic, static, act-order, act-order on imatrix scales
            calib::gptq_options o;
            o.static_groups = variant == 1;
            o.act_order = variant >= 2;
            if (variant == 3) o.scales = &importance;
            calib::gptq_report report;
            const compressed_tensor g = calib::gptq(w.view(), s, d, o, &report);
            tcomp::detail::check_tensor(g, "test");
            const double e = held[variant] = output_error(held_out, w.view(), dequantize(g));
            INFO(text << " variant " << variant << ": held-out output error RTN " << rtn << ", GPTQ " << e
                      << "; calibration proxy RTN " << report.proxy_loss_rtn << ", GPTQ " << report.proxy_loss);
            CHECK(report.proxy_loss < report.proxy_loss_rtn);
            CHECK(report.static_groups == (variant > 0 || d.weights.group() == 0));
            // Dynamic groups (variant 0) at 2 bits lose on held-out inputs here (0.51 against RTN's 0.45, measured):
            // the updated weights widen the groups' ranges. Static scales do not (0.35; 0.08 with importance scales).
            if (variant > 0 || d.weights.format.kind != format_kind::int_ || d.weights.format.bits > 2)
                CHECK(e < 0.9 * rtn);
        }
        // TCOMP_FULL_EVAL=1 prints the table of docs/quantization-methods.md (optimised builds: 512 held-out rows).
        if (std::getenv("TCOMP_FULL_EVAL") != nullptr)
            std::printf("%-30s RTN %.4f | GPTQ dynamic %.4f static %.4f act-order %.4f | imatrix %.4f | "
                        "GPTQ+imatrix act-order %.4f\n",
                        text, rtn, held[0], held[1], held[2],
                        output_error(held_out, w.view(), dequantize(calib::importance_quantize(w.view(), s.mean_square(), d))),
                        held[3]);
    }
}

TEST_CASE("gptq: threads share the rows and give the single-threaded result bit for bit", "[calib]") {
    const auto w = gaussian(97, 160, 19);  // rows not divisible by the thread counts
    const calib::input_statistics s = statistics_of(correlated_inputs(300, 160, 5));
    for (const char* text : {"w=int4:g32", "w=uint3:asym:g32"})
        for (bool act_order : {false, true}) {
            const descriptor d = parse_descriptor(text);
            calib::gptq_options o;
            o.act_order = act_order;
            o.block = 48;
            const compressed_tensor one = calib::gptq(w.view(), s, d, o);
            for (int threads : {2, 3, 8}) {
                o.threads = threads;
                const compressed_tensor many = calib::gptq(w.view(), s, d, o);
                INFO(text << " act_order " << act_order << " threads " << threads);
                CHECK(many.storage.codes == one.storage.codes);
                CHECK(many.storage.scales == one.storage.scales);
                CHECK(many.storage.zero_points == one.storage.zero_points);
            }
        }
}

TEST_CASE("gptq output is an ordinary tensor: a model layer runs it like any other", "[calib]") {
    const auto w = gaussian(40, 64, 9);
    const calib::input_statistics s = statistics_of(correlated_inputs(200, 64, 3));
    const descriptor d = parse_descriptor("w=int4:g32 a=int8:token");  // a typed kernel policy (w4a8_g32)
    const compressed_tensor g = calib::gptq(w.view(), s, d);
    const model::linear a = model::linear::from_compressed(g, {}, "gptq");
    CHECK(a.kernel_note().empty());
    // The SIMD kernel on the GPTQ codes gives the oracle's result on them, bit for bit (the int8 path is exact).
    const auto x = gaussian(3, 64, 10);
    dense_matrix<float> ya(3, 40);
    a.forward(x.view(), ya.view());
    dense_matrix<float> expected(3, 40);
    reference::matmul(x.view(), to_typed<model::w4a8_g32>(g), expected.view());
    CHECK(ya.storage() == expected.storage());
}

TEST_CASE("gptq: bad input is a named error, never a silent RTN", "[calib][hostile]") {
    const auto w = gaussian(8, 32, 1);
    const calib::input_statistics s = statistics_of(gaussian(64, 32, 2));
    const descriptor d = parse_descriptor("w=int4:g32");
    CHECK_THROWS_AS(calib::gptq(gaussian(8, 16, 1).view(), s, parse_descriptor("w=int4:g16")), shape_error);
    CHECK_THROWS_WITH(calib::gptq(w.view(), calib::input_statistics(32), d), Catch::Contains("no calibration rows"));
    CHECK_THROWS_WITH(calib::gptq(w.view(), s, parse_descriptor("w=int4:g32 s=2:4")), Catch::Contains("SparseGPT"));
    CHECK_THROWS_WITH(calib::gptq(w.view(), s, parse_descriptor("w=int4:g32:stoch")), Catch::Contains("stochastic"));
    CHECK_THROWS_AS(calib::gptq(w.view(), s, d, {.damp = -1.0}), value_error);
    CHECK_THROWS_AS(calib::gptq(w.view(), s, parse_descriptor("w=int4:g24")), shape_error);  // 24 does not divide 32
    // A Hessian (from a statistics file) that no damping of 1% makes definite.
    calib::input_statistics::parts p;
    p.rows = 4;
    p.sum_sq.assign(32, 1.0);
    p.absmax.assign(32, 1.0f), p.min.assign(32, -1.0f), p.max.assign(32, 1.0f);
    p.hessian.assign(32 * 32, 0.0);
    for (index_t i = 0; i < 32; ++i) p.hessian[static_cast<std::size_t>(i * 33)] = 1.0;
    p.hessian[1] = p.hessian[32] = 2.0;  // [[1, 2], [2, 1]] in the corner: an eigenvalue -1
    const auto indefinite = calib::input_statistics::from_parts(32, p, "test");
    CHECK_THROWS_WITH(calib::gptq(w.view(), indefinite, d),
                      Catch::Contains("not positive definite") && Catch::Contains("raise damp"));
    // Two identical channels: H is singular, and the default damping makes it definite.
    auto x = gaussian(64, 32, 3);
    for (index_t r = 0; r < 64; ++r) x(r, 7) = x(r, 3);
    CHECK_NOTHROW(calib::gptq(w.view(), statistics_of(x), d));
    auto bad = w;
    bad(1, 2) = INFINITY;
    CHECK_THROWS_WITH(calib::gptq(bad.view(), s, d), Catch::Contains("W(1, 2)"));
    // A channel the calibration never excites is dead: its weights are zeroed, the rest is GPTQ as usual.
    auto xd = gaussian(64, 32, 4);
    for (index_t r = 0; r < 64; ++r) xd(r, 30) = 0.0f;
    calib::gptq_report report;
    const compressed_tensor g = calib::gptq(w.view(), statistics_of(xd), d, {}, &report);
    CHECK(report.dead_columns == 1);
    const auto deq = dequantize(g);
    for (index_t r = 0; r < 8; ++r) CHECK(deq(r, 30) == 0.0f);
}

TEST_CASE("importance-weighted scales: never worse than RTN on the weighted error, better on held-out outputs",
          "[calib]") {
    // Independent channels of very different power: the case the diagonal importance models exactly.
    const index_t n = 32, k = 128, rows = 400;
    const auto w = gaussian(n, k, 31);
    auto power = [](index_t c) { return c % 9 == 0 ? 8.0f : 0.5f + static_cast<float>(c % 4); };
    auto inputs = [&](std::uint32_t seed) {
        auto x = gaussian(rows, k, seed);
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < k; ++c) x(r, c) *= power(c);
        return x;
    };
    const auto calib_x = inputs(500), held_out = inputs(600);
    const std::vector<float> importance = statistics_of(calib_x, false).mean_square();
    for (const char* text : {"w=int3:g32", "w=int4:g32", "w=uint4:asym:g32", "w=int4:g32:pow2", "w=int4:g32:shift3",
                             "w=fp4_e2m1:g32", "w=int2:channel", "w=int8:tensor"}) {
        const descriptor d = parse_descriptor(text);
        const compressed_tensor rtn = compress(d, w.view());
        const compressed_tensor im = calib::importance_quantize(w.view(), importance, d);
        tcomp::detail::check_tensor(im, "test");
        const auto qr = dequantize(rtn), qi = dequantize(im);
        double er = 0.0, ei = 0.0;
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < k; ++c) {
                const double imp = importance[static_cast<std::size_t>(c)];
                er += imp * (w(r, c) - qr(r, c)) * (w(r, c) - qr(r, c));
                ei += imp * (w(r, c) - qi(r, c)) * (w(r, c) - qi(r, c));
            }
        const double out_rtn = output_error(held_out, w.view(), qr), out_im = output_error(held_out, w.view(), qi);
        INFO(text << ": weighted error RTN " << er << ", imatrix " << ei << "; held-out output error RTN " << out_rtn
                  << ", imatrix " << out_im);
        CHECK(ei <= er);
        if (std::string(text) != "w=int8:tensor") CHECK(out_im < 0.97 * out_rtn);  // int8 per tensor: little to gain
    }
    CHECK_THROWS_AS(calib::importance_quantize(w.view(), std::vector<float>(5, 1.0f), parse_descriptor("w=int4:g32")),
                    shape_error);
    std::vector<float> negative(static_cast<std::size_t>(k), 1.0f);
    negative[9] = -1.0f;
    CHECK_THROWS_WITH(calib::importance_quantize(w.view(), negative, parse_descriptor("w=int4:g32")),
                      Catch::Contains("importance(9)"));
}

TEST_CASE("MNIST MLP, 2-bit weights: GPTQ calibrated on test images 0-4999, evaluated on 5000-9999", "[calib][mnist]") {
    if (!tcomp_test::have_models("the MNIST calibration checks",
                                 {"mnist_mlp/model.safetensors", "mnist_mlp/test_set.safetensors"}))
        return;
    const std::filesystem::path dir = tcomp_test::models_dir() / "mnist_mlp";
    const io::safetensors_file model = io::safetensors_file::open(dir / "model.safetensors");
    const io::safetensors_file data = io::safetensors_file::open(dir / "test_set.safetensors");
    auto floats = [&](const char* name) { return io::to_float(model.tensor(name)); };
    const std::vector<float> w1 = floats("fc1.weight"), b1 = floats("fc1.bias"), w2 = floats("fc2.weight"),
                             b2 = floats("fc2.bias");
#ifndef NDEBUG
    // Debug / sanitizer builds run Eigen's factorisations at -O0 (minutes here); the algorithm tests above ran.
    WARN("SKIPPED in this unoptimized build: the MNIST calibration run (it runs in optimized builds)");
    return;
#endif
    const index_t calib_n = 5000, eval_n = 5000;
    const io::tensor_view& images = data.tensor("images");
    const io::tensor_view& labels = data.tensor("labels");
    auto pixels = [&](index_t first, index_t count) {
        dense_matrix<float> x(count, 784);
        for (index_t i = 0; i < count; ++i)
            for (index_t p = 0; p < 784; ++p)
                x(i, p) = static_cast<float>(std::to_integer<int>(images.data[static_cast<std::size_t>((first + i) * 784 + p)])) / 255.0f;
        return x;
    };
    const dense_matrix<float> calib_x = pixels(0, calib_n), eval_x = pixels(5000, eval_n);
    const model::linear fc1_fp32 = model::linear::make("fp32", matrix_view<const float>(w1.data(), 500, 784), b1, "fc1");
    auto hidden = [&](const model::linear& fc1, const dense_matrix<float>& x) {
        dense_matrix<float> h(x.rows(), 500);
        fc1.forward(x.view(), h.view(), 2);
        for (float& v : h.storage()) v = std::max(v, 0.0f);
        return h;
    };
    auto accuracy = [&](const model::linear& fc1, const model::linear& fc2) {
        const dense_matrix<float> h = hidden(fc1, eval_x);
        dense_matrix<float> y(eval_n, 10);
        fc2.forward(h.view(), y.view(), 2);
        index_t right = 0;
        for (index_t i = 0; i < eval_n; ++i) {
            const float* row = y.data() + i * 10;
            right += (std::max_element(row, row + 10) - row) ==
                     std::to_integer<int>(labels.data[static_cast<std::size_t>(5000 + i)]);
        }
        return 100.0 * static_cast<double>(right) / static_cast<double>(eval_n);
    };
    const descriptor d = parse_descriptor("w=uint2:asym:channel");
    const matrix_view<const float> w1v(w1.data(), 500, 784), w2v(w2.data(), 10, 500);
    const model::linear fc2_fp32 = model::linear::make("fp32", w2v, b2, "fc2");
    const double fp32 = accuracy(fc1_fp32, fc2_fp32);
    const model::linear rtn1 = model::linear::from_compressed(compress(d, w1v), b1, "fc1");
    const model::linear rtn2 = model::linear::from_compressed(compress(d, w2v), b2, "fc2");
    const double rtn = accuracy(rtn1, rtn2);
    // GPTQ layer by layer: fc2 sees the hidden activations of the already quantized fc1 (the sequential rule).
    double best = 0.0;
    for (bool act_order : {false, true}) {
        const calib::input_statistics s1 = statistics_of(calib_x);
        const model::linear g1 = model::linear::from_compressed(calib::gptq(w1v, s1, d, {.act_order = act_order}), b1, "fc1");
        const calib::input_statistics s2 = statistics_of(hidden(g1, calib_x));
        const model::linear g2 = model::linear::from_compressed(calib::gptq(w2v, s2, d, {.act_order = act_order}), b2, "fc2");
        const double acc = accuracy(g1, g2);
        WARN("MNIST 2-bit per-channel (uint2 asym), eval images 5000-" << 5000 + eval_n - 1 << ": FP32 " << fp32
                                                                       << "%, RTN " << rtn << "%, GPTQ"
                                                                       << (act_order ? " act-order " : " ") << acc << "%");
        CHECK(acc > rtn);
        best = std::max(best, acc);
    }
    CHECK(best > rtn + 2.0);  // a regression floor below the measurement (docs/quantization-methods.md)
}

TEST_CASE("statistics files: written once, read back identical; a hostile file is a named error", "[calib][hostile]") {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tcomp_stats_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    io::statistics_map stats;
    stats.emplace("fc1", statistics_of(gaussian(30, 16, 1)));
    stats.emplace("model.layers.0.mlp.down_proj", statistics_of(gaussian(7, 12, 2), false));
    io::write_statistics(dir / "s.safetensors", stats, {{"model", "test"}, {"split", "calibration rows 0..29"}});
    const io::statistics_map back = io::read_statistics(dir / "s.safetensors");
    REQUIRE(back.size() == 2);
    for (const auto& [layer, s] : stats) {
        const auto& b = back.at(layer);
        CHECK(b.rows() == s.rows());
        CHECK(b.mean_square() == s.mean_square());
        CHECK(b.has_hessian() == s.has_hessian());
        if (s.has_hessian()) CHECK(b.hessian() == s.hessian());
        CHECK(std::vector<float>(b.absmax().begin(), b.absmax().end()) ==
              std::vector<float>(s.absmax().begin(), s.absmax().end()));
    }
    // Each defect of a file named with the tensor or the rule it breaks.
    auto write_with = [&](const std::function<void(io::safetensors_writer&)>& edit) {
        io::safetensors_writer w;
        w.set_metadata("tcomp.statistics", "1");
        const auto p = stats.at("fc1").to_parts();
        const std::vector<std::int64_t> rows{p.rows};
        w.add("fc1.rows", io::dtype::i64, {1}, std::as_bytes(std::span<const std::int64_t>(rows)));
        w.add("fc1.sum_sq", io::dtype::f64, {16}, std::as_bytes(std::span<const double>(p.sum_sq)));
        w.add_f32("fc1.absmax", {16}, p.absmax);
        w.add_f32("fc1.min", {16}, p.min);
        edit(w);
        w.write(dir / "bad.safetensors");
        return tcomp_test::error_of([&] { (void)io::read_statistics(dir / "bad.safetensors"); });
    };
    const auto p = stats.at("fc1").to_parts();
    CHECK_THAT(write_with([&](io::safetensors_writer&) {}), Catch::Contains("fc1.max"));
    CHECK_THAT(write_with([&](io::safetensors_writer& w) { w.add_f32("fc1.max", {15}, std::vector<float>(15, 1.0f)); }),
               Catch::Contains("fc1.max") && Catch::Contains("[15]"));
    CHECK_THAT(write_with([&](io::safetensors_writer& w) {
                   auto bad = p.max;
                   bad[3] = -1e9f;  // max below min
                   w.add_f32("fc1.max", {16}, bad);
               }),
               Catch::Contains("channel 3"));
    CHECK_THAT(write_with([&](io::safetensors_writer& w) {
                   w.add_f32("fc1.max", {16}, p.max);
                   w.add_f32("stray", {1}, std::vector<float>{1.0f});
               }),
               Catch::Contains("stray") && Catch::Contains("belongs to no layer"));
    CHECK_THAT(write_with([&](io::safetensors_writer& w) {
                   w.add_f32("fc1.max", {16}, p.max);
                   auto h = p.hessian;
                   h[1] += 1.0;  // (0, 1) no longer equals (1, 0)
                   w.add("fc1.hessian", io::dtype::f64, {16, 16}, std::as_bytes(std::span<const double>(h)));
               }),
               Catch::Contains("not finite and symmetric"));
    {
        io::safetensors_writer w;
        w.add_f32("x", {1}, std::vector<float>{1.0f});
        w.write(dir / "plain.safetensors");
        CHECK_THAT(tcomp_test::error_of([&] { (void)io::read_statistics(dir / "plain.safetensors"); }),
                   Catch::Contains("not a tcomp statistics file"));
    }
    std::filesystem::remove_all(dir);
}

namespace {

/// ||X W^T - round_trip(X / s) Wq^T||^2 / ||X W^T||^2 on held-out rows: the layer as model::linear runs it
/// (smoothing, then activation quantization as the descriptor says, then the stored weights).
double layer_error(const dense_matrix<float>& x, matrix_view<const float> w, const compressed_tensor& t) {
    return calib::detail::sample_output_error(x.view(), w, t);
}

/// Inputs with SmoothQuant's problem: a few channels 60x larger than the rest.
dense_matrix<float> outlier_inputs(index_t rows, index_t k, std::uint32_t seed) {
    dense_matrix<float> x = correlated_inputs(rows, k, seed);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 5; c < k; c += 29) x(r, c) *= 6.0f;  // 60x with correlated_inputs' 10x channels nearby
    return x;
}

}  // namespace

TEST_CASE("input statistics: a reproducible uniform row sample, merged in proportion; divided_by is exact",
          "[calib]") {
    const auto x = gaussian(1000, 8, 5);
    calib::input_statistics a(8, false, 100), b(8, false, 100);
    for (index_t r0 = 0; r0 < 1000; r0 += 37) {
        const index_t rows = std::min<index_t>(37, 1000 - r0);
        a.observe(matrix_view<const float>(x.data() + r0 * 8, rows, 8));
        b.observe(matrix_view<const float>(x.data() + r0 * 8, rows, 8));
    }
    REQUIRE(a.sample_count() == 100);
    const auto sa = a.to_parts().sample, sb = b.to_parts().sample;
    CHECK(sa == sb);  // same rows, same order: same sample
    // Every sampled row is a row of x, and they come from all over (not the first 100).
    index_t late = 0;
    for (index_t i = 0; i < 100; ++i) {
        bool found = false;
        for (index_t r = 0; r < 1000 && !found; ++r)
            if (std::equal(sa.begin() + i * 8, sa.begin() + (i + 1) * 8, x.data() + r * 8)) found = true, late += r >= 500;
        CHECK(found);
    }
    CHECK(late > 30);
    CHECK(late < 70);
    // Merge: 1000 rows with 3000 rows gives a sample about a quarter from the first.
    calib::input_statistics c(8, false, 100);
    const auto y = gaussian(3000, 8, 6);
    c.observe(y.view());
    calib::input_statistics merged = a;
    merged.merge(c);
    CHECK(merged.sample_count() == 100);
    CHECK(merged.rows() == 4000);
    // divided_by: the statistics of x / s.
    std::vector<float> s{1.0f, 2.0f, 0.5f, 3.0f, 1.0f, 0.25f, 8.0f, 1.5f};
    dense_matrix<float> xs(1000, 8);
    for (index_t r = 0; r < 1000; ++r)
        for (index_t col = 0; col < 8; ++col) xs(r, col) = x(r, col) / s[static_cast<std::size_t>(col)];
    calib::input_statistics h(8, true, 50);
    h.observe(x.view());
    calib::input_statistics hs(8, true, 50);
    hs.observe(xs.view());
    const calib::input_statistics d = h.divided_by(s);
    for (std::size_t i = 0; i < 8; ++i) {
        CHECK(d.mean_square()[i] == Approx(hs.mean_square()[i]).epsilon(1e-6));
        CHECK(d.absmax()[i] == hs.absmax()[i]);
    }
    CHECK((d.hessian() - hs.hessian()).norm() < 1e-5 * hs.hessian().norm());  // float batch products (see above)
    CHECK(d.to_parts().sample == hs.to_parts().sample);  // same positions sampled, each divided exactly
    // A Hessian stride: the Hessian sums rows 0, 3, 6, ... of the stream (across batches); the rest sees all rows.
    calib::input_statistics strided(8, true, 0, 3), every_third(8, true);
    for (index_t r0 = 0; r0 < 1000; r0 += 37)
        strided.observe(matrix_view<const float>(x.data() + r0 * 8, std::min<index_t>(37, 1000 - r0), 8));
    for (index_t r = 0; r < 1000; r += 3) every_third.observe(matrix_view<const float>(x.data() + r * 8, 1, 8));
    CHECK(strided.rows() == 1000);
    CHECK(strided.hessian_rows() == 334);
    CHECK((strided.hessian() - every_third.hessian()).norm() < 1e-5 * every_third.hessian().norm());
    CHECK(strided.mean_square() == a.mean_square());
    {
        const std::filesystem::path f = std::filesystem::temp_directory_path() / ("tcomp_strided_" + std::to_string(::getpid()));
        io::write_statistics(f, {{"l", strided}});
        const io::statistics_map back = io::read_statistics(f);
        CHECK(back.at("l").hessian_rows() == 334);
        CHECK(back.at("l").hessian() == strided.hessian());
        std::filesystem::remove(f);
    }
    CHECK_THAT(tcomp_test::error_of([&] { (void)h.divided_by(std::vector<float>(8, 0.0f)); }), Catch::Contains("divisor 0"));
    CHECK_THAT(tcomp_test::error_of([&] { (void)h.divided_by(std::vector<float>(7, 1.0f)); }), Catch::Contains("7 divisors"));
}

TEST_CASE("awq: smoothing found on outlier channels beats RTN on held-out inputs; the layer and files carry it",
          "[calib]") {
    const index_t n = 48, k = 128;
    const auto w = gaussian(n, k, 31);
    const calib::input_statistics s = statistics_of(outlier_inputs(512, k, 1003));
    const auto held_out = outlier_inputs(256, k, 2004);
    for (const char* text : {"w=int3:g32", "w=int4:g32", "w=uint4:asym:g32", "w=int4:channel", "w=int4:g32 a=int8:token"}) {
        const descriptor d = parse_descriptor(text);
        const compressed_tensor rtn = compress(d, w.view());
        calib::awq_report report;
        const compressed_tensor t = calib::awq(w.view(), s, d, {}, &report);
        tcomp::detail::check_tensor(t, "test");
        const double e_rtn = layer_error(held_out, w.view(), rtn), e = layer_error(held_out, w.view(), t);
        INFO(text << ": alpha " << report.alpha << (report.clipped ? " + clip" : "") << ", held-out RTN " << e_rtn
                  << ", AWQ " << e << "; calibration RTN " << report.proxy_loss_rtn << ", AWQ " << report.proxy_loss);
        CHECK(report.proxy_loss <= report.proxy_loss_rtn);
        CHECK(report.alpha > 0.0f);
        CHECK(t.smoothing.size() == static_cast<std::size_t>(k));
        CHECK(e < 0.85 * e_rtn);
        // AWQ then GPTQ on the smoothed problem: better again on the calibration proxy.
        calib::awq_report rg;
        const compressed_tensor g = calib::awq(w.view(), s, d, {.gptq = true}, &rg);
        INFO("AWQ + GPTQ: held-out " << layer_error(held_out, w.view(), g) << ", calibration " << rg.proxy_loss);
        CHECK(rg.proxy_loss < report.proxy_loss);
        CHECK(layer_error(held_out, w.view(), g) < e_rtn);
    }
    // The smoothed tensor through a model layer (x / s, then the kernels on W diag(s)) and through a file.
    const descriptor d = parse_descriptor("w=int4:g32 a=int8:token");
    const compressed_tensor t = calib::awq(w.view(), s, d);
    const model::linear layer = model::linear::from_compressed(t, {}, "awq");
    CHECK(layer.kernel_note().empty());  // w4a8_g32: the SIMD kernels
    CHECK(layer.smoothing().size() == static_cast<std::size_t>(k));
    const auto x = gaussian(5, k, 12);
    dense_matrix<float> y(5, n), expected(5, n), xs(5, k);
    layer.forward(x.view(), y.view());
    for (index_t r = 0; r < 5; ++r)
        for (index_t c = 0; c < k; ++c) xs(r, c) = x(r, c) / t.smoothing[static_cast<std::size_t>(c)];
    compressed_tensor raw = t;
    raw.smoothing.clear();
    model::linear::from_compressed(raw, {}, "raw").forward(xs.view(), expected.view());
    CHECK(y.storage() == expected.storage());
    io::compressed_model_writer writer;
    writer.add_compressed("awq.weight", t);
    const std::vector<std::byte> bytes = writer.to_bytes();
    const io::compressed_model_file file = io::compressed_model_file::from_bytes(bytes);
    const compressed_tensor back = file.tensor("awq.weight");
    CHECK(back.smoothing == t.smoothing);
    CHECK(back.storage.codes == t.storage.codes);
    dense_matrix<float> y_file(5, n);
    model::linear::from_compressed(back, {}, "awq").forward(x.view(), y_file.view());
    CHECK(y_file.storage() == y.storage());
    CHECK(file.floats("awq.weight") == effective_weights(t).storage());
    // Hostile: smoothing of the wrong size or sign.
    compressed_tensor bad = t;
    bad.smoothing[7] = -1.0f;
    CHECK_THAT(tcomp_test::error_of([&] { (void)model::linear::from_compressed(bad, {}, "bad"); }),
               Catch::Contains("smoothing divisor 7"));
    bad.smoothing.resize(5);
    CHECK_THAT(tcomp_test::error_of([&] { writer.add_compressed("bad.weight", bad); }), Catch::Contains("5 smoothing divisors"));
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::awq(w.view(), s, parse_descriptor("w=binary:channel")); }),
               Catch::Contains("sign-only"));
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::awq(w.view(), calib::input_statistics(k), d); }),
               Catch::Contains("no calibration rows"));
}

TEST_CASE("smoothquant: migration beats plain W8A8 on held-out outlier inputs, dynamic and static activations",
          "[calib]") {
    const index_t n = 64, k = 128;
    const auto w = gaussian(n, k, 41);
    const calib::input_statistics s = statistics_of(outlier_inputs(512, k, 1005), false, 256);
    const auto held_out = outlier_inputs(256, k, 2006);
    for (const char* text : {"w=int8:channel a=int8:token", "w=int8:channel a=int8:tensor:static",
                             "w=int4:g32 a=int8:token", "w=int8:channel a=int4:token"}) {
        const descriptor d = parse_descriptor(text);
        const compressed_tensor plain = calib::with_static_activations(compress(d, w.view()), s);
        calib::smoothquant_report report;
        const compressed_tensor t = calib::smoothquant(w.view(), s, d, {}, &report);
        tcomp::detail::check_tensor(t, "test");
        const double e_plain = layer_error(held_out, w.view(), plain), e = layer_error(held_out, w.view(), t);
        INFO(text << ": alpha " << report.alpha << ", held-out plain " << e_plain << ", SmoothQuant " << e
                  << "; sample plain " << report.error_plain << ", SmoothQuant " << report.error);
        CHECK(report.error <= report.error_plain);
        CHECK(report.alpha >= 0.0f);
        CHECK(e < 0.8 * e_plain);
        CHECK(t.needs_calibration() == t.activation_scales.has_value());
    }
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::smoothquant(w.view(), s, parse_descriptor("w=int4:g32")); }),
               Catch::Contains("keeps activations in float"));
    CHECK_THAT(tcomp_test::error_of([&] {
                   (void)calib::smoothquant(w.view(), statistics_of(gaussian(64, k, 1), false), parse_descriptor("w=int8:channel a=int8:token"));
               }),
               Catch::Contains("no row sample"));
}

TEST_CASE("static activation scales from statistics: min/max exact, the sample for the clip searches", "[calib]") {
    const auto x = outlier_inputs(300, 64, 7);
    const calib::input_statistics s = statistics_of(x, false, 64);
    for (const char* text : {"w=int8:channel a=int8:tensor:static", "w=int8:channel a=uint8:asym:tensor:static",
                             "w=int8:channel a=int8:g16:static"}) {
        const descriptor d = parse_descriptor(text);
        const std::vector<matrix_view<const float>> all{x.view()};
        const scale_table direct = calibrate_activations(*d.activations, all);
        const scale_table from_stats = calib::static_activation_scales(s, *d.activations);
        INFO(text);
        CHECK(from_stats.effective == direct.effective);  // the min/max observer sees every row's extremes
        CHECK(from_stats.zero == direct.zero);
    }
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::static_activation_scales(s, *parse_descriptor("w=int8:channel a=int8:token").activations); }),
               Catch::Contains("dynamic"));
}

TEST_CASE("sparsegpt and wanda: 2:4 masks that look at the activations beat magnitude 2:4 on held-out inputs",
          "[calib]") {
    const index_t n = 48, k = 128;
    const auto w = gaussian(n, k, 51);
    const calib::input_statistics s = statistics_of(correlated_inputs(512, k, 1007));
    const auto held_out = correlated_inputs(256, k, 2008);
    for (const char* text : {"w=int8:channel s=2:4", "w=int4:g32 s=2:4", "w=int8:channel a=int8:token s=2:4"}) {
        const descriptor d = parse_descriptor(text);
        const compressed_tensor magnitude = compress(d, w.view());
        calib::sparsegpt_report report;
        const compressed_tensor g = calib::sparsegpt(w.view(), s, d, {}, &report);
        const compressed_tensor wa = calib::wanda(w.view(), s, d);
        tcomp::detail::check_tensor(g, "test");
        tcomp::detail::check_tensor(wa, "test");
        const double e_mag = layer_error(held_out, w.view(), magnitude), e_sgpt = layer_error(held_out, w.view(), g),
                     e_wanda = layer_error(held_out, w.view(), wa);
        INFO(text << ": held-out magnitude " << e_mag << ", Wanda " << e_wanda << ", SparseGPT " << e_sgpt
                  << "; calibration magnitude " << report.proxy_loss_magnitude << ", SparseGPT " << report.proxy_loss);
        CHECK(report.proxy_loss < report.proxy_loss_magnitude);
        CHECK(e_sgpt < 0.8 * e_mag);
        CHECK(e_wanda < e_mag);
        // Exactly 2 of every 4 weights are non-zero or pruned as the layout says (check_tensor validated it).
        const dense_matrix<float> q = dequantize(g);
        for (index_t r = 0; r < n; ++r)
            for (index_t c0 = 0; c0 < k; c0 += 4) {
                int nonzero = 0;
                for (index_t c = c0; c < c0 + 4; ++c) nonzero += q(r, c) != 0.0f;
                CHECK(nonzero <= 2);
            }
    }
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::sparsegpt(w.view(), s, parse_descriptor("w=int8:channel")); }),
               Catch::Contains("no N:M sparsity"));
    CHECK_THAT(tcomp_test::error_of([&] {
                   (void)calib::sparsegpt(gaussian(4, 126, 1).view(), calib::input_statistics(126), parse_descriptor("w=int8:channel s=2:4"));
               }),
               Catch::Contains("126"));
    CHECK_THAT(tcomp_test::error_of([&] { (void)calib::sparsegpt(w.view(), statistics_of(gaussian(64, k, 1), false), parse_descriptor("w=int8:channel s=2:4")); }),
               Catch::Contains("without the Hessian"));
}
