// expect: int_format<Bits>: Bits must be in 1[.][.]8
// int_format is limited to 1..8 bits.
#include <tcomp/format/integer.hpp>

static_assert(sizeof(tcomp::int_format<9>) > 0);
