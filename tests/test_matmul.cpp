// The reference GEMM (tcomp::matmul, reference::matmul_quantized) against independent computations:
//   float path    Y vs X * dequantize(W)^T summed in double from codes read through the public view API
//   integer path  Y vs the double sum of dequantized products (tight bound), and bit for bit vs an integer
//                 recomputation of every segment accumulator followed by the documented float epilogue
//   W1A1          the accumulator from explicit xnor/popcount bit operations on packed sign bits
// plus quality sanity on Gaussian data, odd and degenerate shapes, error reporting, and the Eigen overloads.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <Eigen/Core>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tcomp/eigen.hpp"
#include "tcomp/format/fp8.hpp"
#include "tcomp/format/half.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/quant/calibration.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using namespace tcomp;

using tcomp_test::gaussian;

/// Every element of a compressed matrix, read through compressed_view's public API and dequantized here
/// (scale * (integer - zero) for integer grids, scale * decode(code) for floating formats).
struct decoded_matrix {
    index_t rows = 0, cols = 0;
    std::vector<std::uint8_t> kept;
    std::vector<int> centered;  // integer - zero point (integer grids)
    std::vector<float> scale;
    std::vector<float> value;   // the float the element stands for (0 where pruned)

    std::size_t at(index_t r, index_t c) const { return static_cast<std::size_t>(r * cols + c); }
};

template <class Q, class S>
decoded_matrix decode_all(const compressed_view<Q, S>& v) {
    using F = typename Q::format;
    decoded_matrix d;
    d.rows = v.rows(), d.cols = v.cols();
    const auto n = static_cast<std::size_t>(d.rows * d.cols);
    d.kept.assign(n, 0), d.centered.assign(n, 0), d.scale.assign(n, 0.0f), d.value.assign(n, 0.0f);
    std::vector<index_t> buf;
    for (index_t r = 0; r < d.rows; ++r)
        v.for_each_in_row(r, buf, [&](index_t c, std::uint32_t code) {
            const auto i = d.at(r, c);
            d.kept[i] = 1;
            d.scale[i] = v.scale(r, c);
            if constexpr (integer_grid_format<F>) {
                d.centered[i] = F::to_integer(code) - v.zero_point(r, c);
                d.value[i] = d.scale[i] * static_cast<float>(d.centered[i]);
            } else {
                d.value[i] = d.scale[i] * F::decode(code);
            }
        });
    return d;
}

std::span<const float> span_of(const std::vector<float>& b) { return {b.data(), b.size()}; }

// ---------------------------------------------------------------------------------------------------------
// Float path: Y = X * dequantize(W)^T + bias in double.
// ---------------------------------------------------------------------------------------------------------
template <class P>
void check_float_path(index_t m_rows, index_t n_rows, index_t k_cols, std::uint32_t seed, bool with_bias) {
    INFO("float path " << m_rows << "x" << k_cols << " * (" << n_rows << "x" << k_cols << ")^T, bias " << with_bias);
    const auto x = gaussian(m_rows, k_cols, seed);
    const auto wf = gaussian(n_rows, k_cols, seed + 1000, 0.5f);
    const auto bias = with_bias ? tcomp_test::uniform_vector(n_rows, seed + 2000, 2.0f) : std::vector<float>{};
    const auto w = compress<P>(wf.view());
    const auto y = matmul(x.view(), w, span_of(bias));
    REQUIRE(y.rows() == m_rows);
    REQUIRE(y.cols() == n_rows);
    const decoded_matrix wd = decode_all(w.weights().view());
    // The view-API decoding agrees with dequantize().
    const auto dq = dequantize(w.weights());
    int decode_mismatch = 0;
    for (index_t r = 0; r < n_rows; ++r)
        for (index_t c = 0; c < k_cols; ++c) decode_mismatch += dq(r, c) != wd.value[wd.at(r, c)];
    CHECK(decode_mismatch == 0);

    int bad = 0;
    double worst = 0.0;
    for (index_t m = 0; m < m_rows; ++m)
        for (index_t n = 0; n < n_rows; ++n) {
            double ref = 0.0, mag = 0.0;
            for (index_t k = 0; k < k_cols; ++k) {
                const double p = static_cast<double>(x(m, k)) * static_cast<double>(wd.value[wd.at(n, k)]);
                ref += p, mag += std::fabs(p);
            }
            if (with_bias) ref += bias[static_cast<std::size_t>(n)], mag += std::fabs(bias[static_cast<std::size_t>(n)]);
            const double err = std::fabs(static_cast<double>(y(m, n)) - ref);
            worst = std::max(worst, err / (mag + 1e-300));
            bad += !(err <= 1e-5 * mag + 1e-30);
        }
    INFO("worst error relative to sum |x w|: " << worst);
    CHECK(bad == 0);
}

// ---------------------------------------------------------------------------------------------------------
// Quantized activations: double reference from the dequantized codes, and (integer grids) the bit-exact
// segment recomputation of the documented epilogue.
// ---------------------------------------------------------------------------------------------------------
template <class P>
void check_quantized(const dense_matrix<float>& x, const compressed_weights<P>& w, const std::vector<float>& bias,
                     const quantize_options& options = {}) {
    using AQ = typename P::activation_quantizer;
    using WQ = typename P::weight_quantizer;
    constexpr bool integer_path =
        integer_grid_format<typename AQ::format> && integer_grid_format<typename WQ::format>;
    const index_t m_rows = x.rows(), k_cols = x.cols(), n_rows = w.rows();
    INFO("quantized path " << m_rows << "x" << k_cols << " * (" << n_rows << "x" << k_cols << ")^T, bias "
                           << !bias.empty() << ", integer " << integer_path);
    const auto y = matmul(x.view(), w, span_of(bias), matmul_options{.quantize = options});
    REQUIRE(y.rows() == m_rows);
    REQUIRE(y.cols() == n_rows);

    const scale_table* fixed = nullptr;
    if constexpr (compressed_weights<P>::calibrated_activations()) fixed = &w.activation_scales();
    const auto xq = quantize<AQ>(x.view(), options, fixed);
    const decoded_matrix xd = decode_all(xq.view());
    const decoded_matrix wd = decode_all(w.weights().view());
    const index_t gx = xq.view().packed().layout.group_size, gw = w.weights().view().packed().layout.group_size;
    REQUIRE(gx > 0);
    REQUIRE(gw > 0);

    int bad_tol = 0, bad_bits = 0, nonzero = 0;
    double worst = 0.0;
    std::string first_bits;
    for (index_t m = 0; m < m_rows; ++m)
        for (index_t n = 0; n < n_rows; ++n) {
            double ref = 0.0, mag = 0.0;
            // Integer recomputation: segments where neither cell changes, over the kept weight columns.
            std::int64_t acc = 0;
            float out = 0.0f, seg_scale = 0.0f;
            index_t seg_x = -1, seg_w = -1;
            for (index_t k = 0; k < k_cols; ++k) {
                const auto iw = wd.at(n, k), ix = xd.at(m, k);
                if (!wd.kept[iw]) continue;
                const double p = static_cast<double>(xd.value[ix]) * static_cast<double>(wd.value[iw]);
                ref += p, mag += std::fabs(p);
                if (k / gx != seg_x || k / gw != seg_w) {
                    if (seg_x >= 0) out += static_cast<float>(acc) * seg_scale;
                    acc = 0, seg_x = k / gx, seg_w = k / gw;
                    seg_scale = xd.scale[ix] * wd.scale[iw];
                }
                acc += static_cast<std::int64_t>(xd.centered[ix]) * static_cast<std::int64_t>(wd.centered[iw]);
            }
            if (seg_x >= 0) out += static_cast<float>(acc) * seg_scale;
            if (!bias.empty()) {
                const float b = bias[static_cast<std::size_t>(n)];
                out = out + b, ref += b, mag += std::fabs(b);
            }
            const double err = std::fabs(static_cast<double>(y(m, n)) - ref);
            worst = std::max(worst, err / (mag + 1e-300));
            bad_tol += !(err <= 1e-5 * mag + 1e-30);
            nonzero += y(m, n) != 0.0f;
            if constexpr (integer_path) {
                if (tcomp_test::bits_of(out) != tcomp_test::bits_of(y(m, n))) {
                    if (bad_bits == 0)
                        first_bits = "(" + std::to_string(m) + ", " + std::to_string(n) + "): kernel " +
                                     std::to_string(y(m, n)) + ", recomputed " + std::to_string(out);
                    ++bad_bits;
                }
            }
        }
    INFO("worst error relative to sum |x w|: " << worst << "; first bit mismatch " << first_bits);
    CHECK(bad_tol == 0);
    CHECK(bad_bits == 0);
    if (m_rows * n_rows > 0) CHECK(nonzero > 0);
}

template <class P>
void check_quantized_random(index_t m_rows, index_t n_rows, index_t k_cols, std::uint32_t seed, bool with_bias) {
    const auto x = gaussian(m_rows, k_cols, seed);
    const auto wf = gaussian(n_rows, k_cols, seed + 1000, 0.5f);
    const auto bias = with_bias ? tcomp_test::uniform_vector(n_rows, seed + 2000, 2.0f) : std::vector<float>{};
    check_quantized(x, compress<P>(wf.view()), bias);
}

// Policies beyond the presets.
using int4_g32 = quantizer<int_format<4>, symmetric, per_group<32>>;
using fp8_weights = policy<quantizer<fp8_e4m3, per_channel>>;
using fp8_weights_int8_acts = policy<quantizer<fp8_e4m3, per_channel>, presets::int8_per_token>;
using fp16_storage = policy<quantizer<fp16_format, unit_scale>>;
using w4_uint8_asym_acts = policy<int4_g32, presets::uint8_per_token_asymmetric>;
using w4g32_a8g64 = policy<int4_g32, quantizer<int_format<8>, per_group<64>>>;
using uint4_asym_2of4 = policy<presets::uint4_group128_asymmetric, presets::int8_per_token, n_m<2, 4>>;
using stochastic_acts = policy<presets::int8_per_channel, quantizer<int_format<8>, per_token, stochastic>>;

TEST_CASE("matmul: float-activation policies equal X * dequantize(W)^T in double", "[matmul]") {
    check_float_path<presets::w4a16>(5, 7, 128, 1, true);
    check_float_path<presets::w4a16>(3, 4, 256, 2, false);
    check_float_path<presets::w8a16>(6, 9, 37, 3, true);
    check_float_path<presets::w2a16>(4, 5, 128, 4, true);
    check_float_path<fp8_weights>(5, 6, 29, 5, true);
    check_float_path<fp16_storage>(3, 7, 23, 6, true);
}

TEST_CASE("matmul: fp8 weights with int8 activations sum dequantized products in double", "[matmul]") {
    check_quantized_random<fp8_weights_int8_acts>(4, 6, 33, 7, true);
}

TEST_CASE("matmul: integer-path presets match the double sum and the bit-exact segment epilogue", "[matmul]") {
    check_quantized_random<presets::w8a8>(5, 7, 37, 11, true);
    check_quantized_random<presets::w8a8>(4, 3, 64, 12, false);
    check_quantized_random<presets::w4a8>(3, 5, 256, 13, true);
    check_quantized_random<presets::w1a1>(4, 6, 75, 14, true);
    check_quantized_random<presets::w8a8_2of4>(5, 6, 48, 15, true);
    check_quantized_random<presets::w4a8_2of4>(3, 4, 128, 16, true);
}

TEST_CASE("matmul: asymmetric activations, mixed group sizes, asymmetric sparse weights", "[matmul]") {
    // uint8 per-token activations with zero points against int4 g32 weights.
    check_quantized_random<w4_uint8_asym_acts>(5, 6, 96, 21, true);
    // Activations per group of 64, weights per group of 32: segments are 32 wide, activation scales change
    // every other segment.
    check_quantized_random<w4g32_a8g64>(4, 5, 192, 22, true);
    // Zero-point weights with 2:4 pruning: pruned columns must contribute nothing (not -z).
    check_quantized_random<uint4_asym_2of4>(3, 5, 128, 23, true);

    // Shifted activations (all positive): the zero point really moves.
    auto x = gaussian(3, 96, 24);
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) x(r, c) = std::fabs(x(r, c)) + 0.25f * static_cast<float>(r);
    const auto wf = gaussian(4, 96, 25);
    const auto w = compress<w4_uint8_asym_acts>(wf.view());
    const auto xq = quantize<presets::uint8_per_token_asymmetric>(x.view());
    CHECK(xq.view().zero_point(0, 0) == 0);  // min 0 -> z = 0
    check_quantized(x, w, tcomp_test::uniform_vector(4, 26, 2.0f));
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) x(r, c) -= 1.0f;
    CHECK(quantize<presets::uint8_per_token_asymmetric>(x.view()).view().zero_point(0, 0) > 0);
    check_quantized(x, w, {});
}

TEST_CASE("matmul: static activations after calibrate()", "[matmul]") {
    const auto wf = gaussian(6, 40, 31, 0.5f);
    auto w = compress<presets::w8a8_static>(wf.view());
    const auto calib = gaussian(16, 40, 32);
    w.calibrate(calib.view());
    // Per-tensor scale: amax of the calibration batch / 127.
    float amax = 0.0f;
    for (index_t r = 0; r < calib.rows(); ++r)
        for (index_t c = 0; c < calib.cols(); ++c) amax = std::max(amax, std::fabs(calib(r, c)));
    REQUIRE(w.activation_scales().effective.size() == 1);
    CHECK(w.activation_scales().effective[0] == amax / 127.0f);
    // Inference inputs larger than the calibration range saturate; the identities still hold.
    check_quantized(gaussian(5, 40, 33), w, tcomp_test::uniform_vector(6, 34, 2.0f));
    check_quantized(gaussian(3, 40, 35, 3.0f), w, {});
}

TEST_CASE("matmul: stochastic activation rounding with a seed", "[matmul]") {
    const auto x = gaussian(4, 24, 41);
    const auto w = compress<stochastic_acts>(gaussian(5, 24, 42).view());
    CHECK_THROWS_AS(matmul(x.view(), w), value_error);
    quantize_options seeded;
    seeded.seed = 1234;
    check_quantized(x, w, tcomp_test::uniform_vector(5, 43, 2.0f), seeded);
    const auto a = matmul(x.view(), w, {}, {.quantize = seeded}), b = matmul(x.view(), w, {}, {.quantize = seeded});
    quantize_options other;
    other.seed = 98765;
    const auto c = matmul(x.view(), w, {}, {.quantize = other});
    int same = 0, differ = 0;
    for (index_t m = 0; m < 4; ++m)
        for (index_t n = 0; n < 5; ++n) same += a(m, n) == b(m, n), differ += a(m, n) != c(m, n);
    CHECK(same == 20);
    CHECK(differ > 0);
}

// ---------------------------------------------------------------------------------------------------------
// W1A1 with explicit bit operations.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("matmul: w1a1 accumulator is K - 2 popcount(x xor w) on packed sign bits", "[matmul]") {
    const index_t m_rows = 3, n_rows = 5, k_cols = 77;  // two 64-bit words, the second partly used
    const auto x = gaussian(m_rows, k_cols, 51);
    const auto w = compress<presets::w1a1>(gaussian(n_rows, k_cols, 52).view());
    const auto y = matmul(x.view(), w);
    const auto xq = quantize<presets::binary_per_token>(x.view());
    const auto xv = xq.view();
    const auto wv = w.weights().view();
    const std::size_t words = static_cast<std::size_t>((k_cols + 63) / 64);
    auto sign_words = [&](const auto& view, index_t r) {
        std::vector<std::uint64_t> out(words, 0);
        std::vector<index_t> buf;
        view.for_each_in_row(r, buf, [&](index_t c, std::uint32_t code) {
            if (code & 1u) out[static_cast<std::size_t>(c / 64)] |= std::uint64_t{1} << (c % 64);  // 1 = +1
        });
        return out;
    };
    int bad = 0, bad_naive = 0;
    for (index_t m = 0; m < m_rows; ++m) {
        const auto xs = sign_words(xv, m);
        for (index_t n = 0; n < n_rows; ++n) {
            const auto ws = sign_words(wv, n);
            int differing = 0, agreeing = 0;
            for (std::size_t i = 0; i < words; ++i) {
                differing += std::popcount(xs[i] ^ ws[i]);
                const std::uint64_t valid = i + 1 < words || k_cols % 64 == 0 ? ~std::uint64_t{0}
                                                                               : (std::uint64_t{1} << (k_cols % 64)) - 1;
                agreeing += std::popcount(~(xs[i] ^ ws[i]) & valid);  // xnor
            }
            const std::int64_t acc = k_cols - 2 * differing;
            REQUIRE(acc == 2 * agreeing - k_cols);
            // The sum of sign products, element by element from the sign bits.
            std::int64_t naive = 0;
            for (index_t k = 0; k < k_cols; ++k) {
                const bool sx = (xs[static_cast<std::size_t>(k / 64)] >> (k % 64)) & 1u;
                const bool sw = (ws[static_cast<std::size_t>(k / 64)] >> (k % 64)) & 1u;
                naive += sx == sw ? 1 : -1;
            }
            bad_naive += naive != acc;
            const float expect = static_cast<float>(acc) * (xv.scale(m, 0) * wv.scale(n, 0));
            bad += tcomp_test::bits_of(expect) != tcomp_test::bits_of(y(m, n));
        }
    }
    CHECK(bad_naive == 0);
    CHECK(bad == 0);
    // Scales: mean |x| per token and mean |w| per channel (XNOR-Net).
    double sum = 0.0;
    for (index_t k = 0; k < k_cols; ++k) sum += std::fabs(x(1, k));
    CHECK(xv.scale(1, 0) == Approx(sum / static_cast<double>(k_cols)).epsilon(1e-6));
}

// ---------------------------------------------------------------------------------------------------------
// Quality on Gaussian data.
// ---------------------------------------------------------------------------------------------------------
template <class P>
double relative_output_error(index_t m_rows, index_t n_rows, index_t k_cols, std::uint32_t seed) {
    const auto x = gaussian(m_rows, k_cols, seed);
    const auto wf = gaussian(n_rows, k_cols, seed + 1);
    const auto y = matmul(x.view(), compress<P>(wf.view()));
    double err = 0.0, ref_norm = 0.0;
    for (index_t m = 0; m < m_rows; ++m)
        for (index_t n = 0; n < n_rows; ++n) {
            double ref = 0.0;
            for (index_t k = 0; k < k_cols; ++k) ref += static_cast<double>(x(m, k)) * static_cast<double>(wf(n, k));
            err += (y(m, n) - ref) * (y(m, n) - ref), ref_norm += ref * ref;
        }
    return std::sqrt(err / ref_norm);
}

TEST_CASE("matmul: output error vs float X * W^T on Gaussian data", "[matmul]") {
    // Measured with these seeds: w8a8 0.0111, w4a8 0.118, w2a16 0.426 (relative Frobenius error).
    const double e8 = relative_output_error<presets::w8a8>(8, 16, 256, 61);
    const double e4 = relative_output_error<presets::w4a8>(8, 16, 256, 62);
    const double e2 = relative_output_error<presets::w2a16>(8, 16, 256, 63);
    INFO("w8a8 " << e8 << ", w4a8 " << e4 << ", w2a16 " << e2);
    CHECK(e8 < 0.02);
    CHECK(e4 < 0.20);
    CHECK(e2 < 0.60);
    CHECK(e8 < e4);
    CHECK(e4 < e2);
    CHECK(e8 > 0.0);
}

// ---------------------------------------------------------------------------------------------------------
// Shapes.
// ---------------------------------------------------------------------------------------------------------
TEST_CASE("matmul: random shapes including 1, odd sizes and K not a multiple of 8", "[matmul]") {
    std::mt19937 gen(71);
    std::uniform_int_distribution<int> small(1, 9), kdist(1, 45);
    for (int trial = 0; trial < 6; ++trial) {
        index_t m = small(gen), n = small(gen), k = kdist(gen);
        if (trial == 0) m = n = k = 1;
        if (trial == 1) m = 1, n = 7, k = 13;
        if (trial == 2) m = 9, n = 1, k = 3;
        INFO("trial " << trial << ": M " << m << ", N " << n << ", K " << k);
        check_quantized_random<presets::w8a8>(m, n, k, 100 + static_cast<std::uint32_t>(trial), trial % 2 == 0);
        check_float_path<presets::w8a16>(m, n, k, 200 + static_cast<std::uint32_t>(trial), trial % 2 == 1);
        check_quantized_random<presets::w1a1>(m, n, k, 300 + static_cast<std::uint32_t>(trial), trial % 3 == 0);
    }
}

TEST_CASE("matmul: M = 0 gives an empty result without error", "[matmul]") {
    const dense_matrix<float> x(0, 64);
    const auto wf = gaussian(5, 64, 81);
    const auto bias = tcomp_test::uniform_vector(5, 82, 2.0f);
    auto check_empty = [&](const auto& w) {
        dense_matrix<float> y;
        REQUIRE_NOTHROW(y = matmul(x.view(), w, span_of(bias)));
        CHECK(y.rows() == 0);
        CHECK(y.cols() == 5);
    };
    check_empty(compress<presets::w8a8>(wf.view()));
    check_empty(compress<presets::w8a16>(wf.view()));
    check_empty(compress<presets::w1a1>(wf.view()));
    auto ws = compress<presets::w8a8_static>(wf.view());
    ws.calibrate(gaussian(4, 64, 83).view());
    check_empty(ws);
    const Eigen::MatrixXf ex(0, 64);
    const Eigen::MatrixXf ey = matmul(ex, compress<presets::w8a8>(wf.view()));
    CHECK(ey.rows() == 0);
    CHECK(ey.cols() == 5);

    // N = 0: an M x 0 result. K = 0: the empty sum, so Y is the bias.
    const auto x3 = gaussian(3, 64, 84);
    const auto y_n0 = matmul(x3.view(), compress<presets::w8a8>(dense_matrix<float>(0, 64).view()));
    CHECK(y_n0.rows() == 3);
    CHECK(y_n0.cols() == 0);
    const dense_matrix<float> x_k0(3, 0), w_k0(5, 0);
    for (const auto& y : {matmul(x_k0.view(), compress<presets::w8a8>(w_k0.view()), span_of(bias)),
                          matmul(x_k0.view(), compress<presets::w8a16>(w_k0.view()), span_of(bias))}) {
        REQUIRE(y.rows() == 3);
        REQUIRE(y.cols() == 5);
        for (index_t m = 0; m < 3; ++m)
            for (index_t n = 0; n < 5; ++n) CHECK(y(m, n) == bias[static_cast<std::size_t>(n)]);
    }
}

TEST_CASE("matmul: strided activation views give the same result as contiguous ones", "[matmul]") {
    // X as the 4 x 21 block at column 3 of a 4 x 30 matrix (row stride 30).
    const auto big = gaussian(4, 30, 85);
    dense_matrix<float> packed(4, 21);
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 21; ++c) packed(r, c) = big(r, c + 3);
    const matrix_view<const float> strided(big.data() + 3, 4, 21, 30);
    const auto wf = gaussian(6, 21, 86);
    auto same = [](const dense_matrix<float>& a, const dense_matrix<float>& b) {
        int differ = 0;
        for (index_t r = 0; r < a.rows(); ++r)
            for (index_t c = 0; c < a.cols(); ++c) differ += tcomp_test::bits_of(a(r, c)) != tcomp_test::bits_of(b(r, c));
        return differ == 0;
    };
    const auto w8 = compress<presets::w8a8>(wf.view());
    CHECK(same(matmul(strided, w8), matmul(packed.view(), w8)));
    const auto w16 = compress<presets::w8a16>(wf.view());
    CHECK(same(matmul(strided, w16), matmul(packed.view(), w16)));
}

// ---------------------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------------------
template <class P>
void check_errors(const compressed_weights<P>& w) {
    const index_t n = w.rows(), k = w.cols();
    // Mismatched K names both shapes.
    const auto bad_k = gaussian(3, k + 2, 91);
    try {
        (void)matmul(bad_k.view(), w);
        FAIL("mismatched K was accepted");
    } catch (const shape_error& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("3x" + std::to_string(k + 2)) != std::string::npos);
        CHECK(msg.find(std::to_string(n) + "x" + std::to_string(k)) != std::string::npos);
    }
    const auto x = gaussian(3, k, 92);
    dense_matrix<float> y_bad(3, n + 1), y_bad2(2, n);
    CHECK_THROWS_AS(matmul(x.view(), w, y_bad.view()), shape_error);
    CHECK_THROWS_WITH(matmul(x.view(), w, y_bad2.view()), Catch::Contains("2x" + std::to_string(n)));
    const auto short_bias = tcomp_test::uniform_vector(n - 1, 93, 2.0f);
    CHECK_THROWS_AS(matmul(x.view(), w, span_of(short_bias)), shape_error);
    CHECK_THROWS_WITH(matmul(x.view(), w, span_of(short_bias)), Catch::Contains("bias"));
    auto inf_bias = tcomp_test::uniform_vector(n, 94, 2.0f);
    inf_bias[1] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS(matmul(x.view(), w, span_of(inf_bias)), value_error);
    // Non-finite activations name the element.
    auto nan_x = x;
    nan_x(1, 2) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(matmul(nan_x.view(), w), value_error);
    CHECK_THROWS_WITH(matmul(nan_x.view(), w), Catch::Contains("(1, 2)") && Catch::Contains("NaN"));
    auto inf_x = x;
    inf_x(2, 0) = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(matmul(inf_x.view(), w), Catch::Contains("(2, 0)") && Catch::Contains("Inf"));
}

TEST_CASE("matmul: shape and value errors", "[matmul]") {
    const auto wf = gaussian(4, 12, 95);
    check_errors(compress<presets::w8a8>(wf.view()));
    check_errors(compress<presets::w8a16>(wf.view()));

    // Static activations without calibrate().
    const auto ws = compress<presets::w8a8_static>(wf.view());
    const auto x = gaussian(2, 12, 96);
    CHECK_THROWS_AS(matmul(x.view(), ws), value_error);
    CHECK_THROWS_WITH(matmul(x.view(), ws), Catch::Contains("calibrate"));
    auto ws2 = compress<presets::w8a8_static>(wf.view());
    CHECK_THROWS_AS(ws2.calibrate(gaussian(3, 10, 97).view()), shape_error);
    // Quantized-operand entry point: K mismatch names both K.
    const auto xq = quantize<presets::int8_per_token>(gaussian(2, 10, 98).view());
    dense_matrix<float> y(2, 4);
    const auto w8 = compress<presets::w8a8>(wf.view());
    CHECK_THROWS_WITH(reference::matmul_quantized(xq.view(), w8.weights().view(), y.view()),
                      Catch::Contains("10") && Catch::Contains("12"));
}

// ---------------------------------------------------------------------------------------------------------
// Eigen overloads.
// ---------------------------------------------------------------------------------------------------------
template <class P>
void check_eigen(index_t m_rows, index_t n_rows, index_t k_cols, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    Eigen::MatrixXf we(n_rows, k_cols), xe(m_rows, k_cols);  // column-major
    for (index_t r = 0; r < n_rows; ++r)
        for (index_t c = 0; c < k_cols; ++c) we(r, c) = dist(gen);
    for (index_t r = 0; r < m_rows; ++r)
        for (index_t c = 0; c < k_cols; ++c) xe(r, c) = dist(gen);
    // Row-major copies made by hand for the view overloads.
    dense_matrix<float> wv(n_rows, k_cols), xv(m_rows, k_cols);
    for (index_t r = 0; r < n_rows; ++r)
        for (index_t c = 0; c < k_cols; ++c) wv(r, c) = we(r, c);
    for (index_t r = 0; r < m_rows; ++r)
        for (index_t c = 0; c < k_cols; ++c) xv(r, c) = xe(r, c);
    const auto bias = tcomp_test::uniform_vector(n_rows, seed + 1, 2.0f);

    const auto w_eigen = compress<P>(we);
    const auto w_view = compress<P>(wv.view());
    const auto& a = w_eigen.weights().storage();
    const auto& b = w_view.weights().storage();
    CHECK(a.codes == b.codes);
    CHECK(a.scales == b.scales);
    CHECK(a.zero_points == b.zero_points);
    CHECK(a.metadata == b.metadata);

    const Eigen::MatrixXf ye = matmul(xe, w_eigen, span_of(bias));
    const auto yv = matmul(xv.view(), w_view, span_of(bias));
    REQUIRE(ye.rows() == m_rows);
    REQUIRE(ye.cols() == n_rows);
    int differ = 0;
    for (index_t m = 0; m < m_rows; ++m)
        for (index_t n = 0; n < n_rows; ++n) differ += tcomp_test::bits_of(ye(m, n)) != tcomp_test::bits_of(yv(m, n));
    CHECK(differ == 0);
    const Eigen::MatrixXf back = to_eigen(yv);
    CHECK(back == ye);
    // A row-major Eigen matrix can be viewed directly.
    const row_major_matrix xr = xe;
    const auto yr = matmul(view_of(xr), w_view, span_of(bias));
    differ = 0;
    for (index_t m = 0; m < m_rows; ++m)
        for (index_t n = 0; n < n_rows; ++n) differ += tcomp_test::bits_of(yr(m, n)) != tcomp_test::bits_of(yv(m, n));
    CHECK(differ == 0);
}

TEST_CASE("matmul: Eigen overloads equal the view overloads", "[matmul]") {
    check_eigen<presets::w8a8>(5, 7, 37, 111);
    check_eigen<presets::w4a16>(3, 6, 128, 112);
}

}  // namespace
