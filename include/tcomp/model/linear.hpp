// model::linear: the one linear layer every model layer uses, Y = X * W^T + bias with W[N x K]. The policy is
// chosen at run time (an alias such as "w8a8" or any descriptor spelling, quant/policy_names.hpp), so a per-layer
// recipe can mix formats in one model. Behind it the layer is one of three bodies:
//   fp32         float weights, Eigen GEMM;
//   kernel path  the descriptor is a policy type of the typed table (policy_registry.hpp): compress + cpu::pack
//                once, tcomp::matmul per call (SIMD kernels, or the oracle with cpu's stated reason);
//   reference    any other valid descriptor (fp8, MX, NF4, ternary, shiftable scales, block sparsity, ...): the
//                weights are dequantized once and each call quantizes the activations as the descriptor says
//                (dynamic or with the calibrated scales), dequantizes them, and runs a float GEMM. kernel_note()
//                says so: never silently.
// A K that the policy cannot take (a group size that does not divide it, 2:4 with K % 4 != 0) is the
// library's own error with the layer's name added: the layer never falls back to another format.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/model/input_tap.hpp"
#include "tcomp/model/policy_registry.hpp"
#include "tcomp/quant/activation_round_trip.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/compressed_tensor.hpp"
#include "tcomp/quant/policy_names.hpp"
#include <optional>

namespace tcomp::model {
namespace detail {

/// The type-erased body of a linear layer (bias is kept by the owner, identical for every policy).
struct linear_impl {
    virtual ~linear_impl() = default;
    virtual void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                         int threads) const = 0;
    /// Bytes of the weight representation each call streams.
    virtual std::size_t bytes() const = 0;
    /// "" or why the SIMD kernels do not cover this layer (it then runs on the scalar oracle).
    virtual std::string kernel_note() const { return {}; }
    /// Bytes of the weights in the canonical packed form (compressed_tensor::bytes: codes, scales, zero points,
    /// metadata; 4 N K for fp32). A file stores sub-byte scale entries and zero points one byte each, so its
    /// tensors can be slightly larger (the demo's "stored MB" counts the file form).
    virtual std::size_t stored_bytes() const { return bytes(); }
    /// The compressed weights in canonical form, when the body keeps them.
    virtual const compressed_tensor* tensor() const { return nullptr; }
};

/// Float weights, Y = X * W^T through Eigen; threads split the output columns (also works for one token).
class fp32_linear : public linear_impl {
public:
    explicit fp32_linear(matrix_view<const float> w) : n_(w.rows()), k_(w.cols()), w_(static_cast<std::size_t>(n_ * k_)) {
        for (index_t r = 0; r < n_; ++r) std::copy(w.row(r).begin(), w.row(r).end(), w_.begin() + r * k_);
    }

    void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                 int threads) const override {
        gemm(x, y, bias, threads);
    }
    std::size_t bytes() const override { return w_.size() * sizeof(float); }

protected:
    void gemm(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias, int threads) const {
        using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using stride = Eigen::OuterStride<>;
        const index_t m = x.rows();
        if (m == 0 || n_ == 0) return;
        // 64-row column blocks keep each task's slice of W in L2 and give threads work even for one token.
        constexpr index_t block = 64;
        const index_t tasks = (n_ + block - 1) / block;
        auto run_block = [&](index_t t) {
            const index_t n0 = t * block, nb = std::min(block, n_ - n0);
            Eigen::Map<const row_major, 0, stride> X(x.data(), m, k_, stride(x.row_stride()));
            Eigen::Map<const row_major> W(w_.data() + n0 * k_, nb, k_);
            Eigen::Map<row_major, 0, stride> Y(y.data() + n0, m, nb, stride(y.row_stride()));
            Y.noalias() = X * W.transpose();
            if (!bias.empty())
                for (index_t r = 0; r < m; ++r)
                    for (index_t c = 0; c < nb; ++c) Y(r, c) += bias[static_cast<std::size_t>(n0 + c)];
        };
        if (threads <= 1 || tasks == 1) {
            for (index_t t = 0; t < tasks; ++t) run_block(t);
        } else {
            cpu::thread_pool::instance().run(threads, tasks, run_block);
        }
    }

    index_t n_, k_;
    std::vector<float> w_;
};

/// t itself, or value_error when its descriptor quantizes activations with calibrated scales and it carries none.
inline compressed_tensor require_activation_scales(compressed_tensor t) {
    if (t.needs_calibration() && !t.activation_scales)
        tcomp::detail::throw_error<value_error>(
            "the policy quantizes activations with calibrated (static) scales, but the weights carry none "
            "(calibrate() them or load them from a file)");
    return t;
}

/// A descriptor without a typed kernel path: weights dequantized once; each call quantizes and dequantizes
/// the activations as the descriptor says, then the float GEMM of fp32_linear. Same codes and scales as the
/// compressed tensor; the products are summed in float, not in the oracle's exact integers.
class reference_linear final : public fp32_linear {
public:
    explicit reference_linear(compressed_tensor t)
        : fp32_linear(dequantize(t).view()), t_(require_activation_scales(std::move(t))) {}

    void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                 int threads) const override {
        if (!t_.desc.activations) return gemm(x, y, bias, threads);
        const dense_matrix<float> xq = tcomp::detail::round_trip_activations(
            x, *t_.desc.activations, t_.activation_scales ? &*t_.activation_scales : nullptr, "matmul");
        gemm(xq.view(), y, bias, threads);
    }
    // bytes(): fp32_linear's, the float weights this path streams per call.
    std::size_t stored_bytes() const override { return t_.bytes(); }
    /// Why the SIMD kernels do not run this layer: the CPU family table's own reason (cpu::supports), or, where
    /// a family could run it, that no typed policy of model/policy_registry.hpp instantiates its kernel.
    std::string kernel_note() const override {
        const cpu::kernel_family family = cpu::family_for(t_.desc);
        const std::string why = cpu::supports(t_.desc, t_.cols());
        const std::string head =
            why.empty() ? std::string("the ") + cpu::to_string(family) + " kernels could run " + spell(t_.desc) +
                              ", but no typed policy of model/policy_registry.hpp instantiates them for it"
                        : std::string(cpu::to_string(family)) + " kernels: " + why;
        return head + "; reference path (weights dequantized once, activations quantized per call, float GEMM)";
    }
    const compressed_tensor* tensor() const override { return &t_; }

private:
    compressed_tensor t_;
};

/// Compressed and pre-packed once; tcomp::matmul picks the SIMD kernel (or the oracle, with a reason).
template <class Policy>
class packed_linear final : public linear_impl {
public:
    /// Already compressed weights (a file, an import): packed as they are, never re-quantized.
    explicit packed_linear(compressed_tensor t)
        : stored_(t.bytes()), w_(cpu::pack(to_typed<Policy>(require_activation_scales(std::move(t)), "linear"))) {}

    void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                 int threads) const override {
        matmul(x, w_, y, bias, matmul_options{.threads = std::max(threads, 1)});
    }
    std::size_t bytes() const override { return w_.kernel_bytes(); }
    std::string kernel_note() const override { return w_.unsupported_reason(); }
    std::size_t stored_bytes() const override { return stored_; }
    const cpu::packed_weights<Policy>& packed() const { return w_; }

private:
    std::size_t stored_;
    cpu::packed_weights<Policy> w_;
};

/// Rethrows a library error with the layer's context in front, keeping its type (shape/value/other).
template <class F>
decltype(auto) with_layer_context(const std::string& context, F&& f) {
    try {
        return f();
    } catch (const shape_error& e) {
        throw shape_error(context + ": " + e.what());
    } catch (const value_error& e) {
        throw value_error(context + ": " + e.what());
    } catch (const error& e) {
        throw error(context + ": " + e.what());
    }
}

}  // namespace detail

class linear {
public:
    /// Layer name, used in every error message (e.g. "model.layers.0.self_attn.q_proj").
    std::string name;

    linear() = default;
    linear(linear&&) noexcept = default;
    linear& operator=(linear&&) noexcept = default;

    /// W is N x K (out x in, the PyTorch layout); bias empty or N entries. `policy`: "fp32", an alias or a
    /// spelling (quant/policy_names.hpp). Throws tcomp::error for an invalid policy, and the policy's own error
    /// (with the layer name) for a K it cannot take. A policy with calibrated activations needs from_compressed
    /// with the scales.
    static linear make(std::string_view policy, matrix_view<const float> w, std::span<const float> bias = {},
                       std::string layer_name = {}, const quantize_options& options = {}) {
        const std::string context = "linear '" + layer_name + "' (" + std::string(policy) + ", W " +
                                    std::to_string(w.rows()) + "x" + std::to_string(w.cols()) + ")";
        return detail::with_layer_context(context, [&] {
            const std::optional<descriptor> d = resolve_policy(policy, "linear::make");
            tcomp::detail::require_finite(w, "linear::make", "W");
            if (!d) return finish(std::make_unique<detail::fp32_linear>(w), std::nullopt, w.rows(), w.cols(), bias,
                                  std::move(layer_name));
            return from_compressed(compress(*d, w, options), bias, std::move(layer_name));
        });
    }

    /// A layer from weights compressed elsewhere (a compressed model file, a GPTQ import, compress()): nothing is
    /// re-quantized, so the layer computes what make() computes on the weights that produced them. The storage
    /// must have exactly the layout its descriptor gives its shape (else shape_error naming the layer).
    static linear from_compressed(compressed_tensor t, std::span<const float> bias = {}, std::string layer_name = {}) {
        const index_t n = t.rows(), k = t.cols();
        const std::string context = "linear '" + layer_name + "' (" + policy_display(t.desc) + ", W " +
                                    std::to_string(n) + "x" + std::to_string(k) + ", compressed)";
        return detail::with_layer_context(context, [&] {
            tcomp::detail::check_tensor(t, "linear::from_compressed");
            const descriptor d = t.desc;
            std::vector<float> smoothing = std::move(t.smoothing);  // applied by forward(), before the body
            t.smoothing.clear();
            std::unique_ptr<detail::linear_impl> impl;
            const bool typed = visit_kernel_policy(d, [&]<class P>(std::type_identity<P>) {
                impl = std::make_unique<detail::packed_linear<P>>(std::move(t));
            });
            if (!typed) impl = std::make_unique<detail::reference_linear>(std::move(t));
            linear out = finish(std::move(impl), d, n, k, bias, std::move(layer_name));
            out.smoothing_ = std::move(smoothing);
            return out;
        });
    }
    /// As above, from a policy text and packed storage (a version-1 file, a GPTQ import).
    static linear from_compressed(std::string_view policy, packed_buffers storage, std::span<const float> bias = {},
                                  std::string layer_name = {}) {
        const std::string context = "linear '" + layer_name + "' (" + std::string(policy) + ", W " +
                                    std::to_string(storage.layout.rows) + "x" + std::to_string(storage.layout.cols) +
                                    ", compressed)";
        std::optional<descriptor> d;
        detail::with_layer_context(context, [&] {
            d = resolve_policy(policy, "linear::from_compressed");
            if (!d) tcomp::detail::throw_error<error>("fp32 layers have no compressed form; use linear::make");
        });
        return from_compressed(compressed_tensor{*d, std::move(storage), std::nullopt, {}}, bias, std::move(layer_name));
    }

    /// y[M x N] = x[M x K] * W^T + bias. `threads` includes the caller's. y must not overlap x (shape_error).
    void forward(matrix_view<const float> x, matrix_view<float> y, int threads = 1) const {
        if (!impl_) tcomp::detail::throw_error<error>("linear '", name, "': forward on an empty (moved-from) layer");
        if (x.cols() != k_ || y.cols() != n_ || y.rows() != x.rows())
            tcomp::detail::throw_error<shape_error>("linear '", name, "' (", policy_, ", ", n_, "x", k_, "): x is ",
                                                    x.rows(), "x", x.cols(), ", y is ", y.rows(), "x", y.cols(),
                                                    "; expected x M x ", k_, " and y M x ", n_);
        tcomp::detail::require_no_overlap(x, matrix_view<const float>(y), bias_, ("linear '" + name + "'").c_str());
        if (detail::current_input_observer != nullptr) (*detail::current_input_observer)(name, x);
        detail::with_layer_context("linear '" + name + "' (" + policy_ + ")", [&] {
            if (smoothing_.empty()) return impl_->forward(x, y, bias_, threads);
            // x / s, then the body (whose weights are W diag(s)).
            thread_local std::vector<float> smoothed;
            smoothed.resize(static_cast<std::size_t>(x.rows() * k_));
            for (index_t r = 0; r < x.rows(); ++r)
                for (index_t c = 0; c < k_; ++c)
                    smoothed[static_cast<std::size_t>(r * k_ + c)] = x(r, c) / smoothing_[static_cast<std::size_t>(c)];
            impl_->forward(matrix_view<const float>(smoothed.data(), x.rows(), k_), y, bias_, threads);
        });
    }

    index_t in_features() const { return k_; }
    index_t out_features() const { return n_; }
    /// Bytes the layer streams per call: the packed weights with their scales (cpu::packed_weights::
    /// kernel_bytes), or N*K floats for fp32; plus the float bias when there is one.
    std::size_t weight_bytes() const { return (impl_ ? impl_->bytes() : 0) + bias_.size() * sizeof(float); }
    /// The layer's policy, short: "fp32", the alias of its descriptor ("w8a8"), else the spelling.
    const std::string& policy() const { return policy_; }
    /// The descriptor (empty for fp32).
    const std::optional<descriptor>& desc() const { return desc_; }
    /// "" when a SIMD kernel runs this layer, else why the scalar oracle or the reference path does (same
    /// weights, same format).
    std::string kernel_note() const { return impl_ ? impl_->kernel_note() : std::string{}; }
    /// Bytes of the weights in the canonical packed form (see linear_impl::stored_bytes), plus the float bias.
    std::size_t stored_bytes() const {
        return (impl_ ? impl_->stored_bytes() : 0) + (bias_.size() + smoothing_.size()) * sizeof(float);
    }
    std::span<const float> bias() const { return bias_; }
    /// The per-input-channel smoothing divisors (compressed_tensor::smoothing), or empty.
    std::span<const float> smoothing() const { return smoothing_; }

private:
    static linear finish(std::unique_ptr<detail::linear_impl> impl, std::optional<descriptor> d, index_t n, index_t k,
                         std::span<const float> bias, std::string layer_name) {
        if (!bias.empty() && static_cast<index_t>(bias.size()) != n)
            tcomp::detail::throw_error<shape_error>("bias has ", bias.size(), " entries, expected N = ", n);
        linear out;
        out.name = std::move(layer_name);
        out.impl_ = std::move(impl);
        out.policy_ = d ? std::string(alias_of(*d)) : std::string("fp32");
        if (d && out.policy_.empty()) out.policy_ = spell(*d);
        out.desc_ = std::move(d);
        out.bias_.assign(bias.begin(), bias.end());
        out.n_ = n, out.k_ = k;
        return out;
    }

    std::unique_ptr<detail::linear_impl> impl_;
    std::string policy_ = "fp32";
    std::optional<descriptor> desc_;
    std::vector<float> smoothing_;
    std::vector<float> bias_;
    index_t n_ = 0, k_ = 0;
};

}  // namespace tcomp::model
