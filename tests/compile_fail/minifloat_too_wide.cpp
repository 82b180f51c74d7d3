// expect: minifloat_format<E, M, Rules>: too wide: 1 \+ E \+ M must be at most 16 bits
// 1 sign + 8 exponent + 8 mantissa bits = 17: wider than any tcomp code (1..16 bits).
#include "tcomp/format/minifloat.hpp"

int main() {
    using too_wide = tcomp::minifloat_format<8, 8>;
    return static_cast<int>(too_wide::encode(1.0f));
}
