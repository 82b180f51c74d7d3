// expect: n_m<N, M>: N must be at least 1
#include <tcomp/quant/presets.hpp>

static_assert(sizeof(tcomp::n_m<0, 4>) > 0);
