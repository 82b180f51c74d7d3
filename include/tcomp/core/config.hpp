// Library-wide configuration: version, and the host/device annotation that lets the scalar format code
// (encode/decode, bit unpacking) be shared by CPU kernels and CUDA kernels without a second copy.
#pragma once

#define TCOMP_VERSION_MAJOR 0
#define TCOMP_VERSION_MINOR 1
#define TCOMP_VERSION_PATCH 0

#if defined(__CUDACC__)
#define TCOMP_HOST_DEVICE __host__ __device__
#else
#define TCOMP_HOST_DEVICE
#endif

// Asks GCC and Clang to unroll the next host loop n times. Empty under nvcc, whose front end rejects the GCC
// pragma (the CPU headers reach .cu files through the front door, tcomp/matmul.hpp).
#if defined(__CUDACC__) || !defined(__GNUC__)
#define TCOMP_HOST_UNROLL(n)
#else
#define TCOMP_HOST_UNROLL_PRAGMA(text) _Pragma(#text)
#define TCOMP_HOST_UNROLL(n) TCOMP_HOST_UNROLL_PRAGMA(GCC unroll n)
#endif

#include <cstddef>
#include <cstdint>

namespace tcomp {
/// Signed index type for shapes and loops (avoids unsigned wrap-around in tail arithmetic).
using index_t = std::ptrdiff_t;
}  // namespace tcomp
