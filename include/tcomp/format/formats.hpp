// Every number format tcomp knows, in one include.
#pragma once

#include "tcomp/format/binary.hpp"
#include "tcomp/format/e8m0.hpp"
#include "tcomp/format/fixed_point.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/format/fp8.hpp"
#include "tcomp/format/half.hpp"
#include "tcomp/format/integer.hpp"
#include "tcomp/format/minifloat.hpp"
#include "tcomp/format/mx_elements.hpp"
#include "tcomp/format/nf4.hpp"
#include "tcomp/format/ternary.hpp"
