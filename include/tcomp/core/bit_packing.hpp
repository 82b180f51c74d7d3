// Bit packing of fixed-width codes. One layout everywhere (codes, zero points, scale entries, sparsity
// indices), so every reader shares one tested routine:
//
//   code i of a packed run occupies bits [i*w, (i+1)*w) of a little-endian bit stream: bit b of the stream
//   is bit (b % 8) of byte (b / 8). Codes hold their w-bit pattern in the low bits (two's complement for
//   signed integer formats); unused high bits of the last byte are zero.
//
// For w = 4 this is "low nibble first" (llama.cpp's q4 and GPTQ use the same within a byte); for w = 8,
// 16, 32 it is plain little-endian storage. Widths 1..32 are supported.
#pragma once

#include <cstdint>
#include <span>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"

namespace tcomp {

/// Bytes needed for `count` codes of `bits` bits each.
constexpr std::size_t packed_bytes(index_t count, int bits) {
    return static_cast<std::size_t>((count * bits + 7) / 8);
}

namespace detail {

inline void check_width(int bits) {
    if (bits < 1 || bits > 32) throw_error<error>("bit packing: width ", bits, " is outside 1..32");
}

constexpr std::uint32_t low_mask(int bits) { return bits >= 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u); }

}  // namespace detail

/// Reads code i (bits wide) from a packed stream. No bounds check: callers validate the run length once.
TCOMP_HOST_DEVICE constexpr std::uint32_t read_packed(const std::uint8_t* stream, index_t i, int bits) {
    const std::uint64_t first_bit = static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(bits);
    const std::uint64_t byte = first_bit >> 3;
    const int shift = static_cast<int>(first_bit & 7u);
    // A code of <= 32 bits starting at bit offset <= 7 spans at most 5 bytes.
    const int bytes_needed = (shift + bits + 7) / 8;
    std::uint64_t window = 0;
    for (int b = 0; b < bytes_needed; ++b) window |= static_cast<std::uint64_t>(stream[byte + b]) << (8 * b);
    return static_cast<std::uint32_t>((window >> shift) & detail::low_mask(bits));
}

/// Writes code i into a packed stream (the stream must be zero-initialised or hold the old value there).
constexpr void write_packed(std::uint8_t* stream, index_t i, int bits, std::uint32_t code) {
    const std::uint64_t first_bit = static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(bits);
    const std::uint64_t byte = first_bit >> 3;
    const int shift = static_cast<int>(first_bit & 7u);
    const int bytes_needed = (shift + bits + 7) / 8;
    const std::uint64_t mask = static_cast<std::uint64_t>(detail::low_mask(bits)) << shift;
    const std::uint64_t value = (static_cast<std::uint64_t>(code) << shift) & mask;
    for (int b = 0; b < bytes_needed; ++b) {
        const auto m = static_cast<std::uint8_t>(mask >> (8 * b));
        const auto v = static_cast<std::uint8_t>(value >> (8 * b));
        stream[byte + b] = static_cast<std::uint8_t>((stream[byte + b] & ~m) | v);
    }
}

/// Packs `codes` (each < 2^bits) into `out` (packed_bytes(codes.size(), bits) bytes).
inline void pack_codes(std::span<const std::uint32_t> codes, int bits, std::span<std::uint8_t> out) {
    detail::check_width(bits);
    if (out.size() < packed_bytes(static_cast<index_t>(codes.size()), bits))
        detail::throw_error<error>("pack_codes: output has ", out.size(), " bytes, ",
                                   packed_bytes(static_cast<index_t>(codes.size()), bits), " needed");
    for (auto& byte : out) byte = 0;
    for (std::size_t i = 0; i < codes.size(); ++i) {
        if ((codes[i] & ~detail::low_mask(bits)) != 0)
            detail::throw_error<error>("pack_codes: code ", codes[i], " at index ", i, " does not fit in ", bits,
                                       " bits");
        write_packed(out.data(), static_cast<index_t>(i), bits, codes[i]);
    }
}

/// Unpacks codes.size() codes of `bits` bits from `in`.
inline void unpack_codes(std::span<const std::uint8_t> in, int bits, std::span<std::uint32_t> codes) {
    detail::check_width(bits);
    if (in.size() < packed_bytes(static_cast<index_t>(codes.size()), bits))
        detail::throw_error<error>("unpack_codes: input has ", in.size(), " bytes, ",
                                   packed_bytes(static_cast<index_t>(codes.size()), bits), " needed for ",
                                   codes.size(), " codes of ", bits, " bits");
    for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = read_packed(in.data(), static_cast<index_t>(i), bits);
}

}  // namespace tcomp
