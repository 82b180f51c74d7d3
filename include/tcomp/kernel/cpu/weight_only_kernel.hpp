// The weight-only GEMV/GEMM kernels (W8A16, W4A16, W2A16: integer weights, fp32 or bf16 activations),
// templated on the ISA path. Weight layout and arguments: weight_only_args.hpp.
//
// Dequantization is exact on every path: w = fl(s * (u - z)), the oracle's value bit for bit (table formats:
// fl(s * lut[u]); minifloats: fl(s * v), v decoded exactly by shifts; weight_only_args.hpp).
//   AVX-512, 4/2-bit  per row and scale group a 16-entry table T[i] = fl((i - z) * s) (2-bit: i mod 4; table
//                     formats: fl(lut[i] * s)); per 16-k chunk one shift of the row's 16 words (vpsrld) and one
//                     vpermps through T;
//   AVX2, 4-bit       the same 16-entry table, looked up as two vpermps ymm (3 index bits) and a blend on bit 3;
//   AVX2, 2-bit       an 8-entry table and vpermps ymm (3 index bits: i mod 4 again);
//   SSE4.1, table     the 16-entry table read lane by lane (no variable permute on this path);
//   minifloat         widen the bytes, place sign and low 7 bits in a float, one exact multiply, times s;
//   otherwise         unpack (mask, or sign-extend int8), convert to float, subtract z, multiply by s;
//   8-bit, one scale per row, direct driver: the sums of x * (b - z) (b - z skipped when all z are 0, as for
//                     int8 symmetric) are scaled once per output instead of scaling every weight.
// Tables / {z, s} are built per block of 64-byte row lines for a "segment" of chunks sharing one scale group:
// the whole block when groups hold whole blocks (per_channel, W4 g128), 4 chunks for groups of 64 (W2
// g64), else one chunk (any group that is a multiple of 16).
//
// Two drivers:
//   direct  (fewer than direct_rows activation rows: GEMV and small M; streams the weights once)
//       per panel, per block of MR <= 4 activation rows, per block of RB weight rows, per 64-byte block:
//       each row's line is loaded once and dequantized chunk by chunk in registers, each chunk FMAed into an
//       MR x RB array of accumulators whose lanes run along k; at the end each accumulator is summed across
//       its lanes (a tree). X rows are first copied (bf16: widened) into a zero-padded fp32 buffer. The
//       codes and the scale / zero entries are software-prefetched into L2 8 KiB ahead.
//   panel   (GEMM; compute-bound)
//       for each block of MC rows (C^T of the call's panels within 4 MiB), for each block of KC = 256 k:
//       X^T is packed into strips of V rows (V = the path's float lanes; zero padded in m and k; the TM strips
//       a micro-kernel reads interleaved into one stream); for each panel the 16 x KC weights are
//       dequantized once into an L1 buffer and a TN x TM micro-kernel (TN weight rows broadcast, TM strips,
//       TN * TM <= 24 accumulators on AVX-512: 8 x 3, 8 x 2, 16 x 1; AVX2 and SSE4.1: 4 x 2, 8 x 1) runs
//       C^T[n][m] += w[n][k] * X^T[k][m], resuming its accumulators from the C^T buffer between k blocks, so
//       each output is one FMA chain along all of K. Y (+ bias) is written from C^T per row block.
//   Threads: the caller splits panels (or rows) over calls; each call packs its own X^T, so give a call
//   many panels (the front door's contiguous panel ranges do).
//
// Numerics: each output is y = fl(sum + bias), the sum one chain of FMAs along k (SSE4.1: a multiply and an
// add, two roundings per term), plus, in the direct driver, a tree over the V lanes (and the one scaling of
// the 8-bit one-scale case); nothing is reassociated otherwise. tests/test_cpu_weight_only.cpp derives the
// error bound against the oracle from this.
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

#if defined(__x86_64__) || defined(__i386__)

// Each path's wo_ops provides fb (its xsimd float batch), V (its lanes), fma(a, b, c) = a * b + c (fused where
// the path has FMA), hsum(v), and for Bits = 8, 4, 2:
//   build<Bits>(st, s, z, lut)      the state of one row and scale group in 16 floats (a table, or {z, s});
//                                   lut: the 4-bit table format's values, or null (integer codes)
//   load_raw<Bits>(rb) -> raw_t     the register part of a row's 64-byte block (4/2-bit; empty for 8-bit)
//   load_tab<Bits>(st, v) -> tab_t  a state into registers (v: the weights' wo_values)
//   dequant<Bits, J>(rb, raw, h, t) sub-vector h (V lanes) of 16-k chunk J, dequantized (exact)
//   int8_values<J, Sub>(rb, h, t)   8-bit: b - z (Sub) or b, unscaled
//   minifloat<J>(rb, h, t, m)       8-bit minifloat codes, decoded and scaled (exact); m: wo_minifloat_args

/// The minifloat decode's constants in registers: the shift (a count for vpslld) and the scaling 2^(127 - bias).
struct wo_minifloat_args {
    __m128i shift;
    float scale;
    explicit wo_minifloat_args(const weight_only_weights& w) : shift(_mm_cvtsi32_si128(w.mf_shift)), scale(w.mf_scale) {}
};

// ---------------------------------------------------------------------------------------------- SSE4.1
#if defined(__SSE4_1__)
template <>
struct wo_ops<isa::sse41> {
    using arch = xsimd::sse4_1;
    using fb = xsimd::batch<float, arch>;
    static constexpr int V = 4;

    static fb fma(fb a, fb b, fb c) { return a * b + c; }  // no FMA on this path: two roundings

    struct raw_t {
        __m128i v[4];
    };
    struct tab_t {
        fb z, s;
        const float* lut;  // 4-bit table formats: the row's 16 scaled values (read lane by lane); else null
    };
    template <int Bits>
    static void build(float* st, float s, float z, const float* lut) {
        if (Bits == 4 && lut != nullptr) {
            for (int i = 0; i < 16; ++i) st[i] = lut[i] * s;
        } else {
            st[0] = z, st[1] = s;
        }
    }
    template <int Bits>
    static raw_t load_raw(const std::uint8_t* rb) {
        raw_t r{};
        if constexpr (Bits != 8)
            for (int h = 0; h < 4; ++h) r.v[h] = _mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * h));
        return r;
    }
    template <int Bits>
    static tab_t load_tab(const float* st, wo_values v) {
        if (Bits == 4 && v == wo_values::table) return {fb(0.0f), fb(0.0f), st};
        return {fb(st[0]), fb(st[1]), nullptr};
    }
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, const raw_t& raw, int h, const tab_t& t) {
        __m128i u;
        if constexpr (Bits == 8) {
            std::int32_t word;
            std::memcpy(&word, rb + 16 * J + 4 * h, 4);
            u = _mm_cvtepi8_epi32(_mm_cvtsi32_si128(word));
        } else {
            u = _mm_and_si128(_mm_srli_epi32(raw.v[h], Bits * J), _mm_set1_epi32((1 << Bits) - 1));
            if (Bits == 4 && t.lut != nullptr)
                return _mm_setr_ps(t.lut[_mm_cvtsi128_si32(u)], t.lut[_mm_extract_epi32(u, 1)],
                                   t.lut[_mm_extract_epi32(u, 2)], t.lut[_mm_extract_epi32(u, 3)]);
        }
        return (fb(_mm_cvtepi32_ps(u)) - t.z) * t.s;
    }
    template <int J>
    static fb minifloat(const std::uint8_t* rb, int h, const tab_t& t, const wo_minifloat_args& m) {
        std::int32_t word;
        std::memcpy(&word, rb + 16 * J + 4 * h, 4);
        const __m128i b = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word));
        const __m128i mag = _mm_sll_epi32(_mm_and_si128(b, _mm_set1_epi32(0x7F)), m.shift);
        const __m128i sgn = _mm_slli_epi32(_mm_and_si128(b, _mm_set1_epi32(0x80)), 24);
        return fb(_mm_castsi128_ps(_mm_or_si128(mag, sgn))) * fb(m.scale) * t.s;
    }
    /// 8-bit without the scale: b - z (Sub) or b.
    template <int J, bool Sub>
    static fb int8_values(const std::uint8_t* rb, int h, const tab_t& t) {
        std::int32_t word;
        std::memcpy(&word, rb + 16 * J + 4 * h, 4);
        const fb q = _mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(word)));
        if constexpr (Sub) return q - t.z;
        else return q;
    }
    static float hsum(fb v) { return xsimd::hadd(v); }
};

template <>
struct wo_blocking<isa::sse41> {
    static constexpr int direct_rows = 4;  // fewer rows than this: the direct driver
    template <int MR>
    static constexpr int rb = MR == 1 ? 4 : 2;
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

    struct raw_t {
        __m256i v[2];
    };
    struct tab_t {
        fb a, b;  // 2-bit: a = the 8-entry table; 4-bit: a, b = entries 0..7, 8..15 of the table; 8-bit: z, s
    };
    /// 2-bit: T[i] = fl((i mod 4 - z) * s) for i < 8 (vpermps ymm reads 3 index bits); 4-bit: the 16-entry table
    /// T[i] = fl((i - z) * s), or fl(lut[i] * s); 8-bit: {z, s}.
    template <int Bits>
    static void build(float* st, float s, float z, const float* lut) {
        if constexpr (Bits == 2) {
            const fb iota = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f);
            ((iota - fb(z)) * fb(s)).store_aligned(st);
        } else if constexpr (Bits == 4) {
            if (lut != nullptr) {
                (fb::load_unaligned(lut) * fb(s)).store_aligned(st);
                (fb::load_unaligned(lut + 8) * fb(s)).store_aligned(st + 8);
            } else {
                const fb iota = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
                ((iota - fb(z)) * fb(s)).store_aligned(st);
                ((iota + fb(8.0f) - fb(z)) * fb(s)).store_aligned(st + 8);
            }
        } else {
            st[0] = z, st[1] = s;
        }
    }
    template <int Bits>
    static raw_t load_raw(const std::uint8_t* rb) {
        raw_t r{};
        if constexpr (Bits != 8)
            for (int h = 0; h < 2; ++h) r.v[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(rb + 32 * h));
        return r;
    }
    template <int Bits>
    static tab_t load_tab(const float* st, wo_values /*v: the table is built either way*/) {
        if constexpr (Bits == 2) return {fb::load_aligned(st), fb(0.0f)};
        else if constexpr (Bits == 4) return {fb::load_aligned(st), fb::load_aligned(st + 8)};
        else return {fb(st[0]), fb(st[1])};
    }
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, const raw_t& raw, int h, const tab_t& t) {
        if constexpr (Bits == 8) {
            const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + 16 * J + 8 * h));
            return (fb(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))) - t.a) * t.b;
        } else if constexpr (Bits == 2) {
            return _mm256_permutevar8x32_ps(t.a, _mm256_srli_epi32(raw.v[h], 2 * J));
        } else {
            // vpermps reads the low 3 bits of each index; bit 3 (moved to the sign) picks the upper half.
            const __m256i u = _mm256_srli_epi32(raw.v[h], 4 * J);
            const __m256 lo = _mm256_permutevar8x32_ps(t.a, u), hi = _mm256_permutevar8x32_ps(t.b, u);
            return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(u, 28)));
        }
    }
    template <int J>
    static fb minifloat(const std::uint8_t* rb, int h, const tab_t& t, const wo_minifloat_args& m) {
        const __m256i b =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + 16 * J + 8 * h)));
        const __m256i mag = _mm256_sll_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7F)), m.shift);
        const __m256i sgn = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
        return fb(_mm256_castsi256_ps(_mm256_or_si256(mag, sgn))) * fb(m.scale) * t.b;
    }
    template <int J, bool Sub>
    static fb int8_values(const std::uint8_t* rb, int h, const tab_t& t) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + 16 * J + 8 * h));
        const fb q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        if constexpr (Sub) return q - t.a;
        else return q;
    }
    static float hsum(fb v) { return xsimd::hadd(v); }
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

    struct raw_t {
        __m512i v;
    };
    struct tab_t {
        fb a, b;  // 4/2-bit: a = the 16-entry table; 8-bit: a = z, b = s
    };
    /// 4/2-bit: the 16-entry table T[i] = fl((i - z) * s) (2-bit: i mod 4; 4-bit table formats: fl(lut[i] * s));
    /// 8-bit: {z, s}.
    template <int Bits>
    static void build(float* st, float s, float z, const float* lut) {
        if constexpr (Bits == 8) {
            st[0] = z, st[1] = s;
        } else if (Bits == 4 && lut != nullptr) {
            (fb::load_unaligned(lut) * fb(s)).store_aligned(st);
        } else {
            const fb iota = Bits == 4 ? _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f, 11.f,
                                                       12.f, 13.f, 14.f, 15.f)
                                      : _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f, 0.f, 1.f, 2.f, 3.f,
                                                       0.f, 1.f, 2.f, 3.f);
            ((iota - fb(z)) * fb(s)).store_aligned(st);
        }
    }
    /// The states of RB consecutive rows from their scale / zero entries (zero offsets converted 16 at once).
    template <int Bits, int RB>
    static void build_rows(float (*st)[16], const float* scales, const std::int8_t* zeros, const float* lut) {
        if (lut != nullptr) {
#pragma GCC unroll 16
            for (int r = 0; r < RB; ++r) build<Bits>(st[r], scales[r], 0.0f, lut);
            return;
        }
        __m128i zb;
        if constexpr (RB == 16) {
            zb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(zeros));
        } else if constexpr (RB == 8) {
            zb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros));
        } else {
            std::int32_t v = 0;
            std::memcpy(&v, zeros, RB);
            zb = _mm_cvtsi32_si128(v);
        }
        alignas(64) float zf[16];
        _mm512_store_ps(zf, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(zb)));
        // Read zf back from memory (embedded broadcasts) rather than broadcasting register lanes (two
        // port-5 shuffles per row).
        __asm__("" : "+m"(zf));
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) build<Bits>(st[r], scales[r], zf[r], nullptr);
    }
    template <int Bits>
    static raw_t load_raw(const std::uint8_t* rb) {
        if constexpr (Bits != 8) return {_mm512_load_si512(rb)};
        else return {_mm512_setzero_si512()};
    }
    template <int Bits>
    static tab_t load_tab(const float* st, wo_values /*v: 4/2-bit states are tables either way*/) {
        if constexpr (Bits == 8) return {fb(st[0]), fb(st[1])};
        else return {fb::load_aligned(st), fb(0.0f)};
    }
    template <int J>
    static fb minifloat(const std::uint8_t* rb, int /*h*/, const tab_t& t, const wo_minifloat_args& m) {
        const __m512i b = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * J)));
        const __m512i mag = _mm512_sll_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x7F)), m.shift);
        const __m512i sgn = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24);
        return fb(_mm512_castsi512_ps(_mm512_or_si512(mag, sgn))) * fb(m.scale) * t.b;
    }
    template <int Bits, int J>
    static fb dequant(const std::uint8_t* rb, const raw_t& raw, int /*h: one vector per chunk*/, const tab_t& t) {
        if constexpr (Bits == 8) {
            const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * J));
            return (fb(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b))) - t.a) * t.b;
        } else if constexpr (J == 0) {
            return _mm512_permutexvar_ps(raw.v, t.a);
        } else {
            return _mm512_permutexvar_ps(_mm512_srli_epi32(raw.v, Bits * J), t.a);
        }
    }
    template <int J, bool Sub>
    static fb int8_values(const std::uint8_t* rb, int /*h*/, const tab_t& t) {
        const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(rb + 16 * J));
        const fb q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
        if constexpr (Sub) return q - t.a;
        else return q;
    }
    static float hsum(fb v) { return _mm512_reduce_add_ps(v); }
};
template <>
struct wo_ops<isa::avx512bw> : wo_ops_avx512 {};
template <>
struct wo_ops<isa::avx512_vnni> : wo_ops_avx512 {};

struct wo_blocking_avx512 {
    static constexpr int direct_rows = 8;
    template <int MR>
    static constexpr int rb = MR == 1 ? 16 : (MR == 2 ? 8 : 4);
    static constexpr int tm_max = 3;
    template <int TM>
    static constexpr int tn = TM == 1 ? 16 : 8;
};
template <>
struct wo_blocking<isa::avx512bw> : wo_blocking_avx512 {};
template <>
struct wo_blocking<isa::avx512_vnni> : wo_blocking_avx512 {};
#endif

// ---------------------------------------------------------------------------------------------- shared pieces

/// The states of RB consecutive rows: ops::build_rows where the path has it, else row by row.
template <class Ops, int Bits, int RB>
void wo_build_rows(float (*st)[16], const float* scales, const std::int8_t* zeros, const float* lut) {
    if constexpr (Bits != 8 && requires { Ops::template build_rows<Bits, RB>(st, scales, zeros, lut); }) {
        Ops::template build_rows<Bits, RB>(st, scales, zeros, lut);
    } else {
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) Ops::template build<Bits>(st[r], scales[r], static_cast<float>(zeros[r]), lut);
    }
}

/// States of rows [r0, r0 + RB) for the chunks of block kb: st[s][r] holds segment s's (SEG consecutive
/// chunks, one scale group). With one segment per block, rebuilt only when the group changes.
template <class Ops, int Bits, int SEG, int RB>
void wo_block_states(const weight_only_weights& w, index_t p, index_t kb, int r0, float (*st)[16][16],
                     index_t& group_now) {
    constexpr index_t bk = 512 / Bits;
    constexpr int segs = static_cast<int>(bk / 16) / SEG;
    const index_t base = p * w.groups * 16 + r0;
    for (int s = 0; s < segs; ++s) {
        const index_t g = (kb * bk + s * SEG * 16) / w.group;
        if (segs == 1 && g == group_now) continue;
        group_now = g;
        wo_build_rows<Ops, Bits, RB>(st[s], w.scales + base + g * 16, w.zeros + base + g * 16,
                                     w.values == wo_values::table ? w.lut : nullptr);
    }
}

/// Chunks per state segment for these weights: the whole block when groups hold whole blocks, 4 when a
/// block holds groups of 4 chunks (W2 with groups of 64), else 1 (any group that is a multiple of 16).
template <int Bits>
int wo_segment(const weight_only_weights& w) {
    constexpr index_t bk = 512 / Bits;
    if (w.group % bk == 0) return static_cast<int>(bk / 16);
    if (bk / 16 > 4 && w.group == 64) return 4;
    return 1;
}

/// Calls f.template operator()<SEG>() with SEG = wo_segment<Bits>(w) as a constant.
template <int Bits, class F>
void wo_with_segment(const weight_only_weights& w, F&& f) {
    constexpr int j = 512 / Bits / 16;
    const int seg = wo_segment<Bits>(w);
    if (seg == j) f.template operator()<j>();
    else if constexpr (j > 4) {
        if (seg == 4) f.template operator()<4>();
        else f.template operator()<1>();
    } else {
        f.template operator()<1>();
    }
}

// ---------------------------------------------------------------------------------------------- direct driver

/// Software prefetch distance of the direct driver, in 64-byte x 16-row blocks (8 KiB), and its hint: into
/// L2 (an L1 prefetch holds a fill buffer until the line arrives, and those are what limits one core).
inline constexpr index_t wo_prefetch_blocks = 8;
inline constexpr auto wo_prefetch_hint = _MM_HINT_T2;

/// Prefetches base + bytes; integer arithmetic, as the address may lie past the end of the buffer (harmless
/// for a prefetch, undefined for a pointer).
inline void wo_prefetch(const void* base, index_t bytes) {
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(bytes);
    _mm_prefetch(reinterpret_cast<const char*>(at), wo_prefetch_hint);
}

/// Rows [r0, r0 + RB) of panel p against MR activation rows (x: zero-padded fp32, row stride xs >= k_padded,
/// 64-byte aligned): out[m * 16 + r] = sum_k x[m][k] * w[r0 + r][k]. `prefetch`: also prefetch the codes
/// wo_prefetch_blocks ahead (all 16 rows; the next panel's past the end).
template <class Isa, int Bits, int SEG, int MR, int RB, int Mode8>
void wo_direct_rows(const weight_only_weights& w, index_t p, int r0, const float* x, index_t xs, float* out,
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
    alignas(64) float st[J / SEG][16][16];
    index_t group_now = -1;

    const std::uint8_t* codes = w.codes + static_cast<std::size_t>(p) * w.panel_code_bytes;
    const index_t blocks = w.k_padded / bk;
    const wo_minifloat_args mf(w);
    // Mode 4: the format's own table (unscaled) in registers once; each chunk's values are then scaled.
    [[maybe_unused]] alignas(64) float lut[16];  // (SSE4.1's table state points into it)
    typename ops::tab_t lut_tab{};
    if constexpr (Mode8 == 4) {
        std::memcpy(lut, w.lut, sizeof lut);
        lut_tab = ops::template load_tab<Bits>(lut, wo_values::table);
    }
    const float* scales = w.scales + p * w.groups * 16 + r0;
    for (index_t kb = 0; kb < blocks; ++kb) {
        if constexpr (Mode8 != 4) wo_block_states<ops, Bits, SEG, RB>(w, p, kb, r0, st, group_now);
        const std::uint8_t* cb = codes + kb * 16 * 64 + r0 * 64;
        const float* xk = x + kb * bk;
        if (prefetch && r0 == 0) {
            // The scale and zero entries wo_prefetch_blocks ahead (the next panel's past the end: contiguous).
            const index_t cell = (p * w.groups + (kb + wo_prefetch_blocks) * bk / w.group) * 16;
            wo_prefetch(w.scales, cell * static_cast<index_t>(sizeof(float)));
            wo_prefetch(w.zeros, cell);
        }
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) {
            if (prefetch) wo_prefetch(cb, r * 64 + wo_prefetch_blocks * 1024);
            const auto raw = ops::template load_raw<Bits>(cb + r * 64);
            typename ops::tab_t tab;
            [&]<int... Js>(std::integer_sequence<int, Js...>) {
                (
                    [&] {
                        constexpr int j = Js;
                        [[maybe_unused]] fb sv(0.0f);
                        if constexpr (Mode8 == 4) {
                            tab = lut_tab;
                            sv = fb(scales[((kb * bk + 16 * j) / w.group) * 16 + r]);
                        } else if constexpr (j % SEG == 0) {
                            tab = ops::template load_tab<Bits>(st[j / SEG][r], w.values);
                        }
#pragma GCC unroll 4
                        for (int h = 0; h < S; ++h) {
                            fb wv;
                            if constexpr (Mode8 == 0) wv = ops::template dequant<Bits, j>(cb + r * 64, raw, h, tab);
                            else if constexpr (Mode8 == 4) wv = ops::template dequant<Bits, j>(cb + r * 64, raw, h, tab) * sv;
                            else if constexpr (Mode8 == 3) wv = ops::template minifloat<j>(cb + r * 64, h, tab, mf);
                            else wv = ops::template int8_values<j, Mode8 == 1>(cb + r * 64, h, tab);
#pragma GCC unroll 4
                            for (int m = 0; m < MR; ++m)
                                acc[m][r] = ops::fma(wv, fb::load_aligned(xk + m * xs + 16 * j + h * V), acc[m][r]);
                        }
                    }(),
                    ...);
            }(std::make_integer_sequence<int, J>{});
        }
    }
    const float* scale = w.scales + p * w.groups * 16 + r0;  // Mode8 1, 2: one group, scale applied here
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
        for (int r = 0; r < RB; ++r) {
            const float sum = ops::hsum(acc[m][r]);
            out[m * 16 + r] = Mode8 == 1 || Mode8 == 2 ? sum * scale[r] : sum;
        }
}

template <class Isa, int Bits, int SEG, int MR, int Mode8>
void wo_direct_panel(const weight_only_weights& w, index_t p, const float* x, index_t xs, float* out, bool prefetch) {
    constexpr int rb = wo_blocking<Isa>::template rb<MR>;
    for (int r0 = 0; r0 < 16; r0 += rb)
        wo_direct_rows<Isa, Bits, SEG, MR, rb, Mode8>(w, p, r0, x, xs, out + r0, prefetch);
}

/// Rows [m_begin, m_end) (fewer than direct_rows): the codes stream through registers once per block of
/// up to 4 rows.
/// Mode8 (8-bit with one scale group per row only): 1 = sum x * (b - z) and scale the sum, 2 = the same when
/// every zero offset is 0 (int8 symmetric); 0 = dequantize each weight; 3 (8-bit minifloat codes, any groups):
/// decode and scale each weight; 4 (4-bit table formats with a scale group per chunk, e.g. MXFP4's 32): look up
/// the format's own table, kept in registers, and multiply by the chunk's scale, rather than building a scaled
/// table for every chunk of every row (fl(lut[u] * s) either way).
template <class Isa, int Bits, int SEG, int Mode8>
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
    for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
        const index_t n0 = p * 16, n_count = std::min<index_t>(16, w.n - n0);
        for (index_t m0 = 0; m0 < rows;) {
            const index_t left = rows - m0, mr = left >= 4 ? 4 : (left >= 2 ? 2 : 1);
            const float* xb = x + m0 * kp;
            if (mr == 4) wo_direct_panel<Isa, Bits, SEG, 4, Mode8>(w, p, xb, kp, out, m0 == 0);
            else if (mr == 2) wo_direct_panel<Isa, Bits, SEG, 2, Mode8>(w, p, xb, kp, out, m0 == 0);
            else wo_direct_panel<Isa, Bits, SEG, 1, Mode8>(w, p, xb, kp, out, m0 == 0);
            for (index_t i = 0; i < mr; ++i) {
                float* yrow = c.y + (c.m_begin + m0 + i) * c.y_stride + n0;
                const float* o = out + i * 16;
                if (c.bias != nullptr)
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = o[n] + c.bias[n0 + n];
                else
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = o[n];
            }
            m0 += mr;
        }
    }
}

// ---------------------------------------------------------------------------------------------- panel driver

inline constexpr index_t wo_kc = 256;  // k per block (a multiple of every block length)

/// Dequantizes rows 0..15 of panel p, k in [kc, kc + kl), into wb[r * ldw + (k - kc)].
template <class Isa, int Bits, int SEG>
void wo_dequant_panel(const weight_only_weights& w, index_t p, index_t kc, index_t kl, float* wb, index_t ldw) {
    using ops = wo_ops<Isa>;
    using fb = typename ops::fb;
    constexpr int V = ops::V, S = 16 / V;
    constexpr index_t bk = 512 / Bits;
    constexpr int J = static_cast<int>(bk / 16);
    alignas(64) float st[J / SEG][16][16];
    index_t group_now = -1;
    const std::uint8_t* codes = w.codes + static_cast<std::size_t>(p) * w.panel_code_bytes;
    const wo_minifloat_args mf(w);
    const bool minifloat = Bits == 8 && w.values == wo_values::minifloat;
    for (index_t kb = kc / bk; kb < (kc + kl) / bk; ++kb) {
        wo_block_states<ops, Bits, SEG, 16>(w, p, kb, 0, st, group_now);
        const std::uint8_t* cb = codes + kb * 16 * 64;
        float* dst = wb + (kb * bk - kc);
        for (int r = 0; r < 16; ++r, cb += 64, dst += ldw) {
            // The next panel's line: its dequantization follows this panel's micro-kernels.
            if (p + 1 < w.panels) _mm_prefetch(reinterpret_cast<const char*>(cb + w.panel_code_bytes), _MM_HINT_T0);
            const auto raw = ops::template load_raw<Bits>(cb);
            typename ops::tab_t tab;
            [&]<int... Js>(std::integer_sequence<int, Js...>) {
                (
                    [&] {
                        constexpr int j = Js;
                        if constexpr (j % SEG == 0) tab = ops::template load_tab<Bits>(st[j / SEG][r], w.values);
#pragma GCC unroll 4
                        for (int h = 0; h < S; ++h) {
                            fb v;
                            if constexpr (Bits == 8)
                                v = minifloat ? ops::template minifloat<j>(cb, h, tab, mf)
                                              : ops::template dequant<Bits, j>(cb, raw, h, tab);
                            else v = ops::template dequant<Bits, j>(cb, raw, h, tab);
                            v.store_aligned(dst + 16 * j + h * V);
                        }
                    }(),
                    ...);
            }(std::make_integer_sequence<int, J>{});
        }
    }
}
/// C^T[TN rows][TM strips of V] (+)= w[TN rows][kl] * X^T[kl][TM * V]. wb: row stride wo_kc; xt: one group of
/// TM strips as wo_pack_xt lays it out ([k][TM][V]); ct: row stride ldc. `first`: start from zero, not ct.
template <class Isa, int TN, int TM>
void wo_micro(index_t kl, const float* wb, const float* xt, float* ct, index_t ldc, bool first) {
    constexpr index_t ldw = wo_kc;  // a constant row stride: one base register for all TN rows
    using ops = wo_ops<Isa>;
    using fb = typename ops::fb;
    constexpr int V = ops::V;
    fb acc[TN][TM];
#pragma GCC unroll 16
    for (int i = 0; i < TN; ++i)
#pragma GCC unroll 4
        for (int t = 0; t < TM; ++t) acc[i][t] = first ? fb(0.0f) : fb::load_aligned(ct + i * ldc + t * V);
#pragma GCC unroll 2
    for (index_t kk = 0; kk < kl; ++kk) {
        fb xv[TM];
#pragma GCC unroll 4
        for (int t = 0; t < TM; ++t) xv[t] = fb::load_aligned(xt + (kk * TM + t) * V);
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

/// X^T of rows [mb, mb + mc), k in [kc, kc + kl), zero padded: strips of V rows, gathered in groups of
/// TM = min(tm_max, strips - s0) strips (s0 a multiple of tm_max), each group one stream interleaving its
/// strips per k: element (row s * V + t, k) at xt[s0 * kl * V + ((k - kc) * TM + s - s0) * V + t].
template <int V>
void wo_pack_xt(const weight_only_call& c, index_t mb, index_t mc, index_t strips, int tm_max, index_t kc,
                index_t kl, float* xt) {
    const index_t k_end = std::min(kl, std::max<index_t>(c.w->k - kc, 0));
    for (index_t s = 0; s < strips; ++s) {
        const index_t s0 = s / tm_max * tm_max, tm = std::min<index_t>(tm_max, strips - s0);
        for (index_t t = 0; t < V; ++t) {
            float* dst = xt + s0 * kl * V + (s - s0) * V + t;
            const index_t step = tm * V;
            const index_t i = s * V + t;
            index_t kk = 0;
            if (i < mc) {
                const index_t r = mb + i;
                if (c.x != nullptr) {
                    const float* src = c.x + r * c.x_stride + kc;
                    for (; kk < k_end; ++kk) dst[kk * step] = src[kk];
                } else {
                    const std::uint16_t* src = c.x_bf16 + r * c.x_stride + kc;
                    for (; kk < k_end; ++kk) dst[kk * step] = wo_bf16_to_float(src[kk]);
                }
            }
            for (; kk < kl; ++kk) dst[kk * step] = 0.0f;
        }
    }
}

template <class Isa, int TM>
void wo_micro_strips(index_t kl, const float* wb, const float* xt, float* ct, index_t ldc, bool first) {
    constexpr int tn = wo_blocking<Isa>::template tn<TM>;
    for (int nt = 0; nt < 16; nt += tn)
        wo_micro<Isa, tn, TM>(kl, wb + nt * wo_kc, xt, ct + nt * ldc, ldc, first);
}

template <class Isa, int Bits, int SEG>
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
            wo_pack_xt<V>(c, mb, mc, strips, blocking::tm_max, kc, kl, xt);
            for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
                wo_dequant_panel<Isa, Bits, SEG>(w, p, kc, kl, wb, wo_kc);
                float* cp = ct + (p - c.panel_begin) * 16 * mcp;
                for (index_t s0 = 0; s0 < strips; s0 += blocking::tm_max) {
                    const index_t tm = std::min<index_t>(blocking::tm_max, strips - s0);
                    const float* xs = xt + s0 * kl * V;
                    float* cs = cp + s0 * V;
                    if constexpr (blocking::tm_max >= 3)
                        if (tm == 3) {
                            wo_micro_strips<Isa, 3>(kl, wb, xs, cs, mcp, kc == 0);
                            continue;
                        }
                    if (tm == 2) wo_micro_strips<Isa, 2>(kl, wb, xs, cs, mcp, kc == 0);
                    else wo_micro_strips<Isa, 1>(kl, wb, xs, cs, mcp, kc == 0);
                }
            }
        }
        // Y = (C^T)^T (+ bias), panel by panel: a panel's 16 C^T lines stay in L1 while its rows are written.
        for (index_t p = c.panel_begin; p < c.panel_end; ++p) {
            const float* cp = ct + (p - c.panel_begin) * 16 * mcp;
            const index_t n0 = p * 16, n_count = std::min<index_t>(16, w.n - n0);
            for (index_t i = 0; i < mc; ++i) {
                float* yrow = c.y + (mb + i) * c.y_stride + n0;
                if (c.bias != nullptr)
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = cp[n * mcp + i] + c.bias[n0 + n];
                else
                    for (index_t n = 0; n < n_count; ++n) yrow[n] = cp[n * mcp + i];
            }
        }
    }
}

template <class Isa, int Bits>
void wo_run(const weight_only_call& c) {
    const bool direct = c.m_end - c.m_begin < wo_blocking<Isa>::direct_rows;
    if constexpr (Bits == 8) {
        if (c.w->values == wo_values::minifloat) {
            wo_with_segment<8>(*c.w, [&]<int SEG>() {
                if (direct) wo_run_direct<Isa, 8, SEG, 3>(c);
                else wo_run_panels<Isa, 8, SEG>(c);
            });
            return;
        }
        // One scale per row (per_channel, per_tensor): scale the sums rather than every weight.
        if (direct && c.w->groups == 1) {
            constexpr int seg = 4;
            if (c.w->zero_free) wo_run_direct<Isa, 8, seg, 2>(c);
            else wo_run_direct<Isa, 8, seg, 1>(c);
            return;
        }
    }
    if constexpr (Bits == 4) {
        if (direct && c.w->values == wo_values::table && wo_segment<4>(*c.w) == 1) {
            wo_run_direct<Isa, 4, 1, 4>(c);
            return;
        }
    }
    wo_with_segment<Bits>(*c.w, [&]<int SEG>() {
        if (direct) wo_run_direct<Isa, Bits, SEG, 0>(c);
        else wo_run_panels<Isa, Bits, SEG>(c);
    });
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
