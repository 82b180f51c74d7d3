// Classifier accuracy: the fraction of predictions equal to the labels, from class ids or from logit rows.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/metrics/distribution.hpp"

namespace tcomp::metrics {

inline double accuracy(std::span<const int> predictions, std::span<const int> labels) {
    if (predictions.size() != labels.size())
        tcomp::detail::throw_error<shape_error>("accuracy: ", predictions.size(), " predictions but ", labels.size(),
                                                " labels");
    if (labels.empty()) tcomp::detail::throw_error<shape_error>("accuracy: no samples");
    std::size_t hits = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) hits += predictions[i] == labels[i];
    return static_cast<double>(hits) / static_cast<double>(labels.size());
}

/// Row i of `logits` (samples x classes) is sample i; its prediction is the argmax (first on ties).
inline double accuracy(matrix_view<const float> logits, std::span<const int> labels) {
    if (static_cast<std::size_t>(logits.rows()) != labels.size())
        tcomp::detail::throw_error<shape_error>("accuracy: ", logits.rows(), " logit rows but ", labels.size(),
                                                " labels");
    if (labels.empty()) tcomp::detail::throw_error<shape_error>("accuracy: no samples");
    std::size_t hits = 0;
    for (index_t r = 0; r < logits.rows(); ++r) {
        for (float v : logits.row(r))
            if (std::isnan(v)) tcomp::detail::throw_error<value_error>("accuracy: logits of sample ", r, " hold NaN");
        hits += argmax(logits.row(r)) == labels[static_cast<std::size_t>(r)];
    }
    return static_cast<double>(hits) / static_cast<double>(labels.size());
}

}  // namespace tcomp::metrics
