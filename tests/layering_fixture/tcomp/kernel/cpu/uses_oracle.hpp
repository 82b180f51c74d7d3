// Fixture of the layering check: the CPU back end including the reference back end must be rejected.
#pragma once
#include "tcomp/kernel/reference/matmul.hpp"
