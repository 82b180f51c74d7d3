// The CPU back end's kernel families as one table (ggml's type_traits idea: one row per family). A row says
// which policies the family takes (from the policy type, at compile time), how it packs the compressed weights
// (pack -> "" or the reason it cannot: the layer then keeps the scalar oracle), whether an ISA path's kernel
// table has its kernel, and the bytes one call streams. family_of<Policy>() picks the row, in the order of the
// table, and cpu::pack, cpu::uses_simd and cpu::detail::run_kernels all read that row: the choice is written
// here once. The run-time face of the same table: family_for(descriptor) picks the row for a descriptor and
// supports(descriptor, k) says "" or why its kernels cannot run it, in the packers' own words (a test holds the
// two faces to each other over the typed policies).
//
//   row           takes                                               packs (kernel/cpu/*_pack.hpp)
//   weight_only   float activations, or quantized activations with    integer grids of <= 256 codes, 4-bit
//                 a floating format on either side (fp8 or MXFP4      floating formats (table), 8-bit minifloats
//                 weights x int8 tokens, int8 weights x fp8 tokens:
//                 the activations are quantized, then decoded back
//                 to float: no integer dot product exists for them)
//   binary        sign-grid weights and sign-grid activations         xnor + popcount bit planes
//   int_dot       integer weights x integer activations               integer weights x uint8 activations
#pragma once

#include <cstddef>
#include <string>

#include "tcomp/format/format_traits.hpp"
#include "tcomp/kernel/cpu/binary_pack.hpp"
#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/int_dot_pack.hpp"
#include "tcomp/kernel/cpu/weight_only_pack.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/format_table.hpp"

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

namespace detail {

/// Quantized activations with a floating format on either side: no integer dot product, so the weight-only
/// kernels run them on the activations decoded back to float.
template <class P>
constexpr bool floating_operand() {
    if constexpr (P::quantizes_activations)
        return !integer_grid_format<typename P::weight_quantizer::format> ||
               !integer_grid_format<typename P::activation_quantizer::format>;
    else
        return false;
}

inline constexpr const char* stochastic_activations_reason =
    "stochastic rounding of activations (the kernels take no seed: the oracle runs it)";

}  // namespace detail

template <>
struct family_row<kernel_family::weight_only>
    : family_row_base<kernel_family::weight_only, &kernel_table::weight_only, &family_storage::weight_only> {
    template <class P>
    static constexpr bool takes = !P::quantizes_activations || detail::floating_operand<P>();
    template <class P>
    static std::string pack(const compressed_weights<P>& w, family_storage& s) {
        if constexpr (P::quantizes_activations)
            if constexpr (P::activation_quantizer::rounding::is_stochastic) return detail::stochastic_activations_reason;
        return pack_weight_only(w.weights().view(), s.weight_only);
    }
    /// pack_weight_only's static reasons (the ones that do not depend on the weights' values).
    static std::string supports(const descriptor& d, index_t k) {
        if (d.activations && d.activations->rounding == rounding_kind::stochastic)
            return detail::stochastic_activations_reason;
        const format_info& f = format_info_for(d.weights.format);
        if (d.sparsity.kind != sparsity_kind::dense) return "sparse weights: the weight-only kernels take dense matrices";
        if (!f.integer_grid() && f.bits > 4 && f.bits != 8)
            return detail::weight_only_reason("a ", f.bits, "-bit floating format: the weight-only kernels take floating "
                                              "formats of at most 4 bits (by table) and 8-bit minifloats");
        if (f.integer_grid() && f.code_max - f.code_min > 255) return "the weight codes span more than 256 integers";
        const index_t g = d.weights.group();
        if (g > 0 && (k == 0 || g < k) && g % 16 != 0)
            return detail::weight_only_reason("group size ", g, " is not a multiple of 16 (the weight-only kernels' k-step)");
        return "";
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
        using AQ = typename P::activation_quantizer;
        // binarize_activations' static refusals, said at pack time (so unsupported_reason() tells the truth).
        if constexpr (AQ::rounding::is_stochastic) return "stochastic rounding of binary activations";
        else if constexpr (AQ::granularity::group_size > 0)
            return "per_group binary activation scales (the binary kernel needs one scale per row: per_token or "
                   "per_tensor)";
        else return pack_binary(w.weights().view(), s.binary);
    }
    /// The static reasons of pack (above) and pack_binary.
    static std::string supports(const descriptor& d, index_t k) {
        const quantizer_desc& a = *d.activations;
        if (a.rounding == rounding_kind::stochastic) return "stochastic rounding of binary activations";
        if (a.group() > 0)
            return "per_group binary activation scales (the binary kernel needs one scale per row: per_token or "
                   "per_tensor)";
        if (d.sparsity.kind != sparsity_kind::dense)
            return "sparse binary weights have no SIMD kernel (the binary kernel needs dense weights)";
        if (d.weights.group() > 0)
            return "per_group binary weight scales (the binary kernel needs one scale per row: per_channel or "
                   "per_tensor)";
        if (k > (index_t{1} << 30)) return "K above 2^30 (the binary kernel's int32 accumulators)";
        return "";
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

    /// pack_int_dot's and activation_reason's static reasons.
    static std::string supports(const descriptor& d, index_t k) {
        const quantizer_desc& a = *d.activations;
        const format_info& af = format_info_for(a.format);
        if (!af.integer_grid()) return "the activation format is not an integer grid";
        if (af.code_max - af.code_min > 255) return "activation codes span more than 256 integers";
        if (af.sign_grid) return "binary activations with non-binary weights";
        if (a.rounding == rounding_kind::stochastic) return "stochastic rounding of activations";
        if (a.group() > 0) return "per_group activation scales";
        const format_info& w = format_info_for(d.weights.format);
        if (!w.integer_grid()) return "the weight format is not an integer grid";
        if (w.code_max - w.code_min > 255) return "the weight codes span more than 256 integers";
        const sparsity_desc& s = d.sparsity;
        const bool sparse = s.kind == sparsity_kind::n_m;
        if (s.kind != sparsity_kind::dense && !sparse) return "block and unstructured sparsity have no SIMD kernel";
        if (sparse && (s.n != 2 || s.m != 4))
            return detail::reason("N:M sparsity ", s.n, ":", s.m, " (only 2:4 has a kernel)");
        const int range = w.code_max - w.code_min;
        const int bits = sparse ? (range <= 15 ? 4 : 8) : (range <= 3 ? 2 : (range <= 15 ? 4 : 8));
        const index_t k_step = sparse ? 4 : (bits == 8 ? 4 : (bits == 4 ? 8 : 16));
        const index_t g = d.weights.group();
        if (g > 0 && (k == 0 || g < k) && g % k_step != 0)
            return detail::reason("group size ", g, " is not a multiple of the kernel's k-step ", k_step, " for ", bits,
                                  "-bit weights");
        if (g > int_dot_max_group)
            return detail::reason("a weight group of ", g, " elements could overflow the int32 accumulator (max ",
                                  int_dot_max_group, ")");
        return "";
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
    /// Whether the SIMD encoder quantizes AQ's activations (activation_reason's conditions, as a constant).
    template <class AQ>
    static constexpr bool simd_encodes = [] {
        using F = typename AQ::format;
        if constexpr (!integer_grid_format<F>) return false;
        else return F::code_max - F::code_min <= 255 && !tcomp::detail::is_sign_grid<F>() &&
                    !AQ::rounding::is_stochastic && AQ::granularity::group_size == 0;
    }();
};

/// The family whose kernels a policy's weights are packed for: the first row of {weight_only, binary, int_dot}
/// that takes it. Every policy is taken by one (int_dot takes integer grids on both sides that are not binary).
template <class P>
constexpr kernel_family family_of() {
    if constexpr (family_row<kernel_family::weight_only>::takes<P>) return kernel_family::weight_only;
    else if constexpr (family_row<kernel_family::binary>::takes<P>) return kernel_family::binary;
    else return kernel_family::int_dot;
}

/// The row family_of<P>() picks for describe<P>(), from the descriptor: weight_only for float activations or a
/// floating format on either side, binary when both operands are sign grids, else int_dot.
inline kernel_family family_for(const descriptor& d) {
    if (!d.activations) return kernel_family::weight_only;
    const format_info& w = format_info_for(d.weights.format);
    const format_info& a = format_info_for(d.activations->format);
    if (!w.integer_grid() || !a.integer_grid()) return kernel_family::weight_only;
    if (w.sign_grid && a.sign_grid) return kernel_family::binary;
    return kernel_family::int_dot;
}

/// "" when family_for(d)'s kernels can run d, else why not, in the words cpu::pack would use
/// (packed_weights::unsupported_reason). k: the layer's K, or 0 for "K larger than one group". Reasons that
/// depend on the weights' values (an int8-centred code out of range, a non-finite fp8 code, a shift span too
/// wide for int64) appear only when packing.
inline std::string supports(const descriptor& d, index_t k = 0) {
    validate(d);
    switch (family_for(d)) {
        case kernel_family::weight_only: return family_row<kernel_family::weight_only>::supports(d, k);
        case kernel_family::binary: return family_row<kernel_family::binary>::supports(d, k);
        default: return family_row<kernel_family::int_dot>::supports(d, k);
    }
}

}  // namespace tcomp::cpu
