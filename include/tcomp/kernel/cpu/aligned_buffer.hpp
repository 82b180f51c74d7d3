// A 64-byte-aligned owning array for packed weights: panels start on cache lines, so a kernel's streams
// never split a line at a panel boundary.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

namespace tcomp::cpu {

template <class T>
class aligned_buffer {
    static_assert(std::is_trivially_copyable_v<T>, "aligned_buffer holds trivially copyable elements only");

public:
    aligned_buffer() = default;
    /// n zero-initialised elements.
    explicit aligned_buffer(std::size_t n) : size_(n) {
        if (n == 0) return;
        const std::size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
        if (!data_) throw std::bad_alloc();
        std::memset(static_cast<void*>(data_.get()), 0, bytes);
    }
    aligned_buffer(const aligned_buffer& other) : aligned_buffer(other.size_) {
        if (size_ != 0) std::memcpy(static_cast<void*>(data_.get()), other.data_.get(), size_ * sizeof(T));
    }
    aligned_buffer& operator=(const aligned_buffer& other) {
        if (this != &other) *this = aligned_buffer(other);
        return *this;
    }
    aligned_buffer(aligned_buffer&&) noexcept = default;
    aligned_buffer& operator=(aligned_buffer&&) noexcept = default;

    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    T& operator[](std::size_t i) { return data_.get()[i]; }
    const T& operator[](std::size_t i) const { return data_.get()[i]; }

private:
    struct free_deleter {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, free_deleter> data_;
    std::size_t size_ = 0;
};

}  // namespace tcomp::cpu
