// Quality metrics on small hand-computed cases: identical inputs (SQNR/PSNR +inf, cosine 1, KL 0, SSIM 1),
// closed forms (a constant offset's PSNR, a two-token KL, a constant image's SSIM, uniform logits'
// perplexity = vocabulary size), SSIM's separable filter against a direct 2-D window, and the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "tcomp/metrics/metrics.hpp"

namespace {

using namespace tcomp;
namespace mt = tcomp::metrics;
constexpr double inf = std::numeric_limits<double>::infinity();

std::vector<float> noise_image(std::size_t n, unsigned seed, float lo = 0.0f, float hi = 1.0f) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen);
    return v;
}

/// SSIM of one plane with the 11x11 window applied directly in 2-D (the definition, no separation).
double direct_ssim_plane(const std::vector<float>& a, const std::vector<float>& b, int h, int w, double L) {
    double g[11];
    double s = 0;
    for (int i = 0; i < 11; ++i) s += g[i] = std::exp(-0.5 * (i - 5) * (i - 5) / 2.25);
    for (double& v : g) v /= s;
    const double c1 = 1e-4 * L * L, c2 = 9e-4 * L * L;
    double total = 0;
    int count = 0;
    for (int y = 0; y + 11 <= h; ++y)
        for (int x = 0; x + 11 <= w; ++x) {
            double ma = 0, mb = 0, aa = 0, bb = 0, ab = 0;
            for (int dy = 0; dy < 11; ++dy)
                for (int dx = 0; dx < 11; ++dx) {
                    const double wt = g[dy] * g[dx];
                    const double va = a[(y + dy) * w + x + dx], vb = b[(y + dy) * w + x + dx];
                    ma += wt * va, mb += wt * vb, aa += wt * va * va, bb += wt * vb * vb, ab += wt * va * vb;
                }
            const double va = aa - ma * ma, vb = bb - mb * mb, cv = ab - ma * mb;
            total += (2 * ma * mb + c1) * (2 * cv + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            ++count;
        }
    return total / count;
}

}  // namespace

TEST_CASE("SQNR, PSNR and cosine on hand cases", "[metrics]") {
    const std::vector<float> ref{1, 2, 3, 4};
    CHECK(mt::sqnr_db(ref, ref) == inf);
    CHECK(mt::psnr_db(ref, ref) == inf);
    CHECK(mt::cosine_similarity(ref, ref) == Approx(1.0).epsilon(1e-15));

    // error energy 4 * 0.01 = 0.04, signal 30: 10 log10(750)
    const std::vector<float> test{1.1f, 1.9f, 3.1f, 3.9f};
    CHECK(mt::sqnr_db(ref, test) == Approx(10 * std::log10(750.0)).epsilon(1e-6));

    // constant offset d: MSE = d^2, PSNR = 20 log10(peak / d)
    std::vector<float> img = noise_image(64, 1), off = img;
    for (auto& v : off) v += 0.1f;
    CHECK(mt::psnr_db(img, off) == Approx(20.0).margin(1e-4));
    std::vector<float> img255(16, 100.0f), off255(16, 105.0f);
    CHECK(mt::psnr_db(img255, off255, 255.0) == Approx(20 * std::log10(255.0 / 5.0)).epsilon(1e-12));

    const std::vector<float> e0{1, 0}, d{1, 1}, e1{0, 1}, neg{-1, 0}, zero{0, 0};
    CHECK(mt::cosine_similarity(e0, d) == Approx(1 / std::sqrt(2.0)).epsilon(1e-12));
    CHECK(mt::cosine_similarity(e0, e1) == 0.0);
    CHECK(mt::cosine_similarity(e0, neg) == -1.0);
    CHECK(mt::cosine_similarity(zero, zero) == 1.0);
    CHECK(mt::cosine_similarity(zero, e0) == 0.0);
    CHECK(mt::sqnr_db(zero, e0) == -inf);
}

TEST_CASE("KL divergence, top-1 agreement and perplexity", "[metrics]") {
    // p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 ln(4/3)
    const std::vector<float> p{0.0f, 0.0f}, q{static_cast<float>(std::log(3.0)), 0.0f};
    CHECK(mt::kl_divergence(p, p) == 0.0);
    CHECK(mt::kl_divergence(p, q) == Approx(0.5 * std::log(4.0 / 3.0)).epsilon(1e-7));
    const std::vector<float> q_shifted{static_cast<float>(std::log(3.0)) + 7.0f, 7.0f};  // shift-invariant
    CHECK(mt::kl_divergence(p, q_shifted) == Approx(0.5 * std::log(4.0 / 3.0)).epsilon(1e-6));
    // a masked (-inf) token in the reference contributes nothing
    const std::vector<float> pm{0.0f, -std::numeric_limits<float>::infinity()}, qm{0.0f, 0.0f};
    CHECK(mt::kl_divergence(pm, qm) == Approx(std::log(2.0)).epsilon(1e-12));

    // rows: (p vs q), (p vs p)
    const std::vector<float> ref_rows{0, 0, 2, 1}, test_rows{1, 0, 2, 1};
    const matrix_view<const float> R(ref_rows.data(), 2, 2), T(test_rows.data(), 2, 2);
    CHECK(mt::mean_kl_divergence(R, R) == 0.0);
    CHECK(mt::mean_kl_divergence(R, T) == Approx(0.5 * mt::kl_divergence(std::span(ref_rows).first(2),
                                                                         std::span(test_rows).first(2))));
    // row 0: argmax 0 (tie, the first) vs 0; row 1: 0 vs 0
    CHECK(mt::top1_agreement(R, T) == 1.0);
    const std::vector<float> test_flip{0, 1, 1, 2};
    CHECK(mt::top1_agreement(R, matrix_view<const float>(test_flip.data(), 2, 2)) == 0.0);

    // uniform logits: perplexity = vocabulary size, whatever the targets
    const int vocab = 50;
    std::vector<float> uniform(static_cast<std::size_t>(3 * vocab), 0.25f);
    const std::vector<int> targets{0, 17, 49};
    CHECK(mt::perplexity(matrix_view<const float>(uniform.data(), 3, vocab), targets) == Approx(50.0).epsilon(1e-12));
    // p(target) = 3/4
    CHECK(mt::token_nll(q, 0) == Approx(-std::log(0.75)).epsilon(1e-7));
    // large logits: the max is subtracted (no overflow), the tail survives
    const std::vector<float> big{1000.0f, 0.0f};
    CHECK(mt::token_nll(big, 0) == Approx(std::exp(-1000.0)).margin(1e-300));
    CHECK(mt::token_nll(big, 1) == Approx(1000.0).epsilon(1e-12));
    mt::nll_accumulator acc;
    acc.add(q, 0);
    acc.add(q, 1);
    CHECK(acc.count == 2);
    CHECK(acc.mean_nll() == Approx(0.5 * (-std::log(0.75) - std::log(0.25))).epsilon(1e-7));
}

TEST_CASE("SSIM: identical, constant images, noise, and the direct 2-D window", "[metrics]") {
    const int h = 16, w = 20;
    const auto a = noise_image(2 * h * w, 3);
    CHECK(mt::ssim(a, a, 2, h, w) == Approx(1.0).epsilon(1e-12));

    // constant planes: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    const std::vector<float> c5(h * w, 0.5f), c6(h * w, 0.6f);
    CHECK(mt::ssim(c5, c6, 1, h, w) == Approx((2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4)).epsilon(1e-6));

    auto noisy = a;
    std::mt19937 gen(9);
    std::normal_distribution<float> n(0.0f, 0.05f);
    for (auto& v : noisy) v += n(gen);
    const double s = mt::ssim(a, noisy, 2, h, w);
    CHECK(s < 1.0);
    CHECK(s > 0.5);
    const std::vector<float> a0(a.begin(), a.begin() + h * w), a1(a.begin() + h * w, a.end());
    const std::vector<float> n0(noisy.begin(), noisy.begin() + h * w), n1(noisy.begin() + h * w, noisy.end());
    CHECK(s == Approx(0.5 * (direct_ssim_plane(a0, n0, h, w, 1.0) + direct_ssim_plane(a1, n1, h, w, 1.0)))
                   .epsilon(1e-12));
    // data range 255
    std::vector<float> a255(a0), n255(n0);
    for (auto& v : a255) v *= 255.0f;
    for (auto& v : n255) v *= 255.0f;
    CHECK(mt::ssim(a255, n255, 1, h, w, 255.0) == Approx(direct_ssim_plane(a255, n255, h, w, 255.0)).epsilon(1e-10));
}

TEST_CASE("Classifier accuracy", "[metrics]") {
    const std::vector<int> pred{1, 2, 3, 4}, labels{1, 2, 0, 4};
    CHECK(mt::accuracy(pred, labels) == 0.75);
    const std::vector<float> logits{0.1f, 0.9f, 0.0f, 0.7f, 0.2f, 0.1f};  // argmax 1, 0
    const std::vector<int> l2{1, 1};
    CHECK(mt::accuracy(matrix_view<const float>(logits.data(), 2, 3), l2) == 0.5);
}

TEST_CASE("Metrics reject mismatched sizes and NaN", "[metrics]") {
    const std::vector<float> a{1, 2, 3}, b{1, 2};
    const std::vector<float> nan{1, std::numeric_limits<float>::quiet_NaN(), 3};
    CHECK_THROWS_AS(mt::sqnr_db(a, b), shape_error);
    CHECK_THROWS_AS(mt::psnr_db(a, b), shape_error);
    CHECK_THROWS_AS(mt::cosine_similarity(a, b), shape_error);
    CHECK_THROWS_AS(mt::kl_divergence(a, b), shape_error);
    CHECK_THROWS_AS(mt::sqnr_db(a, nan), value_error);
    CHECK_THROWS_WITH(mt::psnr_db(nan, a), Catch::Contains("reference[1] is NaN"));
    CHECK_THROWS_AS(mt::kl_divergence(a, nan), value_error);
    CHECK_THROWS_AS(mt::token_nll(nan, 0), value_error);
    CHECK_THROWS_AS(mt::token_nll(a, 3), shape_error);
    CHECK_THROWS_AS(mt::ssim(a, a, 1, 1, 3), shape_error);  // smaller than the window
    const std::vector<float> img(16 * 16, 0.5f);
    CHECK_THROWS_AS(mt::ssim(img, img, 2, 16, 16), shape_error);  // 2 planes claimed, 1 given
    const std::vector<int> labels{0, 1};
    CHECK_THROWS_AS(mt::accuracy(std::vector<int>{0}, labels), shape_error);
    CHECK_THROWS_AS(mt::perplexity(matrix_view<const float>(a.data(), 1, 3), labels), shape_error);
}
