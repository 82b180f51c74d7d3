// Integer-only requantization (quant/requantize.hpp): fixed_point_multiplier::from_real / apply / real.
//
// apply() is compared with round-half-away-from-zero of acc * M computed in long double (x87 extended:
// 64-bit mantissa, so acc * mantissa < 2^62 and the power-of-two rescale are exact), where M is the
// multiplier's own representation, and with acc * real within the representation error; the representation
// is separately checked against the requested real.
#include <catch2/catch.hpp>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "tcomp/quant/requantize.hpp"

namespace {

using tcomp::fixed_point_multiplier;

/// round(acc * M), ties away from zero, saturated to int32, with M = mantissa * 2^(shift - 31).
std::int64_t reference_apply(std::int32_t acc, const fixed_point_multiplier& m) {
    if constexpr (LDBL_MANT_DIG >= 63) {
        // x87 extended (x86-64 Linux) or quad: acc * mantissa (< 2^62) and the power-of-two scaling are exact.
        const long double exact =
            std::ldexp(static_cast<long double>(acc) * static_cast<long double>(m.mantissa), m.shift - 31);
        const long double r = std::round(exact);  // halfway cases away from zero
        if (r > static_cast<long double>(INT32_MAX)) return INT32_MAX;
        if (r < static_cast<long double>(INT32_MIN)) return INT32_MIN;
        return static_cast<std::int64_t>(r);
    } else {
        // Without an extended long double: exact integer quotient and remainder.
        const std::int64_t product = static_cast<std::int64_t>(acc) * m.mantissa;
        const int right = 31 - m.shift;
        if (right >= 63) return 0;
        if (right <= 0) {
            const long double big = static_cast<long double>(product) * std::ldexp(1.0L, -right);
            return big > INT32_MAX ? INT32_MAX : (big < INT32_MIN ? INT32_MIN : static_cast<std::int64_t>(big));
        }
        const std::int64_t d = std::int64_t{1} << right;
        std::int64_t q = product / d;
        const std::int64_t rem = product % d;
        if (2 * (rem < 0 ? -rem : rem) >= d) q += product < 0 ? -1 : 1;
        return q > INT32_MAX ? INT32_MAX : (q < INT32_MIN ? INT32_MIN : q);
    }
}

}  // namespace

TEST_CASE("quant: fixed_point_multiplier represents reals to 2^-30", "[quant][requantize]") {
    std::mt19937 rng(12345u);
    std::uniform_real_distribution<double> log10_dist(-9.0, 4.0);
    for (int t = 0; t < 3000; ++t) {
        const double real = std::pow(10.0, log10_dist(rng));
        const auto m = fixed_point_multiplier::from_real(real);
        INFO("real = " << real << ", mantissa " << m.mantissa << ", shift " << m.shift);
        REQUIRE(m.mantissa >= (1 << 30));
        REQUIRE(static_cast<std::int64_t>(m.mantissa) < (std::int64_t{1} << 31));
        CHECK(std::fabs(m.real() - real) <= real * std::ldexp(1.0, -30));
        // real() is what mantissa and shift say.
        CHECK(m.real() == static_cast<double>(m.mantissa) * std::pow(2.0, m.shift - 31));
        // Nearest: half an ulp of the 31-bit mantissa (relative 2^-31 at most).
        CHECK(std::fabs(m.real() - real) <= real * std::ldexp(1.0, -31) * (1.0 + 1e-9));
    }
    // Powers of two: mantissa exactly 2^30, the rescale is a pure shift.
    for (int k = -40; k <= 30; ++k) {
        const double real = std::ldexp(1.0, k);
        const auto m = fixed_point_multiplier::from_real(real);
        INFO("2^" << k);
        CHECK(m.mantissa == (1 << 30));
        CHECK(m.shift == k + 1);
        CHECK(m.real() == real);
    }
    // Mantissa rounding that reaches 2^31 is renormalised (real just below a power of two).
    const auto m = fixed_point_multiplier::from_real(std::nextafter(2.0, 0.0));
    CHECK(m.mantissa == (1 << 30));
    CHECK(m.real() == 2.0);
    const auto third = fixed_point_multiplier::from_real(1.0 / 3.0);
    CHECK(third.mantissa == 1431655765);  // round(2^32 / 3) = 1431655765.33
    CHECK(third.shift == -1);
}

TEST_CASE("quant: fixed_point_multiplier::apply is round(acc * M), ties away from zero", "[quant][requantize]") {
    std::mt19937 rng(777u);
    std::uniform_real_distribution<double> log10_dist(-9.0, 4.0);
    std::uniform_int_distribution<int> pow_dist(-34, 20);
    for (int t = 0; t < 400; ++t) {
        const double real = (t % 4 == 3) ? std::ldexp(1.0, pow_dist(rng)) : std::pow(10.0, log10_dist(rng));
        const auto m = fixed_point_multiplier::from_real(real);
        // Accumulators bounded so |acc * real| stays below 2^31 (no saturation here).
        const double bound = std::min(2147483647.0, 2.0e9 / real);
        std::uniform_int_distribution<std::int32_t> acc_dist(-static_cast<std::int32_t>(bound),
                                                             static_cast<std::int32_t>(bound));
        for (int i = 0; i < 50; ++i) {
            const std::int32_t acc = i == 0 ? 0 : (i == 1 ? 1 : (i == 2 ? -1 : acc_dist(rng)));
            const std::int32_t y = m.apply(acc);
            INFO("real = " << real << ", acc = " << acc);
            REQUIRE(y == reference_apply(acc, m));
            // And within rounding + representation error of the real product.
            const long double ideal = static_cast<long double>(acc) * static_cast<long double>(real);
            CHECK(std::fabs(static_cast<long double>(y) - ideal) <=
                  0.5L + std::fabs(ideal) * std::ldexp(1.0L, -30) + 1e-9L);
        }
    }
    // Ties: exactly halfway products round away from zero.
    const auto half = fixed_point_multiplier::from_real(0.5);
    CHECK(half.apply(1) == 1);
    CHECK(half.apply(-1) == -1);
    CHECK(half.apply(3) == 2);
    CHECK(half.apply(-3) == -2);
    CHECK(half.apply(5) == 3);
    CHECK(half.apply(-5) == -3);
    CHECK(half.apply(4) == 2);
    const auto quarter = fixed_point_multiplier::from_real(0.25);
    CHECK(quarter.apply(6) == 2);    // 1.5 -> 2
    CHECK(quarter.apply(-6) == -2);
    CHECK(quarter.apply(5) == 1);    // 1.25 -> 1
    CHECK(quarter.apply(7) == 2);    // 1.75 -> 2
    const auto one = fixed_point_multiplier::from_real(1.0);
    CHECK(one.apply(INT32_MAX) == INT32_MAX);
    CHECK(one.apply(INT32_MIN) == INT32_MIN);
    CHECK(one.apply(-123456789) == -123456789);
    // A tiny multiplier sends every int32 to 0 (shift of 63 bits or more).
    const auto tiny = fixed_point_multiplier::from_real(1e-15);
    CHECK(tiny.apply(INT32_MAX) == 0);
    CHECK(tiny.apply(INT32_MIN) == 0);
}

TEST_CASE("quant: fixed_point_multiplier::apply saturates at the int32 limits", "[quant][requantize]") {
    const auto big = fixed_point_multiplier::from_real(1000.0);
    CHECK(big.apply(2147483) == 2147483000);
    CHECK(big.apply(2147484) == INT32_MAX);
    CHECK(big.apply(-2147484) == INT32_MIN);
    CHECK(big.apply(INT32_MAX) == INT32_MAX);
    CHECK(big.apply(INT32_MIN) == INT32_MIN);
    const auto huge = fixed_point_multiplier::from_real(std::ldexp(1.0, 30));
    CHECK(huge.apply(1) == (1 << 30));
    CHECK(huge.apply(-2) == INT32_MIN);  // -2^31 is representable
    CHECK(huge.apply(2) == INT32_MAX);   // 2^31 is not
    CHECK(huge.apply(-3) == INT32_MIN);
    const auto largest = fixed_point_multiplier::from_real(2147483647.0);
    CHECK(largest.apply(1) == INT32_MAX);
    CHECK(largest.apply(-1) == reference_apply(-1, largest));
    CHECK(largest.apply(0) == 0);
    CHECK(largest.apply(INT32_MAX) == INT32_MAX);
    CHECK(largest.apply(INT32_MIN) == INT32_MIN);
    const auto two = fixed_point_multiplier::from_real(2.0);
    CHECK(two.apply(1073741823) == 2147483646);
    CHECK(two.apply(1073741824) == INT32_MAX);
    CHECK(two.apply(-1073741824) == INT32_MIN);
    CHECK(two.apply(-1073741825) == INT32_MIN);
}

TEST_CASE("quant: fixed_point_multiplier rejects invalid multipliers", "[quant][requantize]") {
    const double bad[] = {0.0,
                          -0.0,
                          -1.0,
                          -1e-9,
                          std::numeric_limits<double>::quiet_NaN(),
                          std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity(),
                          2147483648.0,
                          1e10,
                          std::numeric_limits<double>::max()};
    for (double r : bad) {
        INFO("real = " << r);
        CHECK_THROWS_AS(fixed_point_multiplier::from_real(r), tcomp::value_error);
    }
    try {
        (void)fixed_point_multiplier::from_real(-2.0);
        FAIL("no exception");
    } catch (const tcomp::value_error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("-2") && Catch::Contains("(0, 2^31)"));
    }
    CHECK_NOTHROW(fixed_point_multiplier::from_real(std::nextafter(2147483648.0, 0.0)));
    CHECK_NOTHROW(fixed_point_multiplier::from_real(std::numeric_limits<double>::denorm_min()));
}
