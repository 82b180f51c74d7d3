// Run-time dispatch of the CPU kernels: a table of kernel entry points per ISA path, filled by the
// per-path translation units (src/cpu/<path>.cpp, each compiled with its path's flags: see
// cmake/tcompCpuKernels.cmake and docs/design.md), and the choice of the path a call uses.
//
// Choosing a path: force_path() (an API call) wins, then the environment variable TCOMP_CPU_PATH
// (reference, sse41, avx2, avx_vnni, avx512bw, avx512_vnni), then the best path that is both compiled in
// and supported by this CPU. Forcing a path this build or CPU lacks is an error, never a silent fallback.
// Without the per-path units linked (a plain header-only build, or linking tcomp::tcomp instead of tcomp::cpu),
// only `reference` exists: kernels_linked() says so, and pack() warns once on stderr (warn_if_no_kernels).
#pragma once

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/kernel/cpu/binary_args.hpp"
#include "tcomp/kernel/cpu/int_dot_args.hpp"
#include "tcomp/kernel/cpu/isa.hpp"
#include "tcomp/kernel/cpu/weight_only_args.hpp"

namespace tcomp::cpu {

/// Entry points of one ISA path. A null entry means the path has no kernel for that family.
struct kernel_table {
    isa_path path = isa_path::reference;
    void (*int_dot)(const int_dot_call&) = nullptr;
    void (*row_min_max)(const float* x, index_t k, float* lo, float* hi) = nullptr;
    void (*encode_u8)(const encode_call&) = nullptr;
    void (*weight_only)(const weight_only_call&) = nullptr;
    void (*binary)(const binary_call&) = nullptr;
};

namespace detail {

inline std::array<const kernel_table*, isa_path_count>& registry() {
    static std::array<const kernel_table*, isa_path_count> tables{};
    return tables;
}

/// Called once per path at static initialisation by its translation unit.
inline bool register_kernels(const kernel_table& table) {
    registry()[static_cast<std::size_t>(table.path)] = &table;
    return true;
}

inline std::atomic<int>& forced_path_slot() {
    static std::atomic<int> slot{-1};
    return slot;
}

}  // namespace detail

/// Whether this build has path p's kernels (its translation unit is linked in).
inline bool path_compiled(isa_path p) {
    return p == isa_path::reference || detail::registry()[static_cast<std::size_t>(p)] != nullptr;
}

/// Whether any SIMD path is compiled into this program, i.e. the per-ISA objects of the CMake target tcomp::cpu
/// are linked (false with tcomp::tcomp alone, and with tcomp::cpu on a toolchain it has no paths for: see
/// cmake/tcompCpuKernels.cmake). Paths register during static initialisation, so the answer is final once
/// main() has started.
inline bool kernels_linked() {
    for (isa_path p : all_isa_paths)
        if (p != isa_path::reference && detail::registry()[static_cast<std::size_t>(p)] != nullptr) return true;
    return false;
}

namespace detail {

inline constexpr const char* no_kernels_warning =
    "tcomp: warning: no SIMD CPU kernels are linked into this program, so tcomp::matmul on packed weights runs "
    "the scalar reference path. Link the CMake target tcomp::cpu (it compiles the per-ISA kernels in your build; "
    "x86-64 with GCC or Clang) instead of tcomp::tcomp.\n";

/// Called by pack() (packed_weights' constructor): when no SIMD path is registered, prints
/// no_kernels_warning to stderr, once per program. Returns whether it found the kernels missing.
inline bool warn_if_no_kernels() {
    if (kernels_linked()) return false;
    static std::once_flag once;
    std::call_once(once, [] { std::fputs(no_kernels_warning, stderr); });
    return true;
}

}  // namespace detail

/// The paths a call can use here: compiled in and supported by this CPU (reference always).
inline std::vector<isa_path> available_paths() {
    std::vector<isa_path> out;
    for (isa_path p : all_isa_paths)
        if (path_compiled(p) && cpu_supports(p)) out.push_back(p);
    return out;
}

inline isa_path best_available_path() { return available_paths().back(); }

/// Forces every later call onto path p; throws tcomp::error if this build or CPU cannot run it.
inline void force_path(isa_path p) {
    if (!path_compiled(p))
        tcomp::detail::throw_error<error>("tcomp::cpu::force_path: path ", to_string(p),
                                   " is not compiled into this program (link tcomp::cpu; see docs/design.md)");
    if (!cpu_supports(p))
        tcomp::detail::throw_error<error>("tcomp::cpu::force_path: this CPU does not support path ", to_string(p));
    detail::forced_path_slot().store(static_cast<int>(p));
}

/// Undoes force_path: back to TCOMP_CPU_PATH or the best path.
inline void clear_forced_path() { detail::forced_path_slot().store(-1); }

/// The path calls use now.
inline isa_path active_path() {
    const int forced = detail::forced_path_slot().load();
    if (forced >= 0) return static_cast<isa_path>(forced);
    if (const char* env = std::getenv("TCOMP_CPU_PATH"); env != nullptr && *env != '\0') {
        const auto p = parse_isa_path(env);
        if (!p)
            tcomp::detail::throw_error<error>("TCOMP_CPU_PATH=", env,
                                       ": unknown path (reference, sse41, avx2, avx_vnni, avx512bw, avx512_vnni)");
        if (!path_compiled(*p) || !cpu_supports(*p))
            tcomp::detail::throw_error<error>("TCOMP_CPU_PATH=", env, ": path ", to_string(*p),
                                       path_compiled(*p) ? " is not supported by this CPU" : " is not compiled in");
        return *p;
    }
    return best_available_path();
}

/// The kernel table of path p (null for reference or a path not compiled in).
inline const kernel_table* kernels_for(isa_path p) { return detail::registry()[static_cast<std::size_t>(p)]; }

/// Scoped force_path, for tests: restores the previous choice on exit.
class scoped_path {
public:
    explicit scoped_path(isa_path p) : previous_(detail::forced_path_slot().load()) { force_path(p); }
    ~scoped_path() { detail::forced_path_slot().store(previous_); }
    scoped_path(const scoped_path&) = delete;
    scoped_path& operator=(const scoped_path&) = delete;

private:
    int previous_;
};

}  // namespace tcomp::cpu
