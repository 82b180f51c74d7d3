// Instantiates every CPU kernel for one ISA path and registers the path's kernel table. Included only by the
// per-path translation units (src/cpu/<path>.cpp), each compiled with its path's instruction-set flags;
// including it elsewhere instantiates nothing.
#pragma once

#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/binary_kernel.hpp"
#include "tcomp/kernel/cpu/int_dot_kernel.hpp"
#include "tcomp/kernel/cpu/weight_only_kernel.hpp"

namespace tcomp::cpu::detail {

template <class Isa>
const kernel_table& make_kernel_table() {
    static const kernel_table table = [] {
        kernel_table t;
        t.path = Isa::path;
        t.int_dot = &int_dot_kernel<Isa>;
        t.row_min_max = &row_min_max_kernel<Isa>;
        t.encode_u8 = &encode_u8_kernel<Isa>;
        t.weight_only = &weight_only_kernel<Isa>;
        t.binary = &binary_kernel<Isa>;
        return t;
    }();
    return table;
}

}  // namespace tcomp::cpu::detail

/// In a per-path translation unit: TCOMP_CPU_REGISTER_PATH(avx2) registers tcomp::cpu::isa::avx2's kernels.
#define TCOMP_CPU_REGISTER_PATH(tag)                                                          \
    namespace {                                                                               \
    [[maybe_unused]] const bool tcomp_cpu_path_registered_##tag =                             \
        ::tcomp::cpu::detail::register_kernels(                                               \
            ::tcomp::cpu::detail::make_kernel_table<::tcomp::cpu::isa::tag>());               \
    }
