// Fixture of the layering check (tests/check_layering.cmake): an io/ header including model/ must be rejected.
#pragma once
#include "tcomp/model/linear.hpp"
