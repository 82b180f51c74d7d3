// The weight-only CPU kernels (W8A16, W4A16, W2A16: integer weights dequantized in registers, fp32 or bf16
// activations; and floating weights, or floating activations, with quantized activations: fp8 / MXFP4 x int8
// tokens and the like, through the front door) against the scalar oracle, on every SIMD path this machine
// supports: the presets w8a16,
// w4a16, w2a16 plus int4 symmetric per_group<32> with power-of-two scales, uint8 asymmetric per_channel
// (8-bit zero offsets), int3 asymmetric per_group<16> (a 3-bit format in 4-bit packing, one chunk per
// group) and int8 asymmetric per_group<32> (8-bit with groups); random shapes with tails in M, N and K (both
// drivers: direct for small M, panel GEMM otherwise), Gaussian data, with and without bias, fp32 and bf16
// activations (the oracle gets the bf16 values as floats), strided X and Y, whole and split output ranges.
//
// Error bound. The kernels dequantize every weight exactly as the oracle (w = fl(s * (u - z)), bit for bit)
// and sum x * w in fp32: each output is one chain of FMAs along k (SSE4.1: a multiply and an add, two
// roundings per term), plus a tree over the vector lanes in the direct driver (<= 4 roundings), then the
// bias add. (8-bit with one scale per row, direct driver: the chain sums x * (u - z) exactly-multiplied and
// the sum is scaled once: one more rounding, and s * (u - z) unrounded differs from the oracle's weight by
// <= 2^-24 relative.) The oracle sums exactly in double (error ~K * 2^-53), rounds to float once, then adds
// the bias. Hence |y - y_ref| <= (2K + 6) u S + u S + 2u |y| + O(u^2) with u = 2^-24, S = sum_k |x_k| |w_k|;
// we check
//     |y - y_ref| <= c * K * 2^-24 * S + tiny,   c = 2,   tiny = 8 * 2^-24 * S + 2^-22 * |y_ref| + 1e-30.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/weight_only_pack.hpp"
#include "tcomp/format/fp8.hpp"
#include "tcomp/format/mx_elements.hpp"
#include "tcomp/format/nf4.hpp"
#include "tcomp/kernel/reference/matmul.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/quant/describe.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using namespace tcomp;
using tcomp_test::gaussian;

using int4_g32_pow2 = policy<quantizer<int_format<4>, symmetric, per_group<32>, pow2_scale>, float_activations>;
using uint8_channel_asym = policy<quantizer<uint_format<8>, asymmetric, per_channel>, float_activations>;
using int3_g16_asym = policy<quantizer<int_format<3>, asymmetric, per_group<16>>, float_activations>;
using int8_g32_asym = policy<quantizer<int_format<8>, asymmetric, per_group<32>>, float_activations>;
// Floating formats: 4-bit codes through a table of their values, 8-bit minifloats decoded by shifts.
using nf4_g64 = policy<quantizer<nf4_format, symmetric, per_group<64>>, float_activations>;
using mxfp4 = policy<quantizer<fp4_e2m1, symmetric, per_group<32>, e8m0_scale>, float_activations>;
using fp4_channel = policy<quantizer<fp4_e2m1, symmetric, per_channel>, float_activations>;
using nf4_g16 = policy<quantizer<nf4_format, symmetric, per_group<16>>, float_activations>;
using fp8_channel = policy<quantizer<fp8_e4m3, symmetric, per_channel>, float_activations>;
using fp8_e5m2_g32 = policy<quantizer<fp8_e5m2, symmetric, per_group<32>>, float_activations>;

std::uint16_t to_bf16(float f) {  // round to nearest even (no NaN here)
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    return static_cast<std::uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
float from_bf16(std::uint16_t v) {
    const std::uint32_t b = static_cast<std::uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

constexpr float y_sentinel = -12345.5f;

/// One activation set: X (fp32 with row stride k + 3, or its bf16 rounding), the oracle's result and the
/// per-output error bound.
struct case_data {
    index_t m = 0, n = 0, k = 0, x_stride = 0, y_stride = 0;
    bool bf16 = false;
    std::vector<float> x;             // what the oracle sees (bf16 values as floats), stride x_stride
    std::vector<std::uint16_t> xb;    // bf16 bits, stride x_stride
    std::vector<float> bias;
    dense_matrix<float> y_ref, bound;
};

/// Runs the kernel of `path` on the given output ranges (all of them when split is false, else a 2 x 2 grid of
/// calls) and returns the largest |y - y_ref| / bound; sets `untouched` false when the kernel wrote outside Y.
float run_and_compare(cpu::isa_path path, const cpu::weight_only_storage& st, const case_data& d, bool split,
                      bool& untouched) {
    const cpu::kernel_table* table = cpu::kernels_for(path);
    REQUIRE(table != nullptr);
    REQUIRE(table->weight_only != nullptr);
    cpu::scoped_path force(path);
    std::vector<float> y(static_cast<std::size_t>(d.m * d.y_stride), y_sentinel);
    cpu::weight_only_call c;
    c.w = &st.desc;
    if (d.bf16) c.x_bf16 = d.xb.data();
    else c.x = d.x.data();
    c.x_stride = d.x_stride;
    c.m = d.m;
    c.y = y.data(), c.y_stride = d.y_stride;
    c.bias = d.bias.empty() ? nullptr : d.bias.data();
    const index_t panels = st.desc.panels;
    const index_t pcut = split ? panels / 2 : panels, mcut = split ? d.m / 2 : d.m;
    for (int pi = 0; pi < 2; ++pi)
        for (int mi = 0; mi < 2; ++mi) {
            c.panel_begin = pi == 0 ? 0 : pcut, c.panel_end = pi == 0 ? pcut : panels;
            c.m_begin = mi == 0 ? 0 : mcut, c.m_end = mi == 0 ? mcut : d.m;
            table->weight_only(c);
        }
    float worst = 0.0f;
    untouched = true;
    for (index_t i = 0; i < d.m; ++i) {
        for (index_t j = 0; j < d.n; ++j) {
            const float v = y[static_cast<std::size_t>(i * d.y_stride + j)];
            const float err = std::isfinite(v) ? std::fabs(v - d.y_ref(i, j)) : std::numeric_limits<float>::infinity();
            worst = std::max(worst, err / d.bound(i, j));
        }
        for (index_t j = d.n; j < d.y_stride; ++j)
            if (y[static_cast<std::size_t>(i * d.y_stride + j)] != y_sentinel) untouched = false;
    }
    return worst;
}

template <class P>
void check_policy(const char* name, std::uint32_t seed) {
    constexpr index_t group = P::weight_quantizer::granularity::group_size;
    const index_t ms[] = {1, 2, 3, 7, 16, 33};
    const index_t ns[] = {1, 15, 16, 17, 50};
    const index_t ks[] = {1, 7, 64, 130, 256, 384};
    const auto paths = tcomp_test::simd_paths();
    int pair = 0;
    for (index_t k : ks) {
        if (group > 0 && k % group != 0) continue;
        for (index_t n : ns) {
            const auto w = gaussian(n, k, seed + static_cast<std::uint32_t>(31 * k + n));
            const auto cw = compress<P>(w.view());
            cpu::weight_only_storage st;
            REQUIRE(cpu::pack_weight_only(cw.weights().view(), st) == "");
            const auto wd = dequantize(cw.weights());
            // Two row counts per (K, N), rotating through the list; fp32 and bf16 for each.
            for (int mi = 0; mi < 2; ++mi, ++pair) {
                const index_t m = ms[(pair + 3 * mi) % 6];
                const auto x32 = gaussian(m, k, seed + static_cast<std::uint32_t>(7 * pair + 1));
                for (int act = 0; act < 2; ++act) {
                    case_data d;
                    d.m = m, d.n = n, d.k = k, d.x_stride = k + 3, d.y_stride = n + 5, d.bf16 = act == 1;
                    d.x.assign(static_cast<std::size_t>(m * d.x_stride), 0.0f);
                    d.xb.assign(d.x.size(), 0);
                    for (index_t i = 0; i < m; ++i)
                        for (index_t j = 0; j < k; ++j) {
                            const auto at = static_cast<std::size_t>(i * d.x_stride + j);
                            d.xb[at] = to_bf16(x32(i, j));
                            d.x[at] = d.bf16 ? from_bf16(d.xb[at]) : x32(i, j);
                        }
                    if ((pair + act) % 2 == 0) d.bias = tcomp_test::uniform_vector(n, seed + static_cast<std::uint32_t>(pair), 2.0f);
                    d.y_ref = dense_matrix<float>(m, n);
                    const matrix_view<const float> xv(d.x.data(), m, k, d.x_stride);
                    reference::matmul(xv, cw, d.y_ref.view(), d.bias);
                    d.bound = dense_matrix<float>(m, n);
                    for (index_t i = 0; i < m; ++i)
                        for (index_t j = 0; j < n; ++j) {
                            double s = 0.0;
                            for (index_t kk = 0; kk < k; ++kk)
                                s += std::fabs(static_cast<double>(xv(i, kk)) * static_cast<double>(wd(j, kk)));
                            d.bound(i, j) = static_cast<float>((2.0 * static_cast<double>(k) + 8.0) * 0x1p-24 * s +
                                                               0x1p-22 * std::fabs(d.y_ref(i, j)) + 1e-30);
                        }
                    for (cpu::isa_path path : paths) {
                        const bool split = (pair + act) % 2 == 1;
                        bool untouched = true;
                        const float worst = run_and_compare(path, st, d, split, untouched);
                        INFO(name << " on " << cpu::to_string(path) << ": M=" << m << " N=" << n << " K=" << k
                                  << (d.bf16 ? " bf16" : " fp32") << (d.bias.empty() ? "" : " +bias")
                                  << (split ? " split" : "") << ": worst |y - y_ref| / bound = " << worst);
                        CHECK(worst <= 1.0f);
                        CHECK(untouched);
                    }
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("weight-only kernels match the oracle on every path", "[cpu_weight_only]") {
    if (tcomp_test::simd_paths().empty()) {
        WARN("no SIMD path compiled in or supported here: nothing to test");
        return;
    }
    SECTION("w8a16: int8 symmetric per channel") { check_policy<presets::w8a16>("w8a16", 100); }
    SECTION("w4a16: uint4 asymmetric per_group<128>") { check_policy<presets::w4a16>("w4a16", 200); }
    SECTION("w2a16: uint2 asymmetric per_group<64>") { check_policy<presets::w2a16>("w2a16", 300); }
    SECTION("int4 symmetric per_group<32>, pow2 scales") { check_policy<int4_g32_pow2>("int4 g32 pow2", 400); }
    SECTION("uint8 asymmetric per channel") { check_policy<uint8_channel_asym>("uint8 asym", 500); }
    SECTION("int3 asymmetric per_group<16>") { check_policy<int3_g16_asym>("int3 g16 asym", 600); }
    SECTION("int8 asymmetric per_group<32>") { check_policy<int8_g32_asym>("int8 g32 asym", 700); }
    SECTION("nf4 per_group<64> (table)") { check_policy<nf4_g64>("nf4 g64", 800); }
    SECTION("mxfp4: fp4 e2m1 per_group<32>, e8m0 scales (table)") { check_policy<mxfp4>("mxfp4", 900); }
    SECTION("fp4 e2m1 per channel (table)") { check_policy<fp4_channel>("fp4 channel", 1000); }
    SECTION("nf4 per_group<16> (table, a scale per chunk)") { check_policy<nf4_g16>("nf4 g16", 1050); }
    SECTION("fp8 e4m3 per channel (minifloat)") { check_policy<fp8_channel>("fp8 channel", 1100); }
    SECTION("fp8 e5m2 per_group<32> (minifloat)") { check_policy<fp8_e5m2_g32>("fp8 e5m2 g32", 1200); }
}

TEST_CASE("weight-only packing of floating formats: every code's value, and codes that are not finite",
          "[cpu_weight_only]") {
    // The minifloat decode the kernels use equals the format's for every finite code (and -0 for 0x80).
    for (std::uint32_t c = 0; c < 256; ++c) {
        const float e4 = fp8_e4m3::decode(c), e5 = fp8_e5m2::decode(c);
        if (std::isfinite(e4)) CHECK(tcomp_test::bits_of(cpu::wo_minifloat_value(c, 20, 0x1p120f)) == tcomp_test::bits_of(e4));
        if (std::isfinite(e5)) CHECK(tcomp_test::bits_of(cpu::wo_minifloat_value(c, 21, 0x1p112f)) == tcomp_test::bits_of(e5));
    }
    const auto w = gaussian(16, 64, 11);
    {
        const auto cw = compress<nf4_g64>(w.view());
        cpu::weight_only_storage st;
        REQUIRE(cpu::pack_weight_only(cw.weights().view(), st) == "");
        CHECK(st.desc.values == cpu::wo_values::table);
        CHECK(st.desc.code_bits == 4);
        for (std::uint32_t c = 0; c < 16; ++c) CHECK(st.desc.lut[c] == nf4_format::decode(c));
    }
    // A NaN code (0x7F in E4M3) in the weights: not packed, with the element named.
    const auto cw = compress<fp8_channel>(w.view());
    cpu::weight_only_storage st;
    REQUIRE(cpu::pack_weight_only(cw.weights().view(), st) == "");
    CHECK(st.desc.values == cpu::wo_values::minifloat);
    packed_buffers bad = cw.weights().storage();
    bad.codes[static_cast<std::size_t>(3 * bad.layout.row_code_bytes() + 5)] = 0x7F;
    const compressed_matrix<fp8_channel::weight_quantizer, dense> bad_matrix(bad);
    CHECK_THAT(cpu::pack_weight_only(bad_matrix.view(), st),
               Catch::Contains("weight (3, 5)") && Catch::Contains("not a finite weight"));
}

TEST_CASE("weight-only packing: layout, copies, and unsupported compositions", "[cpu_weight_only]") {
    const auto w = gaussian(20, 256, 7);
    const auto cw = compress<presets::w4a16>(w.view());
    cpu::weight_only_storage st;
    REQUIRE(cpu::pack_weight_only(cw.weights().view(), st) == "");
    CHECK(st.desc.code_bits == 4);
    CHECK(st.desc.k_padded == 256);
    CHECK(st.desc.group == 128);
    CHECK(st.desc.groups == 2);
    CHECK(st.desc.panels == 2);
    CHECK(st.desc.panel_code_bytes == 16 * 256 / 2);
    CHECK(st.bytes() == 2 * 2048 + 2 * 2 * 16 * (sizeof(float) + 1));

    // Row 17, k = 130 (block 1, chunk 0, word 2): the low nibble of byte 4 * 2 of row 1 of block 1 of panel 1.
    std::vector<index_t> cols;
    std::uint32_t code = 0;
    cw.weights().view().for_each_in_row(17, cols, [&](index_t c, std::uint32_t v) {
        if (c == 130) code = v;
    });
    const std::uint8_t byte = st.codes[st.desc.panel_code_bytes + 1 * 16 * 64 + 1 * 64 + 8];
    CHECK(static_cast<std::uint32_t>(byte & 15) == code);

    // A copy points at its own buffers.
    const cpu::weight_only_storage copy = st;
    CHECK(copy.desc.codes == copy.codes.data());
    CHECK(copy.desc.codes != st.desc.codes);
    CHECK(copy.desc.scales == copy.scales.data());
    CHECK(copy.desc.zeros == copy.zeros.data());

    SECTION("sparse weights") {
        using P = policy<quantizer<int_format<4>, per_group<32>>, float_activations, n_m<2, 4>>;
        const auto sw = compress<P>(w.view());
        cpu::weight_only_storage s;
        CHECK_THAT(cpu::pack_weight_only(sw.weights().view(), s), Catch::Contains("sparse"));
    }
    SECTION("floating weights of 6 bits (neither a 4-bit table nor an 8-bit minifloat)") {
        using P = policy<quantizer<fp6_e2m3, per_channel>, float_activations>;
        const auto fw = compress<P>(w.view());
        cpu::weight_only_storage s;
        CHECK_THAT(cpu::pack_weight_only(fw.weights().view(), s), Catch::Contains("6-bit floating format"));
    }
    SECTION("a group that is not a multiple of 16") {
        using P = policy<quantizer<int_format<4>, per_group<8>>, float_activations>;
        const auto gw = compress<P>(w.view());
        cpu::weight_only_storage s;
        CHECK_THAT(cpu::pack_weight_only(gw.weights().view(), s), Catch::Contains("multiple of 16"));
    }
}

namespace {

// Quantized activations with a floating operand (family_table.hpp): the weight-only kernels on the activations
// quantized and decoded back to float. The oracle sums the same dequantized products in double, so the bound
// above holds with x replaced by the decoded activations.
using fp8_w8a8 = policy<quantizer<fp8_e4m3, symmetric, per_channel>, presets::int8_per_token>;
using mxfp4_w4a8 = policy<quantizer<fp4_e2m1, symmetric, per_group<32>, e8m0_scale>, presets::int8_per_token>;
using fp8_a8 = policy<quantizer<fp8_e4m3, symmetric, per_channel>, quantizer<fp8_e4m3, symmetric, per_token, dynamic>>;
using nf4_u8a = policy<quantizer<nf4_format, symmetric, per_group<64>>, presets::uint8_per_token_asymmetric>;
using w8_fp8a = policy<presets::int8_per_channel, quantizer<fp8_e4m3, symmetric, per_token, dynamic>>;
using fp8_a8_static = policy<quantizer<fp8_e4m3, symmetric, per_channel>, presets::int8_per_tensor_static>;
using fp8_a8_group = policy<quantizer<fp8_e4m3, symmetric, per_channel>, quantizer<int_format<8>, symmetric, per_group<32>, dynamic>>;

template <class P>
void check_quantized_activations(const char* name, std::uint32_t seed) {
    STATIC_REQUIRE(cpu::family_of<P>() == cpu::kernel_family::weight_only);
    using AQ = typename P::activation_quantizer;
    const index_t ms[] = {1, 3, 17};
    const index_t ks[] = {64, 96, 320};
    const index_t ns[] = {5, 33};
    constexpr index_t group = P::weight_quantizer::granularity::group_size;
    int pair = 0;
    for (index_t k : ks)
        for (index_t n : ns) {
            if (group > 0 && k % group != 0) continue;
            const index_t m = ms[pair++ % 3];
            const auto w = gaussian(n, k, seed + static_cast<std::uint32_t>(k + n));
            auto x = gaussian(m, k, seed + 7 + static_cast<std::uint32_t>(k));
            x(0, 1) = 9.0f;  // an outlier: the activation scales matter
            auto cw = compress<P>(w.view());
            if constexpr (compressed_weights<P>::calibrated_activations()) {
                cw.calibrate(gaussian(12, k, seed + 99).view());
            }
            const std::vector<float> bias = tcomp_test::uniform_vector(n, seed + static_cast<std::uint32_t>(n), 1.0f);
            dense_matrix<float> y_ref(m, n);
            reference::matmul(x.view(), cw, y_ref.view(), bias);
            // The decoded activations the oracle multiplies, and the bound of the header comment on them.
            const scale_table* fixed = nullptr;
            if constexpr (compressed_weights<P>::calibrated_activations()) fixed = &cw.activation_scales();
            auto xq = dequantize(quantize<AQ>(x.view(), {}, fixed));
            const auto wd = dequantize(cw.weights());
            const auto packed = cpu::pack(cw);
            REQUIRE(packed.unsupported_reason() == "");
            for (cpu::isa_path path : tcomp_test::simd_paths()) {
                cpu::scoped_path force(path);
                INFO(name << " on " << cpu::to_string(path) << ": M=" << m << " N=" << n << " K=" << k);
                // The activations the kernels see are the oracle's, bit for bit (SIMD encoder or quantize<AQ>).
                dense_matrix<float> xk;
                cpu::detail::quantized_activations(packed, *cpu::kernels_for(path), x.view(), 2, xk);
                CHECK(xk.storage() == xq.storage());
                dense_matrix<float> y(m, n);
                matmul(x.view(), packed, y.view(), bias, {.threads = 2});
                CHECK(cpu::uses_simd(packed));
                float worst = 0.0f;
                for (index_t i = 0; i < m; ++i)
                    for (index_t j = 0; j < n; ++j) {
                        double s = 0.0;
                        for (index_t kk = 0; kk < k; ++kk) s += std::fabs(double(xq(i, kk)) * double(wd(j, kk)));
                        const double bound = (2.0 * double(k) + 8.0) * 0x1p-24 * s + 0x1p-22 * std::fabs(y_ref(i, j)) + 1e-30;
                        worst = std::max(worst, static_cast<float>(std::fabs(double(y(i, j)) - double(y_ref(i, j))) / bound));
                    }
                INFO("worst |y - y_ref| / bound = " << worst);
                CHECK(worst <= 1.0f);
            }
        }
}

}  // namespace

TEST_CASE("weight-only kernels with quantized activations (a floating operand) match the oracle", "[cpu_weight_only]") {
    if (tcomp_test::simd_paths().empty()) {
        WARN("no SIMD path compiled in or supported here: nothing to test");
        return;
    }
    SECTION("fp8 e4m3 weights x int8 tokens (SIMD encoder)") { check_quantized_activations<fp8_w8a8>("fp8_w8a8", 1300); }
    SECTION("MXFP4 weights x int8 tokens") { check_quantized_activations<mxfp4_w4a8>("mxfp4_w4a8", 1400); }
    SECTION("fp8 weights x fp8 tokens (quantize<AQ>)") { check_quantized_activations<fp8_a8>("fp8_a8", 1500); }
    SECTION("nf4 weights x uint8 tokens with zero points") { check_quantized_activations<nf4_u8a>("nf4 u8a", 1600); }
    SECTION("int8 weights x fp8 tokens") { check_quantized_activations<w8_fp8a>("w8 fp8a", 1700); }
    SECTION("fp8 weights x calibrated int8 per tensor") { check_quantized_activations<fp8_a8_static>("fp8 static", 1800); }
    SECTION("fp8 weights x int8 per group of 32") { check_quantized_activations<fp8_a8_group>("fp8 a g32", 1900); }
}

TEST_CASE("weight-only kernels with quantized activations: stochastic rounding stays on the oracle", "[cpu_weight_only]") {
    using P = policy<quantizer<fp8_e4m3, symmetric, per_channel>, quantizer<int_format<8>, per_token, stochastic>>;
    const auto w = gaussian(8, 64, 5);
    const auto packed = cpu::pack(compress<P>(w.view()));
    CHECK(packed.family() == cpu::kernel_family::reference);
    CHECK_THAT(packed.unsupported_reason(), Catch::Contains("stochastic rounding of activations"));
    CHECK(cpu::supports(describe<P>(), 64) == packed.unsupported_reason());
}
