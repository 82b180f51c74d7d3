// model::group_norm: GroupNorm (Wu & He 2018) as torch.nn.GroupNorm computes it for one sample: the channels
// are split into `groups` consecutive groups; each group is normalised by the mean and biased variance of all
// its values (its channels over every pixel), y = (x - mean) / sqrt(var + eps), then, when affine, scaled and
// shifted per channel (y * weight[c] + bias[c]). Statistics are accumulated in double, two-pass, so a group of
// a million values keeps float accuracy. Data is one image in NHWC order, [pixels x channels] (conv2d.hpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"

namespace tcomp::model {

class group_norm {
public:
    /// Layer name, used in every error message (e.g. "3.pool.1").
    std::string name;

    group_norm() = default;
    /// Throws when groups or channels are not positive, channels % groups != 0, or eps is negative or not
    /// finite. An affine norm starts as the identity (weight 1, bias 0) until set_affine().
    group_norm(index_t groups, index_t channels, double eps = 1e-5, bool affine = true, std::string layer_name = {})
        : name(std::move(layer_name)), groups_(groups), channels_(channels), eps_(eps), affine_(affine) {
        if (groups <= 0 || channels <= 0 || channels % groups != 0)
            tcomp::detail::throw_error<shape_error>("group_norm '", name, "': ", channels,
                                                    " channels cannot be split into ", groups,
                                                    " groups (both must be > 0 and groups must divide channels)");
        if (!(eps >= 0.0) || !std::isfinite(eps))
            tcomp::detail::throw_error<value_error>("group_norm '", name, "': eps must be finite and >= 0, got ", eps);
        if (affine_) weight_.assign(static_cast<std::size_t>(channels), 1.0f), bias_.assign(weight_.size(), 0.0f);
    }

    /// Per-channel scale and shift (torch's GroupNorm.weight and .bias).
    void set_affine(std::span<const float> weight, std::span<const float> bias) {
        if (!affine_)
            tcomp::detail::throw_error<error>("group_norm '", name,
                                              "': set_affine on a norm built with affine = false");
        if (static_cast<index_t>(weight.size()) != channels_ || static_cast<index_t>(bias.size()) != channels_)
            tcomp::detail::throw_error<shape_error>("group_norm '", name, "': weight has ", weight.size(),
                                                    " and bias ", bias.size(), " entries, expected ", channels_);
        weight_.assign(weight.begin(), weight.end());
        bias_.assign(bias.begin(), bias.end());
    }

    index_t groups() const { return groups_; }
    index_t channels() const { return channels_; }
    double eps() const { return eps_; }
    bool affine() const { return affine_; }

    /// y = GroupNorm(x), x and y [pixels x channels]; y may be x (in place).
    void forward(matrix_view<const float> x, matrix_view<float> y) const {
        if (groups_ == 0) tcomp::detail::throw_error<error>("group_norm '", name, "': forward on an empty layer");
        if (x.cols() != channels_ || y.cols() != channels_ || y.rows() != x.rows())
            tcomp::detail::throw_error<shape_error>("group_norm '", name, "': x is ", x.rows(), "x", x.cols(),
                                                    ", y is ", y.rows(), "x", y.cols(), "; expected both pixels x ",
                                                    channels_);
        const index_t pixels = x.rows(), per_group = channels_ / groups_;
        if (pixels == 0) return;
        const auto count = static_cast<double>(pixels * per_group);
        for (index_t g = 0; g < groups_; ++g) {
            const index_t c0 = g * per_group;
            double sum = 0.0;
            for (index_t p = 0; p < pixels; ++p)
                for (index_t c = c0; c < c0 + per_group; ++c) sum += x(p, c);
            const double mean = sum / count;
            double squares = 0.0;
            for (index_t p = 0; p < pixels; ++p)
                for (index_t c = c0; c < c0 + per_group; ++c) {
                    const double d = x(p, c) - mean;
                    squares += d * d;
                }
            const double inv_std = 1.0 / std::sqrt(squares / count + eps_);
            // (x - mean) first: folding the mean into the shift would cancel badly when |mean| >> std.
            const auto mean_f = static_cast<float>(mean);
            std::vector<float> scale(static_cast<std::size_t>(per_group)), shift(scale.size());
            for (index_t c = 0; c < per_group; ++c) {
                const auto i = static_cast<std::size_t>(c0 + c);
                scale[static_cast<std::size_t>(c)] = static_cast<float>((affine_ ? weight_[i] : 1.0) * inv_std);
                shift[static_cast<std::size_t>(c)] = affine_ ? bias_[i] : 0.0f;
            }
            for (index_t p = 0; p < pixels; ++p)
                for (index_t c = 0; c < per_group; ++c)
                    y(p, c0 + c) = (x(p, c0 + c) - mean_f) * scale[static_cast<std::size_t>(c)] +
                                   shift[static_cast<std::size_t>(c)];
        }
    }

private:
    index_t groups_ = 0, channels_ = 0;
    double eps_ = 1e-5;
    bool affine_ = true;
    std::vector<float> weight_, bias_;
};

}  // namespace tcomp::model
