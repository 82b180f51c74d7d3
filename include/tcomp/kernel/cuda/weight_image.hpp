// The host side of the CUDA kernels: which policies they run (checked at compile time, with a message
// that names what is unsupported), the shapes they accept (checked at run time), and the byte image of
// a compressed weight matrix that is uploaded to the device. Plain C++: compiles and is tested without
// nvcc or a GPU.
//
// One layout serves CPU and GPU: the dense codes are the compressed_matrix's own rows (core/packed_storage:
// row-major, K contiguous, LSB-first within a byte, so an int4 row is K/2 bytes with element 2i in the low
// nibble), copied as they are. What changes is only the side data:
//   - scales are decoded to float32 (the tensor scale folded in), one per (group, row), group-major: the
//     scales of one group for a block's rows are contiguous, so a pipeline stage copies them with its codes;
//   - zero points (asymmetric weights, float-activation kernels only) become one byte per (group, row),
//     group-major with rows padded to a multiple of 4 (so a stage copies them 4 bytes at a time);
//   - 2:4 sparse weights keep their compressed values (K/2 int8 per row, the two kept values of each group
//     of four in increasing k) and their 2-bit indices are re-laid into the per-lane metadata words of
//     mma.sp.m16n8k64 (kernel/cuda/fragments.hpp), one 32-bit word per (16-row tile, 64-k chunk, lane).
//     Rows past N in the last tile get the valid nibble {0, 1} and zero values.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/format/format_traits.hpp"
#include "tcomp/format/integer.hpp"
#include "tcomp/kernel/cuda/fragments.hpp"
#include "tcomp/quant/compress.hpp"
#include "tcomp/quant/descriptor.hpp"
#include "tcomp/quant/shift_epilogue.hpp"

namespace tcomp::cuda {

/// The CUDA kernel family a policy runs on.
enum class kernel_kind {
    w8a8,         ///< int8 weights x int8 per-token activations, int8 tensor cores (mma.sync s8)
    w4a8,         ///< int4 weights unpacked to int8 in registers, int8 tensor cores
    w8a8_2of4,    ///< 2:4 sparse int8 weights, sparse int8 tensor cores (mma.sp)
    w4a16,        ///< 4-bit weights, fp16/bf16 activations (weights turned into fp16/bf16 in registers)
    w8a16,        ///< 8-bit weights, fp16/bf16 activations
};

inline const char* kernel_name(kernel_kind k) {
    switch (k) {
        case kernel_kind::w8a8: return "w8a8";
        case kernel_kind::w4a8: return "w4a8";
        case kernel_kind::w8a8_2of4: return "w8a8_2of4";
        case kernel_kind::w4a16: return "w4a16";
        case kernel_kind::w8a16: return "w8a16";
    }
    return "?";
}

/// Every K the CUDA kernels accept is a multiple of this (16-byte rows for int4 weights and cp.async).
inline constexpr index_t k_multiple = 32;
/// 2:4 sparse kernels consume K in chunks of 64 (one mma.sp.m16n8k64).
inline constexpr index_t k_multiple_sparse = 64;

namespace detail {

template <class F>
constexpr bool is_plain_integer() {
    if constexpr (integer_grid_format<F>) return F::dense_grid && (F::bits == 4 || F::bits == 8);
    else return false;
}

}  // namespace detail

/// The kernel family of Policy, or a compile error that says why the CUDA kernels cannot run it.
template <class Policy>
consteval kernel_kind kernel_for() {
    static_assert(is_policy<Policy>::value, "tcomp::cuda: expected a tcomp::policy<W, A, S>");
    using WQ = typename Policy::weight_quantizer;
    using WF = typename WQ::format;
    using S = typename Policy::sparsity;
    static_assert(detail::is_plain_integer<WF>(),
                  "tcomp::cuda: weights must be 4- or 8-bit integers (int_format<4|8> or uint_format<4|8>); binary, "
                  "ternary, fixed-point and float formats have no CUDA kernel (use the CPU kernels)");
    static_assert(!WQ::granularity::per_row || WQ::granularity::group_size == 0 ||
                      WQ::granularity::group_size % k_multiple == 0,
                  "tcomp::cuda: weight groups must be a multiple of 32 along K (per_group<32|64|128|...>)");
    static_assert(S::kind == sparsity_kind::dense || S::kind == sparsity_kind::n_m,
                  "tcomp::cuda: only dense and 2:4 weights have CUDA kernels (block and unstructured sparsity: CPU)");
    if constexpr (Policy::quantizes_activations) {
        using AQ = typename Policy::activation_quantizer;
        using AF = typename AQ::format;
        static_assert(std::is_same_v<AF, int_format<8>> && !AQ::has_zero_point,
                      "tcomp::cuda: quantized activations must be symmetric int8 (int_format<8>, symmetric)");
        static_assert(std::is_same_v<typename AQ::granularity, per_token> && AQ::activation_mode::is_dynamic,
                      "tcomp::cuda: int8 activations are quantized per token, dynamically, by the fused quantizer; "
                      "per-tensor / calibrated activation scales have no CUDA kernel");
        static_assert(std::is_same_v<typename AQ::scale, float_scale> && !AQ::rounding::is_stochastic &&
                          std::is_same_v<typename AQ::observer, min_max>,
                      "tcomp::cuda: int8 activations need float scales, round-to-nearest-even and the min_max "
                      "observer (the fused quantizer's rule: S = max|x| / 127)");
        static_assert(WF::is_signed && !WQ::has_zero_point,
                      "tcomp::cuda: the int8 tensor-core kernels need symmetric signed weights (no zero points): "
                      "use int_format<4|8> with symmetric, or float activations (W4A16 / W8A16)");
        static_assert(!tcomp::detail::shift_epilogue_scale<typename WQ::scale>,
                      "tcomp::cuda: shiftable / multi-level power-of-two weight scales take the integer shift "
                      "epilogue, which exists on the CPU only");
        if constexpr (S::kind == sparsity_kind::n_m) {
            static_assert(S::n == 2 && S::m == 4 && WF::bits == 8,
                          "tcomp::cuda: sparse tensor cores take 2:4 sparsity of int8 weights (n_m<2, 4> with "
                          "int_format<8>); other N:M patterns and 4-bit sparse weights: CPU");
            return kernel_kind::w8a8_2of4;
        } else {
            return WF::bits == 8 ? kernel_kind::w8a8 : kernel_kind::w4a8;
        }
    } else {
        static_assert(S::kind == sparsity_kind::dense,
                      "tcomp::cuda: 2:4 sparse weights need int8 activations (W8A8 2:4); W4A16 / W8A16 are dense");
        static_assert(!WQ::has_zero_point || !WF::is_signed,
                      "tcomp::cuda: asymmetric weights must be unsigned (uint_format<4|8> with zero points); the "
                      "kernels store zero points as bytes 0..255 and read signed codes as two's complement");
        return WF::bits == 8 ? kernel_kind::w8a16 : kernel_kind::w4a16;
    }
}

/// The run-time face of kernel_for<Policy>(): the CUDA kernel of a descriptor, or (kind empty) why there is none,
/// in the words of kernel_for's static_asserts (a test holds the two to each other). Shapes are
/// check_weight_shape's.
struct kernel_choice {
    std::optional<kernel_kind> kind;
    std::string reason;  // "" when kind is set
};

inline kernel_choice kernel_for(const descriptor& d) {
    validate(d);
    auto no = [](const char* why) { return kernel_choice{std::nullopt, std::string("tcomp::cuda: ") + why}; };
    const quantizer_desc& w = d.weights;
    const format_kind wf = w.format.kind;
    const bool plain_integer = (wf == format_kind::int_ || wf == format_kind::uint_) && (w.format.bits == 4 || w.format.bits == 8);
    if (!plain_integer)
        return no("weights must be 4- or 8-bit integers (int_format<4|8> or uint_format<4|8>); binary, ternary, "
                  "fixed-point and float formats have no CUDA kernel (use the CPU kernels)");
    if (w.group() > 0 && w.group() % k_multiple != 0)
        return no("weight groups must be a multiple of 32 along K (per_group<32|64|128|...>)");
    const sparsity_desc& s = d.sparsity;
    if (s.kind != sparsity_kind::dense && s.kind != sparsity_kind::n_m)
        return no("only dense and 2:4 weights have CUDA kernels (block and unstructured sparsity: CPU)");
    const bool is_signed = wf == format_kind::int_;
    if (d.activations) {
        const quantizer_desc& a = *d.activations;
        if (!(a.format.kind == format_kind::int_ && a.format.bits == 8) || a.has_zero_point())
            return no("quantized activations must be symmetric int8 (int_format<8>, symmetric)");
        if (a.granularity != granularity_kind::token || a.calibrated)
            return no("int8 activations are quantized per token, dynamically, by the fused quantizer; per-tensor / "
                      "calibrated activation scales have no CUDA kernel");
        if (a.scale != scale_kind::float_ || a.rounding != rounding_kind::nearest_even || a.observer != observer_kind::min_max)
            return no("int8 activations need float scales, round-to-nearest-even and the min_max observer (the fused "
                      "quantizer's rule: S = max|x| / 127)");
        if (!is_signed || w.has_zero_point())
            return no("the int8 tensor-core kernels need symmetric signed weights (no zero points): use "
                      "int_format<4|8> with symmetric, or float activations (W4A16 / W8A16)");
        if (w.scale == scale_kind::multi_level || w.scale == scale_kind::shiftable)
            return no("shiftable / multi-level power-of-two weight scales take the integer shift epilogue, which "
                      "exists on the CPU only");
        if (s.kind == sparsity_kind::n_m) {
            if (s.n != 2 || s.m != 4 || w.format.bits != 8)
                return no("sparse tensor cores take 2:4 sparsity of int8 weights (n_m<2, 4> with int_format<8>); other "
                          "N:M patterns and 4-bit sparse weights: CPU");
            return {kernel_kind::w8a8_2of4, ""};
        }
        return {w.format.bits == 8 ? kernel_kind::w8a8 : kernel_kind::w4a8, ""};
    }
    if (s.kind != sparsity_kind::dense)
        return no("2:4 sparse weights need int8 activations (W8A8 2:4); W4A16 / W8A16 are dense");
    if (w.has_zero_point() && is_signed)
        return no("asymmetric weights must be unsigned (uint_format<4|8> with zero points); the kernels store zero "
                  "points as bytes 0..255 and read signed codes as two's complement");
    return {w.format.bits == 8 ? kernel_kind::w8a16 : kernel_kind::w4a16, ""};
}

/// Throws shape_error unless the CUDA kernels of `kind` accept an N x K weight matrix with groups of `group`.
inline void check_weight_shape(kernel_kind kind, index_t n, index_t k, index_t group, const char* where) {
    if (n <= 0 || k <= 0)
        tcomp::detail::throw_error<shape_error>(where, ": the weight matrix is ", n, "x", k, "; CUDA kernels need N, K > 0");
    const index_t multiple = kind == kernel_kind::w8a8_2of4 ? k_multiple_sparse : k_multiple;
    if (k % multiple != 0)
        tcomp::detail::throw_error<shape_error>(where, ": K = ", k, " is not a multiple of ", multiple, "; the ",
                                                kernel_name(kind), " CUDA kernel reads K in ", multiple,
                                                "-element steps (pad K, or run this layer on the CPU kernels)");
    if (group <= 0 || k % group != 0 || group % multiple != 0)
        tcomp::detail::throw_error<shape_error>(where, ": weight group size ", group, " must divide K = ", k,
                                                " and be a multiple of ", multiple, " (the ", kernel_name(kind),
                                                " kernel applies one scale per whole group of mma steps)");
    if (n > (index_t{1} << 30) || k > (index_t{1} << 30))
        tcomp::detail::throw_error<shape_error>(where, ": ", n, "x", k, " exceeds the 2^30 rows / columns the kernels index");
    // The int8 kernels sum a group's products in int32 (the oracle sums in int64): |x| <= 128 and
    // |w| <= 128 (int8) or 8 (int4), over the group's kept products (half of them for 2:4).
    if (kind == kernel_kind::w8a8 || kind == kernel_kind::w4a8 || kind == kernel_kind::w8a8_2of4) {
        const index_t weight_max = kind == kernel_kind::w4a8 ? 8 : 128;
        const index_t max_products = ((index_t{1} << 31) - 1) / (128 * weight_max);
        const index_t max_group = kind == kernel_kind::w8a8_2of4 ? 2 * max_products : max_products;
        if (group > max_group)
            tcomp::detail::throw_error<shape_error>(where, ": a group of ", group, " weights (K itself for one scale per row) "
                                                    "can overflow the ", kernel_name(kind), " kernel's int32 accumulator, "
                                                    "which holds ", max_group, " weights' products; use smaller groups");
    }
}

/// Host image of compressed weights in the layout the CUDA kernels read (see the file comment).
struct weight_image {
    kernel_kind kind = kernel_kind::w8a8;
    index_t rows = 0;        ///< N (output channels)
    index_t cols = 0;        ///< K
    int code_bits = 8;       ///< 4 or 8
    bool is_signed = true;   ///< two's complement codes (else unsigned, with zero points)
    index_t group_size = 0;  ///< K for per-channel / per-tensor
    std::vector<std::uint8_t> codes;       ///< dense: N x row_bytes(); 2:4: N x K/2 kept int8 values
    std::vector<float> scales;             ///< groups() x N (group-major)
    std::vector<std::uint8_t> zero_points; ///< groups() x zero_stride(), empty when symmetric
    std::vector<std::uint32_t> metadata;   ///< 2:4: tiles() x K/64 x 32 mma.sp metadata words

    index_t groups() const { return group_size > 0 ? cols / group_size : 0; }
    /// Row stride of the zero points: N rounded up to a multiple of 4.
    index_t zero_stride() const { return (rows + 3) / 4 * 4; }
    float scale(index_t r, index_t group) const { return scales[static_cast<std::size_t>(group * rows + r)]; }
    int zero_point(index_t r, index_t group) const {
        return zero_points.empty() ? 0 : zero_points[static_cast<std::size_t>(group * zero_stride() + r)];
    }
    bool sparse() const { return kind == kernel_kind::w8a8_2of4; }
    /// Bytes of one stored row of codes.
    index_t row_bytes() const { return sparse() ? cols / 2 : cols * code_bits / 8; }
    /// 16-row tiles of the sparse metadata.
    index_t tiles() const { return (rows + 15) / 16; }
    std::size_t bytes() const {
        return codes.size() + scales.size() * sizeof(float) + zero_points.size() + metadata.size() * sizeof(std::uint32_t);
    }
};

namespace detail {

/// Writes the 2-bit kept indices of a 2:4 row set into the mma.sp metadata words.
inline void place_sparse_metadata(weight_image& img, index_t row, index_t group_in_row, unsigned nibble) {
    const index_t chunks = img.cols / k_multiple_sparse;
    const index_t tile = row / 16, chunk = group_in_row / 16;
    const int r = static_cast<int>(row % 16), g = static_cast<int>(group_in_row % 16);
    const std::size_t word = static_cast<std::size_t>((tile * chunks + chunk) * 32 + fragment::sp_meta_lane(r, g));
    const int shift = fragment::sp_meta_shift(r, g);
    img.metadata[word] = (img.metadata[word] & ~(0xFu << shift)) | (nibble << shift);
}

}  // namespace detail

/// Throws unless `image` is one the `kind` kernel can read: its kind, shape (check_weight_shape), code
/// width and signedness, and buffer sizes (the kernels read exactly the bytes the shape implies).
inline void check_image(const weight_image& image, kernel_kind kind, const char* where) {
    if (image.kind != kind)
        tcomp::detail::throw_error<shape_error>(where, ": the image is for the ", kernel_name(image.kind),
                                                " kernel, the policy runs ", kernel_name(kind));
    check_weight_shape(kind, image.rows, image.cols, image.group_size, where);
    const int bits = (kind == kernel_kind::w4a8 || kind == kernel_kind::w4a16) ? 4 : 8;
    const bool int_kernel = kind == kernel_kind::w8a8 || kind == kernel_kind::w4a8 || kind == kernel_kind::w8a8_2of4;
    if (image.code_bits != bits || (int_kernel && !image.is_signed))
        tcomp::detail::throw_error<shape_error>(where, ": the image holds ", image.code_bits, "-bit ",
                                                image.is_signed ? "signed" : "unsigned", " codes; the ", kernel_name(kind),
                                                " kernel reads ", bits, "-bit", int_kernel ? " signed" : "", " codes");
    if (!image.zero_points.empty() && int_kernel)
        tcomp::detail::throw_error<shape_error>(where, ": the ", kernel_name(kind),
                                                " kernel takes symmetric weights; the image has zero points");
    const auto n = static_cast<std::size_t>(image.rows), groups = static_cast<std::size_t>(image.groups());
    const std::size_t code_bytes = n * static_cast<std::size_t>(image.row_bytes());
    const std::size_t zeros = groups * static_cast<std::size_t>(image.zero_stride());
    const std::size_t meta = image.sparse() ? static_cast<std::size_t>(image.tiles() * (image.cols / k_multiple_sparse) * 32) : 0;
    if (image.codes.size() != code_bytes || image.scales.size() != n * groups ||
        !(image.zero_points.empty() || image.zero_points.size() == zeros) || image.metadata.size() != meta)
        tcomp::detail::throw_error<shape_error>(where, ": the ", image.rows, "x", image.cols, " image holds ",
                                                image.codes.size(), " code bytes, ", image.scales.size(), " scales, ",
                                                image.zero_points.size(), " zero points and ", image.metadata.size(),
                                                " metadata words; its shape needs ", code_bytes, ", ", n * groups,
                                                ", 0 or ", zeros, ", and ", meta);
}

/// Packs compressed weights into the CUDA kernels' image. Throws shape_error for shapes they reject.
template <class Policy>
weight_image make_weight_image(const compressed_weights<Policy>& weights) {
    constexpr kernel_kind kind = kernel_for<Policy>();
    using WQ = typename Policy::weight_quantizer;
    using WF = typename WQ::format;
    const auto& matrix = weights.weights();
    const auto m = matrix.view();  // validated once
    const packed_view& pv = m.packed();
    const packed_layout& l = pv.layout;

    weight_image img;
    img.kind = kind;
    img.rows = m.rows(), img.cols = m.cols();
    img.code_bits = WF::bits;
    img.is_signed = WF::is_signed;
    img.group_size = l.group_size > 0 ? l.group_size : img.cols;
    check_weight_shape(kind, img.rows, img.cols, img.group_size, "cuda::make_weight_image");

    const index_t groups = img.groups();
    img.scales.resize(static_cast<std::size_t>(img.rows * groups));
    if constexpr (WQ::has_zero_point) img.zero_points.assign(static_cast<std::size_t>(groups * img.zero_stride()), 0);
    for (index_t r = 0; r < img.rows; ++r)
        for (index_t g = 0; g < groups; ++g) {
            const float s = m.scale(r, g * img.group_size);
            if (!std::isfinite(s))
                tcomp::detail::throw_error<value_error>("cuda::make_weight_image: scale of row ", r, ", group ", g,
                                                        " is not finite");
            img.scales[static_cast<std::size_t>(g * img.rows + r)] = s;
            if constexpr (WQ::has_zero_point)
                img.zero_points[static_cast<std::size_t>(g * img.zero_stride() + r)] =
                    static_cast<std::uint8_t>(m.zero_point(r, g * img.group_size));
        }

    const auto row_bytes = static_cast<std::size_t>(img.row_bytes());
    img.codes.resize(static_cast<std::size_t>(img.rows) * row_bytes);
    for (index_t r = 0; r < img.rows; ++r) {
        const std::uint8_t* src = pv.row_codes(r);
        std::copy(src, src + row_bytes, img.codes.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * row_bytes));
    }

    if constexpr (kind == kernel_kind::w8a8_2of4) {
        const index_t chunks = img.cols / k_multiple_sparse;
        img.metadata.assign(static_cast<std::size_t>(img.tiles() * chunks * 32), 0u);
        // Padding rows: a valid pattern ({0, 1}) over zero values.
        for (index_t r = img.rows; r < img.tiles() * 16; ++r)
            for (index_t g = 0; g < img.cols / 4; ++g)
                detail::place_sparse_metadata(img, r, g, fragment::sp_nibble(0, 1));
        std::vector<index_t> kept;
        for (index_t r = 0; r < img.rows; ++r) {
            pv.kept_columns(r, kept);
            for (index_t g = 0; g < img.cols / 4; ++g) {
                const auto first = static_cast<unsigned>(kept[static_cast<std::size_t>(2 * g)] - 4 * g);
                const auto second = static_cast<unsigned>(kept[static_cast<std::size_t>(2 * g + 1)] - 4 * g);
                if (!(first < second && second < 4))
                    tcomp::detail::throw_error<value_error>("cuda::make_weight_image: row ", r, ", group ", g,
                                                            " keeps columns ", first, " and ", second,
                                                            "; 2:4 needs two distinct increasing indices");
                detail::place_sparse_metadata(img, r, g, fragment::sp_nibble(first, second));
            }
        }
    }
    return img;
}

/// Code of element (r, k) of a dense image, as an integer (sign-extended or minus nothing: raw value).
inline int image_code(const weight_image& img, index_t r, index_t k) {
    const std::uint8_t* row = img.codes.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(img.row_bytes());
    if (img.code_bits == 8) return img.is_signed ? static_cast<int>(static_cast<std::int8_t>(row[k])) : row[k];
    const unsigned nib = (row[k / 2] >> (4 * (k % 2))) & 0xFu;
    return img.is_signed ? static_cast<int>(nib ^ 8u) - 8 : static_cast<int>(nib);
}

/// The weights an image stands for, dequantized: W[r][k] = scale * (code - zero). For 2:4 images the kept
/// positions are read back through the mma.sp metadata words, so this also checks their placement.
inline dense_matrix<float> dequantize_image(const weight_image& img) {
    dense_matrix<float> w(img.rows, img.cols);
    auto scale = [&](index_t r, index_t k) { return img.scale(r, k / img.group_size); };
    auto zero = [&](index_t r, index_t k) { return img.zero_point(r, k / img.group_size); };
    if (!img.sparse()) {
        for (index_t r = 0; r < img.rows; ++r)
            for (index_t k = 0; k < img.cols; ++k)
                w(r, k) = scale(r, k) * static_cast<float>(image_code(img, r, k) - zero(r, k));
        return w;
    }
    const index_t chunks = img.cols / k_multiple_sparse;
    for (index_t r = 0; r < img.rows; ++r) {
        for (index_t k = 0; k < img.cols; ++k) w(r, k) = 0.0f;
        for (index_t g = 0; g < img.cols / 4; ++g) {
            const int rr = static_cast<int>(r % 16), gg = static_cast<int>(g % 16);
            const std::uint32_t word =
                img.metadata[static_cast<std::size_t>(((r / 16) * chunks + g / 16) * 32 + fragment::sp_meta_lane(rr, gg))];
            const unsigned nib = (word >> fragment::sp_meta_shift(rr, gg)) & 0xFu;
            const std::uint8_t* row = img.codes.data() + static_cast<std::size_t>(r * img.row_bytes());
            for (int j = 0; j < 2; ++j) {
                const index_t k = 4 * g + ((nib >> (2 * j)) & 3u);
                w(r, k) = scale(r, k) * static_cast<float>(static_cast<std::int8_t>(row[2 * g + j]));
            }
        }
    }
    return w;
}

}  // namespace tcomp::cuda
