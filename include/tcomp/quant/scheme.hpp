// Quantization scheme: where zero sits on the code grid.
//   symmetric   x ~ S * q             zero is code 0; one scale per group
//   asymmetric  x ~ S * (q - z)       an integer zero point z per group fits a skewed range [lo, hi]
// Asymmetric needs an integer format whose grid contains every integer in range (binary has no zero).
#pragma once

namespace tcomp {

struct scheme_category {};

struct symmetric {
    using option_category = scheme_category;
    static constexpr bool has_zero_point = false;
};
struct asymmetric {
    using option_category = scheme_category;
    static constexpr bool has_zero_point = true;
};

}  // namespace tcomp
