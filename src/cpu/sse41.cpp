// The sse41 path of tcomp's CPU kernels. Compiled with the sse41 instruction-set flags by
// cmake/tcompCpuKernels.cmake; registers its kernel table at start-up (tcomp/kernel/cpu/dispatch.hpp).
#include "tcomp/kernel/cpu/instantiate.hpp"

TCOMP_CPU_REGISTER_PATH(sse41)
