// expect: n_m<N, M>: N must not exceed M
#include <tcomp/quant/presets.hpp>

static_assert(sizeof(tcomp::n_m<5, 4>) > 0);
