// The integer-dot CPU kernels (W8A8, W4A8, W2A8, 2:4 W8A8 / W4A8) against the scalar oracle, on every ISA
// path this machine supports, bit for bit: random shapes (odd M, N, K; tails in every dimension), random
// Gaussian data with outliers, with and without bias, 1-3 threads. Also: dispatch (forcing paths, the
// environment variable, errors), and compositions that fall back to the oracle with a stated reason.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tcomp/matmul.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using namespace tcomp;
using tcomp_test::gaussian;

dense_matrix<float> with_outliers(index_t rows, index_t cols, std::uint32_t seed) {
    auto m = gaussian(rows, cols, seed);
    std::mt19937 gen(seed + 7);
    std::uniform_int_distribution<index_t> pick(0, rows * cols - 1);
    for (index_t i = 0; i < (rows * cols) / 97; ++i) {
        const index_t e = pick(gen);
        m(e / cols, e % cols) *= 9.0f;
    }
    if (rows > 2) std::fill(&m(1, 0), &m(1, 0) + cols, 0.0f);  // an all-zero row
    return m;
}

bool bit_equal(const dense_matrix<float>& a, const dense_matrix<float>& b, std::string& where) {
    for (index_t r = 0; r < a.rows(); ++r)
        for (index_t c = 0; c < a.cols(); ++c)
            if (std::memcmp(&a(r, c), &b(r, c), sizeof(float)) != 0) {
                where = "(" + std::to_string(r) + ", " + std::to_string(c) + "): " + std::to_string(a(r, c)) +
                        " vs oracle " + std::to_string(b(r, c));
                return false;
            }
    return true;
}

/// Every path x shape x bias x threads for policy P, K drawn from `ks`.
template <class P>
void check_policy(const std::vector<index_t>& ks, std::uint32_t seed) {
    const index_t ms[] = {1, 2, 3, 5, 8, 9, 17};
    const index_t ns[] = {1, 15, 16, 17, 50};
    int cases = 0;
    for (index_t k : ks)
        for (index_t n : ns) {
            const auto w = with_outliers(n, k, seed + static_cast<std::uint32_t>(k * 131 + n));
            auto compressed = compress<P>(w.view());
            if constexpr (compressed_weights<P>::calibrated_activations())
                compressed.calibrate(gaussian(8, k, seed + 3).view());
            const auto packed = cpu::pack(compressed);
            REQUIRE(packed.family() == cpu::kernel_family::int_dot);
            INFO("unsupported reason: " << packed.unsupported_reason());
            for (index_t m : ms) {
                const auto x = with_outliers(m, k, seed + static_cast<std::uint32_t>(m * 7 + k));
                const auto bias = tcomp_test::uniform_vector(n, seed + static_cast<std::uint32_t>(n), 1.0f);
                const bool use_bias = ((m + n + k) % 2) == 0;
                const std::span<const float> b = use_bias ? std::span<const float>(bias) : std::span<const float>();
                dense_matrix<float> expected(m, n);
                reference::matmul(x.view(), compressed, expected.view(), b);
                for (auto path : tcomp_test::simd_paths()) {
                    cpu::scoped_path force(path);
                    REQUIRE(cpu::uses_simd(packed));
                    for (int threads : {1, 2, 3}) {
                        if (threads > 1 && (m * n * k) % 3 != 0) continue;  // keep the run short
                        dense_matrix<float> y(m, n);
                        matmul(x.view(), packed, y.view(), b, {.threads = threads});
                        std::string where;
                        INFO("path " << cpu::to_string(path) << ", M=" << m << " N=" << n << " K=" << k
                                     << ", threads " << threads << ", bias " << use_bias);
                        const bool same = bit_equal(y, expected, where);
                        INFO("first difference at " << where);
                        REQUIRE(same);
                        ++cases;
                    }
                }
            }
        }
    CHECK(cases > 0);
}

using w2a8 = policy<presets::uint2_group64_asymmetric, presets::int8_per_token>;
using w8_u8a = policy<presets::int8_per_channel, presets::uint8_per_token_asymmetric>;
using w4_channel_a8 = policy<quantizer<int_format<4>, symmetric, per_channel>, presets::int8_per_token>;
using w4_g32_asym_a8 = policy<quantizer<uint_format<4>, asymmetric, per_group<32>>, presets::int8_per_token>;
using w3_g16_a8 = policy<quantizer<int_format<3>, symmetric, per_group<16>>, presets::int8_per_token>;
using w8_pow2_a8 = policy<quantizer<int_format<8>, symmetric, per_group<32>, pow2_scale>, presets::int8_per_token>;
using w8_a8_tensor = policy<presets::int8_per_channel, quantizer<int_format<8>, symmetric, per_tensor, dynamic>>;
using w8_a8_percentile =
    policy<presets::int8_per_channel, quantizer<int_format<8>, symmetric, per_token, dynamic, percentile<999000>>>;
using w8_a4 = policy<presets::int8_per_channel, quantizer<int_format<4>, symmetric, per_token, dynamic>>;
using w4_g32_2of4 = policy<quantizer<int_format<4>, symmetric, per_group<32>>, presets::int8_per_token, n_m<2, 4>>;
// Two-level power-of-two group scales: the shift epilogue (quant/shift_epilogue.hpp).
using w8_shiftable_a8 = policy<quantizer<int_format<8>, symmetric, per_group<32>, shiftable_scale<3>>, presets::int8_per_token>;
using w4_shiftable_u8a =
    policy<quantizer<int_format<4>, symmetric, per_group<32>, shiftable_scale<2>>, presets::uint8_per_token_asymmetric>;
using w4_multilevel_a8 = policy<quantizer<int_format<4>, symmetric, per_group<16>, multi_level_scale<4>>, presets::int8_per_token>;
using w8_shiftable_2of4 =
    policy<quantizer<int_format<8>, symmetric, per_group<32>, shiftable_scale<3>>, presets::int8_per_token, n_m<2, 4>>;

}  // namespace

TEST_CASE("cpu int_dot: this machine's paths", "[cpu_int_dot]") {
    const auto paths = cpu::available_paths();
    std::string names;
    for (auto p : paths) names += std::string(cpu::to_string(p)) + " ";
    WARN("CPU paths available here: " << names);
    REQUIRE(paths.front() == cpu::isa_path::reference);
#if defined(__x86_64__)
    // The SIMD objects are linked into this test program: every x86-64 CPU has at least SSE4.1 today.
    CHECK(cpu::path_compiled(cpu::isa_path::sse41));
    CHECK(cpu::path_compiled(cpu::isa_path::avx512_vnni));
#endif
}

TEST_CASE("cpu int_dot: W8A8 per channel x per token, bit-exact on every path", "[cpu_int_dot]") {
    check_policy<presets::w8a8>({1, 3, 4, 5, 17, 64, 131}, 100);
}

TEST_CASE("cpu int_dot: W8A8 static (calibrated per tensor), bit-exact", "[cpu_int_dot]") {
    check_policy<presets::w8a8_static>({5, 64, 67}, 200);
}

TEST_CASE("cpu int_dot: W4A8 group 128, bit-exact", "[cpu_int_dot]") { check_policy<presets::w4a8>({128, 256}, 300); }

TEST_CASE("cpu int_dot: W4 per channel, W4 g32 asymmetric, W3 g16, W2 g64 asymmetric", "[cpu_int_dot]") {
    check_policy<w4_channel_a8>({1, 7, 8, 9, 70}, 400);
    check_policy<w4_g32_asym_a8>({32, 96}, 410);
    check_policy<w3_g16_a8>({16, 48}, 420);
    check_policy<w2a8>({64, 192}, 430);
}

TEST_CASE("cpu int_dot: other activation and scale kinds", "[cpu_int_dot]") {
    check_policy<w8_u8a>({3, 64, 100}, 500);          // uint8 activations with zero points
    check_policy<w8_pow2_a8>({32, 96}, 510);          // power-of-two group scales (shiftable)
    check_policy<w8_a8_tensor>({9, 64}, 520);         // one dynamic scale for the whole X
    check_policy<w8_a8_percentile>({64, 65}, 530);    // clipping observer (scalar scales, SIMD codes)
    check_policy<w8_a4>({16, 33}, 540);               // 4-bit activations
}

TEST_CASE("cpu int_dot: shift epilogue (shiftable / multi-level group scales), bit-exact", "[cpu_int_dot]") {
    // The packed weights take the shift epilogue (no per-group float scale), and every path matches the oracle.
    const auto w = with_outliers(40, 96, 640);
    const auto packed = cpu::pack(compress<w8_shiftable_a8>(w.view()));
    REQUIRE(packed.family() == cpu::kernel_family::int_dot);
    CHECK(packed.int_dot().desc.shifts != nullptr);
    CHECK(packed.int_dot().desc.scales == nullptr);
    check_policy<w8_shiftable_a8>({32, 96, 160}, 650);
    check_policy<w4_shiftable_u8a>({32, 64}, 660);
    check_policy<w4_multilevel_a8>({16, 48}, 670);
    check_policy<w8_shiftable_2of4>({32, 128}, 680);
}

TEST_CASE("cpu int_dot: shift epilogue with 64-bit sums (group scales spanning 2^20), bit-exact", "[cpu_int_dot]") {
    using P = policy<quantizer<int_format<8>, symmetric, per_group<32>, shiftable_scale<5>>, presets::uint8_per_token_asymmetric>;
    const index_t k = 320;  // 10 groups: group g scaled by 2^-2g, so the aligned sums need more than 32 bits
    for (index_t n : {17, 50}) {
        auto w = with_outliers(n, k, 690 + static_cast<std::uint32_t>(n));
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < k; ++c) w(r, c) = std::ldexp(w(r, c), -2 * static_cast<int>(c / 32));
        const auto compressed = compress<P>(w.view());
        const auto packed = cpu::pack(compressed);
        REQUIRE(packed.family() == cpu::kernel_family::int_dot);
        CHECK(packed.int_dot().desc.shifts != nullptr);
        CHECK_FALSE(packed.int_dot().desc.shift_fits_int32);
        for (index_t m : {1, 3, 9, 17}) {
            const auto x = with_outliers(m, k, 695 + static_cast<std::uint32_t>(m));
            const auto bias = tcomp_test::uniform_vector(n, 699, 1.0f);
            dense_matrix<float> expected(m, n);
            reference::matmul(x.view(), compressed, expected.view(), bias);
            for (auto path : tcomp_test::simd_paths()) {
                cpu::scoped_path force(path);
                for (int threads : {1, 2}) {
                    dense_matrix<float> y(m, n);
                    matmul(x.view(), packed, y.view(), bias, {.threads = threads});
                    std::string where;
                    INFO("path " << cpu::to_string(path) << ", M=" << m << " N=" << n << ", threads " << threads);
                    const bool same = bit_equal(y, expected, where);
                    INFO("first difference at " << where);
                    REQUIRE(same);
                }
            }
        }
    }
    // The ordinary data of the other shift tests fits 32 bits, so both kernel variants are exercised.
    CHECK(cpu::pack(compress<w8_shiftable_a8>(with_outliers(16, 96, 641).view())).int_dot().desc.shift_fits_int32);
}

TEST_CASE("shift epilogue: exact integer sum, one rounding, all-zero groups ignored", "[cpu_int_dot]") {
    // An independent computation of the oracle's definition on a hand-built case.
    using WQ = quantizer<int_format<8>, symmetric, per_group<4>, shiftable_scale<3>>;
    using AQ = presets::int8_per_token;
    dense_matrix<float> w(1, 12), x(1, 12);
    const float wv[12] = {1.0f, -0.5f, 0.25f, 0.125f, 0, 0, 0, 0, 0.01f, -0.02f, 0.03f, 0.004f};
    const float xv[12] = {0.3f, -0.7f, 1.1f, 0.05f, 2.0f, -2.0f, 1.0f, 0.5f, -0.9f, 0.4f, 0.2f, -1.3f};
    for (int c = 0; c < 12; ++c) w(0, c) = wv[c], x(0, c) = xv[c];
    const auto cw = compress<policy<WQ, AQ>>(w.view());
    const auto xq = quantize<AQ>(x.view());
    const auto wview = cw.weights().view();
    const auto xview = xq.view();
    // The middle group is all zero: its shift code must not set the reference shift.
    std::int64_t total = 0;
    int ref = 0;
    for (int g = 0; g < 3; ++g)
        if (g != 1) ref = std::max(ref, static_cast<int>(wview.packed().scale_entry(0, g)));
    for (int g = 0; g < 3; ++g) {
        std::int64_t acc = 0;
        for (int c = 4 * g; c < 4 * g + 4; ++c) {
            std::vector<index_t> cols;
            std::int64_t qw = 0, qx = 0;
            wview.for_each_in_row(0, cols, [&](index_t cc, std::uint32_t code) {
                if (cc == c) qw = WQ::format::to_integer(code);
            });
            xview.for_each_in_row(0, cols, [&](index_t cc, std::uint32_t code) {
                if (cc == c) qx = AQ::format::to_integer(code);
            });
            acc += qw * qx;
        }
        if (g == 1) { CHECK(acc == 0); continue; }
        total += acc * (std::int64_t{1} << (ref - static_cast<int>(wview.packed().scale_entry(0, g))));
    }
    const double row_scale = std::ldexp(static_cast<double>(wview.packed().tensor_scale), -ref);
    const float expected = static_cast<float>(static_cast<double>(total) * (static_cast<double>(xview.scale(0, 0)) * row_scale));
    dense_matrix<float> y(1, 1);
    reference::matmul_quantized(xview, wview, y.view());
    CHECK(y(0, 0) == expected);
    // The same value through the SIMD paths.
    const auto packed = cpu::pack(cw);
    for (auto path : tcomp_test::simd_paths()) {
        cpu::scoped_path force(path);
        dense_matrix<float> ys(1, 1);
        matmul(x.view(), packed, ys.view());
        CHECK(ys(0, 0) == expected);
    }
    CHECK(std::abs(expected - (0.3f * 1.0f + 0.7f * 0.5f + 1.1f * 0.25f + 0.05f * 0.125f - 0.009f - 0.008f + 0.006f -
                               0.0052f)) < 0.02f);
}

TEST_CASE("cpu int_dot: 2:4-sparse W8A8 and W4A8, bit-exact", "[cpu_int_dot]") {
    check_policy<presets::w8a8_2of4>({4, 12, 132}, 600);
    check_policy<presets::w4a8_2of4>({128, 256}, 610);
    check_policy<w4_g32_2of4>({32, 64}, 620);
}

TEST_CASE("cpu int_dot: a larger random shape on every path and thread count", "[cpu_int_dot]") {
    const index_t m = 37, n = 203, k = 384;
    const auto w = with_outliers(n, k, 700);
    const auto x = with_outliers(m, k, 701);
    const auto bias = tcomp_test::uniform_vector(n, 702, 1.0f);
    const auto compressed = compress<presets::w4a8>(w.view());
    const auto packed = cpu::pack(compressed);
    dense_matrix<float> expected(m, n);
    reference::matmul(x.view(), compressed, expected.view(), bias);
    for (auto path : tcomp_test::simd_paths()) {
        cpu::scoped_path force(path);
        for (int threads : {1, 2, 4}) {
            const auto y = matmul(x.view(), packed, bias, {.threads = threads});
            std::string where;
            INFO("path " << cpu::to_string(path) << " threads " << threads);
            REQUIRE(bit_equal(y, expected, where));
        }
    }
}

TEST_CASE("cpu int_dot: compositions without a kernel run the oracle and say why", "[cpu_int_dot]") {
    const auto w = gaussian(16, 40, 800);
    const auto x = gaussian(3, 40, 801);
    using w8_g20 = policy<quantizer<int_format<4>, symmetric, per_group<20>>, presets::int8_per_token>;  // 20 % 8 != 0
    const auto packed = cpu::pack(compress<w8_g20>(w.view()));
    CHECK(packed.family() == cpu::kernel_family::reference);
    CHECK_THAT(packed.unsupported_reason(), Catch::Contains("group size 20"));
    const auto y = matmul(x.view(), packed);
    const auto expected = matmul(x.view(), packed.source());
    std::string where;
    CHECK(bit_equal(y, expected, where));

    using stochastic_a = policy<presets::int8_per_channel, quantizer<int_format<8>, symmetric, per_token, dynamic, stochastic>>;
    const auto p2 = cpu::pack(compress<stochastic_a>(w.view()));
    CHECK(p2.family() == cpu::kernel_family::reference);
    CHECK_THAT(p2.unsupported_reason(), Catch::Contains("stochastic"));
}

TEST_CASE("cpu family table: one row per policy, chosen once", "[cpu_int_dot]") {
    using cpu::family_of;
    using cpu::kernel_family;
    static_assert(family_of<presets::w8a8>() == kernel_family::int_dot);
    static_assert(family_of<presets::w4a8_2of4>() == kernel_family::int_dot);
    static_assert(family_of<presets::w8a8_static>() == kernel_family::int_dot);
    static_assert(family_of<presets::w4a16>() == kernel_family::weight_only);
    static_assert(family_of<presets::w1a1>() == kernel_family::binary);
    // Binary weights with int8 activations: int_dot (the binary row takes sign grids on both sides only).
    using w1a8 = policy<quantizer<binary_format, symmetric, per_channel>, presets::int8_per_token>;
    static_assert(family_of<w1a8>() == kernel_family::int_dot);
    // What pack() reports comes from the row: packed, or reference with the row's reason; uses_simd from the row's
    // kernel entry on the active path.
    const auto w = gaussian(16, 64, 810);
    const auto packed = cpu::pack(compress<presets::w4a16>(gaussian(16, 128, 811).view()));
    CHECK(packed.family() == kernel_family::weight_only);
    CHECK(packed.kernel_bytes() == packed.weight_only().bytes());
    CHECK(cpu::uses_simd(packed) == (cpu::active_path() != cpu::isa_path::reference));
    using stochastic_a = policy<presets::int8_per_channel, quantizer<int_format<8>, symmetric, per_token, dynamic, stochastic>>;
    const auto p2 = cpu::pack(compress<stochastic_a>(w.view()));
    CHECK(p2.family() == kernel_family::reference);
    CHECK_FALSE(cpu::uses_simd(p2));
    CHECK(p2.kernel_bytes() == p2.source().weights().bytes());
}

TEST_CASE("cpu dispatch: forcing paths, TCOMP_CPU_PATH, errors", "[cpu_int_dot]") {
    const auto best = cpu::active_path();
    CHECK(best == cpu::best_available_path());
    {
        cpu::scoped_path force(cpu::isa_path::reference);
        CHECK(cpu::active_path() == cpu::isa_path::reference);
    }
    CHECK(cpu::active_path() == best);
    CHECK(cpu::parse_isa_path("avx2") == cpu::isa_path::avx2);
    CHECK_FALSE(cpu::parse_isa_path("avx3").has_value());
    for (auto p : cpu::all_isa_paths)
        if (!cpu::cpu_supports(p)) CHECK_THROWS_WITH(cpu::force_path(p), Catch::Contains("does not support"));

    ::setenv("TCOMP_CPU_PATH", "sse41", 1);
    CHECK(cpu::active_path() == cpu::isa_path::sse41);
    ::setenv("TCOMP_CPU_PATH", "bogus", 1);
    CHECK_THROWS_WITH(cpu::active_path(), Catch::Contains("TCOMP_CPU_PATH=bogus"));
    ::unsetenv("TCOMP_CPU_PATH");
    CHECK(cpu::active_path() == best);
}

TEST_CASE("cpu dispatch: kernels_linked() in a program that links tcomp::cpu, and pack does not warn", "[cpu_int_dot]") {
    // This program links tcomp::cpu. The opposite case (tcomp::tcomp alone: the one-time warning naming tcomp::cpu)
    // is the CTest test cpu.no_kernels_warning (tests/no_kernels.cpp).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    CHECK(cpu::kernels_linked());
    CHECK_FALSE(cpu::detail::warn_if_no_kernels());
#endif
    CHECK_THAT(cpu::detail::no_kernels_warning, Catch::Contains("tcomp::cpu") && Catch::Contains("scalar reference"));
}

TEST_CASE("cpu front door: shapes and values are checked", "[cpu_int_dot]") {
    const auto w = gaussian(16, 32, 900);
    const auto packed = cpu::pack(compress<presets::w8a8>(w.view()));
    dense_matrix<float> x(2, 31), y(2, 16);
    CHECK_THROWS_AS(matmul(x.view(), packed, y.view()), shape_error);
    dense_matrix<float> x2(2, 32);
    x2(1, 5) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(matmul(x2.view(), packed, y.view()), value_error);
}

TEST_CASE("finite checks: every position, every special value, f32, bf16 and fp16", "[cpu_int_dot]") {
    // The vectorised f32 check runs 16 elements at a time plus a scalar tail: put one bad value at every
    // position of rows whose lengths straddle those blocks.
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::quiet_NaN()};
    const float fine[] = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(), -0.0f, 1.0f};
    for (index_t n : {1, 15, 16, 17, 31, 32, 33, 70}) {
        std::vector<float> v(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = fine[i % 5];
        CHECK(tcomp::detail::all_finite(v.data(), n));
        for (std::size_t pos = 0; pos < v.size(); ++pos)
            for (float bad : specials) {
                auto v2 = v;
                v2[pos] = bad;
                REQUIRE_FALSE(tcomp::detail::all_finite(v2.data(), n));
            }
    }
    // The front door names the element, for every activation type.
    const auto w = gaussian(16, 40, 901);
    const auto packed = cpu::pack(compress<presets::w8a16>(w.view()));
    const auto compressed = compress<presets::w8a8>(w.view());
    dense_matrix<float> y(3, 16);
    dense_matrix<bfloat16> xb(3, 40);
    xb(2, 37) = bfloat16::from_bits(0x7F80);  // +Inf
    CHECK_THROWS_WITH(matmul(xb.view(), packed, y.view()), Catch::Contains("x(2, 37)") && Catch::Contains("Inf"));
    xb(2, 37) = bfloat16::from_bits(0xFFC1);  // NaN
    CHECK_THROWS_WITH(matmul(xb.view(), compressed, y.view()), Catch::Contains("x(2, 37)") && Catch::Contains("NaN"));
    dense_matrix<float16> xh(3, 40);
    xh(0, 3) = float16::from_bits(0xFC00);  // -Inf
    CHECK_THROWS_WITH(matmul(xh.view(), packed, y.view()), Catch::Contains("x(0, 3)") && Catch::Contains("Inf"));
    xh(0, 3) = float16::from_bits(0x7C01);  // NaN
    CHECK_THROWS_WITH(matmul(xh.view(), compressed, y.view()), Catch::Contains("x(0, 3)") && Catch::Contains("NaN"));
    dense_matrix<float> x(3, 40);
    x(1, 33) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(matmul(x.view(), packed, y.view()), Catch::Contains("(1, 33)") && Catch::Contains("NaN"));
    // Shapes and aliasing are checked for 16-bit X as for float.
    dense_matrix<bfloat16> xs(3, 39);
    CHECK_THROWS_AS(matmul(xs.view(), packed, y.view()), shape_error);
    dense_matrix<float> big(3, 40);
    const matrix_view<const bfloat16> inside(reinterpret_cast<const bfloat16*>(big.data()), 3, 40);
    CHECK_THROWS_WITH(matmul(inside, packed, matrix_view<float>(big.data(), 3, 16)), Catch::Contains("overlaps X"));
}

TEST_CASE("bfloat16 and float16: IEEE casts, exhaustive on the 16-bit side", "[cpu_int_dot]") {
    // Every 16-bit pattern: to_float is exact and from_float gives the pattern back (NaN stays NaN).
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const auto bits = static_cast<std::uint16_t>(b);
        const float fb = to_float(bfloat16::from_bits(bits)), fh = to_float(float16::from_bits(bits));
        if (std::isnan(fb)) REQUIRE(std::isnan(to_float(from_float<bfloat16>(fb))));
        else REQUIRE(from_float<bfloat16>(fb).bits == bits);
        if (std::isnan(fh)) {
            REQUIRE(std::isnan(to_float(from_float<float16>(fh))));
        } else {
            REQUIRE(from_float<float16>(fh).bits == bits);
            // fp16 values against their definition: (-1)^s 2^(e-15) (1 + m/1024), subnormals m 2^-24.
            const int e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
            const double mag = e == 31 ? std::numeric_limits<double>::infinity()
                                       : (e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25));
            REQUIRE(static_cast<double>(fh) == ((bits & 0x8000) ? -mag : mag));
        }
    }
    // Rounding: nearest, ties to even, overflow to Inf; checked against the neighbours in double.
    std::mt19937 rng(77);
    std::uniform_int_distribution<std::uint32_t> any;
    for (int i = 0; i < 200000; ++i) {
        std::uint32_t u = any(rng);
        if (i % 4 == 0) u = (u & 0x8FFFFFFFu) | 0x30000000u;  // many around fp16's range
        float f;
        std::memcpy(&f, &u, 4);
        if (!std::isfinite(f)) continue;
        for (int which = 0; which < 2; ++which) {
            const double got = which == 0 ? to_float(from_float<bfloat16>(f)) : to_float(from_float<float16>(f));
            const double max_finite = which == 0 ? 3.3895313892515355e38 : 65504.0;
            const double ulp_at_max = which == 0 ? 0x1p120 : 32.0;
            if (std::fabs(static_cast<double>(f)) >= max_finite + ulp_at_max / 2) {
                REQUIRE(std::isinf(got));
                continue;
            }
            // No representable value is nearer: step one pattern up and down from the result.
            const auto near_bits = which == 0 ? from_float<bfloat16>(f).bits : from_float<float16>(f).bits;
            for (int d : {-1, 1}) {
                const auto nb = static_cast<std::uint16_t>(near_bits + d);
                const double other = which == 0 ? to_float(bfloat16::from_bits(nb)) : to_float(float16::from_bits(nb));
                if (std::isnan(other) || (std::signbit(other) != std::signbit(got) && other != 0.0)) continue;
                const double eg = std::fabs(got - f), eo = std::fabs(other - f);
                REQUIRE(eg <= eo);
                if (eg == eo) REQUIRE((near_bits & 1) == 0);  // a tie went to the even pattern
            }
        }
    }
}

TEST_CASE("cpu front door: 16-bit X on the int8 and binary families is the float call on the widened X", "[cpu_int_dot]") {
    const index_t m = 3, n = 21, k = 96;
    const auto w = gaussian(n, k, 960);
    const auto x = gaussian(m, k, 961);
    dense_matrix<bfloat16> xb(m, k);
    dense_matrix<float> xw(m, k);
    for (index_t r = 0; r < m; ++r)
        for (index_t c = 0; c < k; ++c) xb(r, c) = from_float<bfloat16>(x(r, c)), xw(r, c) = to_float(xb(r, c));
    const auto w8 = cpu::pack(compress<presets::w8a8>(w.view()));
    const auto w1 = cpu::pack(compress<presets::w1a1>(w.view()));
    for (auto path : tcomp_test::simd_paths()) {
        cpu::scoped_path force(path);
        INFO("path " << cpu::to_string(path));
        dense_matrix<float> y(m, n);
        std::string where;
        matmul(xb.view(), w8, y.view());
        REQUIRE(bit_equal(y, matmul(xw.view(), w8), where));
        matmul(xb.view(), w1, y.view());
        REQUIRE(bit_equal(y, matmul(xw.view(), w1), where));
    }
}

TEST_CASE("cpu thread pool: every task runs once, exceptions propagate", "[cpu_int_dot]") {
    auto& pool = cpu::thread_pool::instance();
    for (int threads : {1, 2, 3, 8}) {
        std::vector<std::atomic<int>> hits(1000);
        pool.run(threads, 1000, [&](index_t t) { hits[static_cast<std::size_t>(t)].fetch_add(1); });
        for (auto& h : hits) REQUIRE(h.load() == 1);
    }
    CHECK_THROWS_WITH(pool.run(2, 10, [](index_t t) {
                          if (t == 7) throw std::runtime_error("task 7 failed");
                      }),
                      "task 7 failed");
    // Nested use runs serially instead of deadlocking.
    std::atomic<int> inner{0};
    pool.run(2, 4, [&](index_t) { pool.run(2, 3, [&](index_t) { inner.fetch_add(1); }); });
    CHECK(inner.load() == 12);
}

TEST_CASE("cpu front door: weight-only (fp32 and bf16 activations) and W1A1 through tcomp::matmul", "[cpu_int_dot]") {
    const index_t m = 5, n = 37, k = 256;
    const auto w = gaussian(n, k, 950);
    const auto x = gaussian(m, k, 951);
    const auto bias = tcomp_test::uniform_vector(n, 952, 1.0f);
    {
        const auto compressed = compress<presets::w4a16>(w.view());
        const auto packed = cpu::pack(compressed);
        REQUIRE(packed.family() == cpu::kernel_family::weight_only);
        dense_matrix<float> expected(m, n);
        reference::matmul(x.view(), compressed, expected.view(), bias);
        // bf16 and fp16 activations: the oracle sees the same values widened to float.
        dense_matrix<bfloat16> xb(m, k);
        dense_matrix<float16> xh(m, k);
        dense_matrix<float> xw(m, k), xhw(m, k);
        for (index_t r = 0; r < m; ++r)
            for (index_t c = 0; c < k; ++c) {
                xb(r, c) = from_float<bfloat16>(x(r, c));
                xw(r, c) = to_float(xb(r, c));
                xh(r, c) = from_float<float16>(x(r, c));
                xhw(r, c) = to_float(xh(r, c));
            }
        dense_matrix<float> expected_bf16(m, n), expected_fp16(m, n);
        reference::matmul(xw.view(), compressed, expected_bf16.view(), bias);
        reference::matmul(xhw.view(), compressed, expected_fp16.view(), bias);
        // The reference front door on 16-bit X is the oracle on the widened values, bit for bit.
        dense_matrix<float> yr(m, n);
        matmul(xb.view(), compressed, yr.view(), bias);
        std::string where;
        REQUIRE(bit_equal(yr, expected_bf16, where));
        matmul(xh.view(), compressed, yr.view(), bias);
        REQUIRE(bit_equal(yr, expected_fp16, where));
        for (auto path : tcomp_test::simd_paths()) {
            cpu::scoped_path force(path);
            REQUIRE(cpu::uses_simd(packed));
            const auto y = matmul(x.view(), packed, bias, {.threads = 2});
            dense_matrix<float> yb(m, n), yh(m, n);
            matmul(xb.view(), packed, yb.view(), bias, {.threads = 2});
            matmul(xh.view(), packed, yh.view(), bias, {.threads = 2});
            for (index_t r = 0; r < m; ++r)
                for (index_t c = 0; c < n; ++c) {
                    // float accumulation against the oracle's double sum: well inside 1e-4 relative here.
                    REQUIRE(std::fabs(y(r, c) - expected(r, c)) <= 1e-4f * (1.0f + std::fabs(expected(r, c))));
                    REQUIRE(std::fabs(yb(r, c) - expected_bf16(r, c)) <= 1e-4f * (1.0f + std::fabs(expected_bf16(r, c))));
                    REQUIRE(std::fabs(yh(r, c) - expected_fp16(r, c)) <= 1e-4f * (1.0f + std::fabs(expected_fp16(r, c))));
                }
        }
    }
    {
        const auto compressed = compress<presets::w1a1>(w.view());
        const auto packed = cpu::pack(compressed);
        REQUIRE(packed.family() == cpu::kernel_family::binary);
        dense_matrix<float> expected(m, n);
        reference::matmul(x.view(), compressed, expected.view(), bias);
        for (auto path : tcomp_test::simd_paths()) {
            cpu::scoped_path force(path);
            const auto y = matmul(x.view(), packed, bias, {.threads = 2});
            std::string where;
            INFO("path " << cpu::to_string(path));
            REQUIRE(bit_equal(y, expected, where));
        }
    }
}

TEST_CASE("cpu packed weights: copies own their buffers (the source may die)", "[cpu_int_dot]") {
    const auto w = gaussian(33, 64, 990);
    const auto x = gaussian(3, 64, 991);
    auto original = std::make_unique<cpu::packed_weights<presets::w8a8>>(cpu::pack(compress<presets::w8a8>(w.view())));
    const auto expected = matmul(x.view(), *original);
    const cpu::packed_weights<presets::w8a8> copy = *original;
    CHECK(copy.int_dot().desc.codes != original->int_dot().desc.codes);
    original.reset();
    const auto y = matmul(x.view(), copy);
    std::string where;
    CHECK(bit_equal(y, expected, where));
}

namespace {

/// cpu::supports(describe<P>(), k) says what cpu::pack says about P's weights at that K.
template <class P>
void check_supports_matches_pack(index_t k, std::uint32_t seed) {
    const descriptor d = describe<P>();
    const auto w = gaussian(20, k, seed);
    const auto packed = cpu::pack(compress<P>(w.view()));
    INFO(spell(d) << " at K = " << k);
    CHECK(cpu::family_for(d) == cpu::family_of<P>());
    CHECK(cpu::supports(d, k) == packed.unsupported_reason());
    CHECK((packed.family() == cpu::kernel_family::reference) == !packed.unsupported_reason().empty());
}

}  // namespace

TEST_CASE("cpu family table at run time: supports(descriptor) agrees with cpu::pack", "[cpu_int_dot]") {
    // Kernels: every family.
    check_supports_matches_pack<presets::w8a8>(256, 1);
    check_supports_matches_pack<presets::w4a8>(256, 2);
    check_supports_matches_pack<presets::w4a16>(256, 3);
    check_supports_matches_pack<presets::w8a16>(96, 4);
    check_supports_matches_pack<presets::w2a16>(128, 5);
    check_supports_matches_pack<presets::w1a1>(100, 6);
    check_supports_matches_pack<presets::w8a8_2of4>(64, 7);
    check_supports_matches_pack<w2a8>(128, 8);
    check_supports_matches_pack<w8_u8a>(70, 9);
    check_supports_matches_pack<w3_g16_a8>(64, 10);
    check_supports_matches_pack<w8_a8_tensor>(40, 11);
    check_supports_matches_pack<w8_a8_percentile>(40, 12);
    check_supports_matches_pack<w4_g32_2of4>(64, 13);
    check_supports_matches_pack<w8_shiftable_a8>(64, 14);
    check_supports_matches_pack<w4_multilevel_a8>(64, 15);
    check_supports_matches_pack<policy<quantizer<nf4_format, symmetric, per_group<64>>, float_activations>>(128, 16);
    check_supports_matches_pack<policy<quantizer<fp4_e2m1, symmetric, per_group<32>, e8m0_scale>, float_activations>>(64, 17);
    check_supports_matches_pack<policy<quantizer<fp8_e5m2, symmetric, per_channel>, float_activations>>(48, 18);
    // Refusals, each for its own reason.
    check_supports_matches_pack<policy<quantizer<fp6_e3m2, symmetric, per_channel>, float_activations>>(64, 19);
    check_supports_matches_pack<policy<quantizer<uint_format<4>, asymmetric, per_group<8>>, float_activations>>(64, 20);
    check_supports_matches_pack<policy<quantizer<int_format<4>, symmetric, per_group<32>>, float_activations, n_m<2, 4>>>(64, 21);
    check_supports_matches_pack<policy<quantizer<fp8_e4m3, symmetric, per_channel>, presets::int8_per_token>>(64, 22);
    check_supports_matches_pack<policy<presets::int8_per_channel, quantizer<fp8_e4m3, symmetric, per_token, dynamic>>>(64, 23);
    check_supports_matches_pack<policy<presets::int8_per_channel, quantizer<int_format<8>, per_token, stochastic>>>(64, 24);
    check_supports_matches_pack<policy<presets::int8_per_channel, quantizer<int_format<8>, symmetric, per_group<32>>>>(64, 25);
    check_supports_matches_pack<policy<quantizer<int_format<8>, symmetric, per_group<4>>, presets::int8_per_token, n_m<1, 4>>>(64, 26);
    check_supports_matches_pack<policy<quantizer<int_format<4>, symmetric, per_group<4>>, presets::int8_per_token>>(64, 27);
    check_supports_matches_pack<policy<presets::int8_per_channel, presets::int8_per_token, block_sparse<4, 4>>>(64, 28);
    check_supports_matches_pack<policy<quantizer<binary_format, symmetric, per_group<32>>, quantizer<binary_format, per_token>>>(64, 29);
    check_supports_matches_pack<policy<quantizer<binary_format, symmetric, per_channel>, quantizer<binary_format, per_token, stochastic>>>(64, 30);
    check_supports_matches_pack<policy<quantizer<int_format<4>, symmetric, per_channel>, quantizer<binary_format, per_token>>>(64, 31);
    // A group as long as K is one group: the k-step rule does not apply.
    check_supports_matches_pack<policy<quantizer<int_format<4>, symmetric, per_group<36>>, presets::int8_per_token>>(36, 32);
    CHECK_FALSE(cpu::supports(describe<policy<quantizer<int_format<4>, symmetric, per_group<36>>, presets::int8_per_token>>(), 72).empty());
    CHECK(cpu::supports(parse_descriptor("w=int4:g32 a=int8:token")).empty());
    CHECK_THAT(cpu::supports(parse_descriptor("w=fp6_e2m3:g32")), Catch::Contains("6-bit floating format"));
}
