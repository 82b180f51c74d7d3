// The CPU instruction-set paths of the SIMD back end, and run-time detection of what this CPU supports.
//
// A path names a set of instructions the kernels may use. Every ISA-dependent symbol takes its path's tag
// type as a template parameter (as ruy's Path), so translation units compiled with different flags
// never define the same symbol differently: the header-only library stays free of ODR violations.
//
//   reference    the scalar oracle (kernel/reference/); always there
//   sse41        SSE4.1, 128-bit
//   avx2         AVX2 + FMA, 256-bit
//   avx_vnni     AVX2 + FMA + AVX-VNNI (vpdpbusd on ymm; Alder Lake, Sapphire Rapids, Zen 5)
//   avx512bw     AVX-512 F/BW/DQ/VL + FMA, 512-bit
//   avx512_vnni  AVX-512 F/BW/DQ/VL + VNNI (vpdpbusd on zmm; Cascade Lake, Ice Lake, Zen 4, Zen 5)
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace tcomp::cpu {

namespace detail {
/// AVX-VNNI (CPUID.(EAX=7,ECX=1):EAX bit 4), read directly: clang 14's __builtin_cpu_supports does not know
/// "avxvnni". The caller checks AVX2 first, which includes the OS's YMM-state check.
inline bool cpuid_avx_vnni() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    unsigned r[4] = {};  // eax..edx; an array, since nvcc's front end warns of set-but-unused scalars
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 1, r[0], r[1], r[2], r[3]);
    return (r[0] & (1u << 4)) != 0;
#else
    return false;
#endif
}
}  // namespace detail

enum class isa_path : std::uint8_t { reference = 0, sse41, avx2, avx_vnni, avx512bw, avx512_vnni };

inline constexpr int isa_path_count = 6;

/// All paths, from the least to the most capable.
inline constexpr std::array<isa_path, isa_path_count> all_isa_paths = {
    isa_path::reference, isa_path::sse41, isa_path::avx2, isa_path::avx_vnni, isa_path::avx512bw,
    isa_path::avx512_vnni};

constexpr std::string_view to_string(isa_path p) {
    switch (p) {
        case isa_path::reference: return "reference";
        case isa_path::sse41: return "sse41";
        case isa_path::avx2: return "avx2";
        case isa_path::avx_vnni: return "avx_vnni";
        case isa_path::avx512bw: return "avx512bw";
        case isa_path::avx512_vnni: return "avx512_vnni";
    }
    return "unknown";
}

/// The path named `name` (as to_string writes it), or nothing.
constexpr std::optional<isa_path> parse_isa_path(std::string_view name) {
    for (isa_path p : all_isa_paths)
        if (to_string(p) == name) return p;
    return std::nullopt;
}

/// Whether this CPU (and OS: the compiler's CPUID check includes the XSAVE state) can run path p.
namespace detail {

inline bool cpu_supports_uncached(isa_path p) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    switch (p) {
        case isa_path::reference: return true;
        case isa_path::sse41: return __builtin_cpu_supports("sse4.1");
        case isa_path::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case isa_path::avx_vnni:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   detail::cpuid_avx_vnni();
        case isa_path::avx512bw:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
        case isa_path::avx512_vnni:
            return cpu_supports_uncached(isa_path::avx512bw) && __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return p == isa_path::reference;
#endif
}

}  // namespace detail

/// Whether this CPU can run path p. Asked once per path and remembered: a raw CPUID exits to the
/// hypervisor on a VM (~20 us measured here), and the dispatcher asks on every matmul call.
inline bool cpu_supports(isa_path p) {
    static const auto table = [] {
        std::array<bool, isa_path_count> t{};
        for (int i = 0; i < isa_path_count; ++i) t[static_cast<std::size_t>(i)] = detail::cpu_supports_uncached(static_cast<isa_path>(i));
        return t;
    }();
    const auto i = static_cast<std::size_t>(p);
    return i < table.size() && table[i];
}

/// Optional instructions a path uses when the CPU has them (checked at run time inside the path).
inline bool cpu_has_avx512_vbmi2() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx512vbmi2");
#else
    return false;
#endif
}
inline bool cpu_has_avx512_vpopcntdq() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx512vpopcntdq");
#else
    return false;
#endif
}

/// Tag types: the template parameter of every ISA-dependent kernel. `vector_bytes` is the register
/// width the path's integer kernels use.
namespace isa {
struct sse41 {
    static constexpr isa_path path = isa_path::sse41;
    static constexpr int vector_bytes = 16;
    static constexpr bool has_vnni = false;
};
struct avx2 {
    static constexpr isa_path path = isa_path::avx2;
    static constexpr int vector_bytes = 32;
    static constexpr bool has_vnni = false;
};
struct avx_vnni {
    static constexpr isa_path path = isa_path::avx_vnni;
    static constexpr int vector_bytes = 32;
    static constexpr bool has_vnni = true;
};
struct avx512bw {
    static constexpr isa_path path = isa_path::avx512bw;
    static constexpr int vector_bytes = 64;
    static constexpr bool has_vnni = false;
};
struct avx512_vnni {
    static constexpr isa_path path = isa_path::avx512_vnni;
    static constexpr int vector_bytes = 64;
    static constexpr bool has_vnni = true;
};
}  // namespace isa

}  // namespace tcomp::cpu
