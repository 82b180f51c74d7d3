// Quantizers end to end: quantize<Q> / compress_matrix<Q> / dequantize / choose_scales<Q> on seeded random
// data, for the schemes, granularities, scale kinds, rounding modes and observers of quant/.
//
// Expectations are computed here from the definitions (cell extremes, amax / code_max, the OCP MX exponent
// rule via std::ilogb, nearest-rank quantiles, brute-force nearest grid values), not by calling the code
// paths under test; bounds allow only float rounding slack.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tcomp/tcomp.hpp"

namespace {

using namespace tcomp;

// ---------------------------------------------------------------------------------------------------------
// Test data.
// ---------------------------------------------------------------------------------------------------------
struct matrix {
    index_t rows = 0;
    index_t cols = 0;
    std::vector<float> data;

    matrix(index_t r, index_t c, float fill = 0.0f) : rows(r), cols(c), data(static_cast<std::size_t>(r * c), fill) {}
    float& at(index_t r, index_t c) { return data[static_cast<std::size_t>(r * cols + c)]; }
    float at(index_t r, index_t c) const { return data[static_cast<std::size_t>(r * cols + c)]; }
    matrix_view<const float> view() const { return {data.data(), rows, cols}; }
};

matrix normal_matrix(index_t rows, index_t cols, std::uint32_t seed, float mean = 0.0f, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(mean, sigma);
    matrix m(rows, cols);
    for (auto& v : m.data) v = dist(rng);
    return m;
}

matrix uniform_matrix(index_t rows, index_t cols, std::uint32_t seed, float lo, float hi) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    matrix m(rows, cols);
    for (auto& v : m.data) v = dist(rng);
    return m;
}

/// The integer code of every element, row-major (dense matrices).
template <class Q>
std::vector<int> integer_codes(const compressed_matrix<Q>& m) {
    std::vector<int> out(static_cast<std::size_t>(m.rows() * m.cols()));
    std::vector<index_t> columns;
    const auto v = m.view();
    for (index_t r = 0; r < m.rows(); ++r)
        v.for_each_in_row(r, columns, [&](index_t c, std::uint32_t code) {
            if constexpr (integer_grid_format<typename Q::format>)
                out[static_cast<std::size_t>(r * m.cols() + c)] = Q::format::to_integer(code);
            else
                out[static_cast<std::size_t>(r * m.cols() + c)] = static_cast<int>(code);
        });
    return out;
}

template <class Q>
std::vector<std::uint32_t> raw_codes(const compressed_matrix<Q>& m) {
    std::vector<std::uint32_t> out(static_cast<std::size_t>(m.rows() * m.cols()));
    std::vector<index_t> columns;
    const auto v = m.view();
    for (index_t r = 0; r < m.rows(); ++r)
        v.for_each_in_row(r, columns,
                          [&](index_t c, std::uint32_t code) { out[static_cast<std::size_t>(r * m.cols() + c)] = code; });
    return out;
}

/// Cell of element (r, k) under Q's granularity, computed from the documented definition.
template <class Q>
index_t cell_of(index_t r, index_t k, index_t cols) {
    using G = typename Q::granularity;
    if (!G::per_row) return 0;
    if (G::group_size == 0) return r;
    return r * (cols / G::group_size) + k / G::group_size;
}

struct cell_stats {
    float lo = std::numeric_limits<float>::infinity();
    float hi = -std::numeric_limits<float>::infinity();
    double sum_abs = 0.0;
    index_t count = 0;
    float amax() const { return std::max(std::fabs(lo), std::fabs(hi)); }
};

template <class Q>
std::vector<cell_stats> stats_of(const matrix& x) {
    index_t cells = 1;
    using G = typename Q::granularity;
    if (G::per_row) cells = G::group_size == 0 ? x.rows : x.rows * (x.cols / G::group_size);
    std::vector<cell_stats> out(static_cast<std::size_t>(cells));
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t c = 0; c < x.cols; ++c) {
            auto& s = out[static_cast<std::size_t>(cell_of<Q>(r, c, x.cols))];
            s.lo = std::min(s.lo, x.at(r, c));
            s.hi = std::max(s.hi, x.at(r, c));
            s.sum_abs += std::fabs(static_cast<double>(x.at(r, c)));
            ++s.count;
        }
    return out;
}

/// Float-rounding slack of a quantize-dequantize round trip (x / S rounded, S * q rounded).
float slack(float x, float scale) { return 2e-6f * (std::fabs(x) + 256.0f * scale); }

/// Binary: an integer grid without a zero code.
template <class F>
constexpr bool has_no_zero_code() {
    if constexpr (integer_grid_format<F>) return !F::dense_grid;
    else return false;
}

bool is_power_of_two(double v) {
    int e = 0;
    return v > 0.0 && std::frexp(v, &e) == 0.5;
}

template <class E, class Fn>
std::string thrown_message(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<wrong exception type: ") + e.what() + ">";
    }
    return "<no exception>";
}

// ---------------------------------------------------------------------------------------------------------
// The round-trip property of integer quantizers with float scales and min_max (no clipping by the observer).
// ---------------------------------------------------------------------------------------------------------
template <class Q>
void check_integer_roundtrip(const matrix& x) {
    using F = typename Q::format;
    static_assert(std::is_same_v<typename Q::scale, float_scale> && std::is_same_v<typename Q::observer, min_max>);
    INFO("quantizer on " << F::name << (Q::has_zero_point ? " asymmetric" : " symmetric") << ", group "
                         << Q::granularity::group_size << ", per_row " << Q::granularity::per_row << ", shape "
                         << x.rows << "x" << x.cols);
    const auto cm = quantize<Q>(x.view());
    const auto dq = dequantize(cm);
    const auto codes = integer_codes(cm);
    const auto view = cm.view();
    const auto stats = stats_of<Q>(x);
    REQUIRE(dq.rows() == x.rows);
    REQUIRE(dq.cols() == x.cols);

    // Scales (and zero points) per cell, from the definitions.
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t k = 0; k < x.cols; ++k) {
            const cell_stats& s = stats[static_cast<std::size_t>(cell_of<Q>(r, k, x.cols))];
            const float scale = view.scale(r, k);
            const int zero = view.zero_point(r, k);
            REQUIRE(std::isfinite(scale));
            REQUIRE(scale > 0.0f);
            double expected = 0.0;
            if constexpr (Q::has_zero_point)
                expected = (std::max(s.hi, 0.0f) - std::min(s.lo, 0.0f)) / double(F::code_max - F::code_min);
            else if constexpr (F::is_signed)
                expected = s.amax() / double(F::code_max);
            else
                expected = std::max(s.hi, 0.0f) / double(F::code_max);
            if (expected > 0.0) REQUIRE(static_cast<double>(scale) == Approx(expected).epsilon(1e-6));
            if constexpr (Q::has_zero_point) {
                REQUIRE(zero >= F::code_min);
                REQUIRE(zero <= F::code_max);
                // The grid [S (code_min - z), S (code_max - z)] covers [min(lo, 0), max(hi, 0)] to within S/2.
                CHECK(scale * static_cast<float>(F::code_min - zero) <= std::min(s.lo, 0.0f) + 0.5f * scale + slack(s.lo, scale));
                CHECK(scale * static_cast<float>(F::code_max - zero) >= std::max(s.hi, 0.0f) - 0.5f * scale - slack(s.hi, scale));
            } else {
                REQUIRE(zero == 0);
            }
        }

    // Every element: within S/2 when inside the clip range, else saturated to the extreme code.
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t k = 0; k < x.cols; ++k) {
            const float xv = x.at(r, k);
            const float scale = view.scale(r, k);
            const int zero = view.zero_point(r, k);
            const int code = codes[static_cast<std::size_t>(r * x.cols + k)];
            const float d = dq(r, k);
            INFO("element (" << r << ", " << k << ") = " << xv << ", scale " << scale << ", zero " << zero << ", code "
                             << code << ", dequantized " << d);
            REQUIRE(code >= F::code_min);
            REQUIRE(code <= F::code_max);
            // dequantize() is S * (q - z).
            REQUIRE(d == scale * static_cast<float>(code - zero));
            const bool inside = Q::has_zero_point || F::is_signed || xv >= 0.0f;
            if (inside) {
                REQUIRE(std::fabs(xv - d) <= 0.5f * scale + slack(xv, scale));
            } else {
                // Unsigned symmetric: the clip range is [0, hi]; negatives saturate to code 0.
                REQUIRE(code == F::code_min);
                REQUIRE(d == 0.0f);
            }
            if (xv == 0.0f) REQUIRE(d == 0.0f);  // zero is exact in every scheme
        }
}

template <class F, class G>
void roundtrip_all_schemes(const matrix& x) {
    check_integer_roundtrip<quantizer<F, symmetric, G>>(x);
    check_integer_roundtrip<quantizer<F, asymmetric, G>>(x);
}

template <class F>
void roundtrip_suite(std::uint32_t seed) {
    // Normal data with exact zeros planted, skewed uniform data, odd shapes, a 1x1 matrix.
    matrix a = normal_matrix(7, 33, seed, 0.0f, 1.5f);
    a.at(0, 0) = 0.0f, a.at(3, 17) = 0.0f, a.at(6, 32) = 0.0f;
    const matrix b = uniform_matrix(13, 96, seed + 1, -0.7f, 2.3f);
    const matrix c = uniform_matrix(5, 24, seed + 2, 1.0f, 3.0f);    // all positive
    const matrix d = uniform_matrix(3, 16, seed + 3, -5.0f, -0.5f);  // all negative
    matrix one(1, 1, -0.8125f);
    // Three granularities (kept to one group size to bound the number of instantiations; other group
    // sizes are covered by the scale-kind tests below): groups of 3 split 33, 96 and 24 columns.
    roundtrip_all_schemes<F, per_tensor>(a);
    roundtrip_all_schemes<F, per_channel>(a);
    roundtrip_all_schemes<F, per_group<3>>(a);
    roundtrip_all_schemes<F, per_tensor>(b);
    roundtrip_all_schemes<F, per_channel>(b);
    roundtrip_all_schemes<F, per_group<3>>(b);
    roundtrip_all_schemes<F, per_group<3>>(c);
    roundtrip_all_schemes<F, per_channel>(d);
    roundtrip_all_schemes<F, per_tensor>(one);
    one.at(0, 0) = 3.0f;
    roundtrip_all_schemes<F, per_channel>(one);
}

using roundtrip_formats = std::tuple<int_format<2>, int_format<3>, int_format<4>, int_format<5>, int_format<6>,
                                     int_format<7>, int_format<8>, uint_format<2>, uint_format<3>, uint_format<4>,
                                     uint_format<5>, uint_format<6>, uint_format<7>, uint_format<8>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("quant: round trip within S/2, symmetric and asymmetric, every granularity",
                        "[quant][roundtrip]", roundtrip_formats) {
    roundtrip_suite<TestType>(1000u + static_cast<std::uint32_t>(TestType::bits) * 7u +
                              (TestType::is_signed ? 0u : 100u));
}

TEST_CASE("quant: hand-checked symmetric and asymmetric examples", "[quant]") {
    // int4 symmetric per tensor: amax 7 -> S = 1, values round half to even.
    {
        matrix x(1, 8);
        const float vals[] = {7.0f, -7.0f, 2.5f, 3.5f, -2.5f, 0.4f, -0.6f, 1.0f};
        std::copy(std::begin(vals), std::end(vals), x.data.begin());
        using Q = quantizer<int_format<4>, symmetric, per_tensor>;
        const auto cm = quantize<Q>(x.view());
        CHECK(cm.view().scale(0, 0) == 1.0f);
        CHECK(integer_codes(cm) == std::vector<int>{7, -7, 2, 4, -2, 0, -1, 1});
    }
    // uint4 asymmetric: range [-1, 2] -> S = 3/15 = 0.2, z = round(0 - (-1)/0.2) = 5.
    {
        matrix x(1, 4);
        const float vals[] = {-1.0f, 2.0f, 0.0f, 0.5f};
        std::copy(std::begin(vals), std::end(vals), x.data.begin());
        using Q = quantizer<uint_format<4>, asymmetric, per_tensor>;
        const auto cm = quantize<Q>(x.view());
        CHECK(cm.view().scale(0, 0) == Approx(0.2f));
        CHECK(cm.view().zero_point(0, 0) == 5);
        CHECK(integer_codes(cm) == std::vector<int>{0, 15, 5, 8});  // 0.5 / 0.2 + 5 = 7.5 -> 8 (even)
        const auto dq = dequantize(cm);
        CHECK(dq(0, 2) == 0.0f);
        CHECK(dq(0, 0) == Approx(-1.0f));
        CHECK(dq(0, 1) == Approx(2.0f));
    }
    // int8 asymmetric on a skewed range [-0.2, 5.1]: zero point away from 0 and 0.0 stays exact.
    {
        matrix x = uniform_matrix(4, 40, 99u, -0.2f, 5.1f);
        x.at(2, 3) = 0.0f;
        using Q = quantizer<int_format<8>, asymmetric, per_tensor>;
        const auto cm = quantize<Q>(x.view());
        const float s = cm.view().scale(0, 0);
        CHECK(cm.view().zero_point(0, 0) < -90);
        CHECK(dequantize(cm)(2, 3) == 0.0f);
        const float lo = *std::min_element(x.data.begin(), x.data.end());
        const float hi = *std::max_element(x.data.begin(), x.data.end());
        CHECK(s == Approx((hi - lo) / 255.0f));
    }
}

TEST_CASE("quant: one-bit integer grids", "[quant]") {
    // int_format<1> (-1, 0) has no positive code, so only asymmetric is allowed (symmetric is a compile
    // error: tests/compile_fail/symmetric_int1.cpp); uint_format<1> (0, 1) works both ways.
    matrix x = normal_matrix(7, 33, 4711u);
    x.at(2, 2) = 0.0f;
    check_integer_roundtrip<quantizer<int_format<1>, asymmetric, per_channel>>(x);
    check_integer_roundtrip<quantizer<uint_format<1>, asymmetric, per_channel>>(x);
    check_integer_roundtrip<quantizer<uint_format<1>, symmetric, per_channel>>(x);
}

TEST_CASE("quant: compress_matrix of a dense quantizer equals quantize", "[quant]") {
    const matrix w = normal_matrix(13, 96, 5u);
    using Q = quantizer<int_format<4>, symmetric, per_group<32>>;
    const auto a = quantize<Q>(w.view());
    const auto b = compress_matrix<Q>(w.view());
    CHECK(a.storage().codes == b.storage().codes);
    CHECK(a.storage().scales == b.storage().scales);
    CHECK(a.bytes() == b.bytes());
    // choose_scales gives the scales that quantize used.
    const scale_table t = choose_scales<Q>(w.view());
    REQUIRE(t.effective.size() == 13u * 3u);
    for (index_t r = 0; r < 13; ++r)
        for (index_t g = 0; g < 3; ++g) CHECK(t.effective[static_cast<std::size_t>(r * 3 + g)] == a.view().scale(r, g * 32));
}

// ---------------------------------------------------------------------------------------------------------
// Scale kinds.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: pow2_scale gives powers of two and never clips", "[quant][scale]") {
    matrix x = normal_matrix(9, 48, 31u, 0.0f, 3.0f);
    for (index_t c = 0; c < 48; ++c) x.at(4, c) *= 1e-3f;  // a row at a very different magnitude
    x.at(7, 5) = 0.0f;
    auto run = [&](auto q) {
        using Q = decltype(q);
        using F = typename Q::format;
        const auto cm = quantize<Q>(x.view());
        const auto view = cm.view();
        const auto dq = dequantize(cm);
        const auto codes = integer_codes(cm);
        const auto stats = stats_of<Q>(x);
        for (index_t r = 0; r < x.rows; ++r)
            for (index_t k = 0; k < x.cols; ++k) {
                const float s = view.scale(r, k);
                const cell_stats& st = stats[static_cast<std::size_t>(cell_of<Q>(r, k, x.cols))];
                const double ideal = st.amax() / double(F::code_max);
                INFO("(" << r << ", " << k << ") x = " << x.at(r, k) << ", scale " << s << ", ideal " << ideal);
                REQUIRE(is_power_of_two(s));
                REQUIRE(static_cast<double>(s) >= ideal);      // covers the range: never clips
                REQUIRE(static_cast<double>(s) < 2.0 * ideal);  // the smallest such power of two
                // The stored entry is the int8 exponent.
                const auto entry = view.packed().scale_entry(Q::granularity::per_row ? r : 0,
                                                             Q::granularity::group_size ? k / Q::granularity::group_size : 0);
                REQUIRE(static_cast<int>(static_cast<std::int8_t>(entry)) == std::ilogb(s));
                const int code = codes[static_cast<std::size_t>(r * x.cols + k)];
                REQUIRE(std::abs(code) <= F::code_max);  // no code beyond the symmetric range
                if (std::abs(code) == F::code_max) REQUIRE(std::fabs(x.at(r, k)) >= (F::code_max - 0.5) * s);
                REQUIRE(std::fabs(x.at(r, k) - dq(r, k)) <= 0.5f * s + slack(x.at(r, k), s));
            }
    };
    run(quantizer<int_format<4>, pow2_scale, per_channel>{});
    run(quantizer<int_format<8>, pow2_scale, per_group<16>>{});
    run(quantizer<int_format<3>, pow2_scale, per_tensor>{});
}

namespace {

/// Nearest non-negative value of a floating format to a, brute force over all codes (distance only).
template <class F>
double nearest_distance(double a) {
    double best = std::numeric_limits<double>::infinity();
    for (std::uint32_t c = 0; c < (1u << F::bits); ++c) {
        const double v = F::decode(c);
        if (std::isfinite(v)) best = std::min(best, std::fabs(v - a));
    }
    return best;
}

/// OCP MX: X = 2^(floor(log2 amax) - emax_elem), checked for each group of one row-major matrix.
template <class F, int Emax, index_t G>
void check_e8m0(const matrix& x) {
    using Q = quantizer<F, e8m0_scale, per_group<G>>;
    INFO("format " << F::name << ", emax " << Emax);
    const auto cm = quantize<Q>(x.view());
    const auto view = cm.view();
    const auto dq = dequantize(cm);
    const auto stats = stats_of<Q>(x);
    double unit = 1.0;  // the format's step: 2^-6 for Q1.6, 1 for floating formats
    if constexpr (integer_grid_format<F>) unit = static_cast<double>(F::step);
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t g = 0; g < x.cols / G; ++g) {
            const cell_stats& st = stats[static_cast<std::size_t>(r * (x.cols / G) + g)];
            const int shared = st.amax() > 0.0f ? std::ilogb(st.amax()) - Emax : -127;
            INFO("row " << r << ", group " << g << ", amax " << st.amax() << ", shared exponent " << shared);
            CHECK(view.packed().scale_entry(r, g) == static_cast<std::uint32_t>(shared + 127));
            const double x_scale = std::ldexp(1.0, shared);  // the MX block scale X
            CHECK(static_cast<double>(view.scale(r, g * G)) == x_scale * unit);
            for (index_t k = g * G; k < (g + 1) * G; ++k) {
                const double a = static_cast<double>(x.at(r, k)) / x_scale;  // element value before quantization
                const double p = static_cast<double>(dq(r, k)) / x_scale;    // quantized element value
                INFO("element " << k << ": " << a << " -> " << p);
                CHECK(std::fabs(p) <= static_cast<double>(F::max_value));
                if constexpr (integer_grid_format<F>) {
                    // MXINT8: the nearest step (ties to even), saturating at the two's complement ends.
                    const double steps = std::clamp(std::nearbyint(a / unit), double(F::code_min), double(F::code_max));
                    CHECK(p == steps * unit);
                    if (a >= static_cast<double>(F::max_value)) CHECK(p == static_cast<double>(F::max_value));
                } else if (std::fabs(a) >= static_cast<double>(F::max_value)) {
                    CHECK(p == std::copysign(static_cast<double>(F::max_value), a));  // saturates, as MX does
                } else {
                    CHECK(std::fabs(std::fabs(p) - std::fabs(a)) <= nearest_distance<F>(std::fabs(a)) + 1e-12);
                    if (p != 0.0) CHECK((p > 0.0) == (a > 0.0));
                }
            }
        }
}

}  // namespace

TEST_CASE("quant: e8m0_scale follows the OCP MX shared-exponent rule", "[quant][scale][mx]") {
    matrix x = normal_matrix(5, 64, 77u, 0.0f, 2.0f);
    // Groups of 32 with planted maxima whose mantissa is large (values beyond the element max saturate).
    x.at(0, 3) = 7.6f;         // fp4: floor(log2 7.6) = 2, X = 1, 7.6 > 6 saturates
    x.at(1, 40) = 15.9f;       // Q1.6: X = 8, 1.9875 > 127/64 saturates
    x.at(2, 10) = 1000.0f;     // fp8: floor(log2 1000) = 9, X = 2, 500 > 448 saturates
    for (index_t c = 32; c < 64; ++c) x.at(3, c) *= 1e-5f;  // a tiny group
    for (index_t c = 0; c < 32; ++c) x.at(4, c) = 0.0f;     // an all-zero group
    check_e8m0<fp4_e2m1, 2, 32>(x);
    check_e8m0<fp8_e4m3, 8, 32>(x);
    check_e8m0<fixed_point_format<1, 6>, 0, 32>(x);
    check_e8m0<fp6_e2m3, 2, 16>(x);
    check_e8m0<fp8_e5m2, 15, 16>(x);
    // The MX emax values: the exponent of each format's largest normal.
    CHECK(std::ilogb(fp4_e2m1::max_value) == 2);
    CHECK(std::ilogb(fp8_e4m3::max_value) == 8);
    CHECK(std::ilogb(fixed_point_format<1, 6>::max_value) == 0);
    // A planted maximum lands on the element max (saturated).
    using Q = quantizer<fp4_e2m1, e8m0_scale, per_group<32>>;
    const auto dq = dequantize(quantize<Q>(x.view()));
    CHECK(dq(0, 3) == 6.0f);
    using QI = quantizer<fixed_point_format<1, 6>, e8m0_scale, per_group<32>>;
    CHECK(dequantize(quantize<QI>(x.view()))(1, 40) == 15.875f);  // 8 * 127/64
    using Q8 = quantizer<fp8_e4m3, e8m0_scale, per_group<32>>;
    CHECK(dequantize(quantize<Q8>(x.view()))(2, 10) == 896.0f);  // 2 * 448
}

namespace {

/// Two-level scales: group scale = T * 2^-s, s in [0, 2^B); the largest s that still covers the group.
template <class Q, int B, bool Pow2Tensor>
void check_two_level(const matrix& x) {
    using F = typename Q::format;
    constexpr index_t G = Q::granularity::group_size;
    const auto cm = quantize<Q>(x.view());
    const auto view = cm.view();
    const auto dq = dequantize(cm);
    const auto codes = integer_codes(cm);
    const auto stats = stats_of<Q>(x);
    double top = 0.0;
    for (const auto& st : stats) top = std::max(top, st.amax() / double(F::code_max));
    const float tensor = view.packed().tensor_scale;
    INFO("B = " << B << ", tensor scale " << tensor << ", largest ideal " << top);
    REQUIRE(std::isfinite(tensor));
    REQUIRE(cm.storage().layout.has_tensor_scale);
    if (Pow2Tensor) {
        CHECK(is_power_of_two(tensor));
        CHECK(static_cast<double>(tensor) >= top * (1 - 1e-7));
        CHECK(static_cast<double>(tensor) < 2.0 * top);
    } else {
        CHECK(static_cast<double>(tensor) == Approx(top).epsilon(1e-6));
    }
    std::vector<int> shifts_seen(1 << B, 0);
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t g = 0; g < x.cols / G; ++g) {
            const cell_stats& st = stats[static_cast<std::size_t>(r * (x.cols / G) + g)];
            const double ideal = st.amax() / double(F::code_max);
            const std::uint32_t s = view.packed().scale_entry(r, g);
            const float scale = view.scale(r, g * G);
            INFO("row " << r << ", group " << g << ", shift " << s << ", scale " << scale << ", ideal " << ideal);
            REQUIRE(s < (1u << B));
            ++shifts_seen[s];
            // s = floor(log2(T / S*)) clamped to [0, 2^B - 1] (away from exact powers of two, where float
            // rounding of S* may decide).
            const double ratio = static_cast<double>(tensor) / ideal;
            if (ideal == 0.0) {
                CHECK(s == (1u << B) - 1u);
            } else if (std::fabs(std::log2(ratio) - std::round(std::log2(ratio))) > 1e-6) {
                const double expected = std::clamp(std::floor(std::log2(ratio)), 0.0, double((1 << B) - 1));
                CHECK(static_cast<double>(s) == expected);
            }
            CHECK(scale == std::ldexp(tensor, -static_cast<int>(s)));
            CHECK(static_cast<double>(scale) >= ideal * (1 - 1e-6));  // no group clips
            if (s + 1 < (1u << B)) CHECK(static_cast<double>(scale) < 2.0 * ideal * (1 + 1e-6));
            for (index_t k = g * G; k < (g + 1) * G; ++k) {
                REQUIRE(std::abs(codes[static_cast<std::size_t>(r * x.cols + k)]) <= F::code_max);
                REQUIRE(std::fabs(x.at(r, k) - dq(r, k)) <= 0.5f * scale + slack(x.at(r, k), scale));
            }
        }
    // The data spans the shifts (every one for multi_level; the ends for shiftable, whose T is rounded up).
    for (int s = 0; s < (1 << B); ++s)
        if (!Pow2Tensor || s == 0 || s == (1 << B) - 1) CHECK(shifts_seen[static_cast<std::size_t>(s)] > 0);
}

}  // namespace

TEST_CASE("quant: multi_level_scale and shiftable_scale", "[quant][scale]") {
    // Groups of 16 at magnitudes 1, 1/3, 1/5, 1/9, 1/40, 1e-4: every shift 0..3 occurs, one group needs more.
    matrix x = normal_matrix(4, 96, 4242u);
    const float factor[] = {1.0f, 0.33f, 0.2f, 0.11f, 0.025f, 1e-4f};
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 96; ++c) x.at(r, c) *= factor[(c / 16 + r) % 6];
    check_two_level<quantizer<int_format<8>, multi_level_scale<2>, per_group<16>>, 2, false>(x);
    check_two_level<quantizer<int_format<4>, shiftable_scale<2>, per_group<16>>, 2, true>(x);
    // B = 3: group (r, g) has amax 0.9 * 2^-(g + r) (1 for the first), so the shifts are 0..7 and one clamps.
    matrix y = uniform_matrix(2, 128, 4243u, -1.0f, 1.0f);
    for (index_t r = 0; r < 2; ++r)
        for (index_t g = 0; g < 8; ++g) {
            const int k = static_cast<int>(g + r);
            const float amax = (k == 0 ? 1.0f : 0.9f) * std::ldexp(1.0f, -k);
            for (index_t c = g * 16; c < g * 16 + 16; ++c) y.at(r, c) *= amax;
            y.at(r, g * 16 + (g + r) % 16) = (g % 2 ? -amax : amax);
        }
    check_two_level<quantizer<int_format<6>, multi_level_scale<3>, per_group<16>>, 3, false>(y);
    check_two_level<quantizer<int_format<8>, shiftable_scale<3>, per_group<16>>, 3, true>(y);
}

TEST_CASE("quant: unit_scale quantizes fixed point with the format's own encode", "[quant][scale]") {
    const matrix x = uniform_matrix(7, 33, 555u, -10.0f, 10.0f);  // beyond Q3.4's [-8, 7.9375] too
    using F = fixed_point_format<3, 4>;
    using Q = quantizer<F, unit_scale, per_tensor>;
    const auto cm = quantize<Q>(x.view());
    const auto raw = raw_codes(cm);
    const auto dq = dequantize(cm);
    int saturated = 0;
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t k = 0; k < x.cols; ++k) {
            const float v = x.at(r, k);
            // Independent: round half to even of v * 16, clamped to [-128, 127], as an 8-bit pattern.
            const double steps = std::clamp(std::nearbyint(static_cast<double>(v) * 16.0), -128.0, 127.0);
            const auto pattern = static_cast<std::uint32_t>(static_cast<int>(steps) & 0xFF);
            INFO("x = " << v);
            CHECK(raw[static_cast<std::size_t>(r * x.cols + k)] == F::encode(v));
            CHECK(raw[static_cast<std::size_t>(r * x.cols + k)] == pattern);
            CHECK(static_cast<double>(dq(r, k)) == steps / 16.0);
            saturated += (std::fabs(v) > 8.0f) ? 1 : 0;
        }
    CHECK(saturated > 10);
    CHECK(cm.view().scale(0, 0) == 0.0625f);
    CHECK(cm.storage().scales.empty());
    CHECK(cm.bytes() == 7u * 33u);
}

TEST_CASE("quant: floating formats with per_channel float scales map amax to max_value", "[quant][scale][float]") {
    matrix x = normal_matrix(6, 40, 808u, 0.0f, 2.0f);
    for (index_t c = 0; c < 40; ++c) x.at(3, c) *= 1e-3f;
    x.at(5, 7) = -50.0f;  // a negative amax
    auto run = [&](auto q) {
        using Q = decltype(q);
        using F = typename Q::format;
        INFO("format " << F::name);
        const auto cm = quantize<Q>(x.view());
        const auto raw = raw_codes(cm);
        const auto dq = dequantize(cm);
        const auto stats = stats_of<Q>(x);
        for (index_t r = 0; r < x.rows; ++r) {
            const cell_stats& st = stats[static_cast<std::size_t>(r)];
            const float scale = cm.view().scale(r, 0);
            const double ideal = st.amax() / double(F::max_value);
            // Scales are never subnormal: bf16's amax / max_value is, for amax < ~4; there S = FLT_MIN (no clip).
            const bool floored = ideal < static_cast<double>(std::numeric_limits<float>::min());
            if (floored)
                CHECK(scale == std::numeric_limits<float>::min());
            else
                CHECK(static_cast<double>(scale) == Approx(ideal).epsilon(1e-6));
            for (index_t k = 0; k < x.cols; ++k) {
                const float v = x.at(r, k);
                const float decoded = F::decode(raw[static_cast<std::size_t>(r * x.cols + k)]);
                REQUIRE(std::isfinite(decoded));
                REQUIRE(std::fabs(decoded) <= F::max_value);
                CHECK(dq(r, k) == scale * decoded);
                if (std::fabs(v) == st.amax() && !floored) {
                    CHECK(decoded == std::copysign(F::max_value, v));  // amax lands on the largest code
                    CHECK(dq(r, k) == Approx(v).epsilon(1e-6));
                }
                // Nearest representable value (brute force over the codes, up to 8-bit formats).
                if constexpr (F::bits <= 8) {
                    const double a = std::fabs(static_cast<double>(v) / scale);
                    CHECK(std::fabs(std::fabs(static_cast<double>(decoded)) - a) <= nearest_distance<F>(a) + 1e-6 * a);
                }
            }
        }
    };
    run(quantizer<fp8_e4m3, per_channel>{});
    run(quantizer<fp8_e5m2, per_channel>{});
    run(quantizer<fp6_e2m3, per_channel>{});
    run(quantizer<fp6_e3m2, per_channel>{});
    run(quantizer<fp4_e2m1, per_channel>{});
    run(quantizer<fp16_format, per_channel>{});
    run(quantizer<bf16_format, per_channel>{});
    int floored_rows = 0;  // the bf16 run above did take the FLT_MIN branch
    for (index_t r = 0; r < x.rows; ++r) {
        float amax = 0.0f;
        for (index_t k = 0; k < x.cols; ++k) amax = std::max(amax, std::fabs(x.at(r, k)));
        floored_rows += amax / bf16_format::max_value < std::numeric_limits<float>::min();
    }
    CHECK(floored_rows >= 1);
    CHECK(floored_rows < x.rows);
}

TEST_CASE("quant: all-zero rows and groups", "[quant][zero]") {
    matrix x = normal_matrix(5, 32, 2024u);
    for (index_t c = 0; c < 32; ++c) x.at(1, c) = 0.0f;   // a zero row
    for (index_t c = 16; c < 32; ++c) x.at(3, c) = 0.0f;  // a zero group
    const matrix zeros(3, 32, 0.0f);                      // a zero matrix
    auto run = [&](auto q, const matrix& m) {
        using Q = decltype(q);
        INFO("format " << Q::format::name << ", group " << Q::granularity::group_size);
        quantize_options options;
        options.seed = 1u;  // used by the stochastic quantizer only
        const auto cm = quantize<Q>(m.view(), options);
        const auto dq = dequantize(cm);
        const auto stats = stats_of<Q>(m);
        int zero_cells = 0;
        for (const auto& st : stats) zero_cells += st.amax() == 0.0f;
        CHECK(zero_cells > (Q::granularity::per_row || &m == &zeros ? 0 : -1));
        for (index_t r = 0; r < m.rows; ++r)
            for (index_t k = 0; k < m.cols; ++k) {
                const float s = cm.view().scale(r, k);
                const bool zero_cell = stats[static_cast<std::size_t>(cell_of<Q>(r, k, m.cols))].amax() == 0.0f;
                INFO("(" << r << ", " << k << ") scale " << s << (zero_cell ? " (all-zero cell)" : ""));
                REQUIRE(std::isfinite(s));
                REQUIRE(std::isfinite(dq(r, k)));
                // Grids with a zero code give 0 for any zero; binary (no zero code) for all-zero cells.
                if (zero_cell || (m.at(r, k) == 0.0f && !has_no_zero_code<typename Q::format>()))
                    REQUIRE(dq(r, k) == 0.0f);
            }
        REQUIRE(std::isfinite(cm.view().packed().tensor_scale));
    };
    auto both = [&](auto q) {
        run(q, x);
        run(q, zeros);
    };
    both(quantizer<int_format<8>, per_channel>{});
    both(quantizer<int_format<4>, per_group<16>>{});
    both(quantizer<int_format<4>, per_tensor>{});
    both(quantizer<uint_format<4>, asymmetric, per_group<16>>{});
    both(quantizer<uint_format<8>, asymmetric, per_channel>{});
    both(quantizer<int_format<8>, asymmetric, per_tensor>{});
    both(quantizer<uint_format<4>, per_channel>{});
    both(quantizer<int_format<4>, pow2_scale, per_group<16>>{});
    both(quantizer<fp4_e2m1, e8m0_scale, per_group<16>>{});
    both(quantizer<fixed_point_format<1, 6>, e8m0_scale, per_group<16>>{});
    both(quantizer<int_format<8>, multi_level_scale<2>, per_group<16>>{});
    both(quantizer<int_format<4>, shiftable_scale<3>, per_group<16>>{});
    both(quantizer<fp8_e4m3, per_group<16>>{});
    both(quantizer<fp8_e5m2, per_channel>{});
    both(quantizer<ternary_format, per_channel>{});
    both(quantizer<ternary_format, per_channel, mse_clip_search<10>>{});
    both(quantizer<int_format<4>, per_channel, percentile<990000>>{});
    both(quantizer<int_format<8>, stochastic, per_channel>{});
    both(quantizer<binary_format, per_channel>{});
    both(quantizer<binary_format, per_channel, stochastic>{});
    both(presets::binary_per_token{});
}

// ---------------------------------------------------------------------------------------------------------
// Binary and ternary.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: binary uses the mean |x| scale per channel and sign codes", "[quant][binary]") {
    matrix x = normal_matrix(7, 33, 3131u, 0.1f, 1.0f);
    x.at(2, 4) = 0.0f, x.at(5, 0) = -0.0f, x.at(6, 32) = 0.0f;  // sign(0) = +1
    using Q = quantizer<binary_format, symmetric, per_channel>;
    const auto cm = quantize<Q>(x.view());
    const auto codes = integer_codes(cm);
    const auto dq = dequantize(cm);
    for (index_t r = 0; r < x.rows; ++r) {
        double mean_abs = 0.0;
        for (index_t k = 0; k < x.cols; ++k) mean_abs += std::fabs(static_cast<double>(x.at(r, k)));
        mean_abs /= static_cast<double>(x.cols);
        const float s = cm.view().scale(r, 0);
        CHECK(static_cast<double>(s) == Approx(mean_abs).epsilon(1e-6));
        for (index_t k = 0; k < x.cols; ++k) {
            const int expected = x.at(r, k) >= 0.0f ? 1 : -1;
            INFO("(" << r << ", " << k << ") = " << x.at(r, k));
            CHECK(codes[static_cast<std::size_t>(r * x.cols + k)] == expected);
            CHECK(dq(r, k) == s * static_cast<float>(expected));
        }
    }
    CHECK(cm.storage().layout.code_bits == 1);
    CHECK(cm.storage().codes.size() == 7u * 5u);  // 33 bits per row -> 5 bytes
}

TEST_CASE("quant: ternary codes are -1, 0, +1", "[quant][ternary]") {
    const matrix x = normal_matrix(13, 96, 6161u);
    auto run = [&](auto q) {
        using Q = decltype(q);
        const auto cm = quantize<Q>(x.view());
        const auto raw = raw_codes(cm);
        const auto dq = dequantize(cm);
        int counts[3] = {0, 0, 0};
        for (index_t r = 0; r < x.rows; ++r)
            for (index_t k = 0; k < x.cols; ++k) {
                const std::uint32_t c = raw[static_cast<std::size_t>(r * x.cols + k)];
                REQUIRE((c == 0u || c == 1u || c == 3u));  // 0b10 is never produced
                const int v = ternary_format::to_integer(c);
                ++counts[v + 1];
                const float s = cm.view().scale(r, k);
                CHECK(dq(r, k) == s * static_cast<float>(v));
                // Round to nearest of {-S, 0, S} (ties excluded by continuous data), saturating beyond S.
                const float a = x.at(r, k) / s;
                CHECK(v == (a > 0.5f ? 1 : (a < -0.5f ? -1 : 0)));
            }
        CHECK(counts[0] > 0);
        CHECK(counts[1] > 0);
        CHECK(counts[2] > 0);
        return cm.view().scale(0, 0);
    };
    const float s_minmax = run(quantizer<ternary_format, per_channel>{});
    const float s_mse = run(presets::ternary_per_channel{});  // mse_clip_search<20>
    // min_max: S = amax of the row.
    float amax = 0.0f;
    for (index_t k = 0; k < x.cols; ++k) amax = std::max(amax, std::fabs(x.at(0, k)));
    CHECK(s_minmax == Approx(amax).epsilon(1e-6));
    CHECK(s_mse < s_minmax);  // clipping helps a 3-level grid on normal data
}

// ---------------------------------------------------------------------------------------------------------
// Rounding.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: stochastic rounding needs a seed and is reproducible", "[quant][stochastic]") {
    const matrix x = normal_matrix(13, 96, 1717u);
    using Q = quantizer<int_format<4>, stochastic, per_group<32>>;
    CHECK_THROWS_AS(quantize<Q>(x.view()), value_error);
    CHECK_THAT(thrown_message<value_error>([&] { (void)quantize<Q>(x.view()); }), Catch::Contains("seed"));
    CHECK_THROWS_AS(compress_matrix<Q>(x.view()), value_error);
    quantize_options a, b, c;
    a.seed = 42u, b.seed = 42u, c.seed = 43u;
    const auto qa = quantize<Q>(x.view(), a);
    const auto qb = quantize<Q>(x.view(), b);
    const auto qc = quantize<Q>(x.view(), c);
    CHECK(qa.storage().codes == qb.storage().codes);
    CHECK(qa.storage().codes != qc.storage().codes);
    CHECK(qa.storage().scales == qc.storage().scales);  // rounding does not change the scales
    // Each stochastic code is floor or ceil of x / S.
    const auto codes = integer_codes(qc);
    int differ_from_nearest = 0;
    const auto nearest = integer_codes(quantize<quantizer<int_format<4>, per_group<32>>>(x.view()));
    for (index_t r = 0; r < x.rows; ++r)
        for (index_t k = 0; k < x.cols; ++k) {
            const double v = static_cast<double>(x.at(r, k)) / qc.view().scale(r, k);
            const int code = codes[static_cast<std::size_t>(r * x.cols + k)];
            CHECK(code >= static_cast<int>(std::floor(v - 1e-6)));
            CHECK(code <= static_cast<int>(std::ceil(v + 1e-6)));
            differ_from_nearest += code != nearest[static_cast<std::size_t>(r * x.cols + k)];
        }
    CHECK(differ_from_nearest > 100);

    // nearest_even: deterministic and independent of any seed.
    using N = quantizer<int_format<4>, nearest_even, per_group<32>>;
    const auto n0 = quantize<N>(x.view());
    const auto n1 = quantize<N>(x.view(), a);
    const auto n2 = quantize<N>(x.view(), c);
    CHECK(n0.storage().codes == n1.storage().codes);
    CHECK(n0.storage().codes == n2.storage().codes);
}

TEST_CASE("quant: stochastic rounding is unbiased", "[quant][stochastic]") {
    // 1 x 20001: element 0 = 127 fixes S = 127 / 127 = 1 (int8, per tensor); the others sit 0.3 of a step
    // above a grid point, so each rounds up with probability 0.3.
    const index_t n = 20001;
    using Q = quantizer<int_format<8>, stochastic, per_tensor>;
    for (float value : {10.3f, -10.3f, 0.3f, 100.7f}) {
        matrix x(1, n, value);
        x.at(0, 0) = 127.0f;
        quantize_options options;
        options.seed = 20240611u;
        const auto cm = quantize<Q>(x.view(), options);
        REQUIRE(cm.view().scale(0, 0) == 1.0f);
        const auto dq = dequantize(cm);
        const double lo = std::floor(static_cast<double>(value));
        const double p = static_cast<double>(value) - lo;  // probability of rounding up
        double sum = 0.0;
        for (index_t k = 1; k < n; ++k) {
            REQUIRE((dq(0, k) == lo || dq(0, k) == lo + 1.0));
            sum += dq(0, k);
        }
        const double mean = sum / static_cast<double>(n - 1);
        const double standard_error = std::sqrt(p * (1.0 - p) / static_cast<double>(n - 1));
        INFO("value " << value << ": mean " << mean << ", standard error " << standard_error);
        CHECK(std::fabs(mean - static_cast<double>(value)) < 4.0 * standard_error);
        // And it is really stochastic: both neighbours occur in proportion (not all rounded one way).
        CHECK(std::fabs(mean - lo) > 0.1);
        CHECK(std::fabs(mean - (lo + 1.0)) > 0.1);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Observers.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: percentile observer clips a planted outlier", "[quant][observer]") {
    matrix x = normal_matrix(1, 4000, 9090u);
    x.at(0, 17) = 1000.0f;
    x.at(0, 3001) = -900.0f;
    using P = quantizer<int_format<8>, per_tensor, percentile<999000>>;
    using M = quantizer<int_format<8>, per_tensor, min_max>;
    const auto cp = quantize<P>(x.view());
    const auto cmm = quantize<M>(x.view());
    const float sp = cp.view().scale(0, 0);
    const float sm = cmm.view().scale(0, 0);
    CHECK(sm == Approx(1000.0f / 127.0f).epsilon(1e-6));
    CHECK(sp < sm / 50.0f);
    // The nearest-rank 99.9 % quantile of |x|.
    std::vector<float> mags(x.data.size());
    std::transform(x.data.begin(), x.data.end(), mags.begin(), [](float v) { return std::fabs(v); });
    std::sort(mags.begin(), mags.end());
    const auto rank = static_cast<std::size_t>(std::ceil(0.999 * static_cast<double>(mags.size())));
    const float q = mags[rank - 1];
    CHECK(sp == Approx(q / 127.0f).epsilon(1e-6));
    // Inside the clip range: within S/2; outside: saturated to the extreme code.
    const auto codes = integer_codes(cp);
    const auto dq = dequantize(cp);
    int clipped = 0;
    for (index_t k = 0; k < x.cols; ++k) {
        const float v = x.at(0, k);
        const int code = codes[static_cast<std::size_t>(k)];
        if (std::fabs(v) <= q) {
            CHECK(std::fabs(v - dq(0, k)) <= 0.5f * sp + slack(v, sp));
        } else {
            ++clipped;
            const double expected = std::clamp(std::nearbyint(static_cast<double>(v) / sp), -128.0, 127.0);
            CHECK(code == static_cast<int>(expected));
        }
    }
    CHECK(clipped >= 2);
    CHECK(codes[17] == 127);
    CHECK(codes[3001] == -128);
    // Asymmetric percentile: two-sided quantiles.
    using PA = quantizer<uint_format<8>, asymmetric, per_tensor, percentile<999000>>;
    const auto ca = quantize<PA>(x.view());
    std::vector<float> sorted = x.data;
    std::sort(sorted.begin(), sorted.end());
    const float hi = sorted[static_cast<std::size_t>(std::ceil(0.999 * 4000.0)) - 1];
    const float lo = sorted[static_cast<std::size_t>(std::ceil(0.001 * 4000.0)) - 1];
    CHECK(ca.view().scale(0, 0) == Approx((hi - lo) / 255.0f).epsilon(1e-6));
    CHECK(integer_codes(ca)[17] == 255);
    CHECK(integer_codes(ca)[3001] == 0);
}

TEST_CASE("quant: mse_clip_search is never worse than min_max", "[quant][observer]") {
    auto sse = [](const matrix& x, const dense_matrix<float>& dq) {
        double e = 0.0;
        for (index_t r = 0; r < x.rows; ++r)
            for (index_t k = 0; k < x.cols; ++k) {
                const double d = static_cast<double>(x.at(r, k)) - dq(r, k);
                e += d * d;
            }
        return e;
    };
    matrix heavy = normal_matrix(13, 96, 5151u);
    for (auto& v : heavy.data) v = v * v * v;  // heavy tails
    const matrix light = uniform_matrix(7, 33, 5152u, -1.0f, 1.0f);
    auto compare = [&](auto mse_q, auto minmax_q, const matrix& x, bool expect_strict) {
        using QS = decltype(mse_q);
        using QM = decltype(minmax_q);
        const auto cs = quantize<QS>(x.view());
        const auto cm = quantize<QM>(x.view());
        const double es = sse(x, dequantize(cs));
        const double em = sse(x, dequantize(cm));
        INFO("mse search " << es << ", min_max " << em);
        CHECK(es <= em * (1.0 + 1e-9));
        if (expect_strict) CHECK(es < em);
        // Per cell too (the search is per cell), and no scale is larger than min_max's.
        for (index_t r = 0; r < x.rows; ++r) {
            CHECK(cs.view().scale(r, 0) <= cm.view().scale(r, 0) * (1.0f + 1e-6f));
            double er_s = 0.0, er_m = 0.0;
            const auto ds = dequantize(cs);
            const auto dm = dequantize(cm);
            for (index_t k = 0; k < x.cols; ++k) {
                const double a = x.at(r, k) - static_cast<double>(ds(r, k));
                const double b = x.at(r, k) - static_cast<double>(dm(r, k));
                er_s += a * a, er_m += b * b;
            }
            CHECK(er_s <= er_m * (1.0 + 1e-9) + 1e-30);
        }
        // Elements beyond the chosen range saturate to an extreme code.
        const auto codes = integer_codes(cs);
        using F = typename QS::format;
        for (index_t r = 0; r < x.rows; ++r)
            for (index_t k = 0; k < x.cols; ++k) {
                const double v = x.at(r, k) / static_cast<double>(cs.view().scale(r, k));
                const int z = cs.view().zero_point(r, k);
                if (v + z > F::code_max + 0.5 + 1e-4) CHECK(codes[static_cast<std::size_t>(r * x.cols + k)] == F::code_max);
                if (v + z < F::code_min - 0.5 - 1e-4) CHECK(codes[static_cast<std::size_t>(r * x.cols + k)] == F::code_min);
            }
    };
    compare(quantizer<int_format<4>, per_channel, mse_clip_search<20>>{}, quantizer<int_format<4>, per_channel>{}, heavy, true);
    compare(quantizer<int_format<3>, per_channel, mse_clip_search<20>>{}, quantizer<int_format<3>, per_channel>{}, light, false);
    compare(quantizer<uint_format<4>, asymmetric, per_channel, mse_clip_search<8>>{},
            quantizer<uint_format<4>, asymmetric, per_channel>{}, heavy, true);
    compare(quantizer<int_format<8>, per_channel, mse_clip_search<1>>{}, quantizer<int_format<8>, per_channel>{}, light, false);
}

// ---------------------------------------------------------------------------------------------------------
// Calibrated activations.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: activation_calibrator over batches equals min/max over their union", "[quant][calibration]") {
    using Q = quantizer<int_format<8>, per_tensor, calibrated>;
    const matrix b1 = normal_matrix(5, 24, 11u, 0.0f, 1.0f);
    matrix b2 = normal_matrix(3, 24, 12u, 0.0f, 1.0f);
    b2.at(2, 7) = -6.5f;  // the union's extreme lives in the second batch
    activation_calibrator<Q> cal;
    CHECK(cal.empty());
    CHECK_THROWS_AS(cal.finish(), value_error);
    cal.observe(b1.view());
    cal.observe(b2.view());
    CHECK(cal.batches() == 2);
    const scale_table t = cal.finish();
    REQUIRE(t.effective.size() == 1u);
    CHECK(t.rows == 1);
    CHECK(t.effective[0] == Approx(6.5f / 127.0f).epsilon(1e-6));
    // Same as choosing scales on the stacked batches.
    matrix both(8, 24);
    std::copy(b1.data.begin(), b1.data.end(), both.data.begin());
    std::copy(b2.data.begin(), b2.data.end(), both.data.begin() + 5 * 24);
    const scale_table direct = choose_scales<Q>(both.view());
    CHECK(direct.effective == t.effective);
    // Quantizing with the fixed scales: a new, larger value saturates at the calibrated scale.
    matrix x = normal_matrix(2, 24, 13u);
    x.at(1, 1) = 100.0f;
    const auto cm = quantize<Q>(x.view(), {}, &t);
    CHECK(cm.view().scale(0, 0) == t.effective[0]);
    CHECK(integer_codes(cm)[static_cast<std::size_t>(24 + 1)] == 127);
    CHECK(dequantize(cm)(1, 1) == Approx(6.5f));
    // A batch with a different K.
    const matrix wrong = normal_matrix(2, 25, 14u);
    CHECK_THROWS_AS(cal.observe(wrong.view()), shape_error);
    CHECK_THAT(thrown_message<shape_error>([&] { cal.observe(wrong.view()); }), Catch::Contains("25") && Catch::Contains("24"));
    // Calibrated scales for the wrong K are refused by quantize.
    CHECK_THROWS_AS(quantize<Q>(wrong.view(), {}, &t), shape_error);
    // Per group: one row of scales shared by all tokens.
    using QG = quantizer<int_format<8>, per_group<8>, calibrated>;
    activation_calibrator<QG> cg;
    cg.observe(b1.view());
    cg.observe(b2.view());
    const scale_table tg = cg.finish();
    REQUIRE(tg.effective.size() == 3u);
    for (index_t g = 0; g < 3; ++g) {
        float amax = 0.0f;
        for (const matrix* b : {&b1, static_cast<const matrix*>(&b2)})
            for (index_t r = 0; r < b->rows; ++r)
                for (index_t k = g * 8; k < g * 8 + 8; ++k) amax = std::max(amax, std::fabs(b->at(r, k)));
        CHECK(tg.effective[static_cast<std::size_t>(g)] == Approx(amax / 127.0f).epsilon(1e-6));
    }
    activation_calibrator<QG> bad;
    CHECK_THROWS_AS(bad.observe(normal_matrix(2, 20, 1u).view()), shape_error);
    matrix nan_batch = normal_matrix(2, 24, 2u);
    nan_batch.at(1, 3) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(cal.observe(nan_batch.view()), value_error);
}

// ---------------------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: non-finite input is refused with the first bad index", "[quant][errors]") {
    using Q = quantizer<int_format<8>, per_channel>;
    matrix x = normal_matrix(4, 8, 1u);
    x.at(2, 5) = std::numeric_limits<float>::quiet_NaN();
    std::string msg = thrown_message<value_error>([&] { (void)quantize<Q>(x.view()); });
    CHECK_THAT(msg, Catch::Contains("(2, 5)") && Catch::Contains("NaN"));
    x.at(1, 6) = -std::numeric_limits<float>::infinity();  // now the first bad element
    msg = thrown_message<value_error>([&] { (void)quantize<Q>(x.view()); });
    CHECK_THAT(msg, Catch::Contains("(1, 6)") && Catch::Contains("Inf"));
    msg = thrown_message<value_error>([&] { (void)compress_matrix<Q>(x.view()); });
    CHECK_THAT(msg, Catch::Contains("(1, 6)"));
    matrix y = normal_matrix(3, 3, 2u);
    y.at(0, 0) = std::numeric_limits<float>::infinity();
    CHECK_THAT(thrown_message<value_error>([&] { (void)quantize<Q>(y.view()); }), Catch::Contains("(0, 0)"));
}

TEST_CASE("quant: per_group needs K to be a multiple of G", "[quant][errors]") {
    const matrix x = normal_matrix(4, 48, 3u);
    using Q = quantizer<int_format<4>, per_group<32>>;
    const std::string msg = thrown_message<shape_error>([&] { (void)quantize<Q>(x.view()); });
    CHECK_THAT(msg, Catch::Contains("32") && Catch::Contains("48"));
    CHECK_THROWS_AS(compress_matrix<Q>(x.view()), shape_error);
    CHECK_THROWS_AS(choose_scales<Q>(x.view()), shape_error);
    CHECK_NOTHROW(quantize<quantizer<int_format<4>, per_group<16>>>(x.view()));
}

TEST_CASE("quant: compressed_view refuses buffers of the wrong size", "[quant][errors]") {
    using Q = quantizer<uint_format<4>, asymmetric, per_group<16>>;
    const matrix x = normal_matrix(5, 48, 4u);
    const auto cm = quantize<Q>(x.view());
    const packed_buffers& good = cm.storage();
    CHECK_NOTHROW(compressed_view<Q>(good.view()));
    auto expect_shape_error = [](packed_buffers b, const char* what) {
        INFO(what);
        CHECK_THROWS_AS(compressed_view<Q>(b.view()), shape_error);
        CHECK_THROWS_AS(compressed_matrix<Q>(b), shape_error);
    };
    {
        packed_buffers b = good;
        b.codes.pop_back();
        expect_shape_error(b, "codes short by one byte");
    }
    {
        packed_buffers b = good;
        b.codes.push_back(0);
        expect_shape_error(b, "codes one byte too long");
    }
    {
        packed_buffers b = good;
        b.scales.resize(b.scales.size() - 4);
        expect_shape_error(b, "scales short");
    }
    {
        packed_buffers b = good;
        b.zero_points.clear();
        expect_shape_error(b, "zero points missing");
    }
    {
        packed_buffers b = good;
        b.layout.group_size = 24;
        b.layout.scale_cols = 2;
        expect_shape_error(b, "another group size");
    }
    // A view of one quantizer's data through another quantizer type.
    CHECK_THROWS_AS((compressed_view<quantizer<uint_format<8>, asymmetric, per_group<16>>>(good.view())), shape_error);
    CHECK_THROWS_AS((compressed_view<quantizer<uint_format<4>, symmetric, per_group<16>>>(good.view())), shape_error);
    CHECK_THROWS_AS((compressed_view<quantizer<uint_format<4>, asymmetric, per_group<8>>>(good.view())), shape_error);
}

// ---------------------------------------------------------------------------------------------------------
// Storage size and layout.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("quant: bytes() and bits_per_weight() count the documented layout", "[quant][storage]") {
    {
        const matrix x = normal_matrix(16, 64, 5u);
        const auto cm = quantize<quantizer<int_format<4>, symmetric, per_group<32>>>(x.view());
        CHECK(cm.bytes() == 16u * 32u + 16u * 2u * 4u);  // codes + float scales
        CHECK(cm.bits_per_weight() == Approx(8.0 * (16 * 32 + 16 * 2 * 4) / (16.0 * 64.0)));
        CHECK(cm.bits_per_weight() == Approx(5.0));
        const auto ca = quantize<quantizer<uint_format<4>, asymmetric, per_group<32>>>(x.view());
        CHECK(ca.bytes() == 16u * 32u + 16u * 2u * 4u + 16u);  // + 32 zero points of 4 bits
    }
    {
        const matrix x = normal_matrix(7, 33, 6u);
        // 33 codes of 3 bits = 99 bits -> 13 bytes per row (rows start on bytes); 7 float scales.
        CHECK(quantize<quantizer<int_format<3>, per_channel>>(x.view()).bytes() == 7u * 13u + 7u * 4u);
        // + 7 zero points of 3 bits = 21 bits -> 3 bytes.
        CHECK(quantize<quantizer<uint_format<3>, asymmetric, per_channel>>(x.view()).bytes() == 7u * 13u + 28u + 3u);
        // per tensor: one scale.
        CHECK(quantize<quantizer<int_format<8>, per_tensor>>(x.view()).bytes() == 7u * 33u + 4u);
        // binary: 33 bits -> 5 bytes per row.
        CHECK(quantize<quantizer<binary_format, per_channel>>(x.view()).bytes() == 7u * 5u + 28u);
        // 1x1.
        const matrix one(1, 1, 0.5f);
        const auto c1 = quantize<quantizer<int_format<4>, per_tensor>>(one.view());
        CHECK(c1.bytes() == 1u + 4u);
        CHECK(c1.bits_per_weight() == 40.0);
    }
    {
        const matrix x = normal_matrix(5, 48, 7u);
        // pow2: one int8 exponent per group of 16.
        CHECK(quantize<quantizer<int_format<4>, pow2_scale, per_group<16>>>(x.view()).bytes() == 5u * 24u + 15u);
        // e8m0: one byte per group of 16 (fp4 codes: 24 bytes per row).
        CHECK(quantize<quantizer<fp4_e2m1, e8m0_scale, per_group<16>>>(x.view()).bytes() == 5u * 24u + 15u);
        // multi level: 15 shifts of 2 bits = 30 bits -> 4 bytes, + the float tensor scale.
        CHECK(quantize<quantizer<int_format<4>, multi_level_scale<2>, per_group<16>>>(x.view()).bytes() ==
              5u * 24u + 4u + 4u);
        CHECK(quantize<quantizer<int_format<4>, shiftable_scale<3>, per_group<16>>>(x.view()).bytes() ==
              5u * 24u + 6u + 4u);  // 45 bits -> 6 bytes
        // fp16 storage with a per-channel scale: 2 bytes per element.
        CHECK(quantize<quantizer<fp16_format, per_channel>>(x.view()).bytes() == 5u * 96u + 5u * 4u);
    }
}

TEST_CASE("quant: packed storage decodes by hand", "[quant][storage]") {
    // int4 per_group<32> symmetric on 3x64: codes LSB-first (low nibble first), rows on byte boundaries;
    // scales as 32-bit little-endian float entries, row-major over (row, group).
    const matrix x = normal_matrix(3, 64, 8u);
    using Q = quantizer<int_format<4>, symmetric, per_group<32>>;
    const auto cm = quantize<Q>(x.view());
    const auto dq = dequantize(cm);
    const packed_buffers& s = cm.storage();
    REQUIRE(s.codes.size() == 3u * 32u);
    REQUIRE(s.scales.size() == 3u * 2u * 4u);
    for (index_t r = 0; r < 3; ++r)
        for (index_t k = 0; k < 64; ++k) {
            const std::uint8_t byte = s.codes[static_cast<std::size_t>(r * 32 + k / 2)];
            const int nibble = (k % 2 == 0) ? (byte & 0xF) : (byte >> 4);
            const int v = nibble >= 8 ? nibble - 16 : nibble;
            const std::size_t e = static_cast<std::size_t>(r * 2 + k / 32) * 4;
            const std::uint32_t bits = static_cast<std::uint32_t>(s.scales[e]) | (static_cast<std::uint32_t>(s.scales[e + 1]) << 8) |
                                       (static_cast<std::uint32_t>(s.scales[e + 2]) << 16) |
                                       (static_cast<std::uint32_t>(s.scales[e + 3]) << 24);
            float scale = 0.0f;
            std::memcpy(&scale, &bits, sizeof scale);
            CHECK(dq(r, k) == scale * static_cast<float>(v));
            CHECK(std::fabs(x.at(r, k) - scale * static_cast<float>(v)) <= 0.5f * scale + slack(x.at(r, k), scale));
        }
}
