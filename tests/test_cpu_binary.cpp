// The binary (W1A1, xnor + popcount) CPU kernel against the scalar oracle, on every ISA path this machine
// supports (and on the AVX-512 paths both with VPOPCNTQ and with the vpshufb table), bit for bit: random
// shapes with tails in M, N and K, Gaussian data with all-zero rows in X and W, with and without bias, whole
// and split output ranges. Also: binarize_activations gives quantize<AQ>'s codes and scales exactly, and the
// compositions the kernel does not cover come back with a reason.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tcomp/kernel/cpu/binary_pack.hpp"
#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/kernel/reference/matmul.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using namespace tcomp;
using tcomp_test::gaussian;

using w1a1 = presets::w1a1;
using AQ = presets::binary_per_token;

/// A Gaussian matrix with row `zero_row` (if in range) all zeros, and a few exact zeros and -0s elsewhere.
dense_matrix<float> test_matrix(index_t rows, index_t cols, std::uint32_t seed, index_t zero_row) {
    auto m = gaussian(rows, cols, seed);
    if (zero_row < rows)
        for (index_t c = 0; c < cols; ++c) m(zero_row, c) = 0.0f;
    if (rows * cols > 4) m(rows - 1, cols / 2) = -0.0f, m(0, cols - 1) = 0.0f;
    return m;
}

/// First position where a and b differ bitwise, or "".
std::string first_difference(const dense_matrix<float>& a, const dense_matrix<float>& b) {
    for (index_t r = 0; r < a.rows(); ++r)
        for (index_t c = 0; c < a.cols(); ++c)
            if (std::memcmp(&a(r, c), &b(r, c), sizeof(float)) != 0)
                return "(" + std::to_string(r) + ", " + std::to_string(c) + "): " + std::to_string(a(r, c)) +
                       " vs oracle " + std::to_string(b(r, c));
    return "";
}

/// The kernels to test: every SIMD path, and on AVX-512 paths also the table popcount when VPOPCNTQ exists.
struct variant {
    cpu::isa_path path;
    int vpopcnt_mode;  // cpu::detail::binary_vpopcnt_mode()
    std::string name() const {
        return std::string(cpu::to_string(path)) + (vpopcnt_mode == 0 ? " (table popcount)" : "");
    }
};

std::vector<variant> variants() {
    std::vector<variant> out;
    for (auto p : cpu::available_paths()) {
        if (p == cpu::isa_path::reference) continue;
        out.push_back({p, -1});
        if ((p == cpu::isa_path::avx512bw || p == cpu::isa_path::avx512_vnni) && cpu::cpu_has_avx512_vpopcntdq())
            out.push_back({p, 0});
    }
    return out;
}

struct vpopcnt_mode_guard {
    explicit vpopcnt_mode_guard(int mode) : previous(cpu::detail::binary_vpopcnt_mode().exchange(mode)) {}
    ~vpopcnt_mode_guard() { cpu::detail::binary_vpopcnt_mode().store(previous); }
    vpopcnt_mode_guard(const vpopcnt_mode_guard&) = delete;
    vpopcnt_mode_guard& operator=(const vpopcnt_mode_guard&) = delete;
    int previous;
};

/// Y through variant v's kernel, computing the output in `splits` x `splits` pieces (n ranges not aligned to
/// panels, m ranges of any length) to exercise the partial blocks the front door's threads would ask for.
dense_matrix<float> run_kernel(const variant& v, const cpu::binary_storage& w, const std::vector<std::uint64_t>& bits,
                               const std::vector<float>& scales, index_t m, const std::vector<float>& bias,
                               int splits) {
    const cpu::kernel_table* table = cpu::kernels_for(v.path);
    REQUIRE(table != nullptr);
    REQUIRE(table->binary != nullptr);
    vpopcnt_mode_guard mode(v.vpopcnt_mode);
    const index_t n = w.desc.n;
    dense_matrix<float> y(m, n, 12345.0f);
    for (int si = 0; si < splits; ++si)
        for (int sj = 0; sj < splits; ++sj) {
            cpu::binary_call c;
            c.w = &w.desc;
            c.x_bits = bits.data();
            c.x_stride = w.desc.words;
            c.x_scale = scales.data();
            c.m = m;
            c.y = y.data(), c.y_stride = n;
            c.bias = bias.empty() ? nullptr : bias.data();
            c.m_begin = m * si / splits, c.m_end = m * (si + 1) / splits;
            c.n_begin = n * sj / splits, c.n_end = n * (sj + 1) / splits;
            table->binary(c);
        }
    return y;
}

}  // namespace

TEST_CASE("binary kernel matches the oracle bit for bit on every path", "[cpu_binary]") {
    const auto vs = variants();
    if (vs.empty()) WARN("no SIMD path available here: only the packing is tested");
    const index_t ms[] = {1, 2, 3, 5, 8, 17, 64};
    const index_t ns[] = {1, 17, 33, 100};
    const index_t ks[] = {1, 63, 64, 65, 127, 200, 1000};
    int cases = 0, mi = 0;
    for (index_t k : ks)
        for (index_t n : ns) {
            const auto seed = static_cast<std::uint32_t>(k * 1009 + n);
            const auto wf = test_matrix(n, k, seed, n > 2 ? 1 : n);  // an all-zero weight row (S = 0)
            const auto compressed = compress<w1a1>(wf.view());
            cpu::binary_storage packed;
            REQUIRE(cpu::pack_binary(compressed.weights().view(), packed).empty());
            // A copy must work on its own buffers.
            const cpu::binary_storage copy = packed;
            REQUIRE(copy.desc.bits == copy.bits.data());
            const auto bias = tcomp_test::uniform_vector(n, seed + 1, 1.0f);
            for (int rep = 0; rep < 2; ++rep) {
                const index_t m = ms[mi++ % std::size(ms)];
                const auto x = test_matrix(m, k, seed + 2 + static_cast<std::uint32_t>(m), m > 1 ? m / 2 : m);
                const bool use_bias = ((m + n + k + rep) % 2) == 0;
                const std::vector<float> b = use_bias ? bias : std::vector<float>{};
                dense_matrix<float> expected(m, n);
                reference::matmul(x.view(), compressed, expected.view(), b);

                std::vector<std::uint64_t> bits;
                std::vector<float> scales;
                REQUIRE(cpu::binarize_activations<AQ>(x.view(), nullptr, bits, scales).empty());
                for (const auto& v : vs) {
                    const int splits = (m > 2 && n > 2) ? 1 + (m + n) % 3 : 1;
                    const auto y = run_kernel(v, rep == 0 ? packed : copy, bits, scales, m, b, splits);
                    INFO(v.name() << ": M = " << m << ", N = " << n << ", K = " << k << (use_bias ? ", bias" : "")
                                  << ", " << splits << "x" << splits << " pieces");
                    REQUIRE(first_difference(y, expected) == "");
                    ++cases;
                }
            }
        }
    INFO(cases << " cases");
    CHECK((vs.empty() || cases > 0));
}

TEST_CASE("binary kernel through the front door, 1 and 2 threads", "[cpu_binary]") {
    const index_t m = 37, n = 50, k = 300;
    const auto wf = test_matrix(n, k, 41, 7);
    const auto compressed = compress<w1a1>(wf.view());
    const auto packed = cpu::pack(compressed);
    REQUIRE(packed.family() == cpu::kernel_family::binary);
    const auto x = test_matrix(m, k, 42, 3);
    const auto bias = tcomp_test::uniform_vector(n, 43, 1.0f);
    dense_matrix<float> expected(m, n);
    reference::matmul(x.view(), compressed, expected.view(), bias);
    for (auto p : cpu::available_paths())
        for (int threads : {1, 2}) {
            cpu::scoped_path forced(p);
            dense_matrix<float> y(m, n);
            tcomp::matmul(x.view(), packed, y.view(), bias, {.threads = threads});
            INFO(cpu::to_string(p) << ", " << threads << " threads");
            REQUIRE(first_difference(y, expected) == "");
        }
}

TEST_CASE("binary kernel: per_tensor and pow2 scales, calibrated activations", "[cpu_binary]") {
    using WQ = quantizer<binary_format, per_tensor, pow2_scale>;
    using AQt = quantizer<binary_format, per_tensor, calibrated>;
    using P = policy<WQ, AQt>;
    const index_t m = 9, n = 21, k = 130;
    const auto wf = test_matrix(n, k, 7, 3);
    auto compressed = compress<P>(wf.view());
    compressed.calibrate(gaussian(4, k, 8).view());
    cpu::binary_storage packed;
    REQUIRE(cpu::pack_binary(compressed.weights().view(), packed).empty());
    const auto x = test_matrix(m, k, 9, 2);
    const auto bias = tcomp_test::uniform_vector(n, 10, 1.0f);
    dense_matrix<float> expected(m, n);
    reference::matmul(x.view(), compressed, expected.view(), bias);
    std::vector<std::uint64_t> bits;
    std::vector<float> scales;
    REQUIRE(cpu::binarize_activations<AQt>(x.view(), &compressed.activation_scales(), bits, scales).empty());
    for (const auto& v : variants()) {
        INFO(v.name());
        REQUIRE(first_difference(run_kernel(v, packed, bits, scales, m, bias, 2), expected) == "");
    }
}

TEST_CASE("binarize_activations gives quantize's codes and scales", "[cpu_binary]") {
    auto check = [](auto tag, const dense_matrix<float>& x, const scale_table* fixed) {
        using Q = decltype(tag);
        const auto q = quantize<Q>(x.view(), {}, fixed);
        const auto view = q.view();
        std::vector<std::uint64_t> bits;
        std::vector<float> scales;
        REQUIRE(cpu::binarize_activations<Q>(x.view(), fixed, bits, scales).empty());
        const index_t words = (x.cols() + 63) / 64;
        REQUIRE(bits.size() == static_cast<std::size_t>(x.rows() * words));
        std::vector<index_t> columns;
        for (index_t r = 0; r < x.rows(); ++r) {
            const float s = view.scale(r, 0);
            INFO("row " << r);
            REQUIRE(std::memcmp(&scales[static_cast<std::size_t>(r)], &s, sizeof s) == 0);
            std::string wrong;
            view.for_each_in_row(r, columns, [&](index_t c, std::uint32_t code) {
                const auto bit = (bits[static_cast<std::size_t>(r * words + c / 64)] >> (c % 64)) & 1u;
                if (bit != code && wrong.empty())
                    wrong = "column " + std::to_string(c) + ", x = " + std::to_string(x(r, c));
            });
            REQUIRE(wrong == "");
            if (x.cols() % 64 != 0)  // padding bits stay 0
                REQUIRE((bits[static_cast<std::size_t>(r * words + words - 1)] >> (x.cols() % 64)) == 0u);
        }
    };
    // Tiny negatives (x / S underflows to -0, which encodes as +1), zeros of both signs, huge values.
    auto x = test_matrix(6, 150, 21, 2);
    x(0, 3) = -1e-44f, x(0, 70) = -0x1p-149f, x(1, 5) = -0.0f, x(3, 7) = 3e38f, x(3, 8) = -3e38f, x(4, 9) = -1e-40f;
    for (index_t c = 0; c < x.cols(); ++c) x(5, c) = c % 2 ? -0x1p-140f : 0x1p-130f;  // a row of subnormals
    check(presets::binary_per_token{}, x, nullptr);
    check(quantizer<binary_format, per_tensor>{}, x, nullptr);
    check(quantizer<binary_format, per_token, pow2_scale>{}, x, nullptr);
    check(quantizer<binary_format, per_token, percentile<990000>>{}, x, nullptr);
    // A huge per-row scale: every negative x takes the division.
    auto big = test_matrix(2, 70, 22, 5);
    for (index_t c = 0; c < big.cols(); ++c) big(0, c) *= 1e38f;
    big(0, 1) = -1e-30f;
    check(presets::binary_per_token{}, big, nullptr);
    // A mean |x| that only the oracle's left-to-right double sum gets right: 128 + 2^-17 is a float midpoint
    // times 128, and the 126 terms of 2^-47 each vanish in that order but not when summed first.
    dense_matrix<float> order(3, 128, 0x1p-47f);
    order(0, 0) = 128.0f, order(0, 1) = 0x1p-17f;
    order(1, 0) = -128.0f, order(1, 1) = -0x1p-17f, order(1, 2) = 0.0f;
    for (index_t c = 0; c < 128; ++c) order(2, c) = c % 3 ? 1.5f : -0.25f;  // order-free: summed in SIMD order
    check(presets::binary_per_token{}, order, nullptr);
    check(quantizer<binary_format, per_tensor>{}, order, nullptr);
    // Calibrated per-tensor scales.
    using calibrated_tensor = quantizer<binary_format, per_tensor, calibrated>;
    const scale_table fixed = choose_scales<calibrated_tensor>(gaussian(3, 150, 23).view(), {}, true);
    check(calibrated_tensor{}, x, &fixed);
    // Rows binarized by concurrent tasks give the same bits and scales.
    {
        auto wide = test_matrix(70, 2000, 25, 9);
        wide(4, 17) = -1e-40f;
        std::vector<std::uint64_t> serial_bits, pool_bits;
        std::vector<float> serial_scales, pool_scales;
        REQUIRE(cpu::binarize_activations<AQ>(wide.view(), nullptr, serial_bits, serial_scales).empty());
        REQUIRE(cpu::binarize_activations<AQ>(wide.view(), nullptr, pool_bits, pool_scales,
                                              [](index_t tasks, const auto& fn) {
                                                  cpu::thread_pool::instance().run(2, tasks, fn);
                                              })
                    .empty());
        REQUIRE(serial_bits == pool_bits);
        REQUIRE(std::memcmp(serial_scales.data(), pool_scales.data(), serial_scales.size() * sizeof(float)) == 0);
        check(presets::binary_per_token{}, wide, nullptr);
    }
    // A non-finite element is reported as quantize reports it.
    auto bad = gaussian(2, 10, 24);
    bad(1, 4) = std::numeric_limits<float>::quiet_NaN();
    std::vector<std::uint64_t> bits;
    std::vector<float> scales;
    REQUIRE_THROWS_AS(cpu::binarize_activations<AQ>(bad.view(), nullptr, bits, scales), value_error);
}

TEST_CASE("binary kernel: unsupported compositions come back with a reason", "[cpu_binary]") {
    const auto w = gaussian(8, 64, 31);
    cpu::binary_storage out;
    {
        const auto c = compress_matrix<quantizer<binary_format, per_group<32>>>(w.view());
        const auto reason = cpu::pack_binary(c.view(), out);
        CHECK_THAT(reason, Catch::Contains("per_group"));
    }
    {
        const auto c = compress_matrix<presets::binary_per_channel, n_m<2, 4>>(w.view());
        CHECK_THAT(cpu::pack_binary(c.view(), out), Catch::Contains("sparse"));
    }
    {
        const auto c = compress_matrix<presets::int8_per_channel>(w.view());
        CHECK_THAT(cpu::pack_binary(c.view(), out), Catch::Contains("not binary"));
    }
    const auto x = gaussian(3, 64, 32);
    std::vector<std::uint64_t> bits;
    std::vector<float> scales;
    using stochastic_token = quantizer<binary_format, per_token, stochastic>;
    using grouped = quantizer<binary_format, per_group<32>>;
    CHECK_THAT(cpu::binarize_activations<stochastic_token>(x.view(), nullptr, bits, scales),
               Catch::Contains("stochastic"));
    CHECK_THAT(cpu::binarize_activations<grouped>(x.view(), nullptr, bits, scales), Catch::Contains("per_group"));
    CHECK_THAT(cpu::binarize_activations<presets::int8_per_token>(x.view(), nullptr, bits, scales),
               Catch::Contains("not binary"));
}
