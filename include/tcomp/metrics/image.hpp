// Image quality against a reference image: SSIM (Wang et al. 2004) as scikit-image and the reference MATLAB
// code compute it: an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L the data
// range, population (co)variances, the SSIM map over the positions where the window fits inside the image
// ("valid"), averaged per plane and then over planes. Images are planes x height x width (CHW, or NCHW with
// planes = N*C), row-major. PSNR is in signal.hpp.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/metrics/signal.hpp"

namespace tcomp::metrics {
namespace detail {

inline constexpr int ssim_radius = 5;  // 11 taps: scikit-image's truncate = 3.5 sigma, rounded

inline std::array<double, 2 * ssim_radius + 1> ssim_window() {
    std::array<double, 2 * ssim_radius + 1> w{};
    double sum = 0.0;
    for (int i = -ssim_radius; i <= ssim_radius; ++i) sum += w[static_cast<std::size_t>(i + ssim_radius)] =
                                                           std::exp(-0.5 * i * i / (1.5 * 1.5));
    for (double& v : w) v /= sum;
    return w;
}

/// Mean SSIM of one plane (h x w, row-major); the Gaussian filter is separable, so rows then columns.
inline double ssim_plane(const float* a, const float* b, index_t h, index_t w, double c1, double c2) {
    const auto win = ssim_window();
    constexpr int taps = 2 * ssim_radius + 1;
    const index_t ow = w - taps + 1, oh = h - taps + 1;
    // Horizontal pass: 5 moments (a, b, a^2, b^2, ab) for every row and valid column.
    std::vector<std::array<double, 5>> horiz(static_cast<std::size_t>(h * ow));
    for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < ow; ++x) {
            std::array<double, 5> m{};
            for (int t = 0; t < taps; ++t) {
                const double va = a[y * w + x + t], vb = b[y * w + x + t], g = win[static_cast<std::size_t>(t)];
                m[0] += g * va, m[1] += g * vb, m[2] += g * va * va, m[3] += g * vb * vb, m[4] += g * va * vb;
            }
            horiz[static_cast<std::size_t>(y * ow + x)] = m;
        }
    double total = 0.0;
    for (index_t y = 0; y < oh; ++y)
        for (index_t x = 0; x < ow; ++x) {
            std::array<double, 5> m{};
            for (int t = 0; t < taps; ++t) {
                const auto& hm = horiz[static_cast<std::size_t>((y + t) * ow + x)];
                const double g = win[static_cast<std::size_t>(t)];
                for (int q = 0; q < 5; ++q) m[static_cast<std::size_t>(q)] += g * hm[static_cast<std::size_t>(q)];
            }
            const double mu_a = m[0], mu_b = m[1];
            const double var_a = m[2] - mu_a * mu_a, var_b = m[3] - mu_b * mu_b, cov = m[4] - mu_a * mu_b;
            total += ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) /
                     ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
        }
    return total / static_cast<double>(oh * ow);
}

}  // namespace detail

/// Mean SSIM over `planes` planes of height x width; `data_range` L is the value span (1.0 for [0, 1]).
/// 1 for identical images. Each plane must be at least 11 x 11 (the window must fit).
inline double ssim(std::span<const float> reference, std::span<const float> test, index_t planes, index_t height,
                   index_t width, double data_range = 1.0) {
    detail::require_same_size(reference.size(), test.size(), "ssim");
    if (planes <= 0 || height <= 0 || width <= 0 ||
        static_cast<std::size_t>(planes * height * width) != reference.size())
        tcomp::detail::throw_error<shape_error>("ssim: ", reference.size(), " values do not make ", planes, " planes of ",
                                                height, "x", width);
    if (height < 2 * detail::ssim_radius + 1 || width < 2 * detail::ssim_radius + 1)
        tcomp::detail::throw_error<shape_error>("ssim: planes of ", height, "x", width,
                                                " are smaller than the 11x11 window");
    if (!(data_range > 0.0)) tcomp::detail::throw_error<value_error>("ssim: data_range must be > 0, got ", data_range);
    detail::require_no_nan(reference, "ssim", "reference");
    detail::require_no_nan(test, "ssim", "test");
    const double c1 = (0.01 * data_range) * (0.01 * data_range), c2 = (0.03 * data_range) * (0.03 * data_range);
    double sum = 0.0;
    const index_t plane = height * width;
    for (index_t p = 0; p < planes; ++p)
        sum += detail::ssim_plane(reference.data() + p * plane, test.data() + p * plane, height, width, c1, c2);
    return sum / static_cast<double>(planes);
}

}  // namespace tcomp::metrics
