// CUDA runtime plumbing for tcomp's kernels: every runtime call checked (a failure is a tcomp::cuda_error
// naming the call and where), and an owning device buffer. Needs nvcc (or a host compiler with the CUDA
// runtime headers and -lcudart).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "tcomp/core/error.hpp"

namespace tcomp {

/// A CUDA runtime error: the call, its location and cudaGetErrorString.
class cuda_error : public error {
public:
    using error::error;
};

namespace cuda::detail {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
    if (status != cudaSuccess)
        tcomp::detail::throw_error<cuda_error>(call, " failed at ", file, ":", line, ": ", cudaGetErrorName(status), " (",
                                               cudaGetErrorString(status), ")");
}

}  // namespace cuda::detail

/// Checks a CUDA runtime call; throws tcomp::cuda_error on failure.
#define TCOMP_CUDA_CHECK(call) ::tcomp::cuda::detail::check((call), #call, __FILE__, __LINE__)
/// Checks the launch that just happened (configuration errors surface here, not at the next sync).
#define TCOMP_CUDA_CHECK_LAUNCH(what) ::tcomp::cuda::detail::check(cudaGetLastError(), what, __FILE__, __LINE__)

namespace cuda {

/// Owning device allocation of `size()` elements of T (uninitialised).
template <class T>
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(std::size_t count) { resize(count); }
    ~device_buffer() { release(); }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    device_buffer& operator=(device_buffer&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }

    /// Reallocates (contents lost) when `count` differs from the current size.
    void resize(std::size_t count) {
        if (count == size_) return;
        release();
        if (count > 0) TCOMP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count * sizeof(T)));
        size_ = count;
    }
    /// Grows to at least `count` elements (workspaces).
    void reserve(std::size_t count) {
        if (count > size_) resize(count);
    }
    void upload(const T* host, std::size_t count, cudaStream_t stream = nullptr) {
        resize(count);
        if (count > 0) TCOMP_CUDA_CHECK(cudaMemcpyAsync(data_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
    void upload(const std::vector<T>& host, cudaStream_t stream = nullptr) { upload(host.data(), host.size(), stream); }
    std::vector<T> download(cudaStream_t stream = nullptr) const {
        std::vector<T> out(size_);
        if (size_ > 0) {
            TCOMP_CUDA_CHECK(cudaMemcpyAsync(out.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost, stream));
            TCOMP_CUDA_CHECK(cudaStreamSynchronize(stream));
        }
        return out;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    std::size_t size() const { return size_; }
    std::size_t bytes() const { return size_ * sizeof(T); }

private:
    void release() noexcept {
        if (data_ != nullptr) cudaFree(data_);  // an error here (a dead context) cannot be reported from a destructor
        data_ = nullptr;
        size_ = 0;
    }
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no device.
inline int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no device" error
        return 0;
    }
    return n;
}

}  // namespace cuda
}  // namespace tcomp
