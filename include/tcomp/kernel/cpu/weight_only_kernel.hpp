// The weight-only GEMV/GEMM kernels (W8A16, W4A16, W2A16: integer weights, fp32 or bf16 activations),
// templated on the ISA path. Weight layout and arguments: weight_only_args.hpp.
//
// Dequantization, exact on every path: w = fl(s * (u - z)), the oracle's value bit for bit.
//   AVX-512, 4/2-bit  per row and scale group a 16-entry table T[i] = fl((i - z) * s) (2-bit: i mod 4), then
//                     per 16-k chunk one shift of the row's 16 words and one vpermps through T;
//   AVX2, 2-bit       the same with an 8-entry table and vpermps ymm (the index's 3 low bits: i mod 4);
//   otherwise         unpack (mask / sign-extend), convert to float, subtract z, multiply by s.
// The float sums: FMA (mul + add on SSE4.1) into fp32 accumulators, no reassociation beyond what is said
// here, so the error against the oracle (products summed in double) is bounded by the accumulation:
//
// Two drivers:
//   direct (fewer than direct_rows rows: GEMV and small M; memory-bound)
//       per panel, per block of MR <= 4 activation rows, per block of RB weight rows: the codes stream once
//       through registers (dequantized chunk by chunk), each chunk FMAed into MR x RB vector accumulators
//       whose lanes run along k; at the end each accumulator is summed across its lanes (a tree). X rows
//       are first copied (bf16: converted) into a zero-padded fp32 buffer.
//   panel (GEMM; compute-bound)
//       for each block of MC rows, for each block of KC = 256 k: X^T is packed into strips of V rows
//       (V = the path's float lanes, zero padded in m and k); for each panel, the 16 x KC weights are
//       dequantized once into an L1 buffer, and a TN x TM micro-kernel (TN weight rows broadcast, TM strips
//       of V rows, TN * TM <= 24 accumulators on AVX-512) runs C^T[n][m] += w[n][k] * X^T[k][m] with one FMA
//       chain per output along all of K (the accumulators are saved in a per-call C^T buffer between k
//       blocks). Y (+ bias) is written from C^T at the end of each row block.
// Either way, each output is y = fl(sum + bias) with the sum a chain of FMAs (SSE4.1: a multiply and an add),
// a final lane tree in the direct driver, and nothing else.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>

#include "tcomp/kernel/cpu/aligned_buffer.hpp"
#include "tcomp/kernel/cpu/isa.hpp"
#include "tcomp/kernel/cpu/weight_only_args.hpp"

#ifndef WO_RB1
#define WO_RB1 8
#endif
#ifndef WO_HINT
#define WO_HINT _MM_HINT_T0
#endif
#ifndef WO_PF
#define WO_PF 8
#endif
namespace tcomp::cpu::detail {

/// Per-path float operations of the weight-only kernels (specialised below, each only where its TU's
/// flags allow).
template <class Isa>
struct wo_ops;

/// Register blocking per path.
template <class Isa>
struct wo_blocking;

/// Per-thread scratch of the weight-only drivers (ISA-independent: plain buffers).
struct wo_scratch {
    aligned_buffer<float> x, xt, wb, ct;

    static float* ensure(aligned_buffer<float>& b, std::size_t n) {
        if (b.size() < n) b = aligned_buffer<float>(n + n / 4);
        return b.data();
    }
    static wo_scratch& get() {
        thread_local wo_scratch s;
        return s;
    }
};

/// float from bf16 bits.
inline float wo_bf16_to_float(std::uint16_t v) {
    const std::uint32_t bits = static_cast<std::uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

/// Activation element (r, k) of a call as float.
inline float wo_x(const weight_only_call& c, index_t r, index_t k) {
    return c.x != nullptr ? c.x[r * c.x_stride + k] : wo_bf16_to_float(c.x_bf16[r * c.x_stride + k]);
}

#if defined(__x86_64__) || defined(__i386__)

// ---------------------------------------------------------------------------------------------- SSE4.1
#if defined(__SSE4_1__)
template <>
struct wo_ops<isa::sse41> {
    using arch = xsimd::sse4_1;
    using fb = xsimd::batch<float, arch>;
    static constexpr int V = 4;

    static fb fma(fb a, fb b, fb c) { return a * b + c; }  // no FMA on this path: two roundings

    /// The state of one row and scale group: {z, s}.
    template <int Bits>
    static void build(float* st, float s, float z) {
        st[0] = z, st[1] = s;
    }
    /// Sub-vector h (4 lanes) of 16-k chunk J of a row's 64-byte block.
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, int h, const float* st) {
        __m128i u;
        if constexpr (Bits == 8) {
            std::int32_t word;
            std::memcpy(&word, rb + 16 * J + 4 * h, 4);
            u = _mm_cvtepi8_epi32(_mm_cvtsi32_si128(word));
        } else {
            const __m128i raw = _mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * h));
            u = _mm_and_si128(_mm_srli_epi32(raw, Bits * J), _mm_set1_epi32((1 << Bits) - 1));
        }
        return (fb(_mm_cvtepi32_ps(u)) - fb(st[0])) * fb(st[1]);
    }
};

template <>
struct wo_blocking<isa::sse41> {
    static constexpr int direct_rows = 4;  // fewer rows than this: the direct driver
    template <int MR>
    static constexpr int rb = MR == 1 ? 8 : (MR == 2 ? 4 : 2);
    static constexpr int tm_max = 2;
    template <int TM>
    static constexpr int tn = TM == 1 ? 8 : 4;
};
#endif

// ---------------------------------------------------------------------------------------------- AVX2 + FMA
#if defined(__AVX2__) && defined(__FMA__)
struct wo_ops_avx2 {
    using arch = xsimd::avx2;
    using fb = xsimd::batch<float, arch>;
    static constexpr int V = 8;

    static fb fma(fb a, fb b, fb c) { return _mm256_fmadd_ps(a, b, c); }

    /// 2-bit: the 8-entry table T[i] = fl((i mod 4 - z) * s); otherwise {z, s}.
    template <int Bits>
    static void build(float* st, float s, float z) {
        if constexpr (Bits == 2) {
            const fb iota = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f);
            ((iota - fb(z)) * fb(s)).store_aligned(st);
        } else {
            st[0] = z, st[1] = s;
        }
    }
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, int h, const float* st) {
        if constexpr (Bits == 8) {
            const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + 16 * J + 8 * h));
            return (fb(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))) - fb(st[0])) * fb(st[1]);
        } else {
            const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(rb + 32 * h));
            if constexpr (Bits == 2) {
                return _mm256_permutevar8x32_ps(_mm256_load_ps(st), _mm256_srli_epi32(raw, 2 * J));
            } else {
                const __m256i u = _mm256_and_si256(_mm256_srli_epi32(raw, 4 * J), _mm256_set1_epi32(15));
                return (fb(_mm256_cvtepi32_ps(u)) - fb(st[0])) * fb(st[1]);
            }
        }
    }
};
template <>
struct wo_ops<isa::avx2> : wo_ops_avx2 {};
template <>
struct wo_ops<isa::avx_vnni> : wo_ops_avx2 {};

struct wo_blocking_avx2 {
    static constexpr int direct_rows = 8;
    template <int MR>
    static constexpr int rb = MR == 1 ? 8 : (MR == 2 ? 4 : 2);
    static constexpr int tm_max = 2;
    template <int TM>
    static constexpr int tn = TM == 1 ? 8 : 4;
};
template <>
struct wo_blocking<isa::avx2> : wo_blocking_avx2 {};
template <>
struct wo_blocking<isa::avx_vnni> : wo_blocking_avx2 {};
#endif

// ---------------------------------------------------------------------------------------------- AVX-512
#if defined(__AVX512F__) && defined(__AVX512BW__)
struct wo_ops_avx512 {
    using arch = xsimd::avx512bw;
    using fb = xsimd::batch<float, arch>;
    static constexpr int V = 16;

    static fb fma(fb a, fb b, fb c) { return _mm512_fmadd_ps(a, b, c); }

    /// 4/2-bit: the 16-entry table T[i] = fl((i - z) * s) (2-bit: i mod 4); 8-bit: {z, s}.
    template <int Bits>
    static void build(float* st, float s, float z) {
        if constexpr (Bits == 8) {
            st[0] = z, st[1] = s;
        } else {
            const fb iota = Bits == 4 ? _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f, 11.f,
                                                       12.f, 13.f, 14.f, 15.f)
                                      : _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f,
                                                       0.f, 1.f, 2.f, 3.f);
            ((iota - fb(z)) * fb(s)).store_aligned(st);
        }
    }
    /// The states of RB consecutive rows from their scale / zero entries (vectorised zero conversion).
    template <int Bits, int RB>
    static void build_rows(float (*st)[16], const float* scales, const std::int8_t* zeros) {
        if constexpr (Bits == 8) {
#pragma GCC unroll 16
            for (int r = 0; r < RB; ++r) build<Bits>(st[r], scales[r], static_cast<float>(zeros[r]));
        } else {
            __m128i zb;
            if constexpr (RB == 16) zb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(zeros));
            else if constexpr (RB == 8) zb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros));
            else {
                std::int32_t v;
                std::memcpy(&v, zeros, 4);
                zb = _mm_cvtsi32_si128(v);
            }
            alignas(64) float zf[16];
            _mm512_store_ps(zf, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(zb)));
#pragma GCC unroll 16
            for (int r = 0; r < RB; ++r) build<Bits>(st[r], scales[r], zf[r]);
        }
    }
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, int /*h: one vector per chunk*/, const float* st) {
        if constexpr (Bits == 8) {
            const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * J));
            return (fb(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b))) - fb(st[0])) * fb(st[1]);
        } else {
            __m512i raw;
#ifdef WO_ASM
            if constexpr (J > 0) __asm__ volatile("vpsrld %2, %1, %0" : "=v"(raw) : "m"(*reinterpret_cast<const __m512i*>(rb)), "i"(Bits * J));
            else __asm__ volatile("vmovdqa32 %1, %0" : "=v"(raw) : "m"(*reinterpret_cast<const __m512i*>(rb)));
#else
            raw = _mm512_load_si512(rb);
            if constexpr (J > 0) raw = _mm512_srli_epi32(raw, Bits * J);
#endif
            return _mm512_permutexvar_ps(raw, _mm512_load_ps(st));
        }
    }
};
template <>
struct wo_ops<isa::avx512bw> : wo_ops_avx512 {};
template <>
struct wo_ops<isa::avx512_vnni> : wo_ops_avx512 {};

struct wo_blocking_avx512 {
    static constexpr int direct_rows = 8;
    template <int MR>
    static constexpr int rb = MR == 1 ? WO_RB1 : (MR <= 3 ? 8 : 4);
    static constexpr int tm_max = 3;
    template <int TM>
    static constexpr int tn = TM == 1 ? 16 : 8;
};
template <>
struct wo_blocking<isa::avx512bw> : wo_blocking_avx512 {};
template <>
struct wo_blocking<isa::avx512_vnni> : wo_blocking_avx512 {};
#endif

// ---------------------------------------------------------------------------------------------- direct driver

/// The states of RB consecutive rows: ops::build_rows where the path has it, else row by row.
template <class Ops, int Bits, int RB>
void wo_build_rows(float (*st)[16], const float* scales, const std::int8_t* zeros) {
    if constexpr (requires { Ops::template build_rows<Bits, RB>(st, scales, zeros); }) {
        Ops::template build_rows<Bits, RB>(st, scales, zeros);
    } else {
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) Ops::template build<Bits>(st[r], scales[r], static_cast<float>(zeros[r]));
    }
}

/// Rows [r0, r0 + RB) of panel p against MR activation rows (x: zero-padded fp32, row stride xs >= k_padded,
/// 64-byte aligned): out[m * 16 + r] = sum_k x[m][k] * w[r0 + r][k].
template <class Isa, int Bits, int MR, int RB>
void wo_direct_block(const weight_only_weights& w, index_t p, int r0, const float* x, index_t xs, float* out,
                     bool prefetch) {
    using ops = wo_ops<Isa>;
    using fb = typename ops::fb;
    constexpr int V = ops::V, S = 16 / V;
    constexpr index_t bk = 512 / Bits;
    constexpr int J = static_cast<int>(bk / 16);

    fb acc[MR][RB];
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) acc[m][r] = fb(0.0f);
    alignas(64) float st[RB][16];

    const std::uint8_t* codes = w.codes + static_cast<std::size_t>(p) * w.panel_code_bytes + r0 * 64;
    const float* scales = w.scales + p * w.groups * 16 + r0;
    const std::int8_t* zeros = w.zeros + p * w.groups * 16 + r0;
    const index_t chunks_per_group = w.group / 16;
    index_t left = 0, cell = 0;
    const index_t blocks = w.k_padded / bk;
    for (index_t kb = 0; kb < blocks; ++kb, codes += 16 * 64) {
        const float* xk = x + kb * bk;
        [&]<int... Js>(std::integer_sequence<int, Js...>) {
            (
                [&] {
                    constexpr int j = Js;
                    if (left == 0) {
                        wo_build_rows<ops, Bits, RB>(st, scales + cell, zeros + cell);
                        cell += 16, left = chunks_per_group;
                    }
                    --left;
                    if (prefetch) {
                        // The whole 16-row block WO_PF blocks ahead (the next panel's past the end).
                        constexpr int per = 16 / J > 0 ? 16 / J : 1;
                        if constexpr (j * per < 16)
#pragma GCC unroll 4
                            for (int q = 0; q < per; ++q)
                                _mm_prefetch(reinterpret_cast<const char*>(codes - r0 * 64 + WO_PF * 1024 + (j * per + q) * 64),
                                             WO_HINT);
                    }
#pragma GCC unroll 4
                    for (int h = 0; h < S; ++h) {
                        fb xv[MR];
#pragma GCC unroll 4
                        for (int m = 0; m < MR; ++m) xv[m] = fb::load_aligned(xk + m * xs + 16 * j + h * V);
#pragma GCC unroll 16
                        for (int r = 0; r < RB; ++r) {
                            const fb wv = ops::template dequant<Bits, j>(codes + r * 64, h, st[r]);
#pragma GCC unroll 4
                            for (int m = 0; m < MR; ++m) acc[m][r] = ops::fma(wv, xv[m], acc[m][r]);
                        }
                    }
                }(),
                ...);
        }(std::make_integer_sequence<int, J>{});
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) out[m * 16 + r] = xsimd::hadd(acc[m][r]);
}

template <class Isa, int Bits, int MR>
void wo_direct_panel(const weight_only_weights& w, index_t p, const float* x, index_t xs, float* out, bool prefetch) {
    constexpr int rb = wo_blocking<Isa>::template rb<MR>;
    for (int r0 = 0; r0 < 16; r0 += rb) wo_direct_block<Isa, Bits, MR, rb>(w, p, r0, x, xs, out + r0, prefetch && r0 == 0);
}

/// Rows [m_begin, m_end) (fewer than 8): weights streamed once per block of <= 4 rows.
template <class Isa, int Bits>
void wo_run_direct(const weight_only_call& c) {
    const weight_only_weights& w = *c.w;
    const index_t rows = c.m_end - c.m_begin, kp = w.k_padded;
    wo_scratch& s = wo_scratch::get();
    float* x = wo_scratch::ensure(s.x, static_cast<std::size_t>(rows * kp));
    for (index_t i = 0; i < rows; ++i) {
        float* dst = x + i * kp;
        const index_t r = c.m_begin + i;
        if (c.x != nullptr) std::memcpy(dst, c.x + r * c.x_stride, static_cast<std::size_t>(w.k) * sizeof(float));
        else
            for (index_t k = 0; k < w.k; ++k) dst[k] = wo_bf16_to_float(c.x_bf16[r * c.x_stride + k]);
        std::fill(dst + w.k, dst + kp, 0.0f);
    }
    alignas(64) float out[4 * 16];
    const index_t meta_lines = (w.groups * 16 * static_cast<index_t>(sizeof(float)) + 63) / 64;
    for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
        const index_t n0 = p * 16, n_count = std::min<index_t>(16, w.n - n0);
        // The next panel's scales and zero offsets: each group start depends on them, and they are too
        // sparse a stream for the hardware prefetchers (the codes are prefetched inside the block loop).
        if (p + 1 < w.panels) {
            const char* sc = reinterpret_cast<const char*>(w.scales + (p + 1) * w.groups * 16);
            const char* zc = reinterpret_cast<const char*>(w.zeros + (p + 1) * w.groups * 16);
            for (index_t l = 0; l < meta_lines; ++l) _mm_prefetch(sc + l * 64, _MM_HINT_T0);
            for (index_t l = 0; l < (meta_lines + 3) / 4; ++l) _mm_prefetch(zc + l * 64, _MM_HINT_T0);
        }
        for (index_t m0 = 0; m0 < rows; m0 += 4) {
            const index_t mr = std::min<index_t>(4, rows - m0);
            const float* xb = x + m0 * kp;
            switch (mr) {
                case 1: wo_direct_panel<Isa, Bits, 1>(w, p, xb, kp, out, m0 == 0); break;
                case 2: wo_direct_panel<Isa, Bits, 2>(w, p, xb, kp, out, m0 == 0); break;
                case 3: wo_direct_panel<Isa, Bits, 3>(w, p, xb, kp, out, m0 == 0); break;
                default: wo_direct_panel<Isa, Bits, 4>(w, p, xb, kp, out, m0 == 0); break;
            }
            for (index_t i = 0; i < mr; ++i) {
                float* yrow = c.y + (c.m_begin + m0 + i) * c.y_stride + n0;
                const float* o = out + i * 16;
                if (c.bias != nullptr)
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = o[n] + c.bias[n0 + n];
                else
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = o[n];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------- panel driver

inline constexpr index_t wo_kc = 256;  // k per block (a multiple of every block length)

/// Dequantizes rows 0..15 of panel p, k in [kc, kc + kl), into wb[r * ldw + (k - kc)].
template <class Isa, int Bits>
void wo_dequant_panel(const weight_only_weights& w, index_t p, index_t kc, index_t kl, float* wb, index_t ldw) {
    using ops = wo_ops<Isa>;
    constexpr int V = ops::V, S = 16 / V;
    constexpr index_t bk = 512 / Bits;
    constexpr int J = static_cast<int>(bk / 16);
    alignas(64) float st[16];
    const index_t chunks_per_group = w.group / 16;
    const float* scales = w.scales + p * w.groups * 16;
    const std::int8_t* zeros = w.zeros + p * w.groups * 16;
    for (int r = 0; r < 16; ++r) {
        const std::uint8_t* codes =
            w.codes + static_cast<std::size_t>(p) * w.panel_code_bytes + (kc / bk) * 16 * 64 + r * 64;
        index_t cell = (kc / w.group) * 16 + r;
        index_t left = chunks_per_group - (kc % w.group) / 16;
        ops::template build<Bits>(st, scales[cell], static_cast<float>(zeros[cell]));
        float* dst = wb + r * ldw;
        for (index_t kb = 0; kb < kl / bk; ++kb, codes += 16 * 64, dst += bk) {
            [&]<int... Js>(std::integer_sequence<int, Js...>) {
                (
                    [&] {
                        constexpr int j = Js;
                        if (left == 0) {
                            cell += 16, left = chunks_per_group;
                            ops::template build<Bits>(st, scales[cell], static_cast<float>(zeros[cell]));
                        }
                        --left;
#pragma GCC unroll 4
                        for (int h = 0; h < S; ++h)
                            ops::template dequant<Bits, j>(codes, h, st).store_aligned(dst + 16 * j + h * V);
                    }(),
                    ...);
            }(std::make_integer_sequence<int, J>{});
        }
    }
}

/// C^T[TN rows][TM strips of V] (+)= w[TN rows][kl] * X^T[kl][TM * V]. wb: row stride ldw; xt: TM strips of
/// kl * V floats at stride xs; ct: row stride ldc. `first`: start from zero instead of ct.
template <class Isa, int TN, int TM>
void wo_micro(index_t kl, const float* wb, index_t ldw, const float* xt, index_t xs, float* ct, index_t ldc,
              bool first) {
    using ops = wo_ops<Isa>;
    using fb = typename ops::fb;
    constexpr int V = ops::V;
    fb acc[TN][TM];
#pragma GCC unroll 16
    for (int i = 0; i < TN; ++i)
#pragma GCC unroll 4
        for (int t = 0; t < TM; ++t) acc[i][t] = first ? fb(0.0f) : fb::load_aligned(ct + i * ldc + t * V);
    for (index_t kk = 0; kk < kl; ++kk) {
        fb xv[TM];
#pragma GCC unroll 4
        for (int t = 0; t < TM; ++t) xv[t] = fb::load_aligned(xt + t * xs + kk * V);
#pragma GCC unroll 16
        for (int i = 0; i < TN; ++i) {
            const fb b(wb[i * ldw + kk]);
#pragma GCC unroll 4
            for (int t = 0; t < TM; ++t) acc[i][t] = ops::fma(b, xv[t], acc[i][t]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < TN; ++i)
#pragma GCC unroll 4
        for (int t = 0; t < TM; ++t) acc[i][t].store_aligned(ct + i * ldc + t * V);
}

/// X^T of rows [mb, mb + mc), k in [kc, kc + kl): strips of V rows, xt[(s * kl + kk) * V + t] (zero padded).
template <int V>
void wo_pack_xt(const weight_only_call& c, index_t mb, index_t mc, index_t strips, index_t kc, index_t kl, float* xt) {
    const index_t k_end = std::min(kl, std::max<index_t>(c.w->k - kc, 0));
    for (index_t s = 0; s < strips; ++s)
        for (index_t t = 0; t < V; ++t) {
            float* dst = xt + s * kl * V + t;
            const index_t i = s * V + t;
            index_t kk = 0;
            if (i < mc) {
                const index_t r = mb + i;
                if (c.x != nullptr) {
                    const float* src = c.x + r * c.x_stride + kc;
                    for (; kk < k_end; ++kk) dst[kk * V] = src[kk];
                } else {
                    const std::uint16_t* src = c.x_bf16 + r * c.x_stride + kc;
                    for (; kk < k_end; ++kk) dst[kk * V] = wo_bf16_to_float(src[kk]);
                }
            }
            for (; kk < kl; ++kk) dst[kk * V] = 0.0f;
        }
}

template <class Isa, int TM>
void wo_micro_strips(index_t kl, const float* wb, const float* xt, float* ct, index_t ldc, bool first) {
    constexpr int V = wo_ops<Isa>::V;
    constexpr int tn = wo_blocking<Isa>::template tn<TM>;
    for (int nt = 0; nt < 16; nt += tn)
        wo_micro<Isa, tn, TM>(kl, wb + nt * wo_kc, wo_kc, xt, kl * V, ct + nt * ldc, ldc, first);
}

template <class Isa, int Bits>
void wo_run_panels(const weight_only_call& c) {
    using blocking = wo_blocking<Isa>;
    constexpr int V = wo_ops<Isa>::V;
    const weight_only_weights& w = *c.w;
    const index_t kp = w.k_padded, np = c.panel_end - c.panel_begin;
    // Rows per block: C^T for all the call's panels within ~4 MiB, at most 512 rows, at least 3 strips.
    const index_t budget = (index_t{4} << 20) / static_cast<index_t>(sizeof(float)) / (np * 16);
    const index_t mc_max = std::clamp<index_t>(budget / V * V, 3 * V, 512);
    wo_scratch& s = wo_scratch::get();
    const index_t strips_max = (std::min(mc_max, c.m_end - c.m_begin) + V - 1) / V;
    float* xt = wo_scratch::ensure(s.xt, static_cast<std::size_t>(strips_max * V * wo_kc));
    float* wb = wo_scratch::ensure(s.wb, static_cast<std::size_t>(16 * wo_kc));
    float* ct = wo_scratch::ensure(s.ct, static_cast<std::size_t>(np * 16 * strips_max * V));

    for (index_t mb = c.m_begin; mb < c.m_end; mb += mc_max) {
        const index_t mc = std::min(mc_max, c.m_end - mb), strips = (mc + V - 1) / V, mcp = strips * V;
        for (index_t kc = 0; kc < kp; kc += wo_kc) {
            const index_t kl = std::min(wo_kc, kp - kc);
            wo_pack_xt<V>(c, mb, mc, strips, kc, kl, xt);
            for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
                wo_dequant_panel<Isa, Bits>(w, p, kc, kl, wb, wo_kc);
                float* cp = ct + (p - c.panel_begin) * 16 * mcp;
                for (index_t s0 = 0; s0 < strips;) {
                    const index_t left = strips - s0;
                    const float* xs = xt + s0 * kl * V;
                    float* cs = cp + s0 * V;
                    if (blocking::tm_max >= 3 && left >= 3) {
                        wo_micro_strips<Isa, (blocking::tm_max >= 3 ? 3 : 1)>(kl, wb, xs, cs, mcp, kc == 0);
                        s0 += 3;
                    } else if (left >= 2) {
                        wo_micro_strips<Isa, 2>(kl, wb, xs, cs, mcp, kc == 0);
                        s0 += 2;
                    } else {
                        wo_micro_strips<Isa, 1>(kl, wb, xs, cs, mcp, kc == 0);
                        s0 += 1;
                    }
                }
            }
        }
        // Y = C^T^T (+ bias).
        for (index_t i = 0; i < mc; ++i) {
            float* yrow = c.y + (mb + i) * c.y_stride;
            for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
                const float* cp = ct + (p - c.panel_begin) * 16 * mcp + i;
                const index_t n0 = p * 16, n_count = std::min<index_t>(16, w.n - n0);
                if (c.bias != nullptr)
                    for (index_t n = 0; n < n_count; ++n) yrow[n0 + n] = cp[n * mcp] + c.bias[n0 + n];
                else
                    for (index_t n = 0; n < n_count; ++n) yrow[n0 + n] = cp[n * mcp];
            }
        }
    }
}

template <class Isa, int Bits>
void wo_run(const weight_only_call& c) {
    if (c.m_end - c.m_begin < wo_blocking<Isa>::direct_rows) wo_run_direct<Isa, Bits>(c);
    else wo_run_panels<Isa, Bits>(c);
}

/// Kernel-table entry: Y rows [m_begin, m_end) x panels [panel_begin, panel_end).
template <class Isa>
void weight_only_kernel(const weight_only_call& c) {
    if (c.m_begin >= c.m_end || c.panel_begin >= c.panel_end) return;
    switch (c.w->code_bits) {
        case 8: wo_run<Isa, 8>(c); break;
        case 4: wo_run<Isa, 4>(c); break;
        default: wo_run<Isa, 2>(c); break;
    }
}

#endif  // x86

}  // namespace tcomp::cpu::detail
