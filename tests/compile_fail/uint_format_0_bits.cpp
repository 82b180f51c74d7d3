// expect: uint_format<Bits>: Bits must be in 1[.][.]8
// uint_format<0> has no codes.
#include <tcomp/format/integer.hpp>

static_assert(sizeof(tcomp::uint_format<0>) > 0);
