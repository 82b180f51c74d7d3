// Counter-based random numbers: the value for element i depends only on (seed, i), so stochastic
// rounding gives the same codes whatever the thread count, tiling or back end (CPU, CUDA).
#pragma once

#include <cstdint>

#include "tcomp/core/config.hpp"

namespace tcomp::detail {

/// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix with good avalanche.
TCOMP_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// Uniform in [0, 1) with 24 random bits (exactly representable in float) for stream (seed, counter).
TCOMP_HOST_DEVICE constexpr float uniform01(std::uint64_t seed, std::uint64_t counter) {
    const std::uint64_t bits = mix64(seed * 0x9E3779B97F4A7C15ull + mix64(counter + 0x632BE59BD9B4E019ull));
    return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tcomp::detail
