// GPU tests of the CUDA kernels against the scalar oracle (kernel/reference/matmul.hpp):
//   - the fused per-token quantizer: codes and scales bit-exact to the CPU quantizer;
//   - every matmul kernel on random shapes (M, N odd and past tile edges; K past the 64-element stage),
//     random data, random bias, poisoned outputs (every element must be written):
//       int8 paths (W8A8, W4A8, 2:4 W8A8): bit-exact, fp32 / fp16 / bf16 outputs;
//       float paths (W4A16, W8A16): |y - y_ref| <= 2^-16 * sum_k |x_k w_k| + 2^-22 |y_ref| + the output
//       format's rounding, where the weights are exact 16-bit integers (code - zero) and scales are applied
//       in fp32, so only fp32 accumulation (and the fp32 bias add) differs from the oracle's double sum.
//       The H200 run of 2026-12-04 measured at most 0.0015 of an earlier 2^-11 bound (fp32 outputs), i.e.
//       about 0.05 of this one: tight enough that one wrong weight in a long row fails;
//   - the 2:4 operand and metadata layouts of mma.sp (probed one element at a time, compared with
//     kernel/cuda/fragments.hpp; on a mismatch the layout found is printed);
//   - errors: NaN rows, misaligned X, wrong image kind, zero rows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "cuda_tests.hpp"
#include "tcomp/format/half.hpp"
#include "tcomp/matmul.hpp"  // the one front door: under nvcc it includes kernel/cuda/matmul.cuh
#include "tcomp/quant/presets.hpp"

namespace {

using namespace tcomp;
using tcomp::cuda::device_buffer;

template <class T>
struct storage_of {
    using type = std::uint16_t;
};
template <>
struct storage_of<float> {
    using type = float;
};

/// The tcomp storage type with the bits of a CUDA element type (core/float16.hpp).
template <class T>
struct tcomp_element {
    using type = T;
};
template <>
struct tcomp_element<__half> {
    using type = tcomp::float16;
};
template <>
struct tcomp_element<__nv_bfloat16> {
    using type = tcomp::bfloat16;
};

template <class T>
const char* type_name() {
    if constexpr (std::is_same_v<T, __half>) return "f16";
    else if constexpr (std::is_same_v<T, __nv_bfloat16>) return "bf16";
    else return "f32";
}

/// Host value of a 16-bit float (exact) and the bits of a float rounded to it (nearest even).
template <class T>
float from_bits(std::uint16_t b) {
    if constexpr (std::is_same_v<T, __half>) return fp16_format::decode(b);
    else return bf16_format::decode(b);
}
template <class T>
std::uint16_t to_bits(float v) {
    if constexpr (std::is_same_v<T, __half>) return static_cast<std::uint16_t>(fp16_format::encode(v));
    else return static_cast<std::uint16_t>(bf16_format::encode(v));
}

/// Random weights: uniform in [-1, 1] scaled per row (0.25..4), a few outliers (what per-group scales are for).
dense_matrix<float> random_weights(index_t n, index_t k, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), row_scale(0.25f, 4.0f);
    std::uniform_int_distribution<int> pick(0, 97);
    dense_matrix<float> w(n, k);
    for (index_t r = 0; r < n; ++r) {
        const float s = row_scale(rng);
        for (index_t c = 0; c < k; ++c) w(r, c) = s * u(rng) * (pick(rng) == 0 ? 8.0f : 1.0f);
    }
    return w;
}

/// Random 16-bit activations (row magnitudes 1e-2..30, one outlier column); returns bits and exact values.
template <class Act>
void random_activations(index_t m, index_t k, std::mt19937& rng, std::vector<std::uint16_t>& bits, dense_matrix<float>& values) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), row_mag(-2.0f, 1.5f);
    bits.resize(static_cast<std::size_t>(m * k));
    values = dense_matrix<float>(m, k);
    const index_t outlier = k / 3;
    for (index_t r = 0; r < m; ++r) {
        const float mag = std::pow(10.0f, row_mag(rng));
        for (index_t c = 0; c < k; ++c) {
            const float v = mag * u(rng) * (c == outlier ? 20.0f : 1.0f);
            const std::uint16_t b = to_bits<Act>(v);
            bits[static_cast<std::size_t>(r * k + c)] = b;
            values(r, c) = from_bits<Act>(b);
        }
    }
}

struct compare_result {
    index_t mismatches = 0, unwritten = 0;
    double worst = 0.0;  // largest |error| / bound (float path) or 0
    std::string first;
};

template <class Policy, class Act, class Out>
bool run_matmul_case(const std::string& label, index_t m, index_t n, index_t k, bool with_bias, std::mt19937& rng) {
    constexpr bool int_path = Policy::quantizes_activations;
    const dense_matrix<float> w = random_weights(n, k, rng);
    const compressed_weights<Policy> cw = compress<Policy>(w.view());
    std::vector<std::uint16_t> x_bits;
    dense_matrix<float> x;
    random_activations<Act>(m, k, rng, x_bits, x);
    std::vector<float> bias;
    if (with_bias) {
        std::uniform_real_distribution<float> u(-2.0f, 2.0f);
        for (index_t i = 0; i < n; ++i) bias.push_back(u(rng));
    }

    dense_matrix<float> y_ref(m, n);
    reference::matmul(x.view(), cw, y_ref.view(), std::span<const float>(bias));

    const cuda::device_weights<Policy> dw = cuda::pack(cw);
    device_buffer<std::uint16_t> dx;
    dx.upload(x_bits);
    device_buffer<float> dbias;
    dbias.upload(bias);
    using out_storage = typename storage_of<Out>::type;
    device_buffer<out_storage> dy(static_cast<std::size_t>(m * n));
    TCOMP_CUDA_CHECK(cudaMemset(dy.data(), 0xFF, dy.bytes()));  // NaN in every output format
    cuda::workspace ws;
    using TA = typename tcomp_element<Act>::type;
    using TO = typename tcomp_element<Out>::type;
    tcomp::matmul(matrix_view<const TA>(reinterpret_cast<const TA*>(dx.data()), m, k), dw,
                  matrix_view<TO>(reinterpret_cast<TO*>(dy.data()), m, n),
                  std::span<const float>(dbias.data(), with_bias ? static_cast<std::size_t>(n) : 0), {.workspace = &ws});
    TCOMP_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<out_storage> y = dy.download();

    // Bound of the float path (see the file comment), with the dequantized weights.
    dense_matrix<float> w_deq;
    if constexpr (!int_path) w_deq = dequantize(cw.weights());
    compare_result res;
    char buf[256];
    for (index_t r = 0; r < m; ++r)
        for (index_t c = 0; c < n; ++c) {
            const float ref = y_ref(r, c);
            const out_storage got_raw = y[static_cast<std::size_t>(r * n + c)];
            float got = 0.0f;
            if constexpr (std::is_same_v<Out, float>) got = got_raw;
            else got = from_bits<Out>(got_raw);
            if (std::isnan(got)) {
                if (res.unwritten++ == 0)
                    std::snprintf(buf, sizeof buf, "(%td, %td): NaN (unwritten or wrong), reference %.9g", r, c, static_cast<double>(ref)),
                        res.first = buf;
                continue;
            }
            bool bad = false;
            if constexpr (int_path) {
                if constexpr (std::is_same_v<Out, float>) {
                    std::uint32_t gb = 0, rb = 0;
                    std::memcpy(&gb, &got, 4), std::memcpy(&rb, &ref, 4);
                    bad = gb != rb;
                } else {
                    bad = got_raw != to_bits<Out>(ref);
                }
            } else {
                double sum_abs = 0.0;
                for (index_t kk = 0; kk < k; ++kk) sum_abs += std::fabs(static_cast<double>(x(r, kk)) * w_deq(c, kk));
                double bound = std::ldexp(sum_abs, -16) + std::ldexp(std::fabs(ref), -22) + 1e-30;
                if constexpr (std::is_same_v<Out, __half>) bound += std::ldexp(std::fabs(ref), -11) + std::ldexp(1.0, -24);
                if constexpr (std::is_same_v<Out, __nv_bfloat16>) bound += std::ldexp(std::fabs(ref), -8) + 1e-38;
                const double err = std::fabs(static_cast<double>(got) - ref);
                res.worst = std::max(res.worst, err / bound);
                bad = !(err <= bound);
            }
            if (bad && res.mismatches++ == 0) {
                std::snprintf(buf, sizeof buf, "(%td, %td): got %.9g, reference %.9g", r, c, static_cast<double>(got),
                              static_cast<double>(ref));
                res.first = buf;
            }
        }
    const bool ok = res.mismatches == 0 && res.unwritten == 0;
    std::printf("%s %-34s %s->%s M=%-4td N=%-4td K=%-5td%s  %s", ok ? "PASS" : "FAIL", label.c_str(), type_name<Act>(),
                type_name<Out>(), m, n, k, with_bias ? " +bias" : "      ", int_path ? "bit-exact" : "");
    if constexpr (!int_path) std::printf("max err/bound %.3f", res.worst);
    std::printf("\n");
    if (!ok)
        std::printf("     %td mismatches, %td NaN/unwritten; first at %s\n", static_cast<std::ptrdiff_t>(res.mismatches),
                    static_cast<std::ptrdiff_t>(res.unwritten), res.first.c_str());
    return ok;
}

struct shape {
    index_t m, n, k;
};

/// Shapes for a policy: M in the GEMV / small / medium / large tiles and past their edges, N not a
/// multiple of the tile width, K = several stages plus a half stage, long K where the plan splits it.
std::vector<shape> shapes_for(index_t k_unit, bool quick) {
    std::vector<shape> s = {{1, 100, 2 * k_unit}, {16, 136, 3 * k_unit}, {17, 72, k_unit}, {65, 257, 5 * k_unit},
                            {130, 130, 2 * k_unit},
                            {33, 100, std::max<index_t>(2048, k_unit)}};  // medium tile with split K
    if (!quick) {
        s.push_back({3, 264, std::max<index_t>(2048, k_unit)});  // split-K (float path), long K
        s.push_back({40, 24, 7 * k_unit});
        s.push_back({4, 33, 3 * k_unit});  // the GEMV kernel's last row count
        s.push_back({300, 129, 3 * k_unit});
        s.push_back({7, 520, 9 * k_unit});
    }
    return s;
}

template <class Policy, class Act, class Out>
bool run_policy(const char* label, index_t k_unit, const kernel_test_options& options, std::mt19937& rng) {
    bool ok = true;
    int i = 0;
    for (const shape& s : shapes_for(k_unit, options.quick)) {
        // One failing case (even a CUDA error) is reported and the others still run.
        try {
            ok &= run_matmul_case<Policy, Act, Out>(label, s.m, s.n, s.k, (i++ % 2) == 0, rng);
        } catch (const std::exception& e) {
            std::printf("FAIL %-34s M=%td N=%td K=%td: %s\n", label, s.m, s.n, s.k, e.what());
            ok = false;
        }
    }
    return ok;
}

// --- probes of the mma.sp layouts -------------------------------------------------------------------------

/// One mma.sp.m16n8k64 s8 by one warp; registers given per lane; D written as 16 x 8 row-major.
__global__ void sparse_mma_probe(const std::uint32_t* a, const std::uint32_t* b, const std::uint32_t* meta, int* d) {
    const int lane = static_cast<int>(threadIdx.x);
    std::uint32_t ar[4], br[4];
    for (int r = 0; r < 4; ++r) ar[r] = a[lane * 4 + r], br[r] = b[lane * 4 + r];
    int acc[4] = {0, 0, 0, 0};
    tcomp::cuda::detail::mma_sp_s8(acc, ar, br, meta[lane]);
    for (int r = 0; r < 4; ++r)
        d[tcomp::cuda::fragment::c_row(lane, r) * 8 + tcomp::cuda::fragment::c_col(lane, r)] = acc[r];
}

struct probe_buffers {
    device_buffer<std::uint32_t> a{128}, b{128}, meta{32};
    device_buffer<int> d{128};
    std::vector<int> run(const std::vector<std::uint32_t>& a_h, const std::vector<std::uint32_t>& b_h,
                         const std::vector<std::uint32_t>& meta_h) {
        a.upload(a_h), b.upload(b_h), meta.upload(meta_h);
        sparse_mma_probe<<<1, 32>>>(a.data(), b.data(), meta.data(), d.data());
        TCOMP_CUDA_CHECK_LAUNCH("sparse_mma_probe");
        TCOMP_CUDA_CHECK(cudaDeviceSynchronize());
        return d.download();
    }
};

}  // namespace

bool test_sparse_metadata_layout() {
    namespace fr = tcomp::cuda::fragment;
    probe_buffers probe;
    bool ok = true;

    // 1. Metadata: A all ones; B[k][n] = k/4 + 1 where k % 4 >= 2, else 0; metadata {0,1} everywhere except one
    //    nibble set to {2,3}: exactly one (row, group) then sums 2 * (group + 1) in all 8 columns of its row.
    std::vector<std::uint32_t> a(128, 0x01010101u), b(128), meta(32);
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r) {
            const std::uint32_t v = static_cast<std::uint32_t>(fr::s8_b_k(lane, r) / 4 + 1);
            b[static_cast<std::size_t>(lane * 4 + r)] = (v << 16) | (v << 24);
        }
    int meta_bad = 0;
    for (int lane = 0; lane < 32; ++lane)
        for (int nib = 0; nib < 8; ++nib) {
            std::fill(meta.begin(), meta.end(), 0x44444444u);
            meta[static_cast<std::size_t>(lane)] = (0x44444444u & ~(0xFu << (4 * nib))) | (0xEu << (4 * nib));
            const std::vector<int> d = probe.run(a, b, meta);
            int found_row = -1, found_group = -1;
            for (int row = 0; row < 16; ++row)
                if (d[static_cast<std::size_t>(row * 8)] != 0) found_row = row, found_group = d[static_cast<std::size_t>(row * 8)] / 2 - 1;
            if (found_row != fr::sp_meta_row(lane, nib) || found_group != fr::sp_meta_group(lane, nib)) {
                if (meta_bad++ < 40)
                    std::printf("     metadata lane %2d nibble %d: hardware row %d group %d; fragments.hpp says row %d group %d\n",
                                lane, nib, found_row, found_group, fr::sp_meta_row(lane, nib), fr::sp_meta_group(lane, nib));
            }
        }
    std::printf("%s mma.sp m16n8k64 s8 metadata layout (256 nibbles probed)\n", meta_bad == 0 ? "PASS" : "FAIL");
    ok &= meta_bad == 0;

    // 2. A (compressed) layout: one byte = 1, metadata {0,1} everywhere (compressed column c is logical
    //    k = 4 (c / 2) + c % 2), B[k][n] = k + 1: D[row][*] = k + 1 identifies row and column.
    std::fill(meta.begin(), meta.end(), 0x44444444u);
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r) {
            std::uint32_t v = 0;
            for (int j = 0; j < 4; ++j) v |= static_cast<std::uint32_t>(fr::s8_b_k(lane, r) + j + 1) << (8 * j);
            b[static_cast<std::size_t>(lane * 4 + r)] = v;
        }
    int a_bad = 0;
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r)
            for (int j = 0; j < 4; ++j) {
                std::fill(a.begin(), a.end(), 0u);
                a[static_cast<std::size_t>(lane * 4 + r)] = 1u << (8 * j);
                const std::vector<int> d = probe.run(a, b, meta);
                int found_row = -1, found_col = -1;
                for (int row = 0; row < 16; ++row)
                    if (d[static_cast<std::size_t>(row * 8)] != 0) {
                        const int kk = d[static_cast<std::size_t>(row * 8)] - 1;
                        found_row = row, found_col = 2 * (kk / 4) + kk % 4;
                    }
                const int want_row = fr::s8_a_row(lane, r), want_col = fr::s8_a_col(lane, r) + j;
                if ((found_row != want_row || found_col != want_col) && a_bad++ < 20)
                    std::printf("     A lane %2d reg %d byte %d: hardware (%d, %d); fragments.hpp says (%d, %d)\n", lane, r, j,
                                found_row, found_col, want_row, want_col);
            }
    std::printf("%s mma.sp m16n8k64 s8 compressed A layout (512 bytes probed)\n", a_bad == 0 ? "PASS" : "FAIL");
    ok &= a_bad == 0;

    // 3. B layout: A[row][c] = c + 1 (compressed), metadata {0,1}; one B byte = 1 gives D[*][n] = c(k) + 1
    //    when k % 4 < 2 (kept), which identifies n and k; bytes with k % 4 >= 2 are probed with {2,3}.
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r) {
            std::uint32_t v = 0;
            for (int j = 0; j < 4; ++j) v |= static_cast<std::uint32_t>(fr::s8_a_col(lane, r) + j + 1) << (8 * j);
            a[static_cast<std::size_t>(lane * 4 + r)] = v;
        }
    int b_bad = 0;
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r)
            for (int j = 0; j < 4; ++j) {
                const int want_k = fr::s8_b_k(lane, r) + j, want_n = fr::s8_b_col(lane);
                std::fill(meta.begin(), meta.end(), want_k % 4 < 2 ? 0x44444444u : 0xEEEEEEEEu);
                std::fill(b.begin(), b.end(), 0u);
                b[static_cast<std::size_t>(lane * 4 + r)] = 1u << (8 * j);
                const std::vector<int> d = probe.run(a, b, meta);
                int found_n = -1, found_k = -1;
                for (int n = 0; n < 8; ++n)
                    if (d[static_cast<std::size_t>(n)] != 0) {
                        const int c = d[static_cast<std::size_t>(n)] - 1;
                        found_n = n, found_k = 4 * (c / 2) + c % 2 + (want_k % 4 < 2 ? 0 : 2);
                    }
                if ((found_n != want_n || found_k != want_k) && b_bad++ < 20)
                    std::printf("     B lane %2d reg %d byte %d: hardware (k %d, n %d); fragments.hpp says (k %d, n %d)\n", lane, r,
                                j, found_k, found_n, want_k, want_n);
            }
    std::printf("%s mma.sp m16n8k64 s8 B layout (512 bytes probed)\n", b_bad == 0 ? "PASS" : "FAIL");
    ok &= b_bad == 0;
    return ok;
}

bool test_quantize_per_token(const kernel_test_options& options) {
    std::mt19937 rng(options.seed);
    bool ok = true;
    for (const shape s : {shape{37, 0, 160}, shape{5, 0, 4096}, shape{300, 0, 96}, shape{3, 0, 37}}) {
        // float input: covers rows whose scale would be subnormal (clamped to FLT_MIN) and all-zero rows;
        // K = 37 takes the element-wise path (rows not 16-byte aligned), the others 16-byte vectors.
        dense_matrix<float> x(s.m, s.k);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f), mag(-3.0f, 3.0f);
        for (index_t r = 0; r < s.m; ++r) {
            const float scale = r % 7 == 3 ? 0.0f : (r % 7 == 5 ? 1e-40f : std::pow(10.0f, mag(rng)));
            for (index_t c = 0; c < s.k; ++c) x(r, c) = scale * u(rng);
            if (r % 11 == 4) x(r, 0) = 127.5f * (scale > 0 ? scale : 1.0f);  // ties after division
        }
        const auto xq = quantize<presets::int8_per_token>(x.view());
        const auto xv = xq.view();
        device_buffer<float> dx;
        dx.upload(x.data(), static_cast<std::size_t>(s.m * s.k));
        device_buffer<std::int8_t> codes(static_cast<std::size_t>(s.m * s.k));
        device_buffer<float> scales(static_cast<std::size_t>(s.m));
        device_buffer<int> bad(1);
        cuda::quantize_per_token(dx.data(), s.m, s.k, codes.data(), scales.data(), bad.data());
        TCOMP_CUDA_CHECK(cudaDeviceSynchronize());
        const auto c_h = codes.download();
        const auto s_h = scales.download();
        const auto bad_h = bad.download();
        index_t mismatches = 0;
        std::vector<index_t> cols;
        for (index_t r = 0; r < s.m; ++r) {
            const float want = xv.scale(r, 0);
            if (std::memcmp(&want, &s_h[static_cast<std::size_t>(r)], 4) != 0 && mismatches++ < 3)
                std::printf("     row %td scale: device %a, host %a\n", r, static_cast<double>(s_h[static_cast<std::size_t>(r)]),
                            static_cast<double>(want));
            xv.for_each_in_row(r, cols, [&](index_t c, std::uint32_t code) {
                const int want_code = int_format<8>::to_integer(code);
                if (c_h[static_cast<std::size_t>(r * s.k + c)] != want_code && mismatches++ < 3)
                    std::printf("     (%td, %td) code: device %d, host %d\n", r, c, c_h[static_cast<std::size_t>(r * s.k + c)], want_code);
            });
        }
        const bool pass = mismatches == 0 && bad_h[0] == INT_MAX;
        std::printf("%s quantize_per_token f32 M=%td K=%td: codes and scales bit-exact\n", pass ? "PASS" : "FAIL", s.m, s.k);
        ok &= pass;
    }
    return ok;
}

bool test_matmul_kernels(const kernel_test_options& options) {
    std::mt19937 rng(options.seed + 1);
    using namespace tcomp::presets;
    using w4a16_signed_g32 = policy<quantizer<int_format<4>, symmetric, per_group<32>>, float_activations>;
    using w4a16_per_channel = policy<quantizer<uint_format<4>, asymmetric, per_channel>, float_activations>;
    using w8a16_asym_g64 = policy<quantizer<uint_format<8>, asymmetric, per_group<64>>, float_activations>;
    using w8a8_g64 = policy<quantizer<int_format<8>, symmetric, per_group<64>>, int8_per_token>;
    using w8a8_per_tensor = policy<quantizer<int_format<8>, symmetric, per_tensor>, int8_per_token>;
    using w4a8_g32 = policy<quantizer<int_format<4>, symmetric, per_group<32>>, int8_per_token>;
    using w4a8_per_channel = policy<quantizer<int_format<4>, symmetric, per_channel>, int8_per_token>;
    using w8a8_2of4_g128 = policy<quantizer<int_format<8>, symmetric, per_group<128>>, int8_per_token, n_m<2, 4>>;
    bool ok = true;
    ok &= run_policy<w4a16, __half, __half>("w4a16 (uint4 g128)", 128, options, rng);
    ok &= run_policy<w4a16, __nv_bfloat16, __nv_bfloat16>("w4a16 (uint4 g128)", 128, options, rng);
    ok &= run_policy<w4a16_signed_g32, __half, float>("w4a16 (int4 g32)", 32, options, rng);
    ok &= run_policy<w4a16_per_channel, __nv_bfloat16, float>("w4a16 (uint4 per channel)", 32, options, rng);
    ok &= run_policy<w8a16, __half, __half>("w8a16 (int8 per channel)", 32, options, rng);
    ok &= run_policy<w8a16_asym_g64, __nv_bfloat16, __nv_bfloat16>("w8a16 (uint8 g64)", 64, options, rng);
    ok &= run_policy<w8a8, __half, float>("w8a8 (per channel)", 32, options, rng);
    ok &= run_policy<w8a8, __half, __half>("w8a8 (per channel)", 32, options, rng);
    ok &= run_policy<w8a8_g64, __nv_bfloat16, __nv_bfloat16>("w8a8 (g64)", 64, options, rng);
    ok &= run_policy<w8a8_per_tensor, __half, float>("w8a8 (per tensor)", 32, options, rng);
    ok &= run_policy<w4a8, __half, float>("w4a8 (int4 g128)", 128, options, rng);
    ok &= run_policy<w4a8_g32, __half, __half>("w4a8 (int4 g32)", 32, options, rng);
    ok &= run_policy<w4a8_per_channel, __nv_bfloat16, float>("w4a8 (int4 per channel)", 32, options, rng);
    ok &= run_policy<w8a8_2of4, __half, float>("w8a8 2:4 (per channel)", 64, options, rng);
    ok &= run_policy<w8a8_2of4, __half, __half>("w8a8 2:4 (per channel)", 64, options, rng);
    ok &= run_policy<w8a8_2of4_g128, __nv_bfloat16, float>("w8a8 2:4 (g128)", 128, options, rng);
    return ok;
}

bool test_matmul_errors() {
    std::mt19937 rng(7);
    bool ok = true;
    auto expect = [&ok](const char* what, auto&& fn, const char* needle) {
        try {
            fn();
            std::printf("FAIL %s: no error\n", what);
            ok = false;
        } catch (const tcomp::error& e) {
            const bool named = std::strstr(e.what(), needle) != nullptr;
            std::printf("%s %s: \"%s\"\n", named ? "PASS" : "FAIL", what, e.what());
            ok &= named;
        }
    };
    const index_t m = 9, n = 40, k = 128;
    const auto cw = compress<presets::w8a8>(random_weights(n, k, rng).view());
    cuda::device_weights<presets::w8a8> dw(cw);
    std::vector<std::uint16_t> bits;
    dense_matrix<float> x;
    random_activations<__half>(m, k, rng, bits, x);
    bits[static_cast<std::size_t>(5 * k + 17)] = 0x7E00;  // NaN in row 5
    device_buffer<std::uint16_t> dx(static_cast<std::size_t>(m * k + 8));
    TCOMP_CUDA_CHECK(cudaMemcpy(dx.data(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice));
    device_buffer<float> dy(static_cast<std::size_t>(m * n));
    cuda::workspace ws;
    const auto* xh = reinterpret_cast<const tcomp::float16*>(dx.data());
    const matrix_view<float> yv(dy.data(), m, n);
    const matmul_options with_ws{.workspace = &ws};
    expect("NaN in X (w8a8)", [&] { tcomp::matmul(matrix_view<const tcomp::float16>(xh, m, k), dw, yv, {}, with_ws); },
           "row 5");
    expect("misaligned X",
           [&] { tcomp::matmul(matrix_view<const tcomp::float16>(xh + 1, m, k), dw, yv, {}, with_ws); },
           "16-byte aligned");
    expect("X narrower than K",
           [&] { tcomp::matmul(matrix_view<const tcomp::float16>(xh, m, k - 1), dw, yv, {}, with_ws); }, "but W is");
    expect("strided Y",
           [&] { tcomp::matmul(matrix_view<const tcomp::float16>(xh, m, k), dw,
                               matrix_view<float>(dy.data(), m, n, n + 1), {}, with_ws); },
           "row stride");
    expect("image of another kernel", [&] {
        cuda::weight_image img = cuda::make_weight_image(cw);
        img.kind = cuda::kernel_kind::w4a8;
        cuda::device_weights<presets::w8a8> bad(img);
    }, "w4a8");
    // M = 0: nothing launched, nothing written.
    TCOMP_CUDA_CHECK(cudaMemset(dy.data(), 0x7F, dy.bytes()));
    tcomp::matmul(matrix_view<const tcomp::float16>(xh, 0, k), dw, matrix_view<float>(dy.data(), 0, n));
    TCOMP_CUDA_CHECK(cudaDeviceSynchronize());
    const auto y = dy.download();
    std::uint32_t first = 0;
    std::memcpy(&first, y.data(), 4);
    std::printf("%s M = 0 is a no-op\n", first == 0x7F7F7F7Fu ? "PASS" : "FAIL");
    ok &= first == 0x7F7F7F7Fu;
    return ok;
}
