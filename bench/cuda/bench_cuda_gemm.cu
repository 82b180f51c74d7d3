// GPU GEMM benchmark: tcomp's CUDA kernels (W4A16, W8A16, W8A8, W4A8, 2:4 W8A8) side by side with cuBLAS
// fp16 / bf16 and cuBLASLt int8 on Y[M x N] = X[M x K] * W^T, for the weight shapes of 7B-70B LLM layers
// at decode (M = 1, 16) and prefill (M = 128, 4096) sizes, plus M = N = K = 8192. It also measures the
// device's own copy bandwidth, so weight-streaming speed at small M reads as a fraction of what the DRAM
// can do. A standalone program (no Google Benchmark): it needs a GPU, and the Google Benchmark suites in
// bench/ are CPU-only.
//
//   nvcc -std=c++20 -O3 -Iinclude --expt-relaxed-constexpr -arch=sm_90 -o bench_cuda_gemm
//        bench/cuda/bench_cuda_gemm.cu -lcublas -lcublasLt          (one line; from the repository root)
//   bench_cuda_gemm [--quick] [--filter SUBSTR] [--reps N] [--json FILE] [--no-graphs]
//
// Method. Weights are random (a weight_image filled directly: running tcomp::compress on 28672 x 8192
// weights would take minutes of CPU); activations are random nonzero fp16 in [-1, 1]; outputs fp16 for
// the tcomp kernels and the fp16 peer. Memory-bound cases (M <= 16) rotate over enough weight copies
// that together they exceed twice the L2, so every call streams its weights from DRAM; compute-bound
// cases use one copy. Each case is warmed up, timed once to size a batch, then the batch (captured in a
// CUDA graph, so host launch overhead does not inflate microsecond kernels; --no-graphs launches call
// by call) is timed with CUDA events `reps` times: median, min and max per call. Batches shrink as the
// run nears its budget, so the default run stays under about 3.5 minutes on an H100/H200. Before timing, every tcomp case runs once into an output poisoned
// with 0xFF bytes and fails if any element was left unwritten (correctness is tested in tests/cuda).
//
// Exit status: 0, 1 on any failure (the failing call is named), 2 for bad arguments, 77 without a GPU.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tcomp/kernel/cuda/matmul.cuh"
#include "tcomp/kernel/cuda/runtime.cuh"
#include "tcomp/kernel/cuda/weight_image.hpp"
#include "tcomp/quant/presets.hpp"

namespace {

using tcomp::index_t;
using tcomp::cuda::device_buffer;

// ---------------------------------------------------------------------------------------------- errors

void check_cublas(cublasStatus_t status, const char* call, int line) {
    if (status != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string(call) + " failed at bench_cuda_gemm.cu:" + std::to_string(line) + ": " +
                                 cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}
#define BENCH_CUBLAS_CHECK(call) check_cublas((call), #call, __LINE__)

// ----------------------------------------------------------------------------------- random host data

/// splitmix64: fills the hundreds of megabytes of the largest weight matrices in well under a second.
class fast_random {
public:
    explicit fast_random(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, 1).
    float uniform() { return static_cast<float>(next() >> 40) * 0x1p-24f; }
    void fill_bytes(void* data, std::size_t count) {
        auto* out = static_cast<unsigned char*>(data);
        for (std::size_t i = 0; i < count; i += 8) {
            const std::uint64_t word = next();
            std::memcpy(out + i, &word, std::min<std::size_t>(8, count - i));
        }
    }

private:
    std::uint64_t state_;
};

/// The bit layout of a 16-bit float format.
struct float16_layout {
    int mantissa_bits;
    int exponent_bias;
};
constexpr float16_layout fp16_layout{10, 15};
constexpr float16_layout bf16_layout{7, 127};

/// Random 16-bit floats with random sign and mantissa and magnitude in [2^e, 2^(e+1)), built from their
/// bits: never zero, and no float-to-half conversion of hundreds of millions of values on one core.
std::vector<std::uint16_t> random_float16_bits(std::size_t count, float16_layout layout, int e, fast_random& rng) {
    const auto exponent = static_cast<std::uint16_t>((e + layout.exponent_bias) << layout.mantissa_bits);
    const auto sign_and_mantissa = static_cast<std::uint16_t>(0x8000u | ((1u << layout.mantissa_bits) - 1u));
    std::vector<std::uint16_t> bits(count);
    rng.fill_bytes(bits.data(), count * sizeof(std::uint16_t));
    for (auto& b : bits) b = static_cast<std::uint16_t>((b & sign_and_mantissa) | exponent);
    return bits;
}

template <class T>
void upload_bytes(T* device, const void* host, std::size_t bytes) {
    TCOMP_CUDA_CHECK(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice));
}

/// Compressed weights of `Policy` made directly in the kernels' image layout, with random codes, scales in
/// [0.01, 0.02), zero points (asymmetric policies) and a random valid 2:4 pattern (sparse policies).
template <class Policy>
tcomp::cuda::weight_image random_weight_image(index_t n, index_t k, fast_random& rng) {
    using quantizer = typename Policy::weight_quantizer;
    using format = typename quantizer::format;
    constexpr index_t policy_group = quantizer::granularity::group_size;  // 0: one group per row

    tcomp::cuda::weight_image img;
    img.kind = tcomp::cuda::kernel_for<Policy>();
    img.rows = n, img.cols = k;
    img.code_bits = format::bits;
    img.is_signed = format::is_signed;
    img.group_size = policy_group > 0 ? policy_group : k;
    img.codes.resize(static_cast<std::size_t>(n * img.row_bytes()));
    rng.fill_bytes(img.codes.data(), img.codes.size());

    const auto scale_count = static_cast<std::size_t>(n * img.groups());
    img.scales.resize(scale_count);
    for (auto& s : img.scales) s = 0.01f + 0.01f * rng.uniform();
    if constexpr (quantizer::has_zero_point) {
        img.zero_points.resize(scale_count);
        for (auto& z : img.zero_points) z = static_cast<std::uint8_t>(rng.next() & ((1u << format::bits) - 1u));
    }

    if (img.sparse()) {
        // The six ways to keep two of four values, as (first, second) with first < second.
        constexpr unsigned kept[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
        img.metadata.assign(static_cast<std::size_t>(img.tiles() * (k / tcomp::cuda::k_multiple_sparse) * 32), 0u);
        // Rows past N in the last 16-row tile are read by the kernel too: they need a valid pattern as well.
        for (index_t r = 0; r < img.tiles() * 16; ++r)
            for (index_t g = 0; g < k / 4; ++g) {
                const auto& pair = kept[rng.next() % 6];
                tcomp::cuda::detail::place_sparse_metadata(img, r, g, tcomp::cuda::fragment::sp_nibble(pair[0], pair[1]));
            }
    }
    return img;
}

// ---------------------------------------------------------------------------------------- the kernels

enum class kernel_id { cublas_fp16, cublas_bf16, cublaslt_int8, w4a16, w8a16, w8a8, w4a8, w8a8_2of4 };

struct kernel_info {
    kernel_id id;
    const char* name;
    bool integer_math;  ///< int8 tensor cores: throughput in TOP/s rather than TFLOP/s
    bool is_tcomp;      ///< gets the unwritten-output check before timing
};

constexpr kernel_info all_kernels[] = {
    {kernel_id::cublas_fp16, "cublas_fp16", false, false},
    {kernel_id::cublas_bf16, "cublas_bf16", false, false},
    {kernel_id::cublaslt_int8, "cublaslt_int8", true, false},
    {kernel_id::w4a16, "w4a16", false, true},
    {kernel_id::w8a16, "w8a16", false, true},
    {kernel_id::w8a8, "w8a8", true, true},
    {kernel_id::w4a8, "w4a8", true, true},
    {kernel_id::w8a8_2of4, "w8a8_2of4", true, true},
};
constexpr const char* reference_kernel = "cublas_fp16";  // the "speedup" column is relative to this one

constexpr index_t memory_bound_max_m = 16;  // at most this many tokens the weights dominate the traffic
constexpr std::size_t blas_workspace_bytes = std::size_t{32} << 20;

/// What every case shares: the stream, library handles, activations (sized for the largest case) and the
/// tcomp workspace.
struct bench_context {
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    cublasLtHandle_t blas_lt = nullptr;
    device_buffer<std::uint8_t> blas_workspace;  // shared by cuBLAS and cuBLASLt (one stream: never concurrent)
    device_buffer<__half> x_fp16;
    device_buffer<__nv_bfloat16> x_bf16;
    device_buffer<std::int8_t> x_int8;
    tcomp::cuda::workspace tcomp_workspace;
    std::size_t l2_bytes = 0;
    fast_random rng{20240601};
};

/// One kernel on one weight shape, with its weight copies on the device. call(m, copy, y) enqueues
/// Y = X W^T for the first m rows of the context's activations, reading weight copy `copy`.
struct gemm_runner {
    std::size_t weight_bytes = 0;  ///< bytes of one weight copy (codes, scales, zero points, metadata): read per call
    std::size_t output_element_bytes = 2;
    int copies = 1;
    std::function<void(index_t m, int copy, void* y)> call;
};

/// Memory-bound cases rotate over copies that together exceed twice the L2, so a copy has been evicted
/// by the time it comes round again and every call streams its weights from DRAM.
int weight_copies(std::size_t bytes_per_copy, std::size_t l2_bytes, bool memory_bound) {
    return memory_bound ? static_cast<int>(2 * l2_bytes / bytes_per_copy + 1) : 1;
}

const float blas_one = 1.0f, blas_zero = 0.0f;
const std::int32_t blas_int_one = 1, blas_int_zero = 0;

gemm_runner make_cublas_16bit(bool bf16, index_t n, index_t k, bool memory_bound, bench_context& ctx) {
    const auto elements = static_cast<std::size_t>(n * k);
    gemm_runner runner;
    runner.weight_bytes = elements * sizeof(std::uint16_t);
    runner.copies = weight_copies(runner.weight_bytes, ctx.l2_bytes, memory_bound);
    auto weights = std::make_shared<device_buffer<std::uint16_t>>(elements * static_cast<std::size_t>(runner.copies));
    // Magnitudes [2^-7, 2^-6): sums over K stay far from fp16 overflow.
    const auto host = random_float16_bits(elements, bf16 ? bf16_layout : fp16_layout, -7, ctx.rng);
    upload_bytes(weights->data(), host.data(), runner.weight_bytes);
    for (int c = 1; c < runner.copies; ++c)
        TCOMP_CUDA_CHECK(cudaMemcpy(weights->data() + elements * static_cast<std::size_t>(c), weights->data(),
                                    runner.weight_bytes, cudaMemcpyDeviceToDevice));
    const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const void* x = bf16 ? static_cast<const void*>(ctx.x_bf16.data()) : static_cast<const void*>(ctx.x_fp16.data());
    runner.call = [weights, elements, type, x, n, k, &ctx](index_t m, int copy, void* y) {
        // Row-major Y = X W^T is column-major Y^T = W X^T: W is K x N column-major (ld K), transposed.
        const std::uint16_t* w = weights->data() + elements * static_cast<std::size_t>(copy);
        BENCH_CUBLAS_CHECK(cublasGemmEx(ctx.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                        static_cast<int>(k), &blas_one, w, type, static_cast<int>(k), x, type,
                                        static_cast<int>(k), &blas_zero, y, type, static_cast<int>(n),
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    return runner;
}

/// cuBLASLt descriptors and the heuristic's algorithm for one int8 problem size.
struct lt_int8_plan {
    cublasLtMatmulDesc_t operation = nullptr;
    cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
    cublasLtMatmulAlgo_t algorithm{};

    lt_int8_plan(cublasLtHandle_t lt, index_t m, index_t n, index_t k) {
        // Int8 IMMA takes only the "TN" column-major form: A = W transposed (K x N, ld K), B = X^T (K x M).
        BENCH_CUBLAS_CHECK(cublasLtMatmulDescCreate(&operation, CUBLAS_COMPUTE_32I, CUDA_R_32I));
        const cublasOperation_t transpose = CUBLAS_OP_T;
        BENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                                          sizeof transpose));
        const auto extent = [](index_t v) { return static_cast<std::uint64_t>(v); };
        BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&w, CUDA_R_8I, extent(k), extent(n), k));
        BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&x, CUDA_R_8I, extent(k), extent(m), k));
        BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&y, CUDA_R_32I, extent(n), extent(m), n));
        cublasLtMatmulPreference_t preference = nullptr;
        BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
        const std::uint64_t workspace_limit = blas_workspace_bytes;
        BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                &workspace_limit, sizeof workspace_limit));
        cublasLtMatmulHeuristicResult_t best{};
        int found = 0;
        BENCH_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, operation, w, x, y, y, preference, 1, &best, &found));
        BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
        if (found == 0)
            throw std::runtime_error("cublasLtMatmulAlgoGetHeuristic found no int8 algorithm for M=" + std::to_string(m) +
                                     " N=" + std::to_string(n) + " K=" + std::to_string(k));
        algorithm = best.algo;
    }
    ~lt_int8_plan() {  // destroy statuses cannot be reported from a destructor
        cublasLtMatrixLayoutDestroy(y), cublasLtMatrixLayoutDestroy(x), cublasLtMatrixLayoutDestroy(w);
        cublasLtMatmulDescDestroy(operation);
    }
    lt_int8_plan(const lt_int8_plan&) = delete;
    lt_int8_plan& operator=(const lt_int8_plan&) = delete;
};

gemm_runner make_cublaslt_int8(index_t n, index_t k, bool memory_bound, bench_context& ctx) {
    struct state {
        device_buffer<std::int8_t> weights;
        std::map<index_t, std::unique_ptr<lt_int8_plan>> plans;  // by M, made at the first (warm-up) call
    };
    const auto elements = static_cast<std::size_t>(n * k);
    gemm_runner runner;
    runner.weight_bytes = elements;
    runner.output_element_bytes = sizeof(std::int32_t);
    runner.copies = weight_copies(runner.weight_bytes, ctx.l2_bytes, memory_bound);
    auto s = std::make_shared<state>();
    s->weights.resize(elements * static_cast<std::size_t>(runner.copies));
    std::vector<std::int8_t> host(elements);
    ctx.rng.fill_bytes(host.data(), elements);
    upload_bytes(s->weights.data(), host.data(), elements);
    for (int c = 1; c < runner.copies; ++c)
        TCOMP_CUDA_CHECK(cudaMemcpy(s->weights.data() + elements * static_cast<std::size_t>(c), s->weights.data(),
                                    elements, cudaMemcpyDeviceToDevice));
    runner.call = [s, elements, n, k, &ctx](index_t m, int copy, void* y) {
        auto& plan = s->plans[m];
        if (!plan) plan = std::make_unique<lt_int8_plan>(ctx.blas_lt, m, n, k);
        const std::int8_t* w = s->weights.data() + elements * static_cast<std::size_t>(copy);
        BENCH_CUBLAS_CHECK(cublasLtMatmul(ctx.blas_lt, plan->operation, &blas_int_one, w, plan->w, ctx.x_int8.data(),
                                          plan->x, &blas_int_zero, y, plan->y, y, plan->y, &plan->algorithm,
                                          ctx.blas_workspace.data(), ctx.blas_workspace.size(), ctx.stream));
    };
    return runner;
}

template <class Policy>
gemm_runner make_tcomp(index_t n, index_t k, bool memory_bound, bench_context& ctx) {
    using weights = tcomp::cuda::device_weights<Policy>;
    const tcomp::cuda::weight_image image = random_weight_image<Policy>(n, k, ctx.rng);
    auto copies = std::make_shared<std::vector<weights>>();
    gemm_runner runner;
    runner.copies = weight_copies(image.bytes(), ctx.l2_bytes, memory_bound);
    for (int c = 0; c < runner.copies; ++c) copies->emplace_back(image, ctx.stream);
    runner.weight_bytes = copies->front().bytes();
    runner.call = [copies, &ctx](index_t m, int copy, void* y) {
        // No NaN check while timing: it costs a stream synchronisation per call (and cannot be captured).
        const auto& w = (*copies)[static_cast<std::size_t>(copy)];
        tcomp::matmul(tcomp::matrix_view<const tcomp::float16>(
                          reinterpret_cast<const tcomp::float16*>(ctx.x_fp16.data()), m, w.cols()),
                      w, tcomp::matrix_view<tcomp::float16>(static_cast<tcomp::float16*>(y), m, w.rows()), {},
                      {.stream = ctx.stream, .workspace = &ctx.tcomp_workspace, .check_finite = false});
    };
    return runner;
}

gemm_runner make_runner(kernel_id id, index_t n, index_t k, bool memory_bound, bench_context& ctx) {
    switch (id) {
        case kernel_id::cublas_fp16: return make_cublas_16bit(false, n, k, memory_bound, ctx);
        case kernel_id::cublas_bf16: return make_cublas_16bit(true, n, k, memory_bound, ctx);
        case kernel_id::cublaslt_int8: return make_cublaslt_int8(n, k, memory_bound, ctx);
        case kernel_id::w4a16: return make_tcomp<tcomp::presets::w4a16>(n, k, memory_bound, ctx);
        case kernel_id::w8a16: return make_tcomp<tcomp::presets::w8a16>(n, k, memory_bound, ctx);
        case kernel_id::w8a8: return make_tcomp<tcomp::presets::w8a8>(n, k, memory_bound, ctx);
        case kernel_id::w4a8: return make_tcomp<tcomp::presets::w4a8>(n, k, memory_bound, ctx);
        case kernel_id::w8a8_2of4: return make_tcomp<tcomp::presets::w8a8_2of4>(n, k, memory_bound, ctx);
    }
    throw std::logic_error("make_runner: unknown kernel");
}

// ------------------------------------------------------------------------------------------- timing

class cuda_event {
public:
    cuda_event() { TCOMP_CUDA_CHECK(cudaEventCreate(&event_)); }
    ~cuda_event() { cudaEventDestroy(event_); }
    cuda_event(const cuda_event&) = delete;
    cuda_event& operator=(const cuda_event&) = delete;
    void record(cudaStream_t stream) { TCOMP_CUDA_CHECK(cudaEventRecord(event_, stream)); }
    /// Seconds from `start` to this event (both recorded; waits for this one).
    double seconds_since(const cuda_event& start) const {
        TCOMP_CUDA_CHECK(cudaEventSynchronize(event_));
        float ms = 0.0f;
        TCOMP_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
        return static_cast<double>(ms) * 1e-3;
    }

private:
    cudaEvent_t event_ = nullptr;
};

/// A batch of calls captured once and replayed as one graph launch.
class captured_batch {
public:
    captured_batch(const std::function<void(int)>& call, int batch, int copies, cudaStream_t stream) {
        cudaGraph_t graph = nullptr;
        // Relaxed: the libraries may make host-side runtime calls (attributes, device queries) while capturing.
        TCOMP_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
        for (int i = 0; i < batch; ++i) call(i % copies);
        TCOMP_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        TCOMP_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph, 0));
        TCOMP_CUDA_CHECK(cudaGraphDestroy(graph));
    }
    ~captured_batch() { cudaGraphExecDestroy(exec_); }
    captured_batch(const captured_batch&) = delete;
    captured_batch& operator=(const captured_batch&) = delete;
    void launch(cudaStream_t stream) { TCOMP_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }

private:
    cudaGraphExec_t exec_ = nullptr;
};

struct timing {
    double median_s = 0, min_s = 0, max_s = 0;  // per call
    int batch = 0;
};

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

constexpr int max_batch = 512;  // calls per timed batch (graph nodes stay in the low thousands)

/// Times call(copy) over `copies` rotating copies: `reps` batches, each of about target_s / reps seconds.
timing time_calls(const std::function<void(int)>& call, int copies, int reps, double target_s, bool graphs,
                  cudaStream_t stream) {
    // Warm-up: loads modules, grows workspaces, picks cuBLAS algorithms, touches every copy.
    for (int i = 0; i < std::max(2 * copies, 4); ++i) call(i % copies);
    TCOMP_CUDA_CHECK(cudaStreamSynchronize(stream));

    cuda_event start, stop;
    const int probe = std::max(copies, 4);
    start.record(stream);
    for (int i = 0; i < probe; ++i) call(i % copies);
    stop.record(stream);
    const double estimate = stop.seconds_since(start) / probe;

    // A whole number of rotations, so a graph replay never reuses the copy its previous call just read.
    int batch = static_cast<int>(std::clamp(target_s / reps / std::max(estimate, 1e-9), 1.0, double{max_batch}));
    batch = (batch + copies - 1) / copies * copies;

    std::unique_ptr<captured_batch> graph;
    if (graphs) {
        graph = std::make_unique<captured_batch>(call, batch, copies, stream);
        graph->launch(stream);  // the first replay uploads the graph
    }
    std::vector<double> per_call;
    for (int r = 0; r < reps; ++r) {
        start.record(stream);
        if (graph) graph->launch(stream);
        else
            for (int i = 0; i < batch; ++i) call(i % copies);
        stop.record(stream);
        per_call.push_back(stop.seconds_since(start) / batch);
    }
    return {median_of(per_call), *std::min_element(per_call.begin(), per_call.end()),
            *std::max_element(per_call.begin(), per_call.end()), batch};
}

/// Device-to-device copy bandwidth, bytes read + written per second (median of several 1 GiB copies).
double measure_copy_bandwidth(cudaStream_t stream) {
    std::size_t free_bytes = 0, total_bytes = 0;
    TCOMP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const std::size_t bytes = std::min<std::size_t>(std::size_t{1} << 30, free_bytes / 4) & ~std::size_t{255};
    device_buffer<std::uint8_t> source(bytes), target(bytes);
    TCOMP_CUDA_CHECK(cudaMemsetAsync(source.data(), 1, bytes, stream));
    const auto copy = [&](int) {
        TCOMP_CUDA_CHECK(cudaMemcpyAsync(target.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, stream));
    };
    return 2.0 * static_cast<double>(bytes) / time_calls(copy, 1, 15, 0.0, false, stream).median_s;
}

// -------------------------------------------------------------------------------------------- cases

struct bench_case {
    const kernel_info* kernel;
    index_t m, n, k;
    std::string name;  // "<kernel>/M=<m>/N=<n>/K=<k>"
};

struct result {
    bench_case c;
    int copies = 1;
    int reps = 0;
    std::size_t weight_bytes = 0;
    timing t;

    /// 2MNK per second; the 2:4 kernel too, though it multiplies only half the weights (effective throughput).
    double ops_per_s() const { return 2.0 * static_cast<double>(c.m * c.n) * static_cast<double>(c.k) / t.median_s; }
    double weight_bytes_per_s() const { return static_cast<double>(weight_bytes) / t.median_s; }
};

struct weight_shape {
    index_t n, k;
    std::vector<index_t> ms;
};

std::vector<bench_case> plan_cases(bool quick, const std::string& filter) {
    const std::vector<weight_shape> shapes =
        quick ? std::vector<weight_shape>{{4096, 4096, {1, 128}}}
              : std::vector<weight_shape>{{4096, 4096, {1, 16, 128, 4096}},
                                          {11008, 4096, {1, 16, 128, 4096}},
                                          {8192, 8192, {1, 16, 128, 4096, 8192}},
                                          {28672, 8192, {1, 16, 128, 4096}}};
    std::vector<bench_case> cases;
    for (const auto& shape : shapes)
        for (const auto& kernel : all_kernels)
            for (const index_t m : shape.ms) {
                bench_case c{&kernel, m, shape.n, shape.k,
                             std::string(kernel.name) + "/M=" + std::to_string(m) + "/N=" + std::to_string(shape.n) +
                                 "/K=" + std::to_string(shape.k)};
                if (c.name.find(filter) != std::string::npos) cases.push_back(std::move(c));
            }
    return cases;
}

/// Runs one tcomp case into an output poisoned with 0xFF bytes: a half left at 0xFFFF was never written
/// (a computed NaN would be the canonical 0x7FFF).
void check_every_output_written(const bench_case& c, gemm_runner& runner, void* y, bench_context& ctx) {
    const auto count = static_cast<std::size_t>(c.m * c.n);
    TCOMP_CUDA_CHECK(cudaMemsetAsync(y, 0xFF, count * sizeof(std::uint16_t), ctx.stream));
    runner.call(c.m, 0, y);
    std::vector<std::uint16_t> out(count);
    TCOMP_CUDA_CHECK(cudaMemcpyAsync(out.data(), y, count * sizeof(std::uint16_t), cudaMemcpyDeviceToHost, ctx.stream));
    TCOMP_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    const auto unwritten = static_cast<std::size_t>(std::count(out.begin(), out.end(), std::uint16_t{0xFFFF}));
    if (unwritten != 0) {
        const auto first = static_cast<std::size_t>(std::find(out.begin(), out.end(), std::uint16_t{0xFFFF}) - out.begin());
        std::printf("FAIL: %s left %zu of %zu outputs unwritten (first: row %zu, column %zu)\n", c.name.c_str(), unwritten,
                    count, first / static_cast<std::size_t>(c.n), first % static_cast<std::size_t>(c.n));
        std::exit(1);
    }
}

// ------------------------------------------------------------------------------------------- output

struct device_summary {
    std::string name;
    int sms = 0;
    std::size_t l2_bytes = 0;
    double copy_bytes_per_s = 0;
};

const result* find_reference(const std::vector<result>& results, const bench_case& c) {
    for (const auto& r : results)
        if (std::strcmp(r.c.kernel->name, reference_kernel) == 0 && r.c.m == c.m && r.c.n == c.n && r.c.k == c.k)
            return &r;
    return nullptr;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char ch : s) {
        if (ch == '"' || ch == '\\') out += '\\';
        if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
    }
    return out + "\"";
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

void write_json(const std::string& path, const device_summary& device, const std::vector<result>& results) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot open " + path + " for writing");
    std::fprintf(f, "{\n  \"context\": {\"device\": %s, \"sms\": %d, \"l2_bytes\": %zu, \"copy_GBps\": %.1f, \"date\": %s},\n",
                 json_string(device.name).c_str(), device.sms, device.l2_bytes, device.copy_bytes_per_s / 1e9,
                 json_string(utc_now()).c_str());
    std::fprintf(f, "  \"benchmarks\": [\n");
    for (std::size_t i = 0; i < results.size(); ++i) {
        const result& r = results[i];
        const result* reference = find_reference(results, r.c);
        // Google Benchmark's fields first (run_name, run_type, aggregate_name, iterations, real_time,
        // cpu_time, time_unit), so its tools read the file; then this bench's own.
        std::fprintf(f,
                     "    {\"name\": %s, \"run_name\": %s, \"run_type\": \"aggregate\", \"aggregate_name\": \"median\", "
                     "\"iterations\": %d, \"real_time\": %.3f, \"cpu_time\": %.3f, \"time_unit\": \"us\", "
                     "\"kernel\": %s, \"m\": %td, \"n\": %td, \"k\": %td, \"median_us\": %.3f, "
                     "\"min_us\": %.3f, \"max_us\": %.3f, \"reps\": %d, \"batch\": %d, \"weight_copies\": %d, "
                     "\"tera_ops_per_s\": %.3f, \"op_unit\": %s, \"weight_bytes\": %zu, \"weight_GBps\": %.1f, "
                     "\"weight_pct_of_copy\": %.1f, \"speedup_vs_cublas_fp16\": ",
                     json_string(r.c.name).c_str(), json_string(r.c.name).c_str(), r.t.batch * r.reps,
                     r.t.median_s * 1e6, r.t.median_s * 1e6, json_string(r.c.kernel->name).c_str(), r.c.m, r.c.n, r.c.k,
                     r.t.median_s * 1e6, r.t.min_s * 1e6, r.t.max_s * 1e6, r.reps, r.t.batch, r.copies,
                     r.ops_per_s() / 1e12, r.c.kernel->integer_math ? "\"TOP/s\"" : "\"TFLOP/s\"", r.weight_bytes,
                     r.weight_bytes_per_s() / 1e9, 100.0 * r.weight_bytes_per_s() / device.copy_bytes_per_s);
        if (reference != nullptr) std::fprintf(f, "%.3f}", reference->t.median_s / r.t.median_s);
        else std::fprintf(f, "null}");
        std::fprintf(f, "%s\n", i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + path);
}

void print_table(const device_summary& device, const std::vector<result>& results) {
    std::printf("\n%s, %d SMs, L2 %.0f MiB, copy bandwidth %.0f GB/s. Per call: median, min, max in us;\n"
                "T(FL)OP = 2MNK / median in T(FL)OP/s (TOP/s for int8); %%copy = weight bytes/s as %% of the copy\n"
                "bandwidth (meaningful for M <= %td); xfp16 = cuBLAS fp16 median / this median.\n",
                device.name.c_str(), device.sms, static_cast<double>(device.l2_bytes) / (1 << 20),
                device.copy_bytes_per_s / 1e9, memory_bound_max_m);
    // Grouped by problem size, so the kernels compared stand next to each other.
    std::vector<const result*> rows;
    for (const result& r : results) rows.push_back(&r);
    std::stable_sort(rows.begin(), rows.end(), [](const result* a, const result* b) {
        return std::tie(a->c.n, a->c.k, a->c.m) < std::tie(b->c.n, b->c.k, b->c.m);
    });
    std::printf("%-13s %4s %5s %4s %8s %8s %8s %7s %5s %5s", "kernel", "M", "N", "K", "median", "min", "max", "T(FL)OP",
                "%copy", "xfp16");
    const result* previous = nullptr;
    for (const result* r : rows) {
        if (previous == nullptr || previous->c.m != r->c.m || previous->c.n != r->c.n || previous->c.k != r->c.k)
            std::printf("\n");
        previous = r;
        const result* reference = find_reference(results, r->c);
        char speedup[16] = "-";
        if (reference != nullptr) std::snprintf(speedup, sizeof speedup, "%.2f", reference->t.median_s / r->t.median_s);
        std::printf("%-13s %4td %5td %4td %8.1f %8.1f %8.1f %7.1f %5.1f %5s\n", r->c.kernel->name, r->c.m, r->c.n, r->c.k,
                    r->t.median_s * 1e6, r->t.min_s * 1e6, r->t.max_s * 1e6, r->ops_per_s() / 1e12,
                    100.0 * r->weight_bytes_per_s() / device.copy_bytes_per_s, speedup);
    }
}

// --------------------------------------------------------------------------------------------- main

struct options {
    bool quick = false;
    bool graphs = true;
    int reps = 0;  // 0: the default for the mode
    std::string filter;
    std::string json_path;
};

options parse_options(int argc, char** argv) {
    options o;
    const auto usage = [&](const char* problem) {
        std::fprintf(stderr, "%s\nusage: %s [--quick] [--filter SUBSTR] [--reps N] [--json FILE] [--no-graphs]\n",
                     problem, argv[0]);
        std::exit(2);
    };
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
            return argv[++i];
        };
        if (arg == "--quick") o.quick = true;
        else if (arg == "--no-graphs") o.graphs = false;
        else if (arg == "--filter") o.filter = value();
        else if (arg == "--json") o.json_path = value();
        else if (arg == "--reps") {
            o.reps = std::atoi(value().c_str());
            if (o.reps < 1) usage("--reps needs a positive count");
        } else usage(("unknown argument " + arg).c_str());
    }
    return o;
}

int run(const options& opt) {
    const auto started = std::chrono::steady_clock::now();
    // Batches shrink (to one rotation over the copies) as the run nears its budget.
    const double budget_s = opt.quick ? 60.0 : 200.0;
    const double case_target_s = opt.quick ? 0.05 : 0.5;
    const int reps = opt.reps > 0 ? opt.reps : (opt.quick ? 3 : 15);

    const std::vector<bench_case> cases = plan_cases(opt.quick, opt.filter);
    if (cases.empty()) {
        std::printf("no case matches --filter %s\n", opt.filter.c_str());
        return 0;
    }

    bench_context ctx;
    int device = 0;
    cudaDeviceProp props{};
    TCOMP_CUDA_CHECK(cudaGetDevice(&device));
    TCOMP_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    int l2 = 0;
    TCOMP_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
    ctx.l2_bytes = static_cast<std::size_t>(l2);
    TCOMP_CUDA_CHECK(cudaStreamCreate(&ctx.stream));
    BENCH_CUBLAS_CHECK(cublasCreate(&ctx.blas));
    BENCH_CUBLAS_CHECK(cublasLtCreate(&ctx.blas_lt));
    ctx.blas_workspace.resize(blas_workspace_bytes);
    BENCH_CUBLAS_CHECK(cublasSetStream(ctx.blas, ctx.stream));
    // An explicit workspace, so cuBLAS allocates none while a graph is being captured (set after
    // cublasSetStream, which resets it to the default pool).
    BENCH_CUBLAS_CHECK(cublasSetWorkspace(ctx.blas, ctx.blas_workspace.data(), ctx.blas_workspace.size()));

    device_summary summary{props.name, props.multiProcessorCount, ctx.l2_bytes, measure_copy_bandwidth(ctx.stream)};
    std::printf("device: %s (sm_%d%d), %d SMs, L2 %zu bytes; copy bandwidth %.1f GB/s (read + write)\n", props.name,
                props.major, props.minor, summary.sms, summary.l2_bytes, summary.copy_bytes_per_s / 1e9);
    std::printf("%zu cases, %d reps each, %s\n", cases.size(), reps,
                opt.graphs ? "batches replayed as CUDA graphs" : "batches launched one call at a time");
    std::fflush(stdout);

    // Activations for the largest case, shared by all (a case reads the first M x K of them).
    std::size_t max_elements = 0;
    for (const auto& c : cases) max_elements = std::max(max_elements, static_cast<std::size_t>(c.m * c.k));
    {
        const auto x16 = random_float16_bits(max_elements, fp16_layout, -1, ctx.rng);  // magnitudes [0.5, 1)
        ctx.x_fp16.resize(max_elements);
        upload_bytes(ctx.x_fp16.data(), x16.data(), max_elements * sizeof(std::uint16_t));
        const auto xbf16 = random_float16_bits(max_elements, bf16_layout, -1, ctx.rng);
        ctx.x_bf16.resize(max_elements);
        upload_bytes(ctx.x_bf16.data(), xbf16.data(), max_elements * sizeof(std::uint16_t));
        std::vector<std::int8_t> x8(max_elements);
        ctx.rng.fill_bytes(x8.data(), max_elements);
        ctx.x_int8.resize(max_elements);
        upload_bytes(ctx.x_int8.data(), x8.data(), max_elements);
    }

    std::vector<result> results;
    // Cases come grouped by (shape, kernel): one set of weight copies serves all the M of a group.
    for (std::size_t first = 0; first < cases.size();) {
        std::size_t end = first;
        bool memory_bound = false;
        for (; end < cases.size() && cases[end].kernel == cases[first].kernel && cases[end].n == cases[first].n &&
               cases[end].k == cases[first].k;
             ++end)
            memory_bound |= cases[end].m <= memory_bound_max_m;
        gemm_runner runner = make_runner(cases[first].kernel->id, cases[first].n, cases[first].k, memory_bound, ctx);
        // Pageable uploads and device-to-device copies may still be in flight when cudaMemcpy returns.
        TCOMP_CUDA_CHECK(cudaDeviceSynchronize());

        for (std::size_t i = first; i < end; ++i) {
            const bench_case& c = cases[i];
            const int copies = c.m <= memory_bound_max_m ? runner.copies : 1;
            device_buffer<std::uint8_t> y(static_cast<std::size_t>(c.m * c.n) * runner.output_element_bytes);
            if (c.kernel->is_tcomp) check_every_output_written(c, runner, y.data(), ctx);

            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            const double target_s =
                std::min(case_target_s, std::max(0.0, budget_s - elapsed) / static_cast<double>(cases.size() - i));
            const auto call = [&](int copy) { runner.call(c.m, copy, y.data()); };
            result r{c, copies, reps, runner.weight_bytes, time_calls(call, copies, reps, target_s, opt.graphs, ctx.stream)};
            std::printf("[%3zu/%zu] %-32s %10.2f us (min %.2f, max %.2f; %d copies, batch %d x %d)\n", i + 1,
                        cases.size(), c.name.c_str(), r.t.median_s * 1e6, r.t.min_s * 1e6, r.t.max_s * 1e6, copies,
                        r.t.batch, reps);
            std::fflush(stdout);
            results.push_back(std::move(r));
        }
        first = end;
    }

    if (!opt.json_path.empty()) write_json(opt.json_path, summary, results);
    print_table(summary, results);
    BENCH_CUBLAS_CHECK(cublasLtDestroy(ctx.blas_lt));
    BENCH_CUBLAS_CHECK(cublasDestroy(ctx.blas));
    TCOMP_CUDA_CHECK(cudaStreamDestroy(ctx.stream));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse_options(argc, argv);
    if (tcomp::cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device (bench_cuda_gemm)\n");
        return 77;
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "FAIL: %s\n", e.what());
        return 1;
    }
}
