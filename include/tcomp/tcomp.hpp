// The whole public API in one include.
#pragma once

#include "tcomp/core/bit_packing.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/core/packed_storage.hpp"
#include "tcomp/eigen.hpp"
#include "tcomp/format/formats.hpp"
#include "tcomp/matmul.hpp"
#include "tcomp/quant/calibration.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/presets.hpp"
#include "tcomp/quant/requantize.hpp"
#include "tcomp/sparse/prune.hpp"
