// Integer-only layer output (F8Net): int32 accumulators rescaled by a fixed-point multiplier and shift
// must agree with rounding the exact float product, and reject what they cannot express.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <tcomp/tcomp.hpp>

#include <algorithm>
#include <cmath>
#include <random>

namespace {

using tcomp_test::gaussian;

/// round(sum_k xd * wd / Sy) + zy, clamped, computed in double from the dequantized operands.
template <class OutputFormat, class XC, class WC>
tcomp::dense_matrix<int> expected_codes(const XC& xc, const WC& wc, double output_scale, int zero) {
    const auto xd = tcomp::dequantize(xc), wd = tcomp::dequantize(wc);
    tcomp::dense_matrix<int> out(xd.rows(), wd.rows());
    for (tcomp::index_t m = 0; m < xd.rows(); ++m)
        for (tcomp::index_t n = 0; n < wd.rows(); ++n) {
            double sum = 0;
            for (tcomp::index_t k = 0; k < xd.cols(); ++k) sum += static_cast<double>(xd(m, k)) * wd(n, k);
            const double q = std::round(sum / output_scale) + zero;  // ties away from zero, like the multiplier
            out(m, n) = static_cast<int>(std::clamp(q, double(OutputFormat::code_min), double(OutputFormat::code_max)));
        }
    return out;
}

}  // namespace

TEST_CASE("matmul: requantized int8 output with power-of-two scales is a pure shift and exact") {
    using WQ = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_channel, tcomp::pow2_scale>;
    using AQ = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_tensor, tcomp::pow2_scale>;
    for (unsigned seed : {1u, 2u, 3u}) {
        const auto w = gaussian(19, 37 + seed * 8, seed);
        const auto x = gaussian(5, 37 + seed * 8, seed + 100, 2.0f);
        const auto wc = tcomp::compress_matrix<WQ>(w.view());
        const auto xc = tcomp::quantize<AQ>(x.view());
        const float output_scale = 0.125f;
        const auto y = tcomp::reference::matmul_requantized<tcomp::int_format<8>>(xc.view(), wc.view(), output_scale);
        const auto expected = expected_codes<tcomp::int_format<8>>(xc, wc, output_scale, 0);
        int saturated = 0;
        for (tcomp::index_t m = 0; m < y.rows(); ++m)
            for (tcomp::index_t n = 0; n < y.cols(); ++n) {
                REQUIRE(y(m, n) == expected(m, n));
                saturated += std::abs(y(m, n)) >= 127;
            }
        CHECK(saturated < y.rows() * y.cols());  // the test must exercise unsaturated values
        // Power-of-two scales give a power-of-two multiplier: mantissa exactly 2^30.
        const double multiplier = double(xc.view().scale(0, 0)) * wc.view().scale(0, 0) / output_scale;
        CHECK(tcomp::fixed_point_multiplier::from_real(multiplier).mantissa == (1 << 30));
    }
}

TEST_CASE("matmul: requantized uint8 output with float scales and zero points matches float rounding") {
    using WQ = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_channel>;
    using AQ = tcomp::quantizer<tcomp::uint_format<8>, tcomp::asymmetric, tcomp::per_token>;
    const auto w = gaussian(23, 61, 7);
    const auto x = gaussian(9, 61, 8);
    const auto wc = tcomp::compress_matrix<WQ>(w.view());
    const auto xc = tcomp::quantize<AQ>(x.view());
    const float output_scale = 0.05f;
    const int zero = 128;
    const auto y = tcomp::reference::matmul_requantized<tcomp::uint_format<8>>(xc.view(), wc.view(), output_scale, zero);
    const auto expected = expected_codes<tcomp::uint_format<8>>(xc, wc, output_scale, zero);
    int differ = 0;
    for (tcomp::index_t m = 0; m < y.rows(); ++m)
        for (tcomp::index_t n = 0; n < y.cols(); ++n) {
            // The Q0.31 multiplier differs from the real one by < 2^-31 relative: only values within that
            // distance of a rounding boundary can land one code away.
            REQUIRE(std::abs(y(m, n) - expected(m, n)) <= 1);
            differ += y(m, n) != expected(m, n);
        }
    CHECK(differ <= 1);
}

TEST_CASE("matmul: requantized output rejects bad scales, zero points and shapes") {
    using Q = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_channel>;
    using A = tcomp::quantizer<tcomp::int_format<8>, tcomp::per_token>;
    const auto w = gaussian(4, 16, 1);
    const auto x = gaussian(2, 16, 2);
    const auto x_wrong = gaussian(2, 17, 3);
    const auto wc = tcomp::compress_matrix<Q>(w.view());
    const auto xc = tcomp::quantize<A>(x.view());
    const auto xc_wrong = tcomp::quantize<A>(x_wrong.view());
    using out = tcomp::int_format<8>;
    CHECK_THROWS_AS(tcomp::reference::matmul_requantized<out>(xc.view(), wc.view(), 0.0f), tcomp::value_error);
    CHECK_THROWS_AS(tcomp::reference::matmul_requantized<out>(xc.view(), wc.view(), NAN), tcomp::value_error);
    CHECK_THROWS_AS(tcomp::reference::matmul_requantized<out>(xc.view(), wc.view(), 1.0f, 300), tcomp::value_error);
    CHECK_THROWS_WITH(tcomp::reference::matmul_requantized<out>(xc_wrong.view(), wc.view(), 1.0f),
                      Catch::Contains("K = 17") && Catch::Contains("K = 16"));
}
