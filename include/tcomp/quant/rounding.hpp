// Rounding of x/S to the code grid.
//   nearest_even   round half to even: deterministic, unbiased on ties
//   stochastic     floor(v + u), u ~ U[0,1) from a counter-based generator keyed by (seed, element index):
//                  unbiased in expectation (E[q] = v) and reproducible; the seed is a required run-time
//                  argument (quantize_options::seed), never a hidden default.
#pragma once

namespace tcomp {

struct rounding_category {};

struct nearest_even {
    using option_category = rounding_category;
    static constexpr bool is_stochastic = false;
};
struct stochastic {
    using option_category = rounding_category;
    static constexpr bool is_stochastic = true;
};

}  // namespace tcomp
