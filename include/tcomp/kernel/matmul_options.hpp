// The one options struct of tcomp::matmul, for every back end: each reads the fields it needs and ignores the
// rest, so a caller can switch weights between compressed (the reference), cpu::pack and cuda::pack without
// touching the call.
#pragma once

#include "tcomp/quant/compressed_matrix.hpp"

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so this header needs no CUDA

namespace tcomp {

namespace cuda {
struct workspace;
}

struct matmul_options {
    /// CPU: threads to use, the caller's included; 0 = std::thread::hardware_concurrency().
    int threads = 0;
    /// Reference path (and the CPU's fallback to it): seed of stochastic activation rounding, etc. The SIMD and
    /// CUDA kernels round to nearest even only.
    quantize_options quantize{};
    /// CUDA: the stream the call is queued on (nullptr: the legacy default stream).
    CUstream_st* stream = nullptr;
    /// CUDA: scratch reused across calls; nullptr uses one kept per calling thread and device. Grows with
    /// cudaMalloc on the first call of a larger problem: make one such call before capturing into a CUDA graph.
    cuda::workspace* workspace = nullptr;
    /// CUDA int8 paths: stop with a value_error naming the row when X holds NaN/Inf (one 4-byte copy and a
    /// stream synchronisation per call); false leaves such rows' outputs NaN.
    bool check_finite = true;
};

}  // namespace tcomp
