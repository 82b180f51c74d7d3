// The CPU back end's kernel families as one table (ggml's type_traits idea: one row per family). A row says
// which policies the family takes (from the policy type, at compile time), how it packs the compressed weights
// (pack -> "" or the reason it cannot: the layer then keeps the scalar oracle), whether an ISA path's kernel
// table has its kernel, and the bytes one call streams. family_of<Policy>() picks the row, in the order of the
// table, and cpu::pack, cpu::uses_simd and tcomp::matmul all read that row: the choice is written here once.
//
//   row           takes                                               packs (kernel/cpu/*_pack.hpp)
//   weight_only   float activations                                   integer grids of <= 256 codes, 4-bit
//                                                                     floating formats (table), 8-bit minifloats
//   binary        sign-grid weights and sign-grid activations         xnor + popcount bit planes
//   int_dot       other quantized activations                         integer weights x uint8 activations
#pragma once

#include <cstddef>
#include <string>

#include "tcomp/format/format_traits.hpp"
#include "tcomp/kernel/cpu/binary_pack.hpp"
#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/int_dot_pack.hpp"
#include "tcomp/kernel/cpu/weight_only_pack.hpp"
#include "tcomp/quant/compress.hpp"

namespace tcomp::cpu {

enum class kernel_family { reference, int_dot, weight_only, binary };

constexpr const char* to_string(kernel_family f) {
    switch (f) {
        case kernel_family::reference: return "reference";
        case kernel_family::int_dot: return "int_dot";
        case kernel_family::weight_only: return "weight_only";
        case kernel_family::binary: return "binary";
    }
    return "unknown";
}

/// The packed forms (only the policy's family is filled).
struct family_storage {
    int_dot_storage int_dot;
    weight_only_storage weight_only;
    binary_storage binary;
};

template <kernel_family F>
struct family_row;

/// What every row states the same way: its id, its entry in a path's kernel table, its packed form's bytes.
template <kernel_family F, auto Kernel, auto Storage>
struct family_row_base {
    static constexpr kernel_family id = F;
    static bool has_kernel(const kernel_table& t) { return t.*Kernel != nullptr; }
    static std::size_t bytes(const family_storage& s) { return (s.*Storage).bytes(); }
};

template <>
struct family_row<kernel_family::weight_only>
    : family_row_base<kernel_family::weight_only, &kernel_table::weight_only, &family_storage::weight_only> {
    template <class P>
    static constexpr bool takes = !P::quantizes_activations;
    template <class P>
    static std::string pack(const compressed_weights<P>& w, family_storage& s) {
        return pack_weight_only(w.weights().view(), s.weight_only);
    }
};

template <>
struct family_row<kernel_family::binary>
    : family_row_base<kernel_family::binary, &kernel_table::binary, &family_storage::binary> {
    template <class P>
    static constexpr bool takes = [] {
        if constexpr (P::quantizes_activations)
            return tcomp::detail::is_sign_grid<typename P::weight_quantizer::format>() &&
                   tcomp::detail::is_sign_grid<typename P::activation_quantizer::format>();
        else
            return false;
    }();
    template <class P>
    static std::string pack(const compressed_weights<P>& w, family_storage& s) {
        return pack_binary(w.weights().view(), s.binary);
    }
};

template <>
struct family_row<kernel_family::int_dot>
    : family_row_base<kernel_family::int_dot, &kernel_table::int_dot, &family_storage::int_dot> {
    template <class P>
    static constexpr bool takes = P::quantizes_activations;
    template <class P>
    static std::string pack(const compressed_weights<P>& w, family_storage& s) {
        std::string reason = activation_reason<P>();
        return reason.empty() ? pack_int_dot(w.weights().view(), s.int_dot) : reason;
    }

    /// Activation quantizers the int_dot front door encodes with SIMD: integer grids of <= 256 codes, round to
    /// nearest even, one scale cell per row (per_token, or per_tensor).
    template <class P>
    static std::string activation_reason() {
        using AQ = typename P::activation_quantizer;
        using F = typename AQ::format;
        if constexpr (!integer_grid_format<F>) return "the activation format is not an integer grid";
        else if constexpr (F::code_max - F::code_min > 255) return "activation codes span more than 256 integers";
        else if constexpr (tcomp::detail::is_sign_grid<F>()) return "binary activations with non-binary weights";
        else if constexpr (AQ::rounding::is_stochastic) return "stochastic rounding of activations";
        else if constexpr (AQ::granularity::group_size > 0) return "per_group activation scales";
        else return "";
    }
};

/// The family whose kernels a policy's weights are packed for: the first row of {weight_only, binary, int_dot}
/// that takes it. Every policy is taken by one (int_dot takes what quantizes activations and is not binary).
template <class P>
constexpr kernel_family family_of() {
    if constexpr (family_row<kernel_family::weight_only>::takes<P>) return kernel_family::weight_only;
    else if constexpr (family_row<kernel_family::binary>::takes<P>) return kernel_family::binary;
    else return kernel_family::int_dot;
}

}  // namespace tcomp::cpu
