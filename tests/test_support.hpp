// Shared test helpers: seeded Gaussian matrices (std::mt19937, row-major fill order), so every test file
// draws the same values for the same seed; error_of, the message of the tcomp::error a call throws;
// models_dir and have_models, for the tests that read the real models of ../shared/models.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>
#include <cstring>

#include <tcomp/core/error.hpp>
#include <tcomp/core/matrix_view.hpp>
#include <tcomp/kernel/cpu/dispatch.hpp>

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

/// n values drawn uniformly from [-amplitude, amplitude) (a bias vector, say).
inline std::vector<float> uniform_vector(tcomp::index_t n, std::uint32_t seed, float amplitude = 1.0f) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-amplitude, amplitude);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = dist(gen);
    return v;
}

/// The bit pattern of a float.
inline std::uint32_t bits_of(float f) {
    std::uint32_t u = 0;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

/// Every CPU path this machine can run except the scalar reference (the oracle the others are checked against).
inline std::vector<tcomp::cpu::isa_path> simd_paths() {
    std::vector<tcomp::cpu::isa_path> out;
    for (auto p : tcomp::cpu::available_paths())
        if (p != tcomp::cpu::isa_path::reference) out.push_back(p);
    return out;
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

/// The real models: $TCOMP_MODELS_DIR when set and not empty, else ../shared/models beside the repository
/// (TCOMP_SHARED_DIR/models).
inline std::filesystem::path models_dir() {
    if (const char* env = std::getenv("TCOMP_MODELS_DIR"); env != nullptr && *env != '\0') return env;
    return std::filesystem::path(TCOMP_SHARED_DIR) / "models";
}

/// Whether a missing model is a failure rather than a skip: under CI (CI=true; the models are always there)
/// or with TCOMP_REQUIRE_MODELS=1.
inline bool models_required() {
    const char* ci = std::getenv("CI");
    const char* require = std::getenv("TCOMP_REQUIRE_MODELS");
    return (ci != nullptr && (std::string_view(ci) == "true" || std::string_view(ci) == "1")) ||
           (require != nullptr && std::string_view(require) == "1");
}

/// Whether every file of `files` (paths relative to models_dir()) exists. When one does not:
///  - under models_required(), a test failure naming the missing path (FAIL ends the test case);
///  - otherwise a warning line "TCOMP_SKIP: <path> not found; <what> did not run" and false, so the caller
///    returns. CTest reports a test case that prints "TCOMP_SKIP: " as Skipped (tests/CMakeLists.txt), whatever
///    else it did: call this first, in a test case that checks nothing without the models.
inline bool have_models(std::string_view what, std::initializer_list<std::string_view> files) {
    const std::filesystem::path dir = models_dir();
    for (std::string_view f : files) {
        const std::filesystem::path path = dir / f;
        if (std::filesystem::exists(path)) continue;
        if (models_required())
            FAIL(path.string() << " not found (CI=true or TCOMP_REQUIRE_MODELS=1: the models must be there; "
                               << "TCOMP_MODELS_DIR overrides where they are looked for); " << what << " cannot run");
        WARN("TCOMP_SKIP: " << path.string() << " not found; " << what << " did not run");
        return false;
    }
    return true;
}

}  // namespace tcomp_test
