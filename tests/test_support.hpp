// Shared test helpers: seeded Gaussian matrices (std::mt19937, row-major fill order), so every test file
// draws the same values for the same seed; error_of, the message of the tcomp::error a call throws.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include <tcomp/core/error.hpp>
#include <tcomp/core/matrix_view.hpp>

namespace tcomp_test {

inline tcomp::dense_matrix<float> gaussian(tcomp::index_t rows, tcomp::index_t cols, std::uint32_t seed,
                                           float sigma = 1.0f) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    tcomp::dense_matrix<float> m(rows, cols);
    for (tcomp::index_t r = 0; r < rows; ++r)
        for (tcomp::index_t c = 0; c < cols; ++c) m(r, c) = dist(gen);
    return m;
}

/// The message of the tcomp::error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const tcomp::error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace tcomp_test
