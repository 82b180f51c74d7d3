// Integer-grid formats: int_format<1..8>, uint_format<1..8>, fixed_point_format<m, n>, binary_format,
// ternary_format.
//
// Expected traits come from the definitions (two's complement ranges, 2^-n steps), written out here
// independently of the headers. Every code of every format is enumerated; encode is checked at every
// halfway point between adjacent grid values (and one float either side of it) against round-half-to-even,
// and beyond both ends of the range (finite, huge, infinite); NaN must give a valid code.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string_view>
#include <vector>

#include "tcomp/format/formats.hpp"

namespace {

using namespace tcomp;

// ---------------------------------------------------------------------------------------------------------
// Compile time: concepts, constexpr evaluation, the documented examples.
// ---------------------------------------------------------------------------------------------------------
static_assert(integer_grid_format<int_format<1>> && integer_grid_format<int_format<8>>);
static_assert(integer_grid_format<uint_format<1>> && integer_grid_format<uint_format<8>>);
static_assert(integer_grid_format<fixed_point_format<1, 6>> && integer_grid_format<fixed_point_format<0, 0>>);
static_assert(integer_grid_format<binary_format> && integer_grid_format<ternary_format>);
static_assert(!floating_format<int_format<4>> && !floating_format<binary_format>);
static_assert(int_format<4>::encode(2.5f) == 2u && int_format<4>::encode(3.5f) == 4u);
static_assert(int_format<4>::encode(-2.5f) == 0xEu);  // -2 in 4-bit two's complement
static_assert(int_format<4>::name == "int4" && uint_format<8>::name == "uint8" && int_format<1>::name == "int1");
static_assert(binary_format::name == "binary" && ternary_format::name == "ternary");

// ---------------------------------------------------------------------------------------------------------
// Independent expectations.
// ---------------------------------------------------------------------------------------------------------
struct expected_traits {
    int bits;
    long code_min;
    long code_max;
    double step;
    bool is_signed;
};

template <class F>
struct expect;
template <int B>
struct expect<int_format<B>> {
    static constexpr expected_traits value{B, -(1L << (B - 1)), (1L << (B - 1)) - 1, 1.0, true};
};
template <int B>
struct expect<uint_format<B>> {
    static constexpr expected_traits value{B, 0, (1L << B) - 1, 1.0, false};
};
template <int M, int N>
struct expect<fixed_point_format<M, N>> {
    // Q(m.n): 1 + m + n bits, range [-2^m, 2^m - 2^-n] in steps of 2^-n.
    static constexpr expected_traits value{1 + M + N, -(1L << (M + N)), (1L << (M + N)) - 1, 1.0 / double(1L << N),
                                           true};
};

/// The B-bit two's complement pattern of v, by arithmetic (not by masking a cast).
std::uint32_t twos_complement(long v, int bits) {
    const long modulus = 1L << bits;
    return static_cast<std::uint32_t>(((v % modulus) + modulus) % modulus);
}

/// Round half to even on doubles, by comparisons only (independent of the library's helper).
long round_half_even_ref(double v) {
    const double f = std::floor(v);
    const double diff = v - f;
    auto fl = static_cast<long>(f);
    if (diff < 0.5) return fl;
    if (diff > 0.5) return fl + 1;
    return (fl % 2 == 0) ? fl : fl + 1;
}

template <class F>
long expected_code_integer(double x) {
    constexpr expected_traits e = expect<F>::value;
    if (std::isnan(x)) return 0;
    if (x >= static_cast<double>(e.code_max + 1) * e.step) return e.code_max;
    if (x <= static_cast<double>(e.code_min - 1) * e.step) return e.code_min;
    long v = round_half_even_ref(x / e.step);
    if (v < e.code_min) v = e.code_min;
    if (v > e.code_max) v = e.code_max;
    return v;
}

using dense_integer_formats =
    std::tuple<int_format<1>, int_format<2>, int_format<3>, int_format<4>, int_format<5>, int_format<6>, int_format<7>,
               int_format<8>, uint_format<1>, uint_format<2>, uint_format<3>, uint_format<4>, uint_format<5>,
               uint_format<6>, uint_format<7>, uint_format<8>, fixed_point_format<1, 6>, fixed_point_format<3, 4>,
               fixed_point_format<0, 7>, fixed_point_format<7, 0>, fixed_point_format<2, 1>, fixed_point_format<0, 0>,
               fixed_point_format<2, 3>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("format: integer-grid traits match the definition", "[format][integer]", dense_integer_formats) {
    using F = TestType;
    constexpr expected_traits e = expect<F>::value;
    STATIC_REQUIRE(integer_grid_format<F>);
    CHECK(F::bits == e.bits);
    CHECK(F::family == format_family::integer_grid);
    CHECK(F::code_min == e.code_min);
    CHECK(F::code_max == e.code_max);
    CHECK(static_cast<double>(F::step) == e.step);
    CHECK(F::is_signed == e.is_signed);
    CHECK(F::dense_grid);
    // max_value is the largest positive value of the grid (what symmetric quantization maps amax to).
    CHECK(static_cast<double>(F::max_value) == static_cast<double>(e.code_max) * e.step);
    // step is a power of two.
    int exponent = 0;
    CHECK(std::frexp(static_cast<double>(F::step), &exponent) == 0.5);
}

TEMPLATE_LIST_TEST_CASE("format: every integer-grid code round-trips", "[format][integer]", dense_integer_formats) {
    using F = TestType;
    constexpr expected_traits e = expect<F>::value;
    const std::uint32_t codes = 1u << e.bits;
    std::set<long> values_seen;
    for (std::uint32_t c = 0; c < codes; ++c) {
        const int v = F::to_integer(c);
        INFO("code " << c << " -> integer " << v);
        REQUIRE(v >= e.code_min);
        REQUIRE(v <= e.code_max);
        // The stored pattern: two's complement (signed) or the plain number (unsigned).
        CHECK(c == (e.is_signed ? twos_complement(v, e.bits) : static_cast<std::uint32_t>(v)));
        CHECK(F::from_integer(v) == c);
        CHECK(static_cast<double>(F::decode(c)) == static_cast<double>(v) * e.step);
        CHECK(F::encode(F::decode(c)) == c);
        // High bits beyond the code width are ignored (codes live in the low bits).
        CHECK(F::to_integer(c | (0xA5A5A500u << e.bits)) == v);
        values_seen.insert(v);
    }
    // A bijection between the 2^bits codes and the integers of [code_min, code_max].
    CHECK(values_seen.size() == codes);
    CHECK(static_cast<long>(values_seen.size()) == e.code_max - e.code_min + 1);
    for (long v = e.code_min; v <= e.code_max; ++v) {
        const std::uint32_t c = F::from_integer(static_cast<int>(v));
        CHECK(c < codes);
        CHECK(F::to_integer(c) == v);
    }
}

TEMPLATE_LIST_TEST_CASE("format: integer-grid encode rounds half to even", "[format][integer]", dense_integer_formats) {
    using F = TestType;
    constexpr expected_traits e = expect<F>::value;
    for (long v = e.code_min; v < e.code_max; ++v) {
        // Halfway between v and v + 1 (exact in float: small integers times a power of two).
        const double mid = (static_cast<double>(v) + 0.5) * e.step;
        const auto x = static_cast<float>(mid);
        REQUIRE(static_cast<double>(x) == mid);
        const long even = (v % 2 == 0) ? v : v + 1;
        INFO("v = " << v << ", x = " << x);
        CHECK(F::to_integer(F::encode(x)) == even);
        CHECK(F::to_integer(F::encode(std::nextafter(x, std::numeric_limits<float>::infinity()))) == v + 1);
        CHECK(F::to_integer(F::encode(std::nextafter(x, -std::numeric_limits<float>::infinity()))) == v);
        CHECK(F::to_integer(F::encode(static_cast<float>((static_cast<double>(v) + 0.25) * e.step))) == v);
        CHECK(F::to_integer(F::encode(static_cast<float>((static_cast<double>(v) + 0.75) * e.step))) == v + 1);
        CHECK(static_cast<long>(F::to_integer(F::encode(x))) == expected_code_integer<F>(mid));
    }
    // Zero of either sign is code 0 where the grid has a zero.
    if (e.code_min <= 0) {
        CHECK(F::encode(0.0f) == F::from_integer(0));
        CHECK(F::encode(-0.0f) == F::from_integer(0));
    }
}

TEMPLATE_LIST_TEST_CASE("format: integer-grid encode saturates and is total on NaN", "[format][integer]",
                        dense_integer_formats) {
    using F = TestType;
    constexpr expected_traits e = expect<F>::value;
    const auto top = static_cast<float>(static_cast<double>(e.code_max) * e.step);
    const auto bottom = static_cast<float>(static_cast<double>(e.code_min) * e.step);
    const std::uint32_t max_code = e.is_signed ? twos_complement(e.code_max, e.bits) : static_cast<std::uint32_t>(e.code_max);
    const std::uint32_t min_code = e.is_signed ? twos_complement(e.code_min, e.bits) : static_cast<std::uint32_t>(e.code_min);
    constexpr float inf = std::numeric_limits<float>::infinity();
    constexpr float big = std::numeric_limits<float>::max();

    const float above[] = {top + static_cast<float>(e.step) * 0.5f, top + static_cast<float>(e.step),
                           top + 100.0f, 1.0e6f, 3.0e9f, 1.0e30f, big, inf};
    for (float x : above) {
        INFO("x = " << x);
        CHECK(F::encode(x) == max_code);
    }
    const float below[] = {bottom - static_cast<float>(e.step) * 0.5f, bottom - static_cast<float>(e.step),
                           bottom - 100.0f, -1.0e6f, -3.0e9f, -1.0e30f, -big, -inf};
    for (float x : below) {
        INFO("x = " << x);
        CHECK(F::encode(x) == min_code);
    }
    // NaN: a valid code, the same whatever the sign/payload, and no UB (the ASan/UBSan build runs this).
    const float nans[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::signaling_NaN()};
    const std::uint32_t nan_code = F::encode(nans[0]);
    for (float x : nans) {
        const std::uint32_t c = F::encode(x);
        CHECK(c < (1u << e.bits));
        CHECK(c == nan_code);
        CHECK(std::isfinite(F::decode(c)));
    }
    CHECK(F::to_integer(nan_code) == 0);  // tcomp's choice: NaN encodes as zero (in every dense grid here)
}

TEST_CASE("format: int4 examples", "[format][integer]") {
    using F = int_format<4>;
    CHECK(F::encode(2.5f) == 2u);
    CHECK(F::encode(3.5f) == 4u);
    CHECK(F::to_integer(F::encode(-2.5f)) == -2);
    CHECK(F::to_integer(F::encode(-3.5f)) == -4);
    CHECK(F::to_integer(F::encode(0.5f)) == 0);
    CHECK(F::to_integer(F::encode(-0.5f)) == 0);
    CHECK(F::to_integer(F::encode(1.5f)) == 2);
    CHECK(F::to_integer(F::encode(6.5f)) == 6);
    CHECK(F::to_integer(F::encode(7.5f)) == 7);    // 8 is even but saturates to 7
    CHECK(F::to_integer(F::encode(-8.5f)) == -8);  // -8 is even and in range
    CHECK(F::to_integer(F::encode(-9.0f)) == -8);
    CHECK(F::encode(-1.0f) == 0xFu);
    CHECK(F::encode(-8.0f) == 0x8u);
    CHECK(F::encode(7.0f) == 0x7u);
    CHECK(F::max_value == 7.0f);
    CHECK(F::decode(0x8u) == -8.0f);
    // uint4: negative values clamp to 0, 15.5 saturates, 14.5 -> 14.
    using U = uint_format<4>;
    CHECK(U::encode(-0.4f) == 0u);
    CHECK(U::encode(-3.0f) == 0u);
    CHECK(U::encode(14.5f) == 14u);
    CHECK(U::encode(13.5f) == 14u);
    CHECK(U::encode(15.5f) == 15u);
    CHECK(U::max_value == 15.0f);
    // int8 ends.
    CHECK(int_format<8>::to_integer(int_format<8>::encode(127.5f)) == 127);
    CHECK(int_format<8>::to_integer(int_format<8>::encode(-128.5f)) == -128);
    CHECK(int_format<8>::encode(-128.0f) == 0x80u);
}

TEST_CASE("format: fixed point examples", "[format][fixed_point]") {
    using Q34 = fixed_point_format<3, 4>;  // 8 bits, step 1/16, range [-8, 7.9375]
    CHECK(Q34::bits == 8);
    CHECK(Q34::max_value == 7.9375f);
    CHECK(Q34::decode(Q34::encode(1.0f)) == 1.0f);
    CHECK(Q34::encode(1.0f) == 16u);
    CHECK(Q34::encode(0.03125f) == 0u);           // 0.5 step -> 0 (even)
    CHECK(Q34::encode(0.09375f) == 2u);           // 1.5 steps -> 2
    CHECK(Q34::decode(Q34::encode(-8.0f)) == -8.0f);
    CHECK(Q34::decode(Q34::encode(-9.0f)) == -8.0f);
    CHECK(Q34::decode(Q34::encode(8.0f)) == 7.9375f);
    CHECK(Q34::decode(Q34::encode(3.14159f)) == 3.125f);  // 50.27 steps -> 50

    using Q16 = fixed_point_format<1, 6>;  // MXINT8 element: range [-2, 127/64]
    CHECK(Q16::bits == 8);
    CHECK(Q16::step == 0.015625f);
    CHECK(Q16::max_value == 1.984375f);
    CHECK(Q16::decode(0x80u) == -2.0f);

    using Q07 = fixed_point_format<0, 7>;  // [-1, 1 - 2^-7]
    CHECK(Q07::max_value == 0.9921875f);
    CHECK(Q07::decode(Q07::encode(1.0f)) == 0.9921875f);
    CHECK(Q07::decode(Q07::encode(-1.0f)) == -1.0f);

    using Q70 = fixed_point_format<7, 0>;  // the integers -128..127
    CHECK(Q70::step == 1.0f);
    CHECK(Q70::max_value == 127.0f);
    CHECK(Q70::to_integer(Q70::encode(-128.4f)) == -128);

    using Q21 = fixed_point_format<2, 1>;  // 4 bits, step 0.5, range [-4, 3.5]
    CHECK(Q21::bits == 4);
    CHECK(Q21::max_value == 3.5f);
    CHECK(Q21::decode(Q21::encode(0.75f)) == 1.0f);   // 1.5 steps -> 2 steps
    CHECK(Q21::decode(Q21::encode(1.25f)) == 1.0f);   // 2.5 steps -> 2 steps
    CHECK(Q21::decode(Q21::encode(-1.25f)) == -1.0f);
    CHECK(Q21::decode(Q21::encode(100.0f)) == 3.5f);
}

TEST_CASE("format: binary", "[format][binary]") {
    using F = binary_format;
    CHECK(F::bits == 1);
    CHECK(F::family == format_family::integer_grid);
    CHECK_FALSE(F::dense_grid);
    CHECK(F::is_signed);
    CHECK(F::code_min == -1);
    CHECK(F::code_max == 1);
    CHECK(F::max_value == 1.0f);
    CHECK(F::step == 1.0f);
    // Codes: 0 -> -1, 1 -> +1; both round-trip.
    CHECK(F::to_integer(0u) == -1);
    CHECK(F::to_integer(1u) == 1);
    CHECK(F::decode(0u) == -1.0f);
    CHECK(F::decode(1u) == 1.0f);
    CHECK(F::to_integer(2u) == -1);  // high bits ignored
    CHECK(F::to_integer(3u) == 1);
    for (std::uint32_t c = 0; c < 2; ++c) {
        CHECK(F::from_integer(F::to_integer(c)) == c);
        CHECK(F::encode(F::decode(c)) == c);
    }
    // Encoding is by sign; zero (either sign) is +1.
    CHECK(F::encode(0.0f) == 1u);
    CHECK(F::encode(-0.0f) == 1u);
    CHECK(F::encode(1.0e-30f) == 1u);
    CHECK(F::encode(-1.0e-30f) == 0u);
    CHECK(F::encode(-1.0e-45f) == 0u);  // the smallest negative subnormal
    CHECK(F::encode(0.3f) == 1u);
    CHECK(F::encode(-0.3f) == 0u);
    CHECK(F::encode(5.0f) == 1u);
    CHECK(F::encode(-5.0f) == 0u);
    CHECK(F::encode(std::numeric_limits<float>::infinity()) == 1u);
    CHECK(F::encode(-std::numeric_limits<float>::infinity()) == 0u);
    CHECK(F::encode(std::numeric_limits<float>::max()) == 1u);
    CHECK(F::encode(std::numeric_limits<float>::lowest()) == 0u);
    // NaN: a valid code (documented: -1).
    CHECK(F::encode(std::numeric_limits<float>::quiet_NaN()) == 0u);
    CHECK(F::encode(-std::numeric_limits<float>::quiet_NaN()) == 0u);
    CHECK(F::from_integer(0) == 1u);
    CHECK(F::from_integer(-1) == 0u);
    CHECK(F::from_integer(1) == 1u);
}

TEST_CASE("format: ternary", "[format][ternary]") {
    using F = ternary_format;
    CHECK(F::bits == 2);
    CHECK(F::dense_grid);
    CHECK(F::is_signed);
    CHECK(F::code_min == -1);
    CHECK(F::code_max == 1);
    CHECK(F::max_value == 1.0f);
    // Two's complement in 2 bits: 00 = 0, 01 = +1, 11 = -1; 10 (-2) is never produced and decodes to -1.
    CHECK(F::to_integer(0u) == 0);
    CHECK(F::to_integer(1u) == 1);
    CHECK(F::to_integer(3u) == -1);
    CHECK(F::to_integer(2u) == -1);
    CHECK(F::decode(2u) == -1.0f);
    for (int v = -1; v <= 1; ++v) {
        const std::uint32_t c = F::from_integer(v);
        CHECK(c == twos_complement(v, 2));
        CHECK(F::to_integer(c) == v);
        CHECK(F::encode(F::decode(c)) == c);
    }
    CHECK(F::encode(F::decode(2u)) == 3u);  // the stray pattern re-encodes to the proper -1
    // Rounding: half to even, then saturation to {-1, 0, 1}.
    CHECK(F::encode(0.5f) == 0u);
    CHECK(F::encode(-0.5f) == 0u);
    CHECK(F::encode(0.50001f) == 1u);
    CHECK(F::encode(-0.50001f) == 3u);
    CHECK(F::encode(0.49999f) == 0u);
    CHECK(F::encode(1.5f) == 1u);
    CHECK(F::encode(-1.5f) == 3u);
    CHECK(F::encode(-2.0f) == 3u);
    CHECK(F::encode(1.0e30f) == 1u);
    CHECK(F::encode(-1.0e30f) == 3u);
    CHECK(F::encode(std::numeric_limits<float>::infinity()) == 1u);
    CHECK(F::encode(-std::numeric_limits<float>::infinity()) == 3u);
    // NaN -> a valid code, never the stray pattern.
    const std::uint32_t nan_code = F::encode(std::numeric_limits<float>::quiet_NaN());
    CHECK(nan_code != 2u);
    CHECK(nan_code < 4u);
    CHECK(F::encode(-std::numeric_limits<float>::quiet_NaN()) == nan_code);
}
