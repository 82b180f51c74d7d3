// A minimal PNG writer (8-bit RGB), so examples can show decoded images without an image library. The
// pixels go into zlib "stored" (uncompressed) deflate blocks: a larger file than a real compressor makes, but
// exact and a few dozen lines; any PNG reader opens it. CRC-32 (PNG chunks) and Adler-32 (zlib) as the
// specifications define them (RFC 1950/1951, PNG 2nd edition).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"

namespace tcomp::detail {

inline std::uint32_t png_crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0) {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (std::uint8_t b : bytes) crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

inline std::uint32_t png_adler32(std::span<const std::uint8_t> bytes) {
    std::uint32_t a = 1, b = 0;
    for (std::uint8_t v : bytes) {
        a = (a + v) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

inline void png_put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

inline void png_put_chunk(std::vector<std::uint8_t>& out, const char (&type)[5], std::span<const std::uint8_t> data) {
    png_put_be32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    png_put_be32(out, png_crc32(std::span<const std::uint8_t>(out.data() + start, out.size() - start)));
}

}  // namespace tcomp::detail

namespace tcomp::io {

/// PNG bytes of an 8-bit RGB image, `rgb` = height rows of width * 3 bytes.
inline std::vector<std::uint8_t> encode_png_rgb8(std::span<const std::uint8_t> rgb, std::size_t width,
                                                 std::size_t height) {
    if (width == 0 || height == 0 || width > (1u << 24) || height > (1u << 24))
        tcomp::detail::throw_error<shape_error>("encode_png_rgb8: image is ", width, "x", height,
                                                "; each side must be in 1..2^24");
    if (rgb.size() != width * height * 3)
        tcomp::detail::throw_error<shape_error>("encode_png_rgb8: ", rgb.size(), " bytes for a ", width, "x", height,
                                                " RGB image (expected ", width * height * 3, ")");
    // Scanlines with filter byte 0 (none).
    std::vector<std::uint8_t> raw;
    raw.reserve(height * (width * 3 + 1));
    for (std::size_t y = 0; y < height; ++y) {
        raw.push_back(0);
        raw.insert(raw.end(), rgb.begin() + static_cast<std::ptrdiff_t>(y * width * 3),
                   rgb.begin() + static_cast<std::ptrdiff_t>((y + 1) * width * 3));
    }
    // zlib stream: header (deflate, 32K window, no dictionary), stored blocks of <= 65535 bytes, Adler-32.
    std::vector<std::uint8_t> z = {0x78, 0x01};
    for (std::size_t pos = 0; pos < raw.size() || raw.empty();) {
        const std::size_t len = std::min<std::size_t>(65535, raw.size() - pos);
        const bool last = pos + len == raw.size();
        z.push_back(last ? 1 : 0);
        z.push_back(static_cast<std::uint8_t>(len & 0xFF));
        z.push_back(static_cast<std::uint8_t>(len >> 8));
        z.push_back(static_cast<std::uint8_t>(~len & 0xFF));
        z.push_back(static_cast<std::uint8_t>((~len >> 8) & 0xFF));
        z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos), raw.begin() + static_cast<std::ptrdiff_t>(pos + len));
        pos += len;
        if (last) break;
    }
    tcomp::detail::png_put_be32(z, tcomp::detail::png_adler32(raw));

    std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<std::uint8_t> header;
    tcomp::detail::png_put_be32(header, static_cast<std::uint32_t>(width));
    tcomp::detail::png_put_be32(header, static_cast<std::uint32_t>(height));
    header.insert(header.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB, deflate, filter 0, no interlace
    tcomp::detail::png_put_chunk(out, "IHDR", header);
    tcomp::detail::png_put_chunk(out, "IDAT", z);
    tcomp::detail::png_put_chunk(out, "IEND", {});
    return out;
}

/// Writes an 8-bit RGB PNG; io::file_error when the file cannot be written.
inline void write_png_rgb8(const std::filesystem::path& path, std::span<const std::uint8_t> rgb, std::size_t width,
                           std::size_t height) {
    const std::vector<std::uint8_t> bytes = encode_png_rgb8(rgb, width, height);
    std::ofstream f(path, std::ios::binary);
    if (f) f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw file_error(path.string() + ": cannot write the PNG file");
}

}  // namespace tcomp::io
