// packed_weights<Policy>: a compressed weight matrix plus its pre-packed form for the CPU kernels, made once
// by tcomp::cpu::pack(). The kernel family is the row of the family table that takes the policy
// (family_table.hpp: weight_only for float activations, binary for sign grids on both sides, int_dot for
// other quantized activations). A composition the family cannot pack (block sparsity, a group size that is not
// a multiple of the kernel's k-step, a 6-bit float, ...) keeps family `reference`, with the reason in
// unsupported_reason(): the front door then runs the scalar oracle on the same compressed weights. The format
// never changes. Packing in a program without the SIMD kernels (tcomp::cpu not linked) warns once on stderr
// (dispatch.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "tcomp/kernel/cpu/dispatch.hpp"
#include "tcomp/kernel/cpu/family_table.hpp"
#include "tcomp/quant/compress.hpp"

namespace tcomp::cpu {

template <class Policy>
class packed_weights {
public:
    using policy_type = Policy;
    using weight_quantizer = typename Policy::weight_quantizer;
    using activation_quantizer = typename Policy::activation_quantizer;
    /// The family-table row of this policy.
    using family_type = family_row<family_of<Policy>()>;

    explicit packed_weights(compressed_weights<Policy> source) : source_(std::move(source)) {
        detail::warn_if_no_kernels();
        reason_ = family_type::pack(source_, storage_);
        if (reason_.empty()) family_ = family_type::id;
    }

    const compressed_weights<Policy>& source() const { return source_; }
    /// Mutable access for calibrate() (static activation scales); the packed weights do not change.
    compressed_weights<Policy>& source() { return source_; }
    index_t rows() const { return source_.rows(); }
    index_t cols() const { return source_.cols(); }

    /// family_of<Policy>() when it packed these weights, else reference.
    kernel_family family() const { return family_; }
    /// Why no SIMD kernel covers this composition ("" when one does).
    const std::string& unsupported_reason() const { return reason_; }

    /// Bytes the SIMD kernel reads per call (the packed form); the compressed source's bytes otherwise.
    std::size_t kernel_bytes() const {
        return family_ == kernel_family::reference ? source_.weights().bytes() : family_type::bytes(storage_);
    }

    const int_dot_storage& int_dot() const { return storage_.int_dot; }
    const weight_only_storage& weight_only() const { return storage_.weight_only; }
    const binary_storage& binary() const { return storage_.binary; }

private:
    compressed_weights<Policy> source_;
    kernel_family family_ = kernel_family::reference;
    std::string reason_;
    family_storage storage_;
};

/// Pre-packs compressed weights for the CPU kernels (copies them; pass an rvalue to move).
template <class Policy>
packed_weights<Policy> pack(compressed_weights<Policy> w) {
    return packed_weights<Policy>(std::move(w));
}

}  // namespace tcomp::cpu
