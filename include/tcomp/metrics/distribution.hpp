// Metrics on next-token distributions (rows of logits, one row per position): KL divergence of the test
// model's softmax from the reference's, top-1 agreement, and perplexity against target tokens. All
// log-softmaxes run in double with the max subtracted, so large logits neither overflow nor lose the tail.
// -inf logits (masked tokens) are allowed; NaN and +inf are value_errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"

namespace tcomp::metrics {
namespace detail {

inline void require_logits(std::span<const float> logits, const char* where) {
    if (logits.empty()) tcomp::detail::throw_error<shape_error>(where, ": empty logit row");
    for (std::size_t i = 0; i < logits.size(); ++i)
        if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<float>::infinity())
            tcomp::detail::throw_error<value_error>(where, ": logit[", i, "] is ",
                                                    std::isnan(logits[i]) ? "NaN" : "+inf");
}

/// log(sum exp(logits)), stable.
inline double log_sum_exp(std::span<const float> logits) {
    const double mx = *std::max_element(logits.begin(), logits.end());
    if (mx == -std::numeric_limits<double>::infinity())
        tcomp::detail::throw_error<value_error>("log_sum_exp: every logit is -inf (no token has probability)");
    double s = 0.0;
    for (float v : logits) s += std::exp(static_cast<double>(v) - mx);
    return mx + std::log(s);
}

}  // namespace detail

/// log softmax(logits), in double.
inline std::vector<double> log_softmax(std::span<const float> logits) {
    detail::require_logits(logits, "log_softmax");
    const double lse = detail::log_sum_exp(logits);
    std::vector<double> out(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
    return out;
}

/// Index of the largest logit (the first one on ties), as greedy decoding picks it.
inline int argmax(std::span<const float> v) {
    if (v.empty()) tcomp::detail::throw_error<shape_error>("argmax: empty row");
    return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

/// KL(softmax(reference) || softmax(test)) in nats: the information lost by using the test distribution.
inline double kl_divergence(std::span<const float> reference_logits, std::span<const float> test_logits) {
    if (reference_logits.size() != test_logits.size())
        tcomp::detail::throw_error<shape_error>("kl_divergence: logit rows differ in size (", reference_logits.size(),
                                                " vs ", test_logits.size(), ")");
    const auto p = log_softmax(reference_logits);
    const auto q = log_softmax(test_logits);
    double kl = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] == -std::numeric_limits<double>::infinity()) continue;  // 0 * log(0 / q) = 0
        kl += std::exp(p[i]) * (p[i] - q[i]);                            // +inf when q has 0 where p does not
    }
    return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
}

namespace detail {

inline void require_same_shape(matrix_view<const float> a, matrix_view<const float> b, const char* where) {
    if (a.rows() != b.rows() || a.cols() != b.cols())
        tcomp::detail::throw_error<shape_error>(where, ": shapes differ (", a.rows(), "x", a.cols(), " vs ", b.rows(),
                                                "x", b.cols(), ")");
    if (a.rows() == 0) tcomp::detail::throw_error<shape_error>(where, ": no rows");
}

}  // namespace detail

/// Mean over rows (positions) of kl_divergence.
inline double mean_kl_divergence(matrix_view<const float> reference_logits, matrix_view<const float> test_logits) {
    detail::require_same_shape(reference_logits, test_logits, "mean_kl_divergence");
    double s = 0.0;
    for (index_t r = 0; r < reference_logits.rows(); ++r)
        s += kl_divergence(reference_logits.row(r), test_logits.row(r));
    return s / static_cast<double>(reference_logits.rows());
}

/// Fraction of rows whose argmax agrees.
inline double top1_agreement(matrix_view<const float> reference_logits, matrix_view<const float> test_logits) {
    detail::require_same_shape(reference_logits, test_logits, "top1_agreement");
    index_t same = 0;
    for (index_t r = 0; r < reference_logits.rows(); ++r) {
        detail::require_logits(reference_logits.row(r), "top1_agreement");
        detail::require_logits(test_logits.row(r), "top1_agreement");
        same += argmax(reference_logits.row(r)) == argmax(test_logits.row(r));
    }
    return static_cast<double>(same) / static_cast<double>(reference_logits.rows());
}

/// -log softmax(logits)[target], in nats.
inline double token_nll(std::span<const float> logits, int target) {
    if (target < 0 || static_cast<std::size_t>(target) >= logits.size())
        tcomp::detail::throw_error<shape_error>("token_nll: target ", target, " outside the vocabulary of ",
                                                logits.size());
    detail::require_logits(logits, "token_nll");
    return detail::log_sum_exp(logits) - static_cast<double>(logits[static_cast<std::size_t>(target)]);
}

/// Accumulates negative log-likelihoods over many sequences; perplexity = exp(mean NLL over all tokens).
struct nll_accumulator {
    double sum = 0.0;
    std::size_t count = 0;

    void add(std::span<const float> logits, int target) {
        sum += token_nll(logits, target);
        ++count;
    }
    /// Row t of `logits` predicts targets[t].
    void add(matrix_view<const float> logits, std::span<const int> targets) {
        if (static_cast<std::size_t>(logits.rows()) != targets.size())
            tcomp::detail::throw_error<shape_error>("nll_accumulator: ", logits.rows(), " logit rows but ",
                                                    targets.size(), " targets");
        for (index_t r = 0; r < logits.rows(); ++r) add(logits.row(r), targets[static_cast<std::size_t>(r)]);
    }
    double mean_nll() const {
        if (count == 0) tcomp::detail::throw_error<value_error>("nll_accumulator: no tokens added");
        return sum / static_cast<double>(count);
    }
    double perplexity() const { return std::exp(mean_nll()); }
};

/// exp(mean NLL) of targets under the logits; row t predicts targets[t].
inline double perplexity(matrix_view<const float> logits, std::span<const int> targets) {
    nll_accumulator acc;
    acc.add(logits, targets);
    return acc.perplexity();
}

}  // namespace tcomp::metrics
