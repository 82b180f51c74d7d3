// model::linear: the one linear layer every model layer uses, Y = X * W^T + bias with W[N x K]. The policy is
// chosen at run time by name (policy_registry.hpp), so a per-layer recipe can mix formats in one model; behind
// the name the layer is either float weights (Eigen GEMM) or compress<P> + cpu::pack once and tcomp::matmul
// per call. A K that the policy cannot take (a group size that does not divide it, 2:4 with K % 4 != 0) is the
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
#include "tcomp/kernel/cpu/matmul.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/model/policy_registry.hpp"
#include "tcomp/quant/compress.hpp"

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
};

/// Float weights, Y = X * W^T through Eigen; threads split the output columns (also works for one token).
class fp32_linear final : public linear_impl {
public:
    explicit fp32_linear(matrix_view<const float> w) : n_(w.rows()), k_(w.cols()), w_(static_cast<std::size_t>(n_ * k_)) {
        for (index_t r = 0; r < n_; ++r) std::copy(w.row(r).begin(), w.row(r).end(), w_.begin() + r * k_);
    }

    void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                 int threads) const override {
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
    std::size_t bytes() const override { return w_.size() * sizeof(float); }

private:
    index_t n_, k_;
    std::vector<float> w_;
};

/// Compressed and pre-packed once; tcomp::matmul picks the SIMD kernel (or the oracle, with a reason).
template <class Policy>
class packed_linear final : public linear_impl {
public:
    explicit packed_linear(matrix_view<const float> w) : w_(cpu::pack(compress<Policy>(w))) {}
    /// Already compressed weights (a file, an import): packed as they are, never re-quantized.
    explicit packed_linear(compressed_weights<Policy> w) : w_(cpu::pack(std::move(w))) {}

    void forward(matrix_view<const float> x, matrix_view<float> y, std::span<const float> bias,
                 int threads) const override {
        matmul(x, w_, y, bias, cpu::run_options{.threads = std::max(threads, 1)});
    }
    std::size_t bytes() const override { return w_.kernel_bytes(); }
    std::string kernel_note() const override { return w_.unsupported_reason(); }
    const cpu::packed_weights<Policy>& packed() const { return w_; }

private:
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

    /// W is N x K (out x in, the PyTorch layout); bias empty or N entries. Throws tcomp::error for an
    /// unknown policy name, and the policy's own error (with the layer name) for a K it cannot take.
    static linear make(std::string_view policy_name, matrix_view<const float> w, std::span<const float> bias = {},
                       std::string layer_name = {}) {
        linear out;
        out.name = std::move(layer_name);
        const std::string context = "linear '" + out.name + "' (" + std::string(policy_name) + ", W " +
                                    std::to_string(w.rows()) + "x" + std::to_string(w.cols()) + ")";
        detail::with_layer_context(context, [&] {
            require_known_policy(policy_name, "linear::make");
            if (!bias.empty() && static_cast<index_t>(bias.size()) != w.rows())
                tcomp::detail::throw_error<shape_error>("bias has ", bias.size(), " entries, expected N = ", w.rows());
            tcomp::detail::require_finite(w, "linear::make", "W");
            out.impl_ = make_impl(policy_name, w);
        });
        for (std::string_view n : known_policies())
            if (n == policy_name) out.policy_ = n;
        out.bias_.assign(bias.begin(), bias.end());
        out.n_ = w.rows(), out.k_ = w.cols();
        return out;
    }

    /// A layer from weights compressed elsewhere (a compressed model file, a GPTQ import): `storage` must have
    /// exactly the layout `policy_name` produces for its shape (else shape_error naming the layer). Nothing is
    /// re-quantized, so the layer computes what make() computes on the weights that produced `storage`.
    static linear from_compressed(std::string_view policy_name, packed_buffers storage, std::span<const float> bias = {},
                                  std::string layer_name = {}) {
        linear out;
        out.name = std::move(layer_name);
        const index_t n = storage.layout.rows, k = storage.layout.cols;
        const std::string context = "linear '" + out.name + "' (" + std::string(policy_name) + ", W " +
                                    std::to_string(n) + "x" + std::to_string(k) + ", compressed)";
        detail::with_layer_context(context, [&] {
            require_known_policy(policy_name, "linear::from_compressed");
            if (!bias.empty() && static_cast<index_t>(bias.size()) != n)
                tcomp::detail::throw_error<shape_error>("bias has ", bias.size(), " entries, expected N = ", n);
            out.impl_ = visit_policy(policy_name, [&]<class P>(std::type_identity<P>) -> std::unique_ptr<detail::linear_impl> {
                if constexpr (std::is_same_v<P, fp32_policy>) {
                    tcomp::detail::throw_error<error>("fp32 layers have no compressed form; use linear::make");
                } else {
                    using matrix = typename compressed_weights<P>::matrix_type;
                    return std::make_unique<detail::packed_linear<P>>(compressed_weights<P>(matrix(std::move(storage))));
                }
            });
        });
        for (std::string_view name : known_policies())
            if (name == policy_name) out.policy_ = name;
        out.bias_.assign(bias.begin(), bias.end());
        out.n_ = n, out.k_ = k;
        return out;
    }

    /// y[M x N] = x[M x K] * W^T + bias. `threads` includes the caller's.
    void forward(matrix_view<const float> x, matrix_view<float> y, int threads = 1) const {
        if (!impl_) tcomp::detail::throw_error<error>("linear '", name, "': forward on an empty (moved-from) layer");
        if (x.cols() != k_ || y.cols() != n_ || y.rows() != x.rows())
            tcomp::detail::throw_error<shape_error>("linear '", name, "' (", policy_, ", ", n_, "x", k_, "): x is ",
                                                    x.rows(), "x", x.cols(), ", y is ", y.rows(), "x", y.cols(),
                                                    "; expected x M x ", k_, " and y M x ", n_);
        detail::with_layer_context("linear '" + name + "' (" + std::string(policy_) + ")",
                                   [&] { impl_->forward(x, y, bias_, threads); });
    }

    index_t in_features() const { return k_; }
    index_t out_features() const { return n_; }
    /// Bytes the layer streams per call: the packed weights with their scales (cpu::packed_weights::
    /// kernel_bytes), or N*K floats for fp32; plus the float bias when there is one.
    std::size_t weight_bytes() const { return (impl_ ? impl_->bytes() : 0) + bias_.size() * sizeof(float); }
    std::string_view policy() const { return policy_; }
    /// "" when a SIMD kernel runs this layer, else why the scalar oracle does (same weights, same format).
    std::string kernel_note() const { return impl_ ? impl_->kernel_note() : std::string{}; }
    std::span<const float> bias() const { return bias_; }

private:
    static std::unique_ptr<detail::linear_impl> make_impl(std::string_view policy_name, matrix_view<const float> w) {
        return visit_policy(policy_name, [&]<class P>(std::type_identity<P>) -> std::unique_ptr<detail::linear_impl> {
            if constexpr (std::is_same_v<P, fp32_policy>) return std::make_unique<detail::fp32_linear>(w);
            else return std::make_unique<detail::packed_linear<P>>(w);
        });
    }

    std::unique_ptr<detail::linear_impl> impl_;
    std::string_view policy_ = "fp32";  // points into the registry's static names
    std::vector<float> bias_;
    index_t n_ = 0, k_ = 0;
};

}  // namespace tcomp::model
