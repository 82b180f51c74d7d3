// GPU check of the scalar format code that CPU and CUDA kernels share (TCOMP_HOST_DEVICE encode/decode):
// a kernel decodes every code of every format and encodes a fixed set of floats (specials, subnormals, ties,
// random bit patterns); the results must equal the host's bit for bit.
//
// Part of tcomp_cuda_tests (tests/cuda/main.cu runs it when a device is present).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda_tests.hpp"
#include "tcomp/format/formats.hpp"

namespace {

constexpr int max_codes = 1 << 16;

std::uint32_t host_bits(float x) {
    std::uint32_t u = 0;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
float host_float(std::uint32_t u) {
    float x = 0;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

bool cuda_ok(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return true;
    std::printf("CUDA error in %s: %s\n", what, cudaGetErrorString(err));
    return false;
}

template <class F>
__global__ void format_kernel(const float* inputs, int n_inputs, std::uint32_t* encoded, std::uint32_t* decoded,
                              int n_codes) {
    const int stride = static_cast<int>(blockDim.x * gridDim.x);
    const int first = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    for (int i = first; i < n_codes; i += stride)
        decoded[i] = tcomp::detail::bit_pattern(F::decode(static_cast<std::uint32_t>(i)));
    for (int i = first; i < n_inputs; i += stride) encoded[i] = F::encode(inputs[i]);
}

struct device_buffers {
    float* inputs = nullptr;
    std::uint32_t* encoded = nullptr;
    std::uint32_t* decoded = nullptr;
    int n_inputs = 0;
};

/// Runs one format on the device and compares with the host. Prints one PASS/FAIL line.
template <class F>
bool check_format(const char* label, const std::vector<float>& inputs, const device_buffers& dev) {
    const int n_codes = 1 << F::bits;
    const int n = dev.n_inputs;
    const int threads = 256;
    const int blocks = ((n_codes > n ? n_codes : n) + threads - 1) / threads;
    format_kernel<F><<<blocks, threads>>>(dev.inputs, n, dev.encoded, dev.decoded, n_codes);
    if (!cuda_ok(cudaGetLastError(), "kernel launch") || !cuda_ok(cudaDeviceSynchronize(), "kernel")) {
        std::printf("FAIL %-18s (CUDA error)\n", label);
        return false;
    }
    std::vector<std::uint32_t> encoded(static_cast<std::size_t>(n)), decoded(static_cast<std::size_t>(n_codes));
    if (!cuda_ok(
            cudaMemcpy(encoded.data(), dev.encoded, encoded.size() * sizeof(std::uint32_t), cudaMemcpyDeviceToHost),
            "copy encoded") ||
        !cuda_ok(
            cudaMemcpy(decoded.data(), dev.decoded, decoded.size() * sizeof(std::uint32_t), cudaMemcpyDeviceToHost),
            "copy decoded")) {
        std::printf("FAIL %-18s (CUDA error)\n", label);
        return false;
    }
    int bad_decode = 0, bad_encode = 0;
    for (int c = 0; c < n_codes; ++c) {
        const std::uint32_t host = host_bits(F::decode(static_cast<std::uint32_t>(c)));
        if (decoded[static_cast<std::size_t>(c)] != host && bad_decode++ < 3)
            std::printf("  %s decode(0x%x): device 0x%08x, host 0x%08x\n", label, static_cast<unsigned>(c),
                        static_cast<unsigned>(decoded[static_cast<std::size_t>(c)]), static_cast<unsigned>(host));
    }
    for (int i = 0; i < n; ++i) {
        const float x = inputs[static_cast<std::size_t>(i)];
        const std::uint32_t host = F::encode(x);
        if (encoded[static_cast<std::size_t>(i)] != host && bad_encode++ < 3)
            std::printf("  %s encode(%a = 0x%08x): device 0x%x, host 0x%x\n", label, static_cast<double>(x),
                        static_cast<unsigned>(host_bits(x)),
                        static_cast<unsigned>(encoded[static_cast<std::size_t>(i)]), static_cast<unsigned>(host));
    }
    const bool ok = bad_decode == 0 && bad_encode == 0;
    std::printf("%s %-18s %6d codes decoded, %6d floats encoded%s\n", ok ? "PASS" : "FAIL", label, n_codes, n,
                ok ? ", bit-exact" : "");
    if (!ok) std::printf("     %d decode and %d encode mismatches\n", bad_decode, bad_encode);
    return ok;
}

/// Floats that exercise every path: specials, zeros, float subnormals, range limits, integer and
/// half-integer ties (integer grids), midpoints between fp8 codes (minifloat ties), random bit patterns.
std::vector<float> make_inputs() {
    std::vector<float> in;
    const float inf = std::numeric_limits<float>::infinity();
    for (const std::uint32_t u : {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u,
                                  0x7F800001u, 0x7FA00000u, 0x7FE12345u, 0x00000001u, 0x80000001u, 0x007FFFFFu,
                                  0x00400000u, 0x00800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F7F8000u, 0x7F7F7FFFu})
        in.push_back(host_float(u));
    for (const float v : {448.0f, 464.0f, 480.0f, 57344.0f, 61440.0f, 65504.0f, 65520.0f, 7.5f, 7.75f, 28.0f, 30.0f,
                          6.0f, 5.0f, 0.25f, 0.75f, 1.0f / 512, 1.0f / 1024, 1.0f / 65536, 1.0f / 131072})
        for (const float s : {1.0f, -1.0f}) {
            in.push_back(s * v);
            in.push_back(s * std::nextafter(v, inf));
            in.push_back(s * std::nextafter(v, 0.0f));
        }
    for (int k = -300; k <= 300; ++k) in.push_back(static_cast<float>(k) / 2.0f);
    for (int k = -200; k <= 200; ++k) in.push_back(static_cast<float>(k) / 64.0f);
    // Midpoints between adjacent E4M3 and E5M2 codes, both signs.
    for (std::uint32_t c = 0; c + 1 < 0x7F; ++c) {
        for (const double mid :
             {(static_cast<double>(tcomp::fp8_e4m3::decode(c)) + tcomp::fp8_e4m3::decode(c + 1)) / 2,
              (static_cast<double>(tcomp::fp8_e5m2::decode(c)) + tcomp::fp8_e5m2::decode(c + 1)) / 2}) {
            if (!std::isfinite(mid)) continue;
            in.push_back(static_cast<float>(mid));
            in.push_back(-static_cast<float>(mid));
        }
    }
    // Random bit patterns (every exponent), and random values in the small formats' range.
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&state] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>(state >> 32);
    };
    for (int i = 0; i < 20000; ++i) in.push_back(host_float(next()));
    for (int i = 0; i < 20000; ++i) in.push_back((static_cast<float>(next() >> 8) / 16777216.0f - 0.5f) * 1200.0f);
    return in;
}

}  // namespace

/// Every format's decode of every code and encode of the fixed inputs, device vs host.
bool test_formats_on_device() {
    const std::vector<float> inputs = make_inputs();
    device_buffers dev;
    dev.n_inputs = static_cast<int>(inputs.size());
    if (!cuda_ok(cudaMalloc(&dev.inputs, inputs.size() * sizeof(float)), "cudaMalloc") ||
        !cuda_ok(cudaMalloc(&dev.encoded, inputs.size() * sizeof(std::uint32_t)), "cudaMalloc") ||
        !cuda_ok(cudaMalloc(&dev.decoded, static_cast<std::size_t>(max_codes) * sizeof(std::uint32_t)), "cudaMalloc") ||
        !cuda_ok(cudaMemcpy(dev.inputs, inputs.data(), inputs.size() * sizeof(float), cudaMemcpyHostToDevice),
                 "copy inputs"))
        return false;

    using namespace tcomp;
    bool ok = true;
    ok &= check_format<fp8_e4m3>("fp8_e4m3", inputs, dev);
    ok &= check_format<fp8_e5m2>("fp8_e5m2", inputs, dev);
    ok &= check_format<fp6_e2m3>("fp6_e2m3", inputs, dev);
    ok &= check_format<fp6_e3m2>("fp6_e3m2", inputs, dev);
    ok &= check_format<fp4_e2m1>("fp4_e2m1", inputs, dev);
    ok &= check_format<fp16_format>("fp16", inputs, dev);
    ok &= check_format<bf16_format>("bf16", inputs, dev);
    ok &= check_format<e8m0_format>("e8m0", inputs, dev);
    ok &= check_format<int_format<4>>("int4", inputs, dev);
    ok &= check_format<int_format<8>>("int8", inputs, dev);
    ok &= check_format<uint_format<4>>("uint4", inputs, dev);
    ok &= check_format<binary_format>("binary", inputs, dev);
    ok &= check_format<ternary_format>("ternary", inputs, dev);
    ok &= check_format<fixed_point_format<1, 6>>("fixed_point<1,6>", inputs, dev);

    cudaFree(dev.inputs);
    cudaFree(dev.encoded);
    cudaFree(dev.decoded);
    std::printf("%s\n", ok ? "formats on device: all bit-exact" : "formats on device: MISMATCH");
    return ok;
}
