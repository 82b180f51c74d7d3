// expect: fixed_point_format<m, n>: 1 [+] m [+] n must be at most 8 bits
// Q4.4 needs 1 + 4 + 4 = 9 bits.
#include <tcomp/format/fixed_point.hpp>

static_assert(sizeof(tcomp::fixed_point_format<4, 4>) > 0);
