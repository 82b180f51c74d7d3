// The policy front door: compress<Policy>(W) prunes and quantizes a weight matrix W[N x K] and carries
// what a layer needs to run Y = X * W^T under that policy (calibrated activation scales when the policy
// quantizes activations statically).
#pragma once

#include <optional>
#include <type_traits>

#include "tcomp/quant/calibration.hpp"
#include "tcomp/quant/compressed_matrix.hpp"
#include "tcomp/quant/policy.hpp"

namespace tcomp {

template <class Policy>
class compressed_weights {
    static_assert(is_policy<Policy>::value, "compressed_weights<P>: P must be a tcomp::policy<...>");

public:
    using policy_type = Policy;
    using weight_quantizer = typename Policy::weight_quantizer;
    using activation_quantizer = typename Policy::activation_quantizer;
    using sparsity = typename Policy::sparsity;
    using matrix_type = compressed_matrix<weight_quantizer, sparsity>;

    explicit compressed_weights(matrix_type weights) : weights_(std::move(weights)) {}

    const matrix_type& weights() const { return weights_; }
    index_t rows() const { return weights_.rows(); }
    index_t cols() const { return weights_.cols(); }
    std::size_t bytes() const { return weights_.bytes() + activation_scale_bytes(); }
    double bits_per_weight() const {
        const auto n = static_cast<double>(rows() * cols());
        return n == 0 ? 0.0 : 8.0 * static_cast<double>(bytes()) / n;
    }

    static constexpr bool calibrated_activations() {
        if constexpr (Policy::quantizes_activations) return !activation_quantizer::activation_mode::is_dynamic;
        else return false;
    }

    /// Feeds a calibration batch of activations (static activation quantization only).
    void calibrate(matrix_view<const float> x) {
        static_assert(calibrated_activations(),
                      "compressed_weights::calibrate: the policy's activations are not calibrated (float or dynamic)");
        if (x.cols() != cols())
            detail::throw_error<shape_error>("calibrate: activations have ", x.cols(), " columns, weights have K = ",
                                             cols());
        calibrator_.observe(x);
        activation_scales_ = calibrator_.finish();
    }
    /// Scales calibrated elsewhere (a file, another run): checked against the grid K and the policy give.
    void set_activation_scales(scale_table scales) {
        static_assert(calibrated_activations(),
                      "compressed_weights::set_activation_scales: the policy's activations are not calibrated");
        const auto grid = detail::grid_for<activation_quantizer>(1, cols(), true, "set_activation_scales");
        const auto n = static_cast<std::size_t>(grid.cols);
        if (scales.rows != 1 || scales.cols != grid.cols || scales.group_size != grid.group_size ||
            scales.stored.size() != n || scales.effective.size() != n || scales.zero.size() != n)
            detail::throw_error<shape_error>("set_activation_scales: ", scales.cols, " cells of ", scales.group_size,
                                             ", the policy needs ", grid.cols, " of ", grid.group_size);
        activation_scales_ = std::move(scales);
    }
    bool has_activation_scales() const { return activation_scales_.has_value(); }
    /// Fixed activation scales; an error if the policy needs them and none were calibrated.
    const scale_table& activation_scales() const {
        if (!activation_scales_)
            detail::throw_error<value_error>(
                "matmul: the policy quantizes activations with calibrated (static) scales, but calibrate() was "
                "never called on these weights");
        return *activation_scales_;
    }

private:
    std::size_t activation_scale_bytes() const {
        if (!activation_scales_) return 0;
        if constexpr (Policy::quantizes_activations) {
            const auto n = static_cast<index_t>(activation_scales_->stored.size());
            return packed_bytes(n, activation_quantizer::scale::storage_bits) +
                   (activation_quantizer::has_zero_point ? packed_bytes(n, activation_quantizer::code_bits) : 0);
        } else {
            return 0;
        }
    }

    struct no_calibrator {};
    using calibrator_type = std::conditional_t<calibrated_activations(), activation_calibrator<activation_quantizer>,
                                               no_calibrator>;

    matrix_type weights_;
    [[no_unique_address]] calibrator_type calibrator_{};
    std::optional<scale_table> activation_scales_;
};

/// Prunes (to the policy's sparsity) and quantizes W[N x K].
template <class Policy>
compressed_weights<Policy> compress(matrix_view<const float> w, const quantize_options& options = {}) {
    static_assert(is_policy<Policy>::value, "compress<P>: P must be a tcomp::policy<...>");
    return compressed_weights<Policy>(
        compress_matrix<typename Policy::weight_quantizer, typename Policy::sparsity>(w, options));
}

}  // namespace tcomp
