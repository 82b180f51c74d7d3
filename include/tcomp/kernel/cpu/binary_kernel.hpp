// The binary GEMM/GEMV kernel (W1A1: xnor + popcount), templated on the ISA path. Arithmetic and weight
// layout: binary_args.hpp.
//
// Outer-product register blocking, no horizontal sums: a vector holds the same 64-bit word of L consecutive
// weight rows (L = 2, 4, 8 for xmm, ymm, zmm), an activation word is broadcast against it, so each 64-bit
// lane counts the mismatches of one output. The micro-kernel keeps MR activation rows x NV weight vectors
// of counts in registers over all of K:
//
//   for each super-block of activation rows (<= 256 KiB of bits, so it stays in L2):
//     for each block of NV * L weight rows (stays in L1):
//       for each block of MR activation rows:   micro-kernel over all of K, then the float epilogue
//
// Popcount per path (and what one Sapphire Rapids core reaches at N = K = 4096, M >= 16):
//   avx512bw, avx512_vnni   VPOPCNTQ (AVX512-VPOPCNTDQ, chosen at run time: the paths' flags lack it, so
//                           the blocks using it are compiled with a target attribute): xor, popcnt, add per
//                           512 bits, 1.5 cycles on two ports (~2.4 TOP/s). Without it, the vpshufb nibble
//                           table on zmm, each nibble index one vpternlogq ((x ^ w) & 0xF, on operands
//                           pre-shifted by 4) (~1.1 TOP/s).
//   avx2, avx_vnni, sse41   vpshufb nibble table: per byte, table[lo] + table[hi], accumulated in bytes for
//                           up to 31 words (31 * 8 < 256), then vpsadbw sums each lane's 8 bytes (~0.67
//                           TOP/s on ymm, ~0.3 on xmm).
// The epilogue follows the oracle's float order: y = 0; y += float(K - 2P) * (Sx * Sw); y += bias.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "tcomp/kernel/cpu/binary_args.hpp"
#include "tcomp/kernel/cpu/isa.hpp"
#include "tcomp/kernel/cpu/simd_int_ops.hpp"

namespace tcomp::cpu::detail {

#if defined(__x86_64__) || defined(__i386__)

// Full unrolling of the register-tile loops, so the accumulators live in registers at -O2 too.
#define TCOMP_BINARY_UNROLL _Pragma("GCC unroll 16")

/// Vector operations of the table (vpshufb) popcount, per path. Specialised only where the translation
/// unit's flags allow (the per-path sources instantiate them).
template <class Isa>
struct binary_ops;

#if defined(__SSSE3__)
template <>
struct binary_ops<isa::sse41> {
    using vec = __m128i;
    static constexpr int lanes = 2;  // 64-bit lanes (outputs) per vector
    static vec zero() { return _mm_setzero_si128(); }
    static vec load(const std::uint64_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    static vec broadcast(const std::uint64_t* p) {
        return _mm_castpd_si128(_mm_loaddup_pd(reinterpret_cast<const double*>(p)));
    }
    using x_operand = vec;
    using w_operand = vec;
    static x_operand prepare_x(const std::uint64_t* p) { return broadcast(p); }
    static w_operand prepare_w(const std::uint64_t* p) { return load(p); }
    static vec table() { return _mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4); }
    static vec nibbles() { return _mm_set1_epi8(0x0F); }
    /// acc (bytes) += popcount of each byte of a ^ b.
    static vec step(vec acc, vec a, vec b, vec table, vec nibbles) {
        const vec t = _mm_xor_si128(a, b);
        const vec lo = _mm_and_si128(t, nibbles), hi = _mm_and_si128(_mm_srli_epi16(t, 4), nibbles);
        return _mm_add_epi8(acc, _mm_add_epi8(_mm_shuffle_epi8(table, lo), _mm_shuffle_epi8(table, hi)));
    }
    /// out[lane] += the sum of the lane's 8 byte counts.
    static void flush(std::int32_t* out, vec acc) {
        const vec sums = _mm_shuffle_epi32(_mm_sad_epu8(acc, _mm_setzero_si128()), 0x08);
        const vec old = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(out));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_add_epi32(old, sums));
    }
};
#endif

#if defined(__AVX2__)
struct binary_ops_avx2 {
    using vec = __m256i;
    static constexpr int lanes = 4;
    static vec zero() { return _mm256_setzero_si256(); }
    static vec load(const std::uint64_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static vec broadcast(const std::uint64_t* p) { return _mm256_set1_epi64x(static_cast<long long>(*p)); }
    using x_operand = vec;
    using w_operand = vec;
    static x_operand prepare_x(const std::uint64_t* p) { return broadcast(p); }
    static w_operand prepare_w(const std::uint64_t* p) { return load(p); }
    static vec table() {
        return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                3, 3, 4);
    }
    static vec nibbles() { return _mm256_set1_epi8(0x0F); }
    static vec step(vec acc, vec a, vec b, vec table, vec nibbles) {
        const vec t = _mm256_xor_si256(a, b);
        const vec lo = _mm256_and_si256(t, nibbles), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), nibbles);
        return _mm256_add_epi8(acc, _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi)));
    }
    static void flush(std::int32_t* out, vec acc) {
        const vec sums = _mm256_sad_epu8(acc, _mm256_setzero_si256());
        const vec packed = _mm256_permutevar8x32_epi32(sums, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        const __m128i old = _mm_loadu_si128(reinterpret_cast<const __m128i*>(out));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_add_epi32(old, _mm256_castsi256_si128(packed)));
    }
};
template <>
struct binary_ops<isa::avx2> : binary_ops_avx2 {};
template <>
struct binary_ops<isa::avx_vnni> : binary_ops_avx2 {};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
struct binary_ops_avx512 {
    using vec = __m512i;
    static constexpr int lanes = 8;
    static vec zero() { return _mm512_setzero_si512(); }
    static vec load(const std::uint64_t* p) { return _mm512_loadu_si512(p); }
    static vec broadcast(const std::uint64_t* p) { return _mm512_set1_epi64(static_cast<long long>(*p)); }
    /// Operands with their high nibbles pre-shifted (once per activation row / weight vector), so that
    /// each nibble index is one vpternlogq: (x ^ w) & 0x0F and ((x >> 4) ^ (w >> 4)) & 0x0F.
    struct operand {
        vec v, high;
    };
    using x_operand = operand;
    using w_operand = operand;
    static operand prepare_x(const std::uint64_t* p) {
        const vec v = broadcast(p);
        return {v, _mm512_srli_epi64(v, 4)};
    }
    static operand prepare_w(const std::uint64_t* p) {
        const vec v = load(p);
        return {v, _mm512_srli_epi64(v, 4)};
    }
    static vec table() {
        // Bytes 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4 in each 128-bit lane.
        constexpr long long lo = 0x0302020102010100LL, hi = 0x0403030203020201LL;
        return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
    }
    static vec nibbles() { return _mm512_set1_epi8(0x0F); }
    static vec step(vec acc, const operand& a, const operand& b, vec table, vec nibbles) {
        constexpr int xor_and = 0x28;  // (A ^ B) & C
        const vec lo = _mm512_ternarylogic_epi64(a.v, b.v, nibbles, xor_and);
        const vec hi = _mm512_ternarylogic_epi64(a.high, b.high, nibbles, xor_and);
        return _mm512_add_epi8(acc, _mm512_add_epi8(_mm512_shuffle_epi8(table, lo), _mm512_shuffle_epi8(table, hi)));
    }
    static void flush(std::int32_t* out, vec acc) {
        const __m256i sums = _mm512_maskz_cvtepi64_epi32(0xFF, _mm512_sad_epu8(acc, _mm512_setzero_si512()));
        const __m256i old = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi32(old, sums));
    }
};
template <>
struct binary_ops<isa::avx512bw> : binary_ops_avx512 {};
template <>
struct binary_ops<isa::avx512_vnni> : binary_ops_avx512 {};
#endif

/// Register blocking: MR activation rows x NV weight vectors (NV * lanes weight rows) per micro-kernel.
template <class Isa>
struct binary_blocking;
// Measured on a Sapphire Rapids core (N = K = 4096): every choice with the accumulators in registers runs
// at the popcount's port limit, so the smallest tiles that reach it are used (fewer tail instantiations).
template <>
struct binary_blocking<isa::sse41> { static constexpr int mr = 2, nv = 4; };
template <>
struct binary_blocking<isa::avx2> { static constexpr int mr = 2, nv = 4; };
template <>
struct binary_blocking<isa::avx_vnni> { static constexpr int mr = 2, nv = 4; };
template <>
struct binary_blocking<isa::avx512bw> { static constexpr int mr = 3, nv = 4; };
template <>
struct binary_blocking<isa::avx512_vnni> { static constexpr int mr = 3, nv = 4; };
/// The same with VPOPCNTQ: xor, popcount and add per 512 bits, 1.5 cycles on two ports.
inline constexpr int binary_vpopcnt_mr = 4, binary_vpopcnt_nv = 4;

/// One block of weight rows [r0, r0 + NV * lanes) (r0 a multiple of the lanes, inside the padded rows).
struct binary_block {
    const binary_call* c = nullptr;
    index_t r0 = 0;
    index_t words = 0, x_stride = 0;
};

/// Pointer to word 0 of the vector holding rows [row, row + lanes) (same panel).
inline const std::uint64_t* binary_row_words(const binary_weights& w, index_t row) {
    const index_t panel = row / binary_panel_rows;
    return w.bits + panel * w.words * binary_panel_rows + (row - panel * binary_panel_rows);
}

/// The epilogue of an MR x C tile of mismatch counts P (rows m0.., weight rows r0..): the oracle's float order.
template <class Isa, int MR, int C>
void binary_epilogue(const binary_block& b, const std::int32_t (&counts)[MR][C], index_t m0) {
    using arch = typename int_ops<Isa>::xsimd_arch;
    using fbatch = xsimd::batch<float, arch>;
    using ibatch = xsimd::batch<std::int32_t, arch>;
    constexpr int width = static_cast<int>(fbatch::size);
    static_assert(C % width == 0, "binary tile width must be a multiple of the float batch");
    const binary_call& c = *b.c;
    const binary_weights& w = *c.w;
    const index_t lo = std::max(b.r0, c.n_begin), hi = std::min(b.r0 + C, c.n_end);
    if (lo >= hi) return;
    const bool full = lo == b.r0 && hi == b.r0 + C;
    const ibatch k(static_cast<std::int32_t>(w.k));
    for (int i = 0; i < MR; ++i) {
        const fbatch sx(c.x_scale[m0 + i]);
        float* yrow = c.y + (m0 + i) * c.y_stride;
        alignas(64) float tile[C];
        for (int j = 0; j < C; j += width) {
            const ibatch p = ibatch::load_aligned(&counts[i][j]);
            const ibatch acc = k - (p + p);
            const fbatch product = xsimd::to_float(acc) * (sx * fbatch::load_unaligned(w.scales + b.r0 + j));
            fbatch out = fbatch(0.0f) + product;
            if (full) {
                if (c.bias != nullptr) out = out + fbatch::load_unaligned(c.bias + b.r0 + j);
                out.store_unaligned(yrow + b.r0 + j);
            } else {
                out.store_aligned(tile + j);
            }
        }
        if (!full) {
            if (c.bias != nullptr)
                for (index_t n = lo; n < hi; ++n) yrow[n] = tile[n - b.r0] + c.bias[n];
            else
                for (index_t n = lo; n < hi; ++n) yrow[n] = tile[n - b.r0];
        }
    }
}

// ------------------------------------------------------------------ table popcount (every path)

template <class Isa, int MR, int NV>
void binary_tile_table(const binary_block& b, const std::uint64_t* const* wv, index_t m0) {
    using ops = binary_ops<Isa>;
    using vec = typename ops::vec;
    constexpr int lanes = ops::lanes;
    alignas(64) std::int32_t counts[MR][NV * lanes] = {};
    const std::uint64_t* xr[MR];
    TCOMP_BINARY_UNROLL
    for (int i = 0; i < MR; ++i) xr[i] = b.c->x_bits + (m0 + i) * b.x_stride;
    const vec table = ops::table(), nibbles = ops::nibbles();
    for (index_t j0 = 0; j0 < b.words; j0 += 31) {  // byte counters hold 31 words of 8 bits
        const index_t j1 = std::min(b.words, j0 + 31);
        vec acc[MR][NV];
        TCOMP_BINARY_UNROLL
        for (int i = 0; i < MR; ++i)
            TCOMP_BINARY_UNROLL
            for (int v = 0; v < NV; ++v) acc[i][v] = ops::zero();
        for (index_t j = j0; j < j1; ++j) {
            typename ops::w_operand wj[NV];
            TCOMP_BINARY_UNROLL
            for (int v = 0; v < NV; ++v) wj[v] = ops::prepare_w(wv[v] + j * binary_panel_rows);
            TCOMP_BINARY_UNROLL
            for (int i = 0; i < MR; ++i) {
                const typename ops::x_operand xj = ops::prepare_x(xr[i] + j);
                TCOMP_BINARY_UNROLL
                for (int v = 0; v < NV; ++v) acc[i][v] = ops::step(acc[i][v], xj, wj[v], table, nibbles);
            }
        }
        TCOMP_BINARY_UNROLL
        for (int i = 0; i < MR; ++i)
            TCOMP_BINARY_UNROLL
            for (int v = 0; v < NV; ++v) ops::flush(&counts[i][v * lanes], acc[i][v]);
    }
    binary_epilogue<Isa, MR, NV * lanes>(b, counts, m0);
}

/// Rows [rows == R] of the final partial row block: picks the MR = R instantiation.
template <class Isa, int NV, int R>
void binary_tail_table(int rows, const binary_block& b, const std::uint64_t* const* wv, index_t m0) {
    if constexpr (R >= 1) {
        if (rows == R) binary_tile_table<Isa, R, NV>(b, wv, m0);
        else binary_tail_table<Isa, NV, R - 1>(rows, b, wv, m0);
    }
}

template <class Isa, int NV>
void binary_rows_table(const binary_block& b, index_t m_begin, index_t m_end) {
    constexpr int mr = binary_blocking<Isa>::mr, lanes = binary_ops<Isa>::lanes;
    const std::uint64_t* wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = binary_row_words(*b.c->w, b.r0 + v * lanes);
    index_t m = m_begin;
    for (; m + mr <= m_end; m += mr) binary_tile_table<Isa, mr, NV>(b, wv, m);
    if (m < m_end) binary_tail_table<Isa, NV, mr - 1>(static_cast<int>(m_end - m), b, wv, m);
}

// ------------------------------------------------------------------ VPOPCNTQ (AVX-512 paths, run-time choice)

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define TCOMP_BINARY_VPOPCNT __attribute__((target("avx512vpopcntdq")))

template <class Isa, int MR, int NV>
TCOMP_BINARY_VPOPCNT inline void binary_tile_vpopcnt(const binary_block& b, const std::uint64_t* const* wv,
                                                     index_t m0) {
    alignas(64) std::int32_t counts[MR][NV * 8];
    const std::uint64_t* xr[MR];
    TCOMP_BINARY_UNROLL
    for (int i = 0; i < MR; ++i) xr[i] = b.c->x_bits + (m0 + i) * b.x_stride;
    __m512i acc[MR][NV];
    TCOMP_BINARY_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_BINARY_UNROLL
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
    for (index_t j = 0; j < b.words; ++j) {
        __m512i wj[NV];
        TCOMP_BINARY_UNROLL
        for (int v = 0; v < NV; ++v) wj[v] = _mm512_loadu_si512(wv[v] + j * binary_panel_rows);
        TCOMP_BINARY_UNROLL
        for (int i = 0; i < MR; ++i) {
            const __m512i xj = _mm512_set1_epi64(static_cast<long long>(xr[i][j]));
            TCOMP_BINARY_UNROLL
            for (int v = 0; v < NV; ++v)
                acc[i][v] = _mm512_add_epi64(acc[i][v], _mm512_popcnt_epi64(_mm512_xor_si512(xj, wj[v])));
        }
    }
    TCOMP_BINARY_UNROLL
    for (int i = 0; i < MR; ++i)
        TCOMP_BINARY_UNROLL
        for (int v = 0; v < NV; ++v)
            _mm256_store_si256(reinterpret_cast<__m256i*>(&counts[i][v * 8]),
                               _mm512_maskz_cvtepi64_epi32(0xFF, acc[i][v]));
    binary_epilogue<Isa, MR, NV * 8>(b, counts, m0);
}

template <class Isa, int NV, int R>
TCOMP_BINARY_VPOPCNT inline void binary_tail_vpopcnt(int rows, const binary_block& b, const std::uint64_t* const* wv,
                                                     index_t m0) {
    if constexpr (R >= 1) {
        if (rows == R) binary_tile_vpopcnt<Isa, R, NV>(b, wv, m0);
        else binary_tail_vpopcnt<Isa, NV, R - 1>(rows, b, wv, m0);
    }
}

/// One weight block against activation rows [m_begin, m_end): the unit the run-time VPOPCNTQ choice
/// dispatches to (a whole block, so the call is amortised).
template <class Isa, int NV>
TCOMP_BINARY_VPOPCNT __attribute__((noinline)) void binary_rows_vpopcnt(const binary_block& b, index_t m_begin,
                                                                       index_t m_end) {
    constexpr int mr = binary_vpopcnt_mr;
    const std::uint64_t* wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = binary_row_words(*b.c->w, b.r0 + v * 8);
    index_t m = m_begin;
    for (; m + mr <= m_end; m += mr) binary_tile_vpopcnt<Isa, mr, NV>(b, wv, m);
    if (m < m_end) binary_tail_vpopcnt<Isa, NV, mr - 1>(static_cast<int>(m_end - m), b, wv, m);
}

#undef TCOMP_BINARY_VPOPCNT
#endif

// ------------------------------------------------------------------ driver

template <class Isa, bool Vpopcnt>
void binary_driver(const binary_call& c) {
    const binary_weights& w = *c.w;
    constexpr int lanes = binary_ops<Isa>::lanes;
    constexpr int nv = Vpopcnt ? binary_vpopcnt_nv : binary_blocking<Isa>::nv;
    constexpr int mr = Vpopcnt ? binary_vpopcnt_mr : binary_blocking<Isa>::mr;
    constexpr index_t block_rows = nv * lanes;
    // A final block shorter than block_rows is one panel (the padded rows are whole panels).
    constexpr int nv_small = block_rows > binary_panel_rows ? static_cast<int>(binary_panel_rows / lanes) : nv;

    binary_block b;
    b.c = &c;
    b.words = w.words;
    b.x_stride = c.x_stride > 0 ? c.x_stride : w.words;
    const index_t row_begin = c.n_begin / binary_panel_rows * binary_panel_rows;
    const index_t row_end =
        std::min((c.n_end + binary_panel_rows - 1) / binary_panel_rows, w.panels) * binary_panel_rows;
    // Rows of X per super-block: about 256 KiB of bits, a multiple of MR.
    const index_t super_rows =
        std::max<index_t>(mr, (index_t{256} * 1024 / std::max<index_t>(b.x_stride * 8, 1)) / mr * mr);

    auto run = [&]<int NV>(index_t ms, index_t me) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
        if constexpr (Vpopcnt) {
            binary_rows_vpopcnt<Isa, NV>(b, ms, me);
            return;
        }
#endif
        if constexpr (!Vpopcnt) binary_rows_table<Isa, NV>(b, ms, me);
    };
    for (index_t ms = c.m_begin; ms < c.m_end; ms += super_rows) {
        const index_t me = std::min(ms + super_rows, c.m_end);
        for (index_t r = row_begin; r < row_end;) {
            b.r0 = r;
            if (row_end - r >= block_rows) {
                run.template operator()<nv>(ms, me);
                r += block_rows;
            } else {
                run.template operator()<nv_small>(ms, me);
                r += nv_small * lanes;
            }
        }
    }
}

/// Kernel-table entry: Y rows [m_begin, m_end) x columns [n_begin, n_end).
template <class Isa>
void binary_kernel(const binary_call& c) {
    if (c.m_begin >= c.m_end || c.n_begin >= c.n_end) return;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if constexpr (Isa::vector_bytes == 64) {
        static const bool has_vpopcnt = cpu_has_avx512_vpopcntdq();
        if (has_vpopcnt && binary_vpopcnt_mode().load(std::memory_order_relaxed) != 0) {
            binary_driver<Isa, true>(c);
            return;
        }
    }
#endif
    binary_driver<Isa, false>(c);
}

#undef TCOMP_BINARY_UNROLL

#endif  // x86

}  // namespace tcomp::cpu::detail
