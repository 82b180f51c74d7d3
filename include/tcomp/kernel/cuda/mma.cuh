// The PTX the kernels are built from, one inline function each: asynchronous global->shared copies
// (cp.async, sm_80+) and the warp-level tensor-core instructions (mma.sync s8 / f16 / bf16, and
// mma.sp::ordered_metadata s8 for 2:4 weights). Register layouts: kernel/cuda/fragments.hpp.
// Every function here is device code for sm_80 and newer; the library's CUDA targets are sm_80 and sm_90.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace tcomp::cuda::detail {

__device__ __forceinline__ std::uint32_t shared_address(const void* p) {
    return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// Copies 16 bytes global -> shared; when `valid` is false the 16 shared bytes are zero-filled instead
/// (src-size 0: nothing is read, so the source may be out of bounds).
__device__ __forceinline__ void copy_16_async(void* shared, const void* global, bool valid) {
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)), "l"(global),
                 "r"(src_bytes)
                 : "memory");
}
/// Copies 4 bytes global -> shared (zero-filled when `valid` is false): per-group scales and zero points.
__device__ __forceinline__ void copy_4_async(void* shared, const void* global, bool valid) {
    const int src_bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(shared)), "l"(global),
                 "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/// Waits until at most `Pending` committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void copy_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

/// D = A * B + D, 16x8x32, int8 x int8 -> int32 (exact: no saturation is needed for |sum| < 2^31).
__device__ __forceinline__ void mma_s8(int (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// D = A * B + D, 16x8x16, fp16 x fp16 -> fp32.
__device__ __forceinline__ void mma_f16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// D = A * B + D, 16x8x16, bf16 x bf16 -> fp32.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// D = A * B + D, 16x8x64 with A 2:4 sparse (compressed 16x32), int8 -> int32; `meta` is this lane's
/// metadata word (fragments.hpp), sparsity selector 0 (the only one m16n8k64 s8 has).
__device__ __forceinline__ void mma_sp_s8(int (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[4],
                                          std::uint32_t meta) {
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k64.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(meta));
}

/// Four signed nibbles (the 16 bits of x, element 0 in the low nibble) -> four int8 in one register.
__device__ __forceinline__ std::uint32_t int4x4_to_int8x4(std::uint32_t x) {
    // Spread nibble i to byte i, then sign-extend each byte: (v ^ 8) - 8 per byte.
    const std::uint32_t spread = (x & 0xFu) | ((x & 0xF0u) << 4) | ((x & 0xF00u) << 8) | ((x & 0xF000u) << 12);
    return __vsub4(spread ^ 0x08080808u, 0x08080808u);
}

/// Two 4-bit codes (low and high nibble of `byte`) minus `zero` -> two 16-bit floats, exactly:
/// 1024 + c is an fp16 whose low mantissa bits are c (128 + c for bf16), so one OR and one subtraction.
template <class T>
__device__ __forceinline__ std::uint32_t nibbles_to_pair(std::uint32_t byte, std::uint32_t bias_pair);

template <>
__device__ __forceinline__ std::uint32_t nibbles_to_pair<__half>(std::uint32_t byte, std::uint32_t bias_pair) {
    const std::uint32_t v = (byte & 0xFu) | ((byte & 0xF0u) << 12) | 0x64006400u;
    __half2 h = *reinterpret_cast<const __half2*>(&v);
    h = __hsub2(h, *reinterpret_cast<const __half2*>(&bias_pair));
    return *reinterpret_cast<const std::uint32_t*>(&h);
}
template <>
__device__ __forceinline__ std::uint32_t nibbles_to_pair<__nv_bfloat16>(std::uint32_t byte, std::uint32_t bias_pair) {
    const std::uint32_t v = (byte & 0xFu) | ((byte & 0xF0u) << 12) | 0x43004300u;
    __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&v);
    h = __hsub2(h, *reinterpret_cast<const __nv_bfloat162*>(&bias_pair));
    return *reinterpret_cast<const std::uint32_t*>(&h);
}

/// The subtrahend pair for nibbles_to_pair: magic + zero (unsigned codes) or magic + 8 (signed codes,
/// stored two's complement: flipping bit 3 first turns c into c + 8).
template <class T>
__device__ __forceinline__ std::uint32_t nibble_bias_pair(int zero);
template <>
__device__ __forceinline__ std::uint32_t nibble_bias_pair<__half>(int zero) {
    const __half2 h = __half2half2(__int2half_rn(1024 + zero));
    return *reinterpret_cast<const std::uint32_t*>(&h);
}
template <>
__device__ __forceinline__ std::uint32_t nibble_bias_pair<__nv_bfloat16>(int zero) {
    const __nv_bfloat162 h = __bfloat162bfloat162(__int2bfloat16_rn(128 + zero));
    return *reinterpret_cast<const std::uint32_t*>(&h);
}

/// Two 8-bit codes (bytes 0 and 1 of `two`) minus `zero` -> two 16-bit floats, exactly (|c - z| <= 255).
template <class T>
__device__ __forceinline__ std::uint32_t bytes_to_pair(std::uint32_t two, bool is_signed, int zero) {
    int c0 = static_cast<int>(two & 0xFFu), c1 = static_cast<int>((two >> 8) & 0xFFu);
    if (is_signed) c0 = static_cast<int>(static_cast<signed char>(c0)), c1 = static_cast<int>(static_cast<signed char>(c1));
    if constexpr (std::is_same_v<T, __half>) {
        const __half2 h = __halves2half2(__int2half_rn(c0 - zero), __int2half_rn(c1 - zero));
        return *reinterpret_cast<const std::uint32_t*>(&h);
    } else {
        const __nv_bfloat162 h = __halves2bfloat162(__int2bfloat16_rn(c0 - zero), __int2bfloat16_rn(c1 - zero));
        return *reinterpret_cast<const std::uint32_t*>(&h);
    }
}

template <class T>
__device__ __forceinline__ void mma_16bit(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    if constexpr (std::is_same_v<T, __half>) mma_f16(d, a, b);
    else mma_bf16(d, a, b);
}

}  // namespace tcomp::cuda::detail
