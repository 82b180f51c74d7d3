// Floating formats: minifloat_format (OCP FP8/FP6/FP4, fp16, bf16) and the E8M0 scale.
//
// Every code of every format is decoded and compared with a reference computed a different way (the
// (-1)^s * 2^(e - bias) * (1 + m/2^M) formula in double, via std::ldexp); encode is checked against
// brute-force nearest search (formats up to 8 bits), at every halfway point between adjacent codes, at the
// overflow boundary, on specials, and (fp16/bf16) against independent bit-manipulation conversions.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tcomp/format/formats.hpp"

namespace {

using namespace tcomp;

// ---------------------------------------------------------------------------------------------------------
// Compile time: the concepts, and constexpr evaluation of encode/decode.
// ---------------------------------------------------------------------------------------------------------
static_assert(number_format<fp8_e4m3> && floating_format<fp8_e4m3>);
static_assert(number_format<fp8_e5m2> && floating_format<fp8_e5m2>);
static_assert(number_format<fp6_e2m3> && floating_format<fp6_e2m3>);
static_assert(number_format<fp6_e3m2> && floating_format<fp6_e3m2>);
static_assert(number_format<fp4_e2m1> && floating_format<fp4_e2m1>);
static_assert(number_format<fp16_format> && floating_format<fp16_format>);
static_assert(number_format<bf16_format> && floating_format<bf16_format>);
static_assert(number_format<e8m0_format> && floating_format<e8m0_format>);
static_assert(number_format<minifloat_format<3, 4>> && floating_format<minifloat_format<3, 4>>);
static_assert(!integer_grid_format<fp8_e4m3> && !integer_grid_format<e8m0_format>);

static_assert(fp8_e4m3::encode(448.0f) == 0x7Eu && fp8_e4m3::encode(1.0e6f) == 0x7Eu);
static_assert(fp8_e4m3::decode(0x01u) == 0.001953125f && fp8_e4m3::decode(0x80u) == 0.0f);
static_assert(fp8_e5m2::encode(-57344.0f) == 0xFBu && fp8_e5m2::decode(0x7Bu) == 57344.0f);
static_assert(fp4_e2m1::encode(5.0f) == 0x6u && fp4_e2m1::decode(0xFu) == -6.0f);  // 5 ties to 4 (even)
static_assert(fp16_format::encode(1.0f) == 0x3C00u && fp16_format::decode(0x0001u) == 5.9604644775390625e-8f);
static_assert(bf16_format::encode(1.0f) == 0x3F80u && bf16_format::decode(0x0001u) > 0.0f);
static_assert(e8m0_format::decode(0u) > 0.0f && e8m0_format::encode(1.0f) == 127u);
static_assert(fp8_e4m3::name == "fp8_e4m3" && fp8_e5m2::name == "fp8_e5m2" && fp6_e2m3::name == "fp6_e2m3" &&
              fp6_e3m2::name == "fp6_e3m2" && fp4_e2m1::name == "fp4_e2m1" && fp16_format::name == "fp16" &&
              bf16_format::name == "bf16" && e8m0_format::name == "e8m0");
static_assert(minifloat_format<5, 2>::name == "fp8_e5m2" &&
              minifloat_format<4, 3, ocp_fn_rules>::name == "fp8_e4m3fn" &&
              minifloat_format<2, 1, ocp_finite_rules>::name == "fp4_e2m1fn" &&
              minifloat_format<5, 10>::name == "fp16_e5m10");

// Test-only variants: other overflow modes, and layouts that exercise corners (E = 1, M = 0, wide M).
using e5m2_satfinite = minifloat_format<5, 2, minifloat_rules<minifloat_specials::ieee, minifloat_overflow::satfinite>>;
using e5m2_nonsat =
    minifloat_format<5, 2, minifloat_rules<minifloat_specials::ieee, minifloat_overflow::non_saturating>>;
using e4m3_nonsat =
    minifloat_format<4, 3, minifloat_rules<minifloat_specials::nan_only, minifloat_overflow::non_saturating>>;
using fp16_nonsat =
    minifloat_format<5, 10, minifloat_rules<minifloat_specials::ieee, minifloat_overflow::non_saturating>>;
using bf16_nonsat =
    minifloat_format<8, 7, minifloat_rules<minifloat_specials::ieee, minifloat_overflow::non_saturating>>;
using e1m2_finite = minifloat_format<1, 2, ocp_finite_rules>;
using e7m0_finite = minifloat_format<7, 0, ocp_finite_rules>;
using e3m0_fn = minifloat_format<3, 0, ocp_fn_rules>;
using e3m4_ieee = minifloat_format<3, 4, ieee_rules>;
using e2m12_fn = minifloat_format<2, 12, ocp_fn_rules>;
using e6m9_ieee = minifloat_format<6, 9, ieee_rules>;

// ---------------------------------------------------------------------------------------------------------
// Helpers and the independent reference.
// ---------------------------------------------------------------------------------------------------------
std::uint32_t bits_of(float x) {
    std::uint32_t u = 0;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
float float_of(std::uint32_t u) {
    float x = 0;
    std::memcpy(&x, &u, sizeof x);
    return x;
}
std::string hex(std::uint32_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}
std::string show(float x) {
    std::ostringstream s;
    s << std::hexfloat << x << " (" << hex(bits_of(x)) << ")";
    return s.str();
}

enum class ref_kind { finite, infinity, nan };
struct ref_value {
    ref_kind kind;
    double value;  // signed; -0.0 for the negative zero code
};

/// Decodes a code from the layout alone: sign/exponent/mantissa fields and the textbook formula in double.
template <class F>
ref_value reference_decode(std::uint32_t code) {
    constexpr int E = F::exponent_bits, M = F::mantissa_bits;
    const int bias = (1 << (E - 1)) - 1;
    const bool negative = ((code >> (E + M)) & 1u) != 0;
    const int ef = static_cast<int>((code >> M) & ((1u << E) - 1u));
    const int m = static_cast<int>(code & ((1u << M) - 1u));
    const int top = (1 << E) - 1;
    const auto specials = F::rules::specials;
    if (specials == minifloat_specials::ieee && ef == top) return {m == 0 ? ref_kind::infinity : ref_kind::nan, 0.0};
    if (specials == minifloat_specials::nan_only && ef == top && m == (1 << M) - 1) return {ref_kind::nan, 0.0};
    const double mag = ef == 0 ? std::ldexp(static_cast<double>(m), 1 - bias - M)
                               : std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -M), ef - bias);
    return {ref_kind::finite, negative ? -mag : mag};
}

template <class F>
constexpr std::uint32_t code_count() {
    return 1u << F::bits;
}

/// What encode(decode(c)) must give: c itself, except NaN codes, which come back canonical.
template <class F>
std::uint32_t expected_round_trip(std::uint32_t code) {
    if (!F::is_nan(code)) return code;
    if constexpr (F::rules::specials == minifloat_specials::ieee)
        return code | (1u << (F::mantissa_bits - 1));  // quiet bit set; sign and payload kept
    else
        return F::nan_code;  // nan_only: the positive NaN
}

/// Positive finite magnitude codes 0..max_code with their values, in increasing order (codes are monotone).
template <class F>
std::vector<double> positive_values() {
    std::vector<double> v;
    for (std::uint32_t c = 0; c <= F::max_code; ++c) v.push_back(reference_decode<F>(c).value);
    return v;
}

/// Brute force: the magnitude code nearest to |x| (ties to the even code); |x| beyond max gives max_code.
template <class F>
std::uint32_t nearest_magnitude_code(const std::vector<double>& values, double ax) {
    std::uint32_t best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (std::uint32_t c = 0; c < values.size(); ++c) {
        const double d = std::fabs(values[c] - ax);
        if (d < best_d || (d == best_d && (c & 1u) == 0)) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

/// Encode under the saturating rules, derived from brute-force nearest search (finite, non-NaN x).
template <class F>
std::uint32_t brute_force_encode(const std::vector<double>& values, float x) {
    const std::uint32_t sign = std::signbit(x) ? F::sign_bit : 0u;
    if (std::isinf(x)) return sign | (F::has_infinity ? F::infinity_code : F::max_code);
    const double ax = std::fabs(static_cast<double>(x));
    if (ax >= values.back()) return sign | F::max_code;  // saturation (and distances too large to compare)
    return sign | nearest_magnitude_code<F>(values, ax);
}

/// Random floats of every kind: raw bit patterns (all exponents), float subnormals, values spread
/// log-uniformly over the format's range and beyond, and values next to the format's midpoints.
template <class F>
std::vector<float> random_inputs(std::uint32_t seed, int count) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> unit(1.0, 2.0);
    const int lo_exp = static_cast<int>(std::floor(std::log2(static_cast<double>(F::min_subnormal)))) - 4;
    const int hi_exp = static_cast<int>(std::floor(std::log2(static_cast<double>(F::max_value)))) + 4;
    std::uniform_int_distribution<int> exps(lo_exp, hi_exp);
    const auto values = positive_values<F>();
    std::uniform_int_distribution<std::size_t> pick(0, values.size() - 2);
    std::vector<float> out;
    out.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        const std::uint32_t r = gen();
        const std::uint32_t sign = r & 0x80000000u;
        float x = 0;
        switch (i % 4) {
            case 0:
                x = float_of(gen());
                break;
            case 1:
                x = float_of(sign | (gen() & 0x007FFFFFu));  // subnormal float (or ±0)
                break;
            case 2:
                x = std::ldexp(static_cast<float>(unit(gen)), exps(gen));  // float ldexp: overflow gives Inf
                break;
            default: {
                const std::size_t k = pick(gen);
                float mid = static_cast<float>((values[k] + values[k + 1]) / 2);
                for (int s = static_cast<int>(gen() % 7) - 3; s != 0; s += s > 0 ? -1 : 1)
                    mid = std::nextafter(mid, s > 0 ? 1e30f : 0.0f);
                x = mid;
            }
        }
        if (std::isnan(x)) x = float_of(gen() & 0x7F7FFFFFu);  // NaN has its own test case
        out.push_back(sign && i % 4 >= 2 ? -x : x);
    }
    return out;
}

/// Collects mismatches so that a loop over 65536 codes costs one assertion, yet reports the first few.
struct mismatch_log {
    std::size_t count = 0;
    std::string first;
    void add(const std::string& what) {
        if (count++ < 8) first += what + "\n";
    }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Exhaustive decode, round trip, halfway points.
// ---------------------------------------------------------------------------------------------------------
#define TCOMP_MINIFLOATS                                                                                               \
    fp8_e4m3, fp8_e5m2, fp6_e2m3, fp6_e3m2, fp4_e2m1, fp16_format, bf16_format, e5m2_nonsat, e4m3_nonsat, e1m2_finite, \
        e7m0_finite, e3m0_fn, e3m4_ieee, e2m12_fn, e6m9_ieee

TEMPLATE_TEST_CASE("format: minifloat decode of every code matches the reference formula", "[format][float]",
                   TCOMP_MINIFLOATS) {
    using F = TestType;
    mismatch_log log;
    std::uint32_t nans = 0, infs = 0;
    for (std::uint32_t c = 0; c < code_count<F>(); ++c) {
        const float got = F::decode(c);
        const ref_value ref = reference_decode<F>(c);
        const bool negative = ((c >> (F::bits - 1)) & 1u) != 0;
        bool ok = std::signbit(got) == negative;
        if (ref.kind == ref_kind::nan) {
            ok = ok && std::isnan(got) && F::is_nan(c) && (bits_of(got) & 0x00400000u) != 0;  // quiet float NaN
            ++nans;
        } else if (ref.kind == ref_kind::infinity) {
            ok = ok && std::isinf(got) && F::is_infinity(c) && !F::is_nan(c);
            ++infs;
        } else {
            ok = ok && static_cast<double>(got) == ref.value && !F::is_nan(c) && !F::is_infinity(c);
        }
        if (!ok) log.add("code " + hex(c) + ": decode " + show(got) + ", reference " + std::to_string(ref.value));
    }
    INFO(log.first);
    CHECK(log.count == 0);
    // Specials counted from the spec's description of each layout.
    constexpr int E = F::exponent_bits, M = F::mantissa_bits;
    if constexpr (F::rules::specials == minifloat_specials::ieee) {
        CHECK(infs == 2u);
        CHECK(nans == 2u * ((1u << M) - 1u));
    } else if constexpr (F::rules::specials == minifloat_specials::nan_only) {
        CHECK(infs == 0u);
        CHECK(nans == 2u);
    } else {
        CHECK(infs == 0u);
        CHECK(nans == 0u);
    }
    CHECK(F::bias == (1 << (E - 1)) - 1);
}

TEMPLATE_TEST_CASE("format: minifloat encode(decode(code)) returns the code", "[format][float]", TCOMP_MINIFLOATS) {
    using F = TestType;
    mismatch_log log;
    for (std::uint32_t c = 0; c < code_count<F>(); ++c) {
        const std::uint32_t back = F::encode(F::decode(c));
        if (back != expected_round_trip<F>(c))
            log.add("code " + hex(c) + " -> " + show(F::decode(c)) + " -> " + hex(back) + ", expected " +
                    hex(expected_round_trip<F>(c)));
    }
    INFO(log.first);
    CHECK(log.count == 0);
    // -0 has its own code and keeps it.
    CHECK(F::encode(-0.0f) == F::sign_bit);
    CHECK(std::signbit(F::decode(F::sign_bit)));
    CHECK(F::decode(F::sign_bit) == 0.0f);
}

TEMPLATE_TEST_CASE("format: minifloat halfway points round to the even code, neighbours to the nearer one",
                   "[format][float]", TCOMP_MINIFLOATS) {
    using F = TestType;
    mismatch_log log;
    for (std::uint32_t c = 0; c < F::max_code; ++c) {
        const double lo = reference_decode<F>(c).value, hi = reference_decode<F>(c + 1).value;
        const double mid_exact = (lo + hi) / 2;
        const auto mid = static_cast<float>(mid_exact);
        if (static_cast<double>(mid) != mid_exact) {
            log.add("midpoint not exact in float at code " + hex(c));
            continue;
        }
        const std::uint32_t even = (c & 1u) ? c + 1 : c;
        const float above = std::nextafter(mid, std::numeric_limits<float>::infinity());
        const float below = std::nextafter(mid, 0.0f);
        for (const std::uint32_t sign : {0u, F::sign_bit}) {
            const float s = sign ? -1.0f : 1.0f;
            if (F::encode(s * mid) != (sign | even)) log.add("tie " + show(s * mid) + " -> " + hex(F::encode(s * mid)));
            if (F::encode(s * above) != (sign | (c + 1)))
                log.add("above tie " + show(s * above) + " -> " + hex(F::encode(s * above)));
            if (F::encode(s * below) != (sign | c))
                log.add("below tie " + show(s * below) + " -> " + hex(F::encode(s * below)));
        }
    }
    INFO(log.first);
    CHECK(log.count == 0);
}

// ---------------------------------------------------------------------------------------------------------
// Traits against the spec values.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("format: minifloat traits equal the OCP / IEEE spec values", "[format][float]") {
    CHECK(fp8_e4m3::max_value == 448.0f);
    CHECK(fp8_e4m3::min_normal == std::ldexp(1.0f, -6));
    CHECK(fp8_e4m3::min_subnormal == std::ldexp(1.0f, -9));
    CHECK(fp8_e5m2::max_value == 57344.0f);
    CHECK(fp8_e5m2::min_normal == std::ldexp(1.0f, -14));
    CHECK(fp8_e5m2::min_subnormal == std::ldexp(1.0f, -16));
    CHECK(fp6_e2m3::max_value == 7.5f);
    CHECK(fp6_e2m3::min_normal == 1.0f);
    CHECK(fp6_e2m3::min_subnormal == 0.125f);
    CHECK(fp6_e3m2::max_value == 28.0f);
    CHECK(fp6_e3m2::min_normal == 0.25f);
    CHECK(fp6_e3m2::min_subnormal == 0.0625f);
    CHECK(fp4_e2m1::max_value == 6.0f);
    CHECK(fp4_e2m1::min_normal == 1.0f);
    CHECK(fp4_e2m1::min_subnormal == 0.5f);
    CHECK(fp16_format::max_value == 65504.0f);
    CHECK(fp16_format::min_normal == std::ldexp(1.0f, -14));
    CHECK(fp16_format::min_subnormal == std::ldexp(1.0f, -24));
    CHECK(static_cast<double>(bf16_format::max_value) == std::ldexp(2.0 - std::ldexp(1.0, -7), 127));
    CHECK(bf16_format::max_value == Approx(3.3895e38f).epsilon(1e-4));
    CHECK(bf16_format::min_normal == std::numeric_limits<float>::min());
    CHECK(static_cast<double>(bf16_format::min_subnormal) == std::ldexp(1.0, -133));

    CHECK(fp8_e4m3::bits == 8);
    CHECK(fp8_e4m3::exponent_bits == 4);
    CHECK(fp8_e4m3::mantissa_bits == 3);
    CHECK(fp8_e4m3::bias == 7);
    CHECK(!fp8_e4m3::has_infinity);
    CHECK(fp8_e4m3::has_nan);
    CHECK(fp8_e4m3::max_code == 0x7Eu);
    CHECK(fp8_e4m3::nan_code == 0x7Fu);
    CHECK(fp8_e5m2::bias == 15);
    CHECK(fp8_e5m2::has_infinity);
    CHECK(fp8_e5m2::has_nan);
    CHECK(fp8_e5m2::max_code == 0x7Bu);
    CHECK(fp8_e5m2::infinity_code == 0x7Cu);
    CHECK(fp8_e5m2::nan_code == 0x7Eu);
    CHECK(fp6_e2m3::bits == 6);
    CHECK(fp6_e2m3::bias == 1);
    CHECK(fp6_e3m2::bias == 3);
    CHECK(fp4_e2m1::bits == 4);
    CHECK(fp4_e2m1::bias == 1);
    for (const bool inf : {fp6_e2m3::has_infinity, fp6_e3m2::has_infinity, fp4_e2m1::has_infinity, fp6_e2m3::has_nan,
                           fp6_e3m2::has_nan, fp4_e2m1::has_nan})
        CHECK(!inf);
    CHECK(fp16_format::bits == 16);
    CHECK(fp16_format::bias == 15);
    CHECK(fp16_format::infinity_code == 0x7C00u);
    CHECK(fp16_format::nan_code == 0x7E00u);
    CHECK(bf16_format::bits == 16);
    CHECK(bf16_format::bias == 127);
    CHECK(bf16_format::infinity_code == 0x7F80u);
    CHECK(bf16_format::nan_code == 0x7FC0u);
    // FP4 E2M1's whole value set (OCP MX v1.0, table of element formats).
    const float e2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (std::uint32_t c = 0; c < 8; ++c) {
        CHECK(fp4_e2m1::decode(c) == e2m1[c]);
        CHECK(fp4_e2m1::decode(c | 8u) == -e2m1[c]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Overflow, infinities, NaN.
// ---------------------------------------------------------------------------------------------------------
TEMPLATE_TEST_CASE("format: minifloat saturates beyond max_value (saturating rules)", "[format][float]", fp8_e4m3,
                   fp8_e5m2, fp6_e2m3, fp6_e3m2, fp4_e2m1, fp16_format, bf16_format, e1m2_finite, e7m0_finite, e3m0_fn,
                   e3m4_ieee, e2m12_fn, e6m9_ieee) {
    using F = TestType;
    constexpr float inf = std::numeric_limits<float>::infinity();
    const double max = static_cast<double>(F::max_value);
    // The value the next code would have if the top of the range were not special (or absent).
    const double ulp = max - reference_decode<F>(F::max_code - 1).value;
    const bool top_binade_spacing_holds = F::mantissa_bits > 0;
    const double next = top_binade_spacing_holds ? max + ulp : 2 * max;
    const auto mid = static_cast<float>((max + next) / 2);
    for (const float s : {1.0f, -1.0f}) {
        const std::uint32_t sign = s < 0 ? F::sign_bit : 0u;
        INFO("sign " << s);
        CHECK(F::encode(s * F::max_value) == (sign | F::max_code));
        CHECK(F::encode(s * std::nextafter(F::max_value, inf)) == (sign | F::max_code));
        if (std::isfinite(mid)) {
            CHECK(F::encode(s * std::nextafter(mid, 0.0f)) == (sign | F::max_code));
            CHECK(F::encode(s * mid) == (sign | F::max_code));
            CHECK(F::encode(s * std::nextafter(mid, inf)) == (sign | F::max_code));
        }
        CHECK(F::encode(s * std::numeric_limits<float>::max()) == (sign | F::max_code));
        const std::uint32_t inf_code = F::has_infinity ? F::infinity_code : F::max_code;
        CHECK(F::encode(s * inf) == (sign | inf_code));
        CHECK(F::decode(F::encode(s * std::numeric_limits<float>::max())) == s * F::max_value);
    }
}

TEST_CASE("format: minifloat overflow modes at the boundary (OFP8 saturating / non-saturating, IEEE)",
          "[format][float]") {
    constexpr float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // E4M3: 464 is halfway between 448 (0x7E, even) and 480 (0x7F, taken by NaN): ties to 448; above overflows.
    CHECK(fp8_e4m3::encode(464.0f) == 0x7Eu);
    CHECK(fp8_e4m3::encode(std::nextafter(464.0f, inf)) == 0x7Eu);
    CHECK(fp8_e4m3::encode(-std::nextafter(464.0f, inf)) == 0xFEu);
    CHECK(fp8_e4m3::encode(inf) == 0x7Eu);
    CHECK(fp8_e4m3::encode(-inf) == 0xFEu);
    CHECK(e4m3_nonsat::encode(464.0f) == 0x7Eu);
    CHECK(e4m3_nonsat::encode(std::nextafter(464.0f, inf)) == 0x7Fu);
    CHECK(e4m3_nonsat::encode(-std::nextafter(464.0f, inf)) == 0x7Fu);  // the NaN is always the positive one
    CHECK(e4m3_nonsat::encode(inf) == 0x7Fu);
    CHECK(e4m3_nonsat::encode(-inf) == 0x7Fu);
    CHECK(e4m3_nonsat::encode(-448.0f) == 0xFEu);

    // E5M2: 61440 is halfway between 57344 (0x7B, odd) and 65536 (0x7C, Inf, even).
    CHECK(fp8_e5m2::encode(61440.0f) == 0x7Bu);
    CHECK(fp8_e5m2::encode(1e9f) == 0x7Bu);
    CHECK(fp8_e5m2::encode(inf) == 0x7Cu);
    CHECK(fp8_e5m2::encode(-inf) == 0xFCu);
    CHECK(e5m2_nonsat::encode(std::nextafter(61440.0f, 0.0f)) == 0x7Bu);
    CHECK(e5m2_nonsat::encode(61440.0f) == 0x7Cu);
    CHECK(e5m2_nonsat::encode(-61440.0f) == 0xFCu);
    CHECK(e5m2_nonsat::encode(inf) == 0x7Cu);
    CHECK(e5m2_satfinite::encode(61440.0f) == 0x7Bu);
    CHECK(e5m2_satfinite::encode(inf) == 0x7Bu);
    CHECK(e5m2_satfinite::encode(-inf) == 0xFBu);
    CHECK(e5m2_satfinite::encode(nan) == 0x7Eu);

    // fp16: 65520 is halfway between 65504 and 65536 (Inf).
    CHECK(fp16_format::encode(65520.0f) == 0x7BFFu);
    CHECK(fp16_format::encode(-1e10f) == 0xFBFFu);
    CHECK(fp16_format::encode(inf) == 0x7C00u);
    CHECK(fp16_nonsat::encode(std::nextafter(65520.0f, 0.0f)) == 0x7BFFu);
    CHECK(fp16_nonsat::encode(65520.0f) == 0x7C00u);
    CHECK(fp16_nonsat::encode(-65520.0f) == 0xFC00u);

    // bf16: floats above 0x1.FEp127 that round up would be Inf under IEEE rules; saturating keeps the max.
    const float big = float_of(0x7F7F8000u);  // halfway between bf16 max 0x7F7F and 0x7F80 (Inf)
    CHECK(bf16_format::encode(big) == 0x7F7Fu);
    CHECK(bf16_format::encode(std::numeric_limits<float>::max()) == 0x7F7Fu);
    CHECK(bf16_format::encode(-std::numeric_limits<float>::max()) == 0xFF7Fu);
    CHECK(bf16_format::encode(inf) == 0x7F80u);
    CHECK(bf16_nonsat::encode(float_of(0x7F7F7FFFu)) == 0x7F7Fu);
    CHECK(bf16_nonsat::encode(big) == 0x7F80u);
    CHECK(bf16_nonsat::encode(std::numeric_limits<float>::max()) == 0x7F80u);
}

TEST_CASE("format: minifloat NaN handling", "[format][float]") {
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    const float snan = float_of(0x7F800001u);         // signalling, payload only in the low bits
    const float payload_nan = float_of(0x7FE12345u);  // quiet, payload in the top bits
    const float neg_nan = float_of(0xFFC00000u);

    // OCP E4M3: one NaN per sign; encode always gives the positive one.
    for (const float n : {qnan, snan, payload_nan, neg_nan}) CHECK(fp8_e4m3::encode(n) == 0x7Fu);
    CHECK(std::isnan(fp8_e4m3::decode(0x7Fu)));
    CHECK(std::isnan(fp8_e4m3::decode(0xFFu)));
    CHECK(fp8_e4m3::decode(0x7Eu) == 448.0f);  // the rest of the top binade is finite
    CHECK(fp8_e4m3::decode(0x78u) == 256.0f);

    // IEEE-like: quiet NaN with the sign and the top mantissa bits of the payload.
    CHECK(fp8_e5m2::encode(qnan) == 0x7Eu);
    CHECK(fp8_e5m2::encode(neg_nan) == 0xFEu);
    CHECK(fp8_e5m2::encode(snan) == 0x7Eu);
    CHECK(fp8_e5m2::encode(float_of(0x7FA00000u)) == 0x7Fu);  // sNaN with payload 01.. -> quiet 11
    CHECK(fp8_e5m2::encode(payload_nan) == 0x7Fu);
    CHECK(fp16_format::encode(qnan) == 0x7E00u);
    CHECK(fp16_format::encode(neg_nan) == 0xFE00u);
    CHECK(fp16_format::encode(snan) == 0x7E00u);
    CHECK(fp16_format::encode(payload_nan) == (0x7C00u | (0x612345u >> 13)));
    CHECK(bf16_format::encode(qnan) == 0x7FC0u);
    CHECK(bf16_format::encode(neg_nan) == 0xFFC0u);
    CHECK(bf16_format::encode(snan) == 0x7FC0u);
    CHECK(bf16_format::encode(payload_nan) == 0x7FE1u);
    // A decoded signalling NaN code is a quiet float NaN and comes back quiet (the only round-trip change).
    CHECK(std::isnan(fp8_e5m2::decode(0x7Du)));
    CHECK(fp8_e5m2::encode(fp8_e5m2::decode(0x7Du)) == 0x7Fu);
    CHECK(fp16_format::encode(fp16_format::decode(0xFC01u)) == 0xFE01u);
    CHECK(bf16_format::encode(bf16_format::decode(0x7F81u)) == 0x7FC1u);

    // MX FP6/FP4 have no NaN: NaN encodes as +0.
    for (const float n : {qnan, snan, payload_nan, neg_nan}) {
        CHECK(fp6_e2m3::encode(n) == 0u);
        CHECK(fp6_e3m2::encode(n) == 0u);
        CHECK(fp4_e2m1::encode(n) == 0u);
    }
}

TEMPLATE_TEST_CASE("format: minifloat zero, underflow and sign", "[format][float]", fp8_e4m3, fp8_e5m2, fp6_e2m3,
                   fp6_e3m2, fp4_e2m1, fp16_format, bf16_format) {
    using F = TestType;
    const float tiny = std::numeric_limits<float>::denorm_min();
    CHECK(F::encode(0.0f) == 0u);
    CHECK(F::encode(-0.0f) == F::sign_bit);
    CHECK(F::encode(tiny) == 0u);
    CHECK(F::encode(-tiny) == F::sign_bit);
    CHECK(F::encode(F::min_subnormal / 2) == 0u);                        // tie with 0: even
    CHECK(F::encode(std::nextafter(F::min_subnormal / 2, 1.0f)) == 1u);  // just above: the smallest subnormal
    CHECK(F::encode(-F::min_subnormal) == (F::sign_bit | 1u));
    CHECK(F::encode(F::min_normal) == (1u << F::mantissa_bits));
    // The largest subnormal rounds up into the smallest normal when just below it.
    CHECK(F::encode(std::nextafter(F::min_normal, 0.0f)) == (1u << F::mantissa_bits));
}

// ---------------------------------------------------------------------------------------------------------
// Random inputs.
// ---------------------------------------------------------------------------------------------------------
TEMPLATE_TEST_CASE("format: minifloat encode of random floats is the nearest code (brute force)", "[format][float]",
                   fp8_e4m3, fp8_e5m2, fp6_e2m3, fp6_e3m2, fp4_e2m1, e5m2_satfinite, e1m2_finite, e7m0_finite, e3m0_fn,
                   e3m4_ieee) {
    using F = TestType;
    const auto values = positive_values<F>();
    const auto inputs = random_inputs<F>(20240607u + F::bits, 16000);
    mismatch_log log;
    for (const float x : inputs) {
        std::uint32_t expected = brute_force_encode<F>(values, x);
        if (F::overflow == minifloat_overflow::satfinite && std::isinf(x))
            expected = (std::signbit(x) ? F::sign_bit : 0u) | F::max_code;
        const std::uint32_t got = F::encode(x);
        if (got != expected) {
            log.add(show(x) + " -> " + hex(got) + ", nearest " + hex(expected));
            continue;
        }
        // The brief's form of the same property: within half the gap to the neighbour on x's side.
        if (std::isfinite(x) && std::fabs(static_cast<double>(x)) <= static_cast<double>(F::max_value)) {
            const std::uint32_t mag = got & (F::sign_bit - 1u);
            const double ax = std::fabs(static_cast<double>(x));
            const double v = values[mag];
            const double neighbour = ax >= v ? (mag < F::max_code ? values[mag + 1] : v) : values[mag - 1];
            if (std::fabs(ax - v) > std::fabs(neighbour - v) / 2)
                log.add(show(x) + " -> " + hex(got) + " is more than half a gap away");
        }
    }
    INFO(log.first);
    CHECK(log.count == 0);
}

namespace {

/// bfloat16 the classic way: add 0x7FFF plus the lowest kept bit, truncate (carries run into the exponent
/// and on to Inf by themselves); then the saturating rule.
std::uint16_t bf16_reference(float x) {
    const std::uint32_t u = bits_of(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    if ((u & 0x7FFFFFFFu) != 0x7F800000u && (rounded & 0x7FFFu) == 0x7F80u)
        return static_cast<std::uint16_t>((rounded & 0x8000u) | 0x7F7Fu);
    return static_cast<std::uint16_t>(rounded);
}

/// binary16 after F. Giesen's float_to_half_fast3_rtne: rebias-and-carry for normals, the FPU's own
/// round-to-nearest-even (a float add with a magic constant) for results in the subnormal range.
std::uint16_t fp16_reference(float x) {
    std::uint32_t f = bits_of(x);
    const std::uint32_t sign = f & 0x80000000u;
    f ^= sign;
    std::uint32_t o = 0;
    if (f >= 0x47800000u) {  // |x| >= 65536, Inf or NaN
        o = f > 0x7F800000u ? 0x7E00u | ((f >> 13) & 0x3FFu) : 0x7C00u;
        if (f < 0x7F800000u) o = 0x7BFFu;  // saturating rule for finite overflow
    } else if (f < 0x38800000u) {          // below 2^-14: fp16 subnormal or zero
        const std::uint32_t denorm_magic = ((127 - 15) + (23 - 10) + 1) << 23;
        const float sum = float_of(f) + float_of(denorm_magic);
        o = bits_of(sum) - denorm_magic;
    } else {
        const std::uint32_t mant_odd = (f >> 13) & 1u;
        f += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xFFFu;
        f += mant_odd;
        o = f >> 13;
        if (o >= 0x7C00u) o = 0x7BFFu;  // rounded up to 65536: saturate
    }
    return static_cast<std::uint16_t>(o | (sign >> 16));
}

/// Local nearest check: the neighbours of the chosen code are not nearer, and a tie went to the even code.
template <class F>
bool locally_nearest(float x, std::uint32_t code) {
    const double ax = std::fabs(static_cast<double>(x));
    const std::uint32_t mag = code & (F::sign_bit - 1u);
    if (mag > F::max_code) return false;
    const double d = std::fabs(static_cast<double>(F::decode(mag)) - ax);
    for (const std::uint32_t n : {mag - 1u, mag + 1u}) {
        if (mag == 0 && n == mag - 1u) continue;
        if (n > F::max_code) continue;
        const double dn = std::fabs(static_cast<double>(F::decode(n)) - ax);
        if (dn < d || (dn == d && (mag & 1u))) return false;
    }
    return true;
}

}  // namespace

TEMPLATE_TEST_CASE("format: fp16/bf16 encode agrees with independent conversions on random floats", "[format][float]",
                   fp16_format, bf16_format) {
    using F = TestType;
    auto inputs = random_inputs<F>(77u + F::mantissa_bits, 200000);
    std::mt19937 gen(5u);
    for (int i = 0; i < 2000; ++i) inputs.push_back(float_of(0x7F800000u | (gen() & 0x807FFFFFu)));  // NaN/Inf
    mismatch_log log;
    for (const float x : inputs) {
        const std::uint32_t got = F::encode(x);
        const std::uint32_t ref = std::is_same_v<F, fp16_format> ? fp16_reference(x) : bf16_reference(x);
        if (got != ref) log.add(show(x) + " -> " + hex(got) + ", reference " + hex(ref));
        if (std::isfinite(x) && std::fabs(x) <= F::max_value && !locally_nearest<F>(x, got))
            log.add(show(x) + " -> " + hex(got) + " is not nearest");
#if defined(__FLT16_MAX__)
        // The compiler's own float -> _Float16 conversion (IEEE: overflow to Inf, so compare inside the range).
        if constexpr (std::is_same_v<F, fp16_format>) {
            if (std::isfinite(x) && std::fabs(x) < 65520.0f) {
                const auto h = static_cast<_Float16>(x);
                std::uint16_t hb = 0;
                std::memcpy(&hb, &h, sizeof hb);
                if (hb != got) log.add(show(x) + " -> " + hex(got) + ", _Float16 " + hex(hb));
            }
        }
#endif
    }
    INFO(log.first);
    CHECK(log.count == 0);
}

// ---------------------------------------------------------------------------------------------------------
// E8M0.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("format: e8m0 codes, NaN, 2^-127 and 2^127", "[format][float][e8m0]") {
    for (std::uint32_t c = 0; c < 255; ++c) {
        const float v = e8m0_format::decode(c);
        INFO("code " << c);
        CHECK(static_cast<double>(v) == std::ldexp(1.0, static_cast<int>(c) - 127));
        CHECK(e8m0_format::encode(v) == c);
        CHECK(e8m0_format::encode(-v) == c);  // no sign
        CHECK(e8m0_format::decode_exponent(c) == static_cast<int>(c) - 127);
        CHECK(e8m0_format::encode_exponent(static_cast<int>(c) - 127) == c);
        CHECK(!e8m0_format::is_nan(c));
        if (c < 254) CHECK(e8m0_format::encode(std::nextafter(2 * v, 0.0f)) == c);  // floor, not round
    }
    CHECK(e8m0_format::is_nan(0xFFu));
    CHECK(std::isnan(e8m0_format::decode(0xFFu)));
    CHECK(e8m0_format::encode(std::numeric_limits<float>::quiet_NaN()) == 0xFFu);
    CHECK(e8m0_format::encode(-std::numeric_limits<float>::quiet_NaN()) == 0xFFu);

    const float smallest = e8m0_format::decode(0u);
    CHECK(std::fpclassify(smallest) == FP_SUBNORMAL);
    CHECK(static_cast<double>(smallest) == std::ldexp(1.0, -127));
    CHECK(smallest == e8m0_format::min_value);
    CHECK(static_cast<double>(e8m0_format::decode(254u)) == std::ldexp(1.0, 127));
    CHECK(e8m0_format::decode(254u) == e8m0_format::max_value);
    CHECK(e8m0_format::decode(127u) == 1.0f);

    // Clamping: below 2^-127 (zero and every subnormal) -> code 0; beyond 2^127 (only Inf) -> 254.
    CHECK(e8m0_format::encode(0.0f) == 0u);
    CHECK(e8m0_format::encode(-0.0f) == 0u);
    CHECK(e8m0_format::encode(std::numeric_limits<float>::denorm_min()) == 0u);
    CHECK(e8m0_format::encode(std::nextafter(std::numeric_limits<float>::min(), 0.0f)) == 0u);
    CHECK(e8m0_format::encode(std::numeric_limits<float>::min()) == 1u);
    CHECK(e8m0_format::encode(std::numeric_limits<float>::max()) == 254u);
    CHECK(e8m0_format::encode(std::numeric_limits<float>::infinity()) == 254u);
    CHECK(e8m0_format::encode(-std::numeric_limits<float>::infinity()) == 254u);
    CHECK(e8m0_format::encode_exponent(-128) == 0u);
    CHECK(e8m0_format::encode_exponent(-100000) == 0u);
    CHECK(e8m0_format::encode_exponent(128) == 254u);
    CHECK(e8m0_format::encode_exponent(100000) == 254u);

    // floor(log2 |x|): 3 -> 2, 0.75 -> 0.5, -4 -> 4.
    CHECK(e8m0_format::encode(3.0f) == 128u);
    CHECK(e8m0_format::encode(0.75f) == 126u);
    CHECK(e8m0_format::encode(-4.0f) == 129u);
    CHECK(e8m0_format::encode(std::nextafter(2.0f, 0.0f)) == 127u);
    std::mt19937 gen(11u);
    for (int i = 0; i < 2000; ++i) {
        const float x = float_of((gen() & 0x7FFFFFFFu) % 0x7F000000u + 0x00800000u);  // positive normal
        const float p = e8m0_format::decode(e8m0_format::encode(x));
        INFO(show(x));
        CHECK(p <= x);
        CHECK(static_cast<double>(x) < 2.0 * static_cast<double>(p));
    }
    CHECK(e8m0_format::bits == 8);
    CHECK(e8m0_format::bias == 127);
}
