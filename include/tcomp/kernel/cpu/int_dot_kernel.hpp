// The integer-dot GEMM/GEMV kernels (W8A8, W4A8, W2A8 and 2:4-sparse W8A8 / W4A8), templated on the ISA
// path. Arithmetic and weight layout: int_dot_args.hpp. Structure (GotoBLAS-like, sized for 2-core hosts):
//
//   for each super-block of activation rows (<= 256 KiB of X, so it stays in L2):
//     for each block of NB weight panels (16 rows each):
//       for each block of MR activation rows:   micro-kernel over all of K
//
// The micro-kernel keeps MR x NB x (16 / lanes) int32 accumulators in registers for one weight group,
// then applies the group's epilogue into a float tile (the oracle's order of float operations), and
// finally writes the tile (+ bias) to Y. 2:4-sparse panels are decompressed per block of panels into a
// dense int8 buffer (vpexpandb where the CPU has AVX512-VBMI2) and run through the dense 8-bit kernel.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "tcomp/kernel/cpu/int_dot_args.hpp"
#include "tcomp/kernel/cpu/simd_int_ops.hpp"

namespace tcomp::cpu::detail {

#if defined(__x86_64__) || defined(__i386__)

// Fixed-count loops over registers must unroll completely, or the accumulators live in memory.
#define TCOMP_UNROLL _Pragma("GCC unroll 32")

/// Register blocking per path: MR activation rows x NB panels.
template <class Isa>
struct int_dot_blocking;
template <>
struct int_dot_blocking<isa::sse41> { static constexpr int mr = 2, nb8 = 1, nb_small = 1; };
template <>
struct int_dot_blocking<isa::avx2> { static constexpr int mr = 4, nb8 = 1, nb_small = 1; };
template <>
struct int_dot_blocking<isa::avx_vnni> { static constexpr int mr = 6, nb8 = 1, nb_small = 1; };
template <>
struct int_dot_blocking<isa::avx512bw> { static constexpr int mr = 6, nb8 = 2, nb_small = 2; };
template <>
struct int_dot_blocking<isa::avx512_vnni> { static constexpr int mr = 8, nb8 = 3, nb_small = 2; };

/// acc += u . w for 8-bit weights (full range) or small weights (|w| <= 64).
template <class Ops, bool Small>
struct dot_step {
    using vec = typename Ops::vec;
    // Prepared operands: raw vectors on VNNI paths and for small weights, even/odd splits otherwise.
    // (Wrapped in a struct: vector types as template arguments lose their alignment attributes.)
    static constexpr bool split = !Ops::vnni && !Small;
    struct single_operand {
        vec v;
    };
    using u_operand = std::conditional_t<split, typename Ops::full_operand, single_operand>;
    using w_operand = u_operand;

    static u_operand prepare_u(vec u) {
        if constexpr (split) return Ops::split_u(u);
        else return {u};
    }
    static w_operand prepare_w(vec w) {
        if constexpr (split) return Ops::split_w(w);
        else return {w};
    }
    static vec apply(vec acc, const u_operand& u, const w_operand& w) {
        if constexpr (Ops::vnni) return Ops::dot_vnni(acc, u.v, w.v);
        else if constexpr (Small) return Ops::dot_small(acc, u.v, w.v);
        else return Ops::dot_full(acc, u, w);
    }
};

/// The integer dot products of one weight group for an MR x (NB panels) block, written to acc_out
/// ([MR][NB * 16] int32). Kept out of line: inlined next to the float tile code, GCC keeps the
/// accumulator array in memory (a store per vpdpbusd); alone, the accumulators stay in registers.
template <class Isa, int Bits, int MR, int NB, bool Small = (Bits != 8)>
__attribute__((noinline)) void int_dot_group(const int_dot_call& c, const std::uint8_t* const* panel_codes,
                                             index_t panel0, index_t m0, index_t g, std::int32_t* acc_out) {
    using ops = int_ops<Isa>;
    using vec = typename ops::vec;
    using step = dot_step<ops, Small>;
    constexpr int vp = static_cast<int>(panel_rows) / ops::lanes;  // vectors per panel
    constexpr int nv = NB * vp;
    constexpr index_t k_step = Bits == 8 ? 4 : (Bits == 4 ? 8 : 16);
    const int_dot_weights& w = *c.w;
    const std::uint8_t* xrow[MR];
    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i) xrow[i] = c.x + (m0 + i) * c.x_stride;

    vec acc[MR][nv];
    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_UNROLL
        for (int v = 0; v < nv; ++v) acc[i][v] = ops::zero();

    const index_t k_begin = g * w.group, k_end = std::min(k_begin + w.group, w.k_padded);
    if constexpr (Bits == 8) {
        for (index_t k = k_begin; k < k_end; k += k_step) {
            typename step::w_operand wv[nv];
            TCOMP_UNROLL
            for (int j = 0; j < NB; ++j)
                TCOMP_UNROLL
                for (int v = 0; v < vp; ++v)
                    wv[j * vp + v] = step::prepare_w(ops::load(panel_codes[j] + k * panel_rows + v * ops::bytes));
            TCOMP_UNROLL
            for (int i = 0; i < MR; ++i) {
                const auto u = step::prepare_u(ops::broadcast4(xrow[i] + k));
                TCOMP_UNROLL
                for (int v = 0; v < nv; ++v) acc[i][v] = step::apply(acc[i][v], u, wv[v]);
            }
        }
    } else {
        // Packed 4/2-bit: the offsets that centre u for this group, hoisted out of the k loop.
        constexpr int parts = 8 / Bits;  // k-quads per 64-byte step
        const vec mask = ops::set1_8((1 << Bits) - 1);
        vec offset[nv];
        TCOMP_UNROLL
        for (int j = 0; j < NB; ++j)
            TCOMP_UNROLL
            for (int v = 0; v < vp; ++v)
                offset[j * vp + v] = ops::load(w.offsets + ((panel0 + j) * w.groups + g) * 64 + v * ops::bytes);
        for (index_t k = k_begin; k < k_end; k += k_step) {
            vec raw[nv];
            TCOMP_UNROLL
            for (int j = 0; j < NB; ++j)
                TCOMP_UNROLL
                for (int v = 0; v < vp; ++v)
                    raw[j * vp + v] = ops::load(panel_codes[j] + (k / k_step) * 64 + v * ops::bytes);
            [&]<int... P>(std::integer_sequence<int, P...>) {
                (
                    [&] {
                        typename step::w_operand wv[nv];
                        TCOMP_UNROLL
                        for (int v = 0; v < nv; ++v)
                            wv[v] = step::prepare_w(
                                ops::sub8(ops::and_(ops::template srli16<P * Bits>(raw[v]), mask), offset[v]));
                        TCOMP_UNROLL
                        for (int i = 0; i < MR; ++i) {
                            const auto u = step::prepare_u(ops::broadcast4(xrow[i] + k + 4 * P));
                            TCOMP_UNROLL
                            for (int v = 0; v < nv; ++v) acc[i][v] = step::apply(acc[i][v], u, wv[v]);
                        }
                    }(),
                    ...);
            }(std::make_integer_sequence<int, parts>{});
        }
    }

    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_UNROLL
        for (int v = 0; v < nv; ++v) ops::store(acc_out + (i * nv + v) * ops::lanes, acc[i][v]);
}

/// int_dot_group for 8-bit 2:4 panels read in their compressed form (avx512_vnni with AVX512-VBMI2 only):
/// one vpexpandb load per k-quad and panel rebuilds the dense operand in a register, so a GEMV streams 40
/// bytes per 64 dense ones and writes nothing back (the block decompression of int_dot_driver pays a store
/// and a reload per weight, which only many activation rows amortise). Same accumulators as int_dot_group.
/// The target attribute makes this compile in every translation unit; it is instantiated and called only
/// on the avx512_vnni path after a CPUID check for VBMI2.
template <class Isa, int MR, int NB>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi2"), noinline)) void int_dot_group_sparse8(
    const int_dot_call& c, const std::uint8_t* const* panel_codes, index_t m0, index_t g, std::int32_t* acc_out) {
    static_assert(std::is_same_v<Isa, isa::avx512_vnni>, "the fused 2:4 kernel is written for avx512_vnni");
    const int_dot_weights& w = *c.w;
    const std::uint8_t* xrow[MR];
    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i) xrow[i] = c.x + (m0 + i) * c.x_stride;
    __m512i acc[MR][NB];
    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_UNROLL
        for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_setzero_si512();
    const index_t k_begin = g * w.group, k_end = std::min(k_begin + w.group, w.k_padded);
    for (index_t k = k_begin; k < k_end; k += 4) {
        __m512i wv[NB];
        TCOMP_UNROLL
        for (int j = 0; j < NB; ++j) {
            const std::uint8_t* step = panel_codes[j] + (k / 4) * 40;  // 8-byte mask, then 32 kept values
            std::uint64_t mask;
            std::memcpy(&mask, step, 8);
            wv[j] = _mm512_maskz_expandloadu_epi8(mask, step + 8);
        }
        TCOMP_UNROLL
        for (int i = 0; i < MR; ++i) {
            std::int32_t u;
            std::memcpy(&u, xrow[i] + k, 4);
            const __m512i ub = _mm512_set1_epi32(u);
            TCOMP_UNROLL
            for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], ub, wv[j]);
        }
    }
    TCOMP_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_UNROLL
        for (int j = 0; j < NB; ++j) _mm512_store_si512(acc_out + (i * NB + j) * 16, acc[i][j]);
}

/// The group's dot products into acc_out, from dense panels or (Fused) compressed 8-bit 2:4 panels.
template <class Isa, int Bits, int MR, int NB, bool Small, bool Fused>
inline void int_dot_group_any(const int_dot_call& c, const std::uint8_t* const* panel_codes, index_t panel0,
                              index_t m0, index_t g, std::int32_t* acc_out) {
    if constexpr (Fused) int_dot_group_sparse8<Isa, MR, NB>(c, panel_codes, m0, g, acc_out);
    else int_dot_group<Isa, Bits, MR, NB, Small>(c, panel_codes, panel0, m0, g, acc_out);
}

/// The shift epilogue's block (int_dot_args.hpp): per group, total += int64(acc - c_m * sum(w)) << shift;
/// at the end y = float(double(total) * (double(Sx) * row_scale)) (+ bias), as the oracle. Plain loops over
/// the 16 lanes of a panel, which the compiler vectorises with the path's own instructions (vpsllvq on AVX2
/// and AVX-512). No float operation per group.
template <class Isa, int Bits, int MR, int NB, bool Small, bool Fused>
void int_dot_block_shift(const int_dot_call& c, const std::uint8_t* const* panel_codes, index_t panel0, index_t m0) {
    using ops = int_ops<Isa>;
    constexpr int width = NB * static_cast<int>(panel_rows);
    const int_dot_weights& w = *c.w;
    alignas(64) std::int64_t total[MR][width] = {};
    alignas(64) std::int32_t total32[MR][width] = {};
    alignas(64) std::int32_t acc[MR * width];
    static_assert(NB * (static_cast<int>(panel_rows) / ops::lanes) * ops::lanes == width);

    bool same_offset = true;
    for (int i = 1; i < MR; ++i) same_offset = same_offset && c.x_offset[m0 + i] == c.x_offset[m0];

    for (index_t g = 0; g < w.groups; ++g) {
        int_dot_group_any<Isa, Bits, MR, NB, Small, Fused>(c, panel_codes, panel0, m0, g, acc);
        for (int j = 0; j < NB; ++j) {
            const index_t cell = ((panel0 + j) * w.groups + g) * panel_rows;
            const std::int32_t* sums = w.weight_sums + cell;
            const std::uint8_t* shifts = w.shifts + cell;
            // acc - c_m * sum(w) in wrapping 32-bit arithmetic, as the float epilogue: the result fits int32
            // (int_dot_args.hpp). Then a sign extension and a left shift per lane, exact in int64 (the pack
            // checked |total| < 2^53).
            if (w.shift_fits_int32) {  // the pack proved |total| < 2^31: 32-bit shifts and adds, as cheap as floats
                if constexpr (ops::lanes == 16) {
                    const __m512i sum = _mm512_load_si512(sums);
                    const __m512i sh = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(shifts)));
                    const __m512i shared = _mm512_mullo_epi32(_mm512_set1_epi32(c.x_offset[m0]), sum);
                    TCOMP_UNROLL
                    for (int i = 0; i < MR; ++i) {
                        const __m512i corr =
                            same_offset ? shared : _mm512_mullo_epi32(_mm512_set1_epi32(c.x_offset[m0 + i]), sum);
                        const __m512i v = _mm512_sub_epi32(_mm512_load_si512(acc + i * width + j * panel_rows), corr);
                        std::int32_t* t = total32[i] + j * panel_rows;
                        _mm512_store_si512(t, _mm512_add_epi32(_mm512_load_si512(t), _mm512_sllv_epi32(v, sh)));
                    }
                } else if constexpr (ops::lanes == 8) {
                    for (int h = 0; h < 2; ++h) {
                        const __m256i sum = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums + 8 * h));
                        const __m256i sh =
                            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(shifts + 8 * h)));
                        TCOMP_UNROLL
                        for (int i = 0; i < MR; ++i) {
                            const __m256i corr = _mm256_mullo_epi32(_mm256_set1_epi32(c.x_offset[m0 + i]), sum);
                            const __m256i v = _mm256_sub_epi32(
                                _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + i * width + j * panel_rows + 8 * h)),
                                corr);
                            auto* t = reinterpret_cast<__m256i*>(total32[i] + j * panel_rows + 8 * h);
                            _mm256_store_si256(t, _mm256_add_epi32(_mm256_load_si256(t), _mm256_sllv_epi32(v, sh)));
                        }
                    }
                } else {
                    for (int i = 0; i < MR; ++i) {
                        const auto offset = static_cast<std::uint32_t>(c.x_offset[m0 + i]);
                        const std::int32_t* a = acc + i * width + j * panel_rows;
                        std::int32_t* t = total32[i] + j * panel_rows;
                        for (index_t l = 0; l < panel_rows; ++l)
                            t[l] = static_cast<std::int32_t>(
                                static_cast<std::uint32_t>(t[l]) +
                                ((static_cast<std::uint32_t>(a[l]) - offset * static_cast<std::uint32_t>(sums[l]))
                                 << shifts[l]));
                    }
                }
            } else if constexpr (ops::lanes == 16) {  // AVX-512: vpmovsxdq + vpsllvq, 8 lanes at a time
                const __m512i sum = _mm512_load_si512(sums);
                const __m128i sh8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(shifts));
                const __m512i sh_lo = _mm512_cvtepu8_epi64(sh8), sh_hi = _mm512_cvtepu8_epi64(_mm_srli_si128(sh8, 8));
                const __m512i shared = _mm512_mullo_epi32(_mm512_set1_epi32(c.x_offset[m0]), sum);
                TCOMP_UNROLL
                for (int i = 0; i < MR; ++i) {
                    const __m512i corr = same_offset ? shared : _mm512_mullo_epi32(_mm512_set1_epi32(c.x_offset[m0 + i]), sum);
                    const __m512i v = _mm512_sub_epi32(_mm512_load_si512(acc + i * width + j * panel_rows), corr);
                    std::int64_t* t = total[i] + j * panel_rows;
                    const __m512i lo = _mm512_sllv_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), sh_lo);
                    const __m512i hi = _mm512_sllv_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)), sh_hi);
                    _mm512_store_si512(t, _mm512_add_epi64(_mm512_load_si512(t), lo));
                    _mm512_store_si512(t + 8, _mm512_add_epi64(_mm512_load_si512(t + 8), hi));
                }
            } else if constexpr (ops::lanes == 8) {  // AVX2: vpmovsxdq + vpsllvq, 4 lanes at a time
                for (int h = 0; h < 2; ++h) {
                    const __m256i sum = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums + 8 * h));
                    const __m128i sh8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(shifts + 8 * h));
                    const __m256i sh_lo = _mm256_cvtepu8_epi64(sh8), sh_hi = _mm256_cvtepu8_epi64(_mm_srli_si128(sh8, 4));
                    TCOMP_UNROLL
                    for (int i = 0; i < MR; ++i) {
                        const __m256i corr = _mm256_mullo_epi32(_mm256_set1_epi32(c.x_offset[m0 + i]), sum);
                        const __m256i v = _mm256_sub_epi32(
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + i * width + j * panel_rows + 8 * h)), corr);
                        auto* t = reinterpret_cast<__m256i*>(total[i] + j * panel_rows + 8 * h);
                        const __m256i lo = _mm256_sllv_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)), sh_lo);
                        const __m256i hi = _mm256_sllv_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)), sh_hi);
                        _mm256_store_si256(t, _mm256_add_epi64(_mm256_load_si256(t), lo));
                        _mm256_store_si256(t + 1, _mm256_add_epi64(_mm256_load_si256(t + 1), hi));
                    }
                }
            } else {  // SSE4.1 has no per-lane 64-bit shift: scalar
                for (int i = 0; i < MR; ++i) {
                    const auto offset = static_cast<std::uint32_t>(c.x_offset[m0 + i]);
                    const std::int32_t* a = acc + i * width + j * panel_rows;
                    std::int64_t* t = total[i] + j * panel_rows;
                    for (index_t l = 0; l < panel_rows; ++l) {
                        const auto v = static_cast<std::int32_t>(static_cast<std::uint32_t>(a[l]) -
                                                                 offset * static_cast<std::uint32_t>(sums[l]));
                        t[l] += static_cast<std::int64_t>(static_cast<std::uint64_t>(static_cast<std::int64_t>(v))
                                                          << shifts[l]);
                    }
                }
            }
        }
    }

    const index_t n0 = panel0 * panel_rows;
    const index_t n_count = std::min<index_t>(width, w.n - n0);
    const double* row_scales = w.row_scales + n0;
    for (int i = 0; i < MR; ++i) {
        if (m0 + i >= c.m_end) break;
        float* yrow = c.y + (m0 + i) * c.y_stride + n0;
        const float sx = c.x_scale[m0 + i];
        if (w.shift_fits_int32)
            for (index_t n = 0; n < n_count; ++n) total[i][n] = total32[i][n];
        for (index_t n = 0; n < n_count; ++n) {
            // = detail::shift_epilogue_output, written out here: this file is compiled with each path's ISA flags,
            // and a shared inline function would be an ODR hazard (ruy's reason for the path template parameter).
            const float out = static_cast<float>(static_cast<double>(total[i][n]) *
                                                 (static_cast<double>(sx) * row_scales[n]));
            yrow[n] = c.bias != nullptr ? out + c.bias[n0 + n] : out;
        }
    }
}

/// One MR x (NB panels) block over all of K. Bits: 8 (int8 weights), 4 or 2 (packed unsigned + offsets).
/// `panel_codes[j]` is panel j's code stream in the dense layout of its width.
template <class Isa, int Bits, int MR, int NB, bool Small, bool Fused = false>
void int_dot_block(const int_dot_call& c, const std::uint8_t* const* panel_codes, index_t panel0, index_t m0,
                   float* tile_memory) {
    using ops = int_ops<Isa>;
    constexpr int vp = static_cast<int>(panel_rows) / ops::lanes;
    constexpr int nv = NB * vp;
    const int_dot_weights& w = *c.w;
    if (w.shifts != nullptr) return int_dot_block_shift<Isa, Bits, MR, NB, Small, Fused>(c, panel_codes, panel0, m0);
    auto tile = reinterpret_cast<float (*)[NB * panel_rows]>(tile_memory);
    std::memset(tile_memory, 0, sizeof(float) * MR * NB * panel_rows);
    alignas(64) std::int32_t acc[MR * nv * ops::lanes];

    // Symmetric activations give every row the same offset c_m: then c_m * sum(w) is one product per weight
    // vector, not one per accumulator (vpmulld is two uops, and W4A8 pays the epilogue every 128 k).
    bool same_offset = true;
    for (int i = 1; i < MR; ++i) same_offset = same_offset && c.x_offset[m0 + i] == c.x_offset[m0];

    for (index_t g = 0; g < w.groups; ++g) {
        int_dot_group_any<Isa, Bits, MR, NB, Small, Fused>(c, panel_codes, panel0, m0, g, acc);
        // Epilogue of group g: acc - c_m * sum(w), then y += float(acc) * (Sx * Sw) as the oracle does.
        TCOMP_UNROLL
        for (int j = 0; j < NB; ++j) {
            const index_t cell = ((panel0 + j) * w.groups + g) * panel_rows;
            TCOMP_UNROLL
            for (int v = 0; v < vp; ++v) {
                const std::int32_t* sums = w.weight_sums + cell + v * ops::lanes;
                const float* scales = w.scales + cell + v * ops::lanes;
                const auto shared = ops::mul_c(c.x_offset[m0], sums);
                TCOMP_UNROLL
                for (int i = 0; i < MR; ++i) {
                    const auto correction = same_offset ? shared : ops::mul_c(c.x_offset[m0 + i], sums);
                    ops::epilogue_int(ops::sub32(ops::load(acc + (i * nv + j * vp + v) * ops::lanes), correction),
                                      c.x_scale[m0 + i], scales, &tile[i][j * panel_rows + v * ops::lanes]);
                }
            }
        }
    }

    // Write the valid rows and columns (+ bias).
    const index_t n0 = panel0 * panel_rows;
    const index_t n_count = std::min<index_t>(NB * panel_rows, w.n - n0);
    for (int i = 0; i < MR; ++i) {
        if (m0 + i >= c.m_end) break;
        float* yrow = c.y + (m0 + i) * c.y_stride + n0;
        if (c.bias != nullptr)
            for (index_t n = 0; n < n_count; ++n) yrow[n] = tile[i][n] + c.bias[n0 + n];
        else
            for (index_t n = 0; n < n_count; ++n) yrow[n] = tile[i][n];
    }
}

/// Decompresses 2:4 panel `panel` into the dense 8-bit layout (int8, centred). Portable scalar version.
template <int Bits>
void decompress_2of4_scalar(const int_dot_weights& w, index_t panel, std::int8_t* dense) {
    const std::uint8_t* src = w.codes + panel * w.panel_code_bytes;
    const index_t quads = w.k_padded / 4;
    constexpr index_t step_bytes = Bits == 8 ? 40 : 24;
    for (index_t q = 0; q < quads; ++q) {
        const std::uint8_t* s = src + q * step_bytes;
        std::uint64_t mask;
        std::memcpy(&mask, s, 8);
        const std::uint8_t* off = Bits == 4 ? w.offsets + (panel * w.groups + (q * 4) / w.group) * 32 : nullptr;
        int kept = 0;
        for (int b = 0; b < 64; ++b) {
            std::int8_t v = 0;
            if ((mask >> b) & 1u) {
                if constexpr (Bits == 8) {
                    v = static_cast<std::int8_t>(s[8 + kept]);
                } else {
                    const std::uint8_t byte = s[8 + (kept & 15)];
                    const int u = kept < 16 ? (byte & 0x0F) : (byte >> 4);
                    v = static_cast<std::int8_t>(u - off[kept]);
                }
                ++kept;
            }
            dense[q * 64 + b] = v;
        }
    }
}

#if defined(__AVX512BW__)
/// The same with vpexpandb (AVX512-VBMI2); called only when the CPU has it.
template <int Bits>
__attribute__((target("avx512vbmi2"), noinline)) void decompress_2of4_vbmi2(const int_dot_weights& w, index_t panel,
                                                                             std::int8_t* dense) {
    const std::uint8_t* src = w.codes + panel * w.panel_code_bytes;
    const index_t quads = w.k_padded / 4;
    constexpr index_t step_bytes = Bits == 8 ? 40 : 24;
    for (index_t q = 0; q < quads; ++q) {
        const std::uint8_t* s = src + q * step_bytes;
        std::uint64_t mask;
        std::memcpy(&mask, s, 8);
        __m512i out;
        if constexpr (Bits == 8) {
            out = _mm512_maskz_expandloadu_epi8(mask, s + 8);
        } else {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 8));
            const __m128i nibble = _mm_set1_epi8(0x0F);
            const __m128i lo = _mm_and_si128(packed, nibble), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
            const __m256i u = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
            const __m256i off = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(w.offsets + (panel * w.groups + (q * 4) / w.group) * 32));
            out = _mm512_maskz_expand_epi8(mask, _mm512_castsi256_si512(_mm256_sub_epi8(u, off)));
        }
        _mm512_storeu_si512(dense + q * 64, out);
    }
}
#endif

template <class Isa>
void decompress_2of4(const int_dot_weights& w, index_t panel, std::int8_t* dense) {
#if defined(__AVX512BW__)
    if constexpr (int_ops<Isa>::lanes == 16) {
        static const bool vbmi2 = cpu_has_avx512_vbmi2();
        if (vbmi2) {
            if (w.code_bits == 8) decompress_2of4_vbmi2<8>(w, panel, dense);
            else decompress_2of4_vbmi2<4>(w, panel, dense);
            return;
        }
    }
#endif
    if (w.code_bits == 8) decompress_2of4_scalar<8>(w, panel, dense);
    else decompress_2of4_scalar<4>(w, panel, dense);
}

template <class Isa, int Bits, int NB, bool Small = (Bits != 8), bool Fused = false>
void int_dot_rows(const int_dot_call& c, const std::uint8_t* const* panel_codes, index_t panel0, index_t m_begin,
                  index_t m_end) {
    constexpr int mr = int_dot_blocking<Isa>::mr;
    alignas(64) float tile[mr * NB * panel_rows];
    for (index_t m = m_begin; m < m_end; m += mr) {
        // x holds m + 8 rows (zero past m), so a short final block may run at full height.
        if (m_end - m == 1) int_dot_block<Isa, Bits, 1, NB, Small, Fused>(c, panel_codes, panel0, m, tile);
        else int_dot_block<Isa, Bits, mr, NB, Small, Fused>(c, panel_codes, panel0, m, tile);
    }
}

/// Unpacks 4/2-bit panel `panel` into the dense 8-bit layout (centred int8, |w| <= 15), vectorised: for GEMM
/// shapes the unpacking is then paid once per super-block of rows instead of once per MR rows.
template <class Isa, int Bits>
void decompress_packed(const int_dot_weights& w, index_t panel, std::int8_t* dense) {
    using ops = int_ops<Isa>;
    using vec = typename ops::vec;
    constexpr int parts = 8 / Bits;
    constexpr index_t k_step = 4 * parts;
    constexpr int vpb = 64 / ops::bytes;  // vectors per 64-byte step
    const vec mask = ops::set1_8((1 << Bits) - 1);
    const std::uint8_t* src = w.codes + panel * w.panel_code_bytes;
    for (index_t g = 0; g < w.groups; ++g) {
        vec offset[vpb];
        for (int v = 0; v < vpb; ++v) offset[v] = ops::load(w.offsets + (panel * w.groups + g) * 64 + v * ops::bytes);
        const index_t k_end = std::min((g + 1) * w.group, w.k_padded);
        for (index_t k = g * w.group; k < k_end; k += k_step) {
            TCOMP_UNROLL
            for (int v = 0; v < vpb; ++v) {
                const vec raw = ops::load(src + (k / k_step) * 64 + v * ops::bytes);
                [&]<int... P>(std::integer_sequence<int, P...>) {
                    (ops::store(dense + (k / 4 + P) * 64 + v * ops::bytes,
                                ops::sub8(ops::and_(ops::template srli16<P * Bits>(raw), mask), offset[v])),
                     ...);
                }(std::make_integer_sequence<int, parts>{});
            }
        }
    }
}

template <class Isa, int Bits, bool Sparse>
void int_dot_driver(const int_dot_call& c) {
    using blocking = int_dot_blocking<Isa>;
    constexpr int nb_max = (Bits == 8 || Sparse) ? blocking::nb8 : blocking::nb_small;
    constexpr int dense_bits = Sparse ? 8 : Bits;
    const int_dot_weights& w = *c.w;
    // Rows of X per super-block: about 256 KiB, a multiple of MR.
    const index_t mr = blocking::mr;
    const index_t super_rows = std::max<index_t>(mr, (index_t{256} * 1024 / std::max<index_t>(w.k_padded, 1)) / mr * mr);

    if constexpr (Sparse && std::is_same_v<Isa, isa::avx512_vnni>) {
        // Few rows (GEMV, small batches): expand 8-bit 2:4 panels in registers instead (int_dot_group_sparse8).
        static const bool vbmi2 = cpu_has_avx512_vbmi2();
        if (vbmi2 && w.code_bits == 8 && c.m_end - c.m_begin <= mr) {
            for (index_t p = c.panel_begin; p < c.panel_end;) {
                const int nb = (c.panel_end - p >= nb_max) ? nb_max : 1;
                const std::uint8_t* codes[nb_max];
                for (int j = 0; j < nb; ++j) codes[j] = w.codes + (p + j) * w.panel_code_bytes;
                if (nb == nb_max) int_dot_rows<Isa, 8, nb_max, false, true>(c, codes, p, c.m_begin, c.m_end);
                else int_dot_rows<Isa, 8, 1, false, true>(c, codes, p, c.m_begin, c.m_end);
                p += nb;
            }
            return;
        }
    }
    if constexpr (Sparse) {
        // Decompress each block of panels once, then run every row block over it.
        thread_local std::vector<std::int8_t> dense;
        dense.resize(static_cast<std::size_t>(nb_max * panel_rows * w.k_padded));
        for (index_t p = c.panel_begin; p < c.panel_end;) {
            const int nb = (c.panel_end - p >= nb_max) ? nb_max : 1;
            const std::uint8_t* codes[nb_max];
            for (int j = 0; j < nb; ++j) {
                std::int8_t* d = dense.data() + j * panel_rows * w.k_padded;
                decompress_2of4<Isa>(w, p + j, d);
                codes[j] = reinterpret_cast<const std::uint8_t*>(d);
            }
            if (nb == nb_max) int_dot_rows<Isa, dense_bits, nb_max>(c, codes, p, c.m_begin, c.m_end);
            else int_dot_rows<Isa, dense_bits, 1>(c, codes, p, c.m_begin, c.m_end);
            p += nb;
        }
    } else {
        if constexpr (Bits != 8) {
            // GEMM shapes: unpack each block of panels once per super-block into int8 and run the 8-bit
            // micro-kernel (small-weight form), instead of unpacking in every MR-row block.
            if (c.m_end - c.m_begin >= 4 * mr) {
                constexpr int nbd = blocking::nb8;
                thread_local std::vector<std::int8_t> dense;
                dense.resize(static_cast<std::size_t>(nbd * panel_rows * w.k_padded));
                for (index_t ms = c.m_begin; ms < c.m_end; ms += super_rows) {
                    const index_t me = std::min(ms + super_rows, c.m_end);
                    for (index_t p = c.panel_begin; p < c.panel_end;) {
                        const int nb = (c.panel_end - p >= nbd) ? nbd : 1;
                        const std::uint8_t* codes[nbd];
                        for (int j = 0; j < nb; ++j) {
                            std::int8_t* d = dense.data() + j * panel_rows * w.k_padded;
                            decompress_packed<Isa, Bits>(w, p + j, d);
                            codes[j] = reinterpret_cast<const std::uint8_t*>(d);
                        }
                        if (nb == nbd) int_dot_rows<Isa, 8, nbd, true>(c, codes, p, ms, me);
                        else int_dot_rows<Isa, 8, 1, true>(c, codes, p, ms, me);
                        p += nb;
                    }
                }
                return;
            }
        }
        for (index_t ms = c.m_begin; ms < c.m_end; ms += super_rows) {
            const index_t me = std::min(ms + super_rows, c.m_end);
            for (index_t p = c.panel_begin; p < c.panel_end;) {
                const int nb = (c.panel_end - p >= nb_max) ? nb_max : 1;
                const std::uint8_t* codes[nb_max];
                for (int j = 0; j < nb; ++j) codes[j] = w.codes + (p + j) * w.panel_code_bytes;
                if (nb == nb_max) int_dot_rows<Isa, dense_bits, nb_max>(c, codes, p, ms, me);
                else int_dot_rows<Isa, dense_bits, 1>(c, codes, p, ms, me);
                p += nb;
            }
        }
    }
}

/// Kernel-table entry: Y rows [m_begin, m_end) x panels [panel_begin, panel_end).
template <class Isa>
void int_dot_kernel(const int_dot_call& c) {
    const int_dot_weights& w = *c.w;
    if (w.sparse_2of4) {
        int_dot_driver<Isa, 8, true>(c);  // 4-bit 2:4 decompresses to the same dense int8 layout
        return;
    }
    switch (w.code_bits) {
        case 8: int_dot_driver<Isa, 8, false>(c); break;
        case 4: int_dot_driver<Isa, 4, false>(c); break;
        default: int_dot_driver<Isa, 2, false>(c); break;
    }
}

/// Kernel-table entry: the smallest and largest of x[0..k).
template <class Isa>
void row_min_max_kernel(const float* x, index_t k, float* lo, float* hi) {
    using fbatch = xsimd::batch<float, typename int_ops<Isa>::xsimd_arch>;
    constexpr index_t width = fbatch::size;
    float l = k > 0 ? x[0] : 0.0f, h = l;
    index_t i = 0;
    if (k >= width) {
        fbatch vl = fbatch::load_unaligned(x), vh = vl;
        for (i = width; i + width <= k; i += width) {
            const fbatch v = fbatch::load_unaligned(x + i);
            // select, not min/max: GCC 12's _mm512_min_ps trips -Wmaybe-uninitialized inside its own header.
            vl = xsimd::select(v < vl, v, vl);
            vh = xsimd::select(v > vh, v, vh);
        }
        alignas(64) float a[width], b[width];
        vl.store_aligned(a);
        vh.store_aligned(b);
        for (index_t j = 0; j < width; ++j) l = std::min(l, a[j]), h = std::max(h, b[j]);
    }
    for (; i < k; ++i) l = std::min(l, x[i]), h = std::max(h, x[i]);
    *lo = l, *hi = h;
}

/// Kernel-table entry: u = clamp(RNE(x / scale + zero), code_min, code_max) - code_min, as bytes.
/// Clamping before rounding equals the oracle's rounding then clamping (the bounds are integers), and
/// also maps a quotient that overflowed to +-Inf onto the right bound.
template <class Isa>
void encode_u8_kernel(const encode_call& e) {
    using ops = int_ops<Isa>;
    using fbatch = xsimd::batch<float, typename ops::xsimd_arch>;
    using ibatch = xsimd::batch<std::int32_t, typename ops::xsimd_arch>;
    constexpr index_t width = fbatch::size;
    const fbatch scale(e.scale), zero(e.zero), lo(static_cast<float>(e.code_min)), hi(static_cast<float>(e.code_max));
    const ibatch base(e.code_min);
    index_t i = 0;
    for (; i + width <= e.k; i += width) {
        const fbatch v = fbatch::load_unaligned(e.x + i) / scale + zero;
        const fbatch clamped = xsimd::select(v < lo, lo, xsimd::select(v > hi, hi, v));
        const ibatch q = xsimd::to_int(xsimd::nearbyint(clamped)) - base;
        ops::store_bytes(e.out + i, typename ops::vec(q));
    }
    for (; i < e.k; ++i) {
        const float v = std::min(std::max(e.x[i] / e.scale + e.zero, static_cast<float>(e.code_min)),
                                 static_cast<float>(e.code_max));
        e.out[i] = static_cast<std::uint8_t>(static_cast<int>(std::nearbyint(v)) - e.code_min);
    }
}

#undef TCOMP_UNROLL

#endif  // x86

}  // namespace tcomp::cpu::detail
