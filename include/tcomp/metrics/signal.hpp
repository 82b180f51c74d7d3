// Signal-level error metrics between a reference and a test vector (a layer's output, an image, logits):
// SQNR and PSNR in dB and cosine similarity. Sums run in double so long vectors of small errors do not lose
// the error to rounding. Size mismatches throw shape_error; NaN throws value_error (naming the element),
// since one NaN would silently turn every metric into NaN.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

#include "tcomp/core/error.hpp"

namespace tcomp::metrics {
namespace detail {

inline void require_same_size(std::size_t a, std::size_t b, const char* where) {
    if (a != b) tcomp::detail::throw_error<shape_error>(where, ": sizes differ (", a, " vs ", b, ")");
}

inline void require_no_nan(std::span<const float> v, const char* where, const char* what) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (std::isnan(v[i])) tcomp::detail::throw_error<value_error>(where, ": ", what, "[", i, "] is NaN");
}

/// Checks both operands and returns sum((ref - test)^2) and sum(ref^2).
struct error_energy {
    double error = 0.0, signal = 0.0;
};

inline error_energy energies(std::span<const float> reference, std::span<const float> test, const char* where) {
    require_same_size(reference.size(), test.size(), where);
    require_no_nan(reference, where, "reference");
    require_no_nan(test, where, "test");
    error_energy e;
    for (std::size_t i = 0; i < reference.size(); ++i) {
        const double r = reference[i], d = r - static_cast<double>(test[i]);
        e.error += d * d;
        e.signal += r * r;
    }
    return e;
}

}  // namespace detail

/// 10 log10(sum ref^2 / sum (ref - test)^2). +inf when identical (also for two empty or all-zero inputs).
inline double sqnr_db(std::span<const float> reference, std::span<const float> test) {
    const auto e = detail::energies(reference, test, "sqnr_db");
    if (e.error == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(e.signal / e.error);  // -inf for an all-zero reference with any error
}

/// 10 log10(peak^2 / MSE); +inf when identical. `peak` is the data range (1.0 for images in [0, 1]).
inline double psnr_db(std::span<const float> reference, std::span<const float> test, double peak = 1.0) {
    if (!(peak > 0.0)) tcomp::detail::throw_error<value_error>("psnr_db: peak must be > 0, got ", peak);
    const auto e = detail::energies(reference, test, "psnr_db");
    if (reference.empty()) tcomp::detail::throw_error<shape_error>("psnr_db: empty inputs");
    if (e.error == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(peak * peak / (e.error / static_cast<double>(reference.size())));
}

/// a.b / (|a| |b|). Two all-zero vectors are identical (1); one all-zero vector against another is 0.
inline double cosine_similarity(std::span<const float> a, std::span<const float> b) {
    detail::require_same_size(a.size(), b.size(), "cosine_similarity");
    detail::require_no_nan(a, "cosine_similarity", "a");
    detail::require_no_nan(b, "cosine_similarity", "b");
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        ab += static_cast<double>(a[i]) * b[i];
        aa += static_cast<double>(a[i]) * a[i];
        bb += static_cast<double>(b[i]) * b[i];
    }
    if (aa == 0.0 && bb == 0.0) return 1.0;
    if (aa == 0.0 || bb == 0.0) return 0.0;
    return ab / (std::sqrt(aa) * std::sqrt(bb));
}

}  // namespace tcomp::metrics
