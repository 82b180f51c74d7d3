// model::conv2d: a 2-D convolution (stride 1, square kernel k, zero padding p) computed as im2col + a
// model::linear, so every convolution takes any policy of the run-time registry (policy_registry.hpp) and runs
// on the same SIMD kernels as a transformer projection. Also the element-wise pieces a convolutional decoder
// needs: ReLU, the tanh soft clamp, nearest 2x upsampling.
//
// Layout: NHWC (one image is height x width x channels, channels fastest), because
//  - the GEMM output [pixels x Cout] *is* the next layer's NHWC input: no transpose between layers;
//  - a 1x1 convolution needs no im2col at all: the image is already the [pixels x Cin] matrix X;
//  - im2col copies, per output pixel and kernel row, k*Cin contiguous floats (one memcpy) instead of
//    gathering single floats across planes as NCHW would;
//  - an im2col row is one output pixel, so a per-token activation quantizer scales each pixel's receptive
//    field on its own.
// The weight is reshaped from PyTorch's [Cout][Cin][k][k] to W[Cout x K], K = k*k*Cin, in one of two column
// orders, a choice of the layer (conv_weight_order) that im2col follows:
//   taps      (kernel row, kernel column, channel; channels fastest): one memcpy of k*Cin floats per kernel row;
//             a per_group<G> policy groups G channels of one kernel tap;
//   channels  (channel, kernel row, kernel column): PyTorch's flattened order; a group holds G/(k*k) whole
//             channels' kernels, whose weights are more alike (TAEF2: +2.6 dB at symmetric 4-bit g32, measured
//             in the calibration issue), at the price of a gather in im2col.
// K must satisfy the policy (e.g. K % G == 0), else the policy's own error names the layer; the format never
// changes silently.
//
// The image is processed in tiles of output rows whose im2col buffer stays within im2col_budget_bytes (at
// least one output row), so memory stays bounded for any image size; threads take contiguous runs of tiles,
// each with its own buffer. A residual add and a ReLU can be fused into each tile (conv_epilogue) while it is in
// cache. 1 MiB measured best for taesd's 64-channel 3x3 convs (256 KiB to 8 MiB are within ~10%).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/kernel/cpu/thread_pool.hpp"
#include "tcomp/model/linear.hpp"

namespace tcomp::model {

/// The order of a conv's GEMM columns (see the file comment). The strings are stable (recipes, files).
enum class conv_weight_order { taps, channels };

inline std::string_view to_string(conv_weight_order o) { return o == conv_weight_order::taps ? "taps" : "channels"; }

inline conv_weight_order parse_conv_weight_order(std::string_view s) {
    if (s == "taps") return conv_weight_order::taps;
    if (s == "channels") return conv_weight_order::channels;
    tcomp::detail::throw_error<error>("unknown conv weight order \"", s, "\"; known: taps (ky, kx, ci), channels (ci, ky, kx)");
}

/// One image in NHWC order: data[(y * width + x) * channels + c].
struct feature_map {
    index_t height = 0;
    index_t width = 0;
    index_t channels = 0;
    std::vector<float> data;

    feature_map() = default;
    feature_map(index_t h, index_t w, index_t c) : height(h), width(w), channels(c) {
        if (h < 0 || w < 0 || c < 0)
            tcomp::detail::throw_error<shape_error>("feature_map: negative shape ", h, "x", w, "x", c);
        data.resize(static_cast<std::size_t>(h * w * c));
    }

    index_t pixels() const { return height * width; }
    /// The image as the [pixels x channels] matrix a 1x1 convolution multiplies.
    matrix_view<const float> matrix() const { return {data.data(), pixels(), channels}; }
    matrix_view<float> matrix() { return {data.data(), pixels(), channels}; }
    const float* pixel(index_t y, index_t x) const { return data.data() + (y * width + x) * channels; }
    float* pixel(index_t y, index_t x) { return data.data() + (y * width + x) * channels; }

    /// Throws shape_error when data does not hold height*width*channels values.
    void check(std::string_view where) const {
        if (height < 0 || width < 0 || channels < 0 ||
            data.size() != static_cast<std::size_t>(height * width * channels))
            tcomp::detail::throw_error<shape_error>(where, ": feature map of ", height, "x", width, "x", channels,
                                                    " holds ", data.size(), " values");
    }
};

/// max(x, 0) in place. Eigen's packet code: GCC -O2 does not vectorise the scalar loop, and these passes over
/// 16 MB feature maps are memory-bound.
inline void relu_inplace(std::span<float> x) {
    Eigen::Map<Eigen::ArrayXf> a(x.data(), static_cast<Eigen::Index>(x.size()));
    a = a.max(0.0f);
}

/// x += y, element-wise (same sizes).
inline void add_inplace(std::span<float> x, std::span<const float> y) {
    if (x.size() != y.size())
        tcomp::detail::throw_error<shape_error>("add_inplace: ", x.size(), " and ", y.size(), " values");
    Eigen::Map<Eigen::ArrayXf> a(x.data(), static_cast<Eigen::Index>(x.size()));
    a += Eigen::Map<const Eigen::ArrayXf>(y.data(), static_cast<Eigen::Index>(y.size()));
}

/// What conv2d::forward applies to each output tile while it is still in cache: y = conv(x) [+ residual],
/// then [max(y, 0)]. Saves a full pass over the output per fused step (taesd's blocks are memory-bound there).
struct conv_epilogue {
    const feature_map* residual = nullptr;  // added to the output; must have the output's shape
    bool relu = false;
};

class conv2d {
public:
    /// Layer name, used in every error message (e.g. "3.conv.2").
    std::string name;
    /// im2col scratch per thread. Tiles of output rows are sized to fit (at least one row is always taken).
    std::size_t im2col_budget_bytes = std::size_t{1} << 20;

    conv2d() = default;
    conv2d(conv2d&&) noexcept = default;
    conv2d& operator=(conv2d&&) noexcept = default;

    /// weight_oihw: PyTorch's [out][in][k][k], row-major; bias empty or `out_channels` entries. Throws
    /// shape_error for inconsistent sizes, tcomp::error for an unknown policy, and the policy's own error
    /// (with the layer name) when it cannot take K = k*k*in_channels.
    static conv2d make(std::string_view policy_name, std::span<const float> weight_oihw, index_t out_channels,
                       index_t in_channels, index_t kernel, index_t padding, std::span<const float> bias = {},
                       std::string layer_name = {}, conv_weight_order order = conv_weight_order::taps) {
        conv2d c;
        c.name = std::move(layer_name);
        if (out_channels <= 0 || in_channels <= 0 || kernel <= 0 || padding < 0)
            tcomp::detail::throw_error<shape_error>("conv2d '", c.name, "': invalid geometry: ", out_channels,
                                                    " out, ", in_channels, " in, kernel ", kernel, ", padding ",
                                                    padding, " (channels and kernel must be > 0, padding >= 0)");
        const index_t k_dim = kernel * kernel * in_channels;
        if (static_cast<index_t>(weight_oihw.size()) != out_channels * k_dim)
            tcomp::detail::throw_error<shape_error>("conv2d '", c.name, "': weight has ", weight_oihw.size(),
                                                    " values, expected ", out_channels, "x", in_channels, "x",
                                                    kernel, "x", kernel, " = ", out_channels * k_dim);
        const dense_matrix<float> w = im2col_weights(weight_oihw, out_channels, in_channels, kernel, order);
        c.gemm_ = linear::make(policy_name, w.view(), bias, c.name);
        c.in_ = in_channels, c.out_ = out_channels, c.kernel_ = kernel, c.padding_ = padding, c.order_ = order;
        return c;
    }

    /// PyTorch's [o][ci][ky][kx] weights as the GEMM's W[out x k*k*Cin], columns in `order` ((ky * k + kx) * Cin
    /// + ci for taps, ci * k * k + ky * k + kx for channels): what a calibration method compresses for
    /// from_compressed. Its statistics must be of im2col rows in the same order (a conv of that order).
    static dense_matrix<float> im2col_weights(std::span<const float> weight_oihw, index_t out_channels,
                                              index_t in_channels, index_t kernel,
                                              conv_weight_order order = conv_weight_order::taps) {
        const index_t k_dim = kernel * kernel * in_channels, kk = kernel * kernel;
        if (static_cast<index_t>(weight_oihw.size()) != out_channels * k_dim)
            tcomp::detail::throw_error<shape_error>("conv2d::im2col_weights: ", weight_oihw.size(), " values for ",
                                                    out_channels, "x", in_channels, "x", kernel, "x", kernel);
        dense_matrix<float> w(out_channels, k_dim);
        for (index_t o = 0; o < out_channels; ++o)
            for (index_t ci = 0; ci < in_channels; ++ci)
                for (index_t t = 0; t < kk; ++t)
                    w(o, order == conv_weight_order::taps ? t * in_channels + ci : ci * kk + t) =
                        weight_oihw[static_cast<std::size_t>((o * in_channels + ci) * kk + t)];
        return w;
    }

    /// A conv whose GEMM weights were compressed elsewhere (W[out x k*k*Cin] in the im2col order, e.g. from
    /// im2col_weights through a calibration method): run as stored, never re-quantized.
    static conv2d from_compressed(compressed_tensor t, index_t in_channels, index_t kernel, index_t padding,
                                  std::span<const float> bias = {}, std::string layer_name = {},
                                  conv_weight_order order = conv_weight_order::taps) {
        conv2d c;
        c.name = std::move(layer_name);
        if (in_channels <= 0 || kernel <= 0 || padding < 0 || t.cols() != kernel * kernel * in_channels)
            tcomp::detail::throw_error<shape_error>("conv2d '", c.name, "': compressed weights ", t.rows(), "x", t.cols(),
                                                    " for ", in_channels, " input channels and kernel ", kernel,
                                                    " (K must be kernel^2 * Cin), padding ", padding);
        c.out_ = t.rows();
        c.gemm_ = linear::from_compressed(std::move(t), bias, c.name);
        c.in_ = in_channels, c.kernel_ = kernel, c.padding_ = padding, c.order_ = order;
        return c;
    }

    index_t in_channels() const { return in_; }
    index_t out_channels() const { return out_; }
    index_t kernel() const { return kernel_; }
    index_t padding() const { return padding_; }
    conv_weight_order weight_order() const { return order_; }
    /// The GEMM's reduction length, k*k*Cin: what a per_group policy must divide.
    index_t k_dim() const { return kernel_ * kernel_ * in_; }
    index_t out_height(index_t height) const { return height + 2 * padding_ - kernel_ + 1; }
    index_t out_width(index_t width) const { return width + 2 * padding_ - kernel_ + 1; }
    const linear& gemm() const { return gemm_; }
    std::string_view policy() const { return gemm_.policy(); }
    std::size_t weight_bytes() const { return gemm_.weight_bytes(); }
    /// "" when a SIMD kernel runs the GEMM, else why the scalar oracle does.
    std::string kernel_note() const { return gemm_.kernel_note(); }

    feature_map forward(const feature_map& x, int threads = 1, const conv_epilogue& epilogue = {}) const {
        feature_map y;
        forward(x, y, threads, epilogue);
        return y;
    }

    /// y (resized) = epilogue(conv(x)). `threads` includes the caller's; threads take contiguous runs of row
    /// tiles. y must not be x or the residual.
    void forward(const feature_map& x, feature_map& y, int threads = 1, const conv_epilogue& epilogue = {}) const {
        if (kernel_ == 0) tcomp::detail::throw_error<error>("conv2d '", name, "': forward on an empty layer");
        x.check("conv2d '" + name + "' input");
        if (x.channels != in_)
            tcomp::detail::throw_error<shape_error>("conv2d '", name, "': input has ", x.channels,
                                                    " channels, the layer takes ", in_);
        const index_t oh = out_height(x.height), ow = out_width(x.width);
        if (oh <= 0 || ow <= 0)
            tcomp::detail::throw_error<shape_error>("conv2d '", name, "': a ", x.height, "x", x.width,
                                                    " input is smaller than the ", kernel_, "x", kernel_,
                                                    " kernel with padding ", padding_);
        if (&x == &y || epilogue.residual == &y)
            tcomp::detail::throw_error<error>("conv2d '", name, "': the output map is also an input");
        if (const feature_map* r = epilogue.residual) {
            r->check("conv2d '" + name + "' residual");
            if (r->height != oh || r->width != ow || r->channels != out_)
                tcomp::detail::throw_error<shape_error>("conv2d '", name, "': residual is ", r->height, "x", r->width,
                                                        "x", r->channels, ", the output ", oh, "x", ow, "x", out_);
        }
        y.height = oh, y.width = ow, y.channels = out_;
        y.data.resize(static_cast<std::size_t>(oh * ow * out_));

        const index_t k_dim = this->k_dim();
        const bool direct = kernel_ == 1 && padding_ == 0;  // the image already is X (both orders agree for k = 1)
        const index_t row_floats = ow * (direct ? 1 : k_dim);
        index_t tile_rows = std::max<index_t>(
            1, static_cast<index_t>(im2col_budget_bytes / sizeof(float)) / std::max<index_t>(row_floats, 1));
        threads = std::max(threads, 1);
        // Enough tiles for every thread.
        tile_rows = std::min(tile_rows, (oh + threads - 1) / threads);
        const index_t tiles = (oh + tile_rows - 1) / tile_rows;
        const index_t tasks = std::min<index_t>(threads, tiles);

        auto run_task = [&](index_t task) {
            const index_t t0 = task * tiles / tasks, t1 = (task + 1) * tiles / tasks;
            std::vector<float> cols;
            if (!direct) cols.resize(static_cast<std::size_t>(std::min(tile_rows, oh) * ow * k_dim));
            for (index_t t = t0; t < t1; ++t) {
                const index_t y0 = t * tile_rows, rows = std::min(tile_rows, oh - y0);
                matrix_view<float> out(y.data.data() + y0 * ow * out_, rows * ow, out_);
                if (direct) {
                    gemm_.forward(matrix_view<const float>(x.pixel(y0, 0), rows * ow, in_), out, 1);
                } else {
                    im2col(x, y0, rows, ow, cols.data());
                    gemm_.forward(matrix_view<const float>(cols.data(), rows * ow, k_dim), out, 1);
                }
                const auto begin = static_cast<std::size_t>(y0 * ow * out_);
                const auto count = static_cast<std::size_t>(rows * ow * out_);
                std::span<float> tile(y.data.data() + begin, count);
                if (epilogue.residual)
                    add_inplace(tile, std::span<const float>(epilogue.residual->data).subspan(begin, count));
                if (epilogue.relu) relu_inplace(tile);
            }
        };
        if (tasks <= 1) {
            run_task(0);
        } else {
            cpu::thread_pool::instance().run(static_cast<int>(tasks), tasks, run_task);
        }
    }

private:
    /// Rows [y0, y0 + rows) of the output as im2col rows (one per output pixel, K = k*k*Cin each, in order_).
    void im2col(const feature_map& x, index_t y0, index_t rows, index_t ow, float* cols) const {
        const index_t k = kernel_, c = in_, k_dim = this->k_dim();
        if (order_ == conv_weight_order::channels) {
            const index_t kk = k * k;
            for (index_t oy = y0; oy < y0 + rows; ++oy)
                for (index_t ox = 0; ox < ow; ++ox) {
                    float* row = cols + ((oy - y0) * ow + ox) * k_dim;
                    for (index_t ky = 0; ky < k; ++ky)
                        for (index_t kx = 0; kx < k; ++kx) {
                            const index_t iy = oy + ky - padding_, ix = ox + kx - padding_, t = ky * k + kx;
                            if (iy < 0 || iy >= x.height || ix < 0 || ix >= x.width) {
                                for (index_t ci = 0; ci < c; ++ci) row[ci * kk + t] = 0.0f;
                                continue;
                            }
                            const float* px = x.pixel(iy, ix);
                            for (index_t ci = 0; ci < c; ++ci) row[ci * kk + t] = px[ci];
                        }
                }
            return;
        }
        for (index_t oy = y0; oy < y0 + rows; ++oy)
            for (index_t ox = 0; ox < ow; ++ox) {
                float* row = cols + ((oy - y0) * ow + ox) * k_dim;
                const index_t x0 = ox - padding_;
                // Columns of the kernel that fall inside the image: [kx_lo, kx_hi).
                const index_t kx_lo = std::max<index_t>(0, -x0), kx_hi = std::min<index_t>(k, x.width - x0);
                for (index_t ky = 0; ky < k; ++ky) {
                    float* seg = row + ky * k * c;
                    const index_t iy = oy + ky - padding_;
                    if (iy < 0 || iy >= x.height || kx_lo >= kx_hi) {
                        std::fill(seg, seg + k * c, 0.0f);
                        continue;
                    }
                    std::fill(seg, seg + kx_lo * c, 0.0f);
                    // NHWC: the taps of one kernel row are contiguous in the input.
                    std::memcpy(seg + kx_lo * c, x.pixel(iy, x0 + kx_lo),
                                static_cast<std::size_t>((kx_hi - kx_lo) * c) * sizeof(float));
                    std::fill(seg + kx_hi * c, seg + k * c, 0.0f);
                }
            }
    }

    linear gemm_;
    index_t in_ = 0, out_ = 0, kernel_ = 0, padding_ = 0;
    conv_weight_order order_ = conv_weight_order::taps;
};

/// limit * tanh(x / limit) in place: the soft clamp TAESD applies to latents (limit 3).
inline void tanh_clamp_inplace(std::span<float> x, float limit = 3.0f) {
    if (!(limit > 0.0f) || !std::isfinite(limit))
        tcomp::detail::throw_error<value_error>("tanh_clamp_inplace: limit must be finite and > 0, got ", limit);
    for (float& v : x) v = std::tanh(v / limit) * limit;
}

/// Nearest-neighbour 2x upsampling (each pixel becomes a 2x2 block), as torch.nn.Upsample(scale_factor=2).
inline feature_map upsample_nearest2x(const feature_map& x) {
    x.check("upsample_nearest2x");
    feature_map y(2 * x.height, 2 * x.width, x.channels);
    const auto c = static_cast<std::size_t>(x.channels);
    for (index_t iy = 0; iy < x.height; ++iy) {
        float* out = y.pixel(2 * iy, 0);
        for (index_t ix = 0; ix < x.width; ++ix) {
            const float* in = x.pixel(iy, ix);
            std::memcpy(out + (2 * ix) * x.channels, in, c * sizeof(float));
            std::memcpy(out + (2 * ix + 1) * x.channels, in, c * sizeof(float));
        }
        std::memcpy(y.pixel(2 * iy + 1, 0), out, c * static_cast<std::size_t>(y.width) * sizeof(float));
    }
    return y;
}

}  // namespace tcomp::model
