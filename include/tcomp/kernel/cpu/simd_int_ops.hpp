// Integer vector operations of each ISA path, behind one interface so the kernels are written once.
//
// The central operation is the vpdpbusd contract: per 32-bit lane, acc += sum of 4 products u8 x s8
// (u: activation bytes, broadcast; w: weight bytes). VNNI paths have it as one instruction; the others
// emulate it exactly:
//   full range (8-bit weights)   split even/odd bytes into 16-bit lanes, two vpmaddwd (no saturation);
//   small weights (|w| <= 64)    vpmaddubsw then vpmaddwd with ones: 255 * 64 * 2 fits int16, so it is exact.
// xsimd 8.1 has no VNNI wrappers, so these are intrinsics; float work uses xsimd batches (xsimd_arch).
//
// Only meaningful in a translation unit compiled with the path's flags (src/cpu/<path>.cpp).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 intrinsics (the _mm512_undefined_* operands;
// GCC PR 105593, fixed in 13). The diagnostic is located in the intrinsic headers, so it is silenced for
// them only, by including them here first.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#endif
#include <xsimd/xsimd.hpp>

#include "tcomp/kernel/cpu/isa.hpp"

namespace tcomp::cpu::detail {

template <class Isa>
struct int_ops;

#if defined(__x86_64__) || defined(__i386__)

inline std::int32_t load_i32(const void* p) {
    std::int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// ------------------------------------------------------------------ SSE4.1 (4 rows per vector)
template <>
struct int_ops<isa::sse41> {
    using vec = __m128i;
    using xsimd_arch = xsimd::sse4_1;
    static constexpr int lanes = 4;
    static constexpr int bytes = 16;
    static constexpr bool vnni = false;

    static vec zero() { return _mm_setzero_si128(); }
    static vec load(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
    static void store(void* p, vec v) { _mm_storeu_si128(static_cast<__m128i*>(p), v); }
    static vec broadcast4(const void* p) { return _mm_set1_epi32(load_i32(p)); }
    static vec set1_8(int v) { return _mm_set1_epi8(static_cast<char>(v)); }
    static vec and_(vec a, vec b) { return _mm_and_si128(a, b); }
    static vec sub8(vec a, vec b) { return _mm_sub_epi8(a, b); }
    template <int S>
    static vec srli16(vec a) { return _mm_srli_epi16(a, S); }

    struct full_operand { vec even, odd; };
    static full_operand split_u(vec u) { return {_mm_and_si128(u, _mm_set1_epi16(0xFF)), _mm_srli_epi16(u, 8)}; }
    static full_operand split_w(vec w) { return {_mm_srai_epi16(_mm_slli_epi16(w, 8), 8), _mm_srai_epi16(w, 8)}; }
    static vec dot_full(vec acc, const full_operand& u, const full_operand& w) {
        return _mm_add_epi32(acc, _mm_add_epi32(_mm_madd_epi16(u.even, w.even), _mm_madd_epi16(u.odd, w.odd)));
    }
    static vec dot_small(vec acc, vec u, vec w) {
        return _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(u, w), _mm_set1_epi16(1)));
    }
    static vec sub32(vec a, vec b) { return _mm_sub_epi32(a, b); }
    /// c * sums (the correction of the activation's offset, see int_dot_args.hpp).
    static vec mul_c(std::int32_t c, const std::int32_t* sums) { return _mm_mullo_epi32(_mm_set1_epi32(c), load(sums)); }
    /// tile += float(a) * (sx * scales) with a = acc - c * sums already applied.
    static void epilogue_int(vec a, float sx, const float* scales, float* tile) {
        const __m128 s = _mm_mul_ps(_mm_set1_ps(sx), _mm_loadu_ps(scales));
        _mm_store_ps(tile, _mm_add_ps(_mm_load_ps(tile), _mm_mul_ps(_mm_cvtepi32_ps(a), s)));
    }
    /// Stores the low byte of each int32 lane (values in 0..255).
    static void store_bytes(std::uint8_t* out, vec v32) {
        const __m128i w16 = _mm_packus_epi32(v32, v32);
        const __m128i b8 = _mm_packus_epi16(w16, w16);
        const std::int32_t word = _mm_cvtsi128_si32(b8);
        std::memcpy(out, &word, 4);
    }
};

// ------------------------------------------------------------------ AVX2 / AVX-VNNI (8 rows per vector)
template <bool Vnni>
struct avx2_int_ops {
    using vec = __m256i;
    using xsimd_arch = xsimd::avx2;
    static constexpr int lanes = 8;
    static constexpr int bytes = 32;
    static constexpr bool vnni = Vnni;

    static vec zero() { return _mm256_setzero_si256(); }
    static vec load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
    static void store(void* p, vec v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
    static vec broadcast4(const void* p) { return _mm256_set1_epi32(load_i32(p)); }
    static vec set1_8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
    static vec and_(vec a, vec b) { return _mm256_and_si256(a, b); }
    static vec sub8(vec a, vec b) { return _mm256_sub_epi8(a, b); }
    template <int S>
    static vec srli16(vec a) { return _mm256_srli_epi16(a, S); }

    struct full_operand { vec even, odd; };
    static full_operand split_u(vec u) {
        return {_mm256_and_si256(u, _mm256_set1_epi16(0xFF)), _mm256_srli_epi16(u, 8)};
    }
    static full_operand split_w(vec w) {
        return {_mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), _mm256_srai_epi16(w, 8)};
    }
    static vec dot_full(vec acc, const full_operand& u, const full_operand& w) {
        return _mm256_add_epi32(acc,
                                _mm256_add_epi32(_mm256_madd_epi16(u.even, w.even), _mm256_madd_epi16(u.odd, w.odd)));
    }
    static vec dot_small(vec acc, vec u, vec w) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, w), _mm256_set1_epi16(1)));
    }
#if defined(__AVXVNNI__)
    static vec dot_vnni(vec acc, vec u, vec w) { return _mm256_dpbusd_avx_epi32(acc, u, w); }
#endif
    static vec sub32(vec a, vec b) { return _mm256_sub_epi32(a, b); }
    static vec mul_c(std::int32_t c, const std::int32_t* sums) {
        return _mm256_mullo_epi32(_mm256_set1_epi32(c), load(sums));
    }
    static void epilogue_int(vec a, float sx, const float* scales, float* tile) {
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sx), _mm256_loadu_ps(scales));
        _mm256_store_ps(tile, _mm256_add_ps(_mm256_load_ps(tile), _mm256_mul_ps(_mm256_cvtepi32_ps(a), s)));
    }
    static void store_bytes(std::uint8_t* out, vec v32) {
        const __m128i lo = _mm256_castsi256_si128(v32), hi = _mm256_extracti128_si256(v32, 1);
        const __m128i w16 = _mm_packus_epi32(lo, hi);
        const __m128i b8 = _mm_packus_epi16(w16, w16);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out), b8);
    }
};
template <>
struct int_ops<isa::avx2> : avx2_int_ops<false> {};
template <>
struct int_ops<isa::avx_vnni> : avx2_int_ops<true> {};

// ------------------------------------------------------------------ AVX-512 (16 rows per vector)
template <bool Vnni>
struct avx512_int_ops {
    using vec = __m512i;
    using xsimd_arch = xsimd::avx512bw;
    static constexpr int lanes = 16;
    static constexpr int bytes = 64;
    static constexpr bool vnni = Vnni;

    static vec zero() { return _mm512_setzero_si512(); }
    static vec load(const void* p) { return _mm512_loadu_si512(p); }
    static void store(void* p, vec v) { _mm512_storeu_si512(p, v); }
    static vec broadcast4(const void* p) { return _mm512_set1_epi32(load_i32(p)); }
    static vec set1_8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
    static vec and_(vec a, vec b) { return _mm512_and_si512(a, b); }
    static vec sub8(vec a, vec b) { return _mm512_sub_epi8(a, b); }
    template <int S>
    static vec srli16(vec a) { return _mm512_srli_epi16(a, S); }

    struct full_operand { vec even, odd; };
    static full_operand split_u(vec u) {
        return {_mm512_and_si512(u, _mm512_set1_epi16(0xFF)), _mm512_srli_epi16(u, 8)};
    }
    static full_operand split_w(vec w) {
        return {_mm512_srai_epi16(_mm512_slli_epi16(w, 8), 8), _mm512_srai_epi16(w, 8)};
    }
    static vec dot_full(vec acc, const full_operand& u, const full_operand& w) {
        return _mm512_add_epi32(acc,
                                _mm512_add_epi32(_mm512_madd_epi16(u.even, w.even), _mm512_madd_epi16(u.odd, w.odd)));
    }
    static vec dot_small(vec acc, vec u, vec w) {
        return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, w), _mm512_set1_epi16(1)));
    }
#if defined(__AVX512VNNI__)
    static vec dot_vnni(vec acc, vec u, vec w) { return _mm512_dpbusd_epi32(acc, u, w); }
#endif
    static vec sub32(vec a, vec b) { return _mm512_sub_epi32(a, b); }
    static vec mul_c(std::int32_t c, const std::int32_t* sums) {
        return _mm512_mullo_epi32(_mm512_set1_epi32(c), load(sums));
    }
    static void epilogue_int(vec a, float sx, const float* scales, float* tile) {
        const __m512 s = _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_loadu_ps(scales));
        _mm512_store_ps(tile, _mm512_add_ps(_mm512_load_ps(tile), _mm512_mul_ps(_mm512_cvtepi32_ps(a), s)));
    }
    static void store_bytes(std::uint8_t* out, vec v32) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(v32));
    }
};
template <>
struct int_ops<isa::avx512bw> : avx512_int_ops<false> {};
template <>
struct int_ops<isa::avx512_vnni> : avx512_int_ops<true> {};

#endif  // x86

}  // namespace tcomp::cpu::detail
