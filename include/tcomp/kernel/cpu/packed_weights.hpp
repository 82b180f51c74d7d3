// packed_weights<Policy>: a compressed weight matrix plus its pre-packed form for the CPU kernels, made once
// by tcomp::cpu::pack(). The kernel family follows from the policy:
//   integer activations, binary weights and activations     binary (xnor + popcount)
//   integer activations otherwise                           int_dot (W8A8, W4A8, W2A8, 2:4 W8A8 / W4A8)
//   float activations                                       weight_only (W8A16, W4A16, W2A16)
// A composition no kernel covers (a floating weight format, block sparsity, a group size that is not a
// multiple of the kernel's k-step, ...) keeps family `reference`, with the reason in unsupported_reason():
// the front door then runs the scalar oracle on the same compressed weights. The format never changes.
// Packing in a program without the SIMD kernels (tcomp::cpu not linked) warns once on stderr (dispatch.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

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

template <class Policy>
class packed_weights {
public:
    using policy_type = Policy;
    using weight_quantizer = typename Policy::weight_quantizer;
    using activation_quantizer = typename Policy::activation_quantizer;

    explicit packed_weights(compressed_weights<Policy> source) : source_(std::move(source)) {
        detail::warn_if_no_kernels();
        using WQ = weight_quantizer;
        const auto view = source_.weights().view();
        if constexpr (!Policy::quantizes_activations) {
            reason_ = pack_weight_only(view, weight_only_);
            if (reason_.empty()) family_ = kernel_family::weight_only;
        } else if constexpr (tcomp::detail::is_sign_grid<typename WQ::format>() &&
                             tcomp::detail::is_sign_grid<typename activation_quantizer::format>()) {
            reason_ = pack_binary(view, binary_);
            if (reason_.empty()) family_ = kernel_family::binary;
        } else {
            reason_ = activation_reason();
            if (reason_.empty()) reason_ = pack_int_dot(view, int_dot_);
            if (reason_.empty()) family_ = kernel_family::int_dot;
        }
    }

    const compressed_weights<Policy>& source() const { return source_; }
    /// Mutable access for calibrate() (static activation scales); the packed weights do not change.
    compressed_weights<Policy>& source() { return source_; }
    index_t rows() const { return source_.rows(); }
    index_t cols() const { return source_.cols(); }

    kernel_family family() const { return family_; }
    /// Why no SIMD kernel covers this composition ("" when one does).
    const std::string& unsupported_reason() const { return reason_; }

    /// Bytes the SIMD kernel reads per call (the packed form); the compressed source's bytes otherwise.
    std::size_t kernel_bytes() const {
        switch (family_) {
            case kernel_family::int_dot: return int_dot_.bytes();
            case kernel_family::weight_only: return weight_only_.bytes();
            case kernel_family::binary: return binary_.bytes();
            default: return source_.weights().bytes();
        }
    }

    const int_dot_storage& int_dot() const { return int_dot_; }
    const weight_only_storage& weight_only() const { return weight_only_; }
    const binary_storage& binary() const { return binary_; }

private:
    /// Activation quantizers the int_dot front door encodes with SIMD: integer grids of <= 256 codes,
    /// round to nearest even, one scale cell per row (per_token, or per_tensor).
    static std::string activation_reason() {
        if constexpr (Policy::quantizes_activations) {
            using AQ = activation_quantizer;
            using F = typename AQ::format;
            if constexpr (!integer_grid_format<F>) return "the activation format is not an integer grid";
            else if constexpr (F::code_max - F::code_min > 255) return "activation codes span more than 256 integers";
            else if constexpr (tcomp::detail::is_sign_grid<F>()) return "binary activations with non-binary weights";
            else if constexpr (AQ::rounding::is_stochastic) return "stochastic rounding of activations";
            else if constexpr (AQ::granularity::group_size > 0) return "per_group activation scales";
            else return "";
        } else {
            return "";
        }
    }

    compressed_weights<Policy> source_;
    kernel_family family_ = kernel_family::reference;
    std::string reason_;
    int_dot_storage int_dot_;
    weight_only_storage weight_only_;
    binary_storage binary_;
};

/// Pre-packs compressed weights for the CPU kernels (copies them; pass an rvalue to move).
template <class Policy>
packed_weights<Policy> pack(compressed_weights<Policy> w) {
    return packed_weights<Policy>(std::move(w));
}

}  // namespace tcomp::cpu
