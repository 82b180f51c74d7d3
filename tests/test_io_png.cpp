// io/png.hpp: the PNG writer, checked by an independent reader written here (signature, chunk layout,
// bitwise CRC-32, stored-block inflate, Adler-32, scanline filters) on random images of odd sizes, including
// one larger than a single 64 KiB deflate block.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "tcomp/io/png.hpp"

namespace {

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return (std::uint32_t{b.at(at)} << 24) | (std::uint32_t{b.at(at + 1)} << 16) | (std::uint32_t{b.at(at + 2)} << 8) |
           std::uint32_t{b.at(at + 3)};
}

// CRC-32 bit by bit (no table), as the PNG specification's sample code defines it.
std::uint32_t crc_bitwise(const std::uint8_t* p, std::size_t n) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

struct decoded {
    std::uint32_t width = 0, height = 0;
    std::vector<std::uint8_t> rgb;
};

decoded read_png(const std::vector<std::uint8_t>& b) {
    const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    REQUIRE(b.size() > 8);
    REQUIRE(std::equal(sig, sig + 8, b.begin()));
    decoded out;
    std::vector<std::uint8_t> z;
    std::size_t at = 8;
    std::vector<std::string> order;
    while (at < b.size()) {
        const std::uint32_t len = be32(b, at);
        const std::string type(b.begin() + static_cast<std::ptrdiff_t>(at + 4), b.begin() + static_cast<std::ptrdiff_t>(at + 8));
        REQUIRE(at + 12 + len <= b.size());
        CHECK(be32(b, at + 8 + len) == crc_bitwise(b.data() + at + 4, len + 4));
        order.push_back(type);
        if (type == "IHDR") {
            REQUIRE(len == 13);
            out.width = be32(b, at + 8), out.height = be32(b, at + 12);
            CHECK(b[at + 16] == 8);  // bit depth
            CHECK(b[at + 17] == 2);  // RGB
        } else if (type == "IDAT") {
            z.insert(z.end(), b.begin() + static_cast<std::ptrdiff_t>(at + 8), b.begin() + static_cast<std::ptrdiff_t>(at + 8 + len));
        }
        at += 12 + len;
    }
    CHECK(order == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
    // zlib: CMF/FLG check, stored blocks only, Adler-32 of the inflated data.
    REQUIRE(z.size() >= 6);
    CHECK((z[0] * 256 + z[1]) % 31 == 0);
    std::vector<std::uint8_t> raw;
    std::size_t p = 2;
    for (bool last = false; !last;) {
        last = (z.at(p) & 1) != 0;
        REQUIRE((z.at(p) >> 1) == 0);  // BTYPE 00: stored
        const unsigned len = z.at(p + 1) | (z.at(p + 2) << 8), nlen = z.at(p + 3) | (z.at(p + 4) << 8);
        CHECK((len ^ 0xFFFFu) == nlen);
        raw.insert(raw.end(), z.begin() + static_cast<std::ptrdiff_t>(p + 5), z.begin() + static_cast<std::ptrdiff_t>(p + 5 + len));
        p += 5 + len;
    }
    std::uint32_t a = 1, s2 = 0;
    for (std::uint8_t v : raw) a = (a + v) % 65521u, s2 = (s2 + a) % 65521u;
    CHECK(be32(z, p) == ((s2 << 16) | a));
    const std::size_t stride = std::size_t{out.width} * 3 + 1;
    REQUIRE(raw.size() == stride * out.height);
    for (std::uint32_t y = 0; y < out.height; ++y) {
        CHECK(raw[y * stride] == 0);  // filter: none
        out.rgb.insert(out.rgb.end(), raw.begin() + static_cast<std::ptrdiff_t>(y * stride + 1),
                       raw.begin() + static_cast<std::ptrdiff_t>((y + 1) * stride));
    }
    return out;
}

}  // namespace

TEST_CASE("png: random RGB images round-trip through an independent reader", "[io][png]") {
    std::mt19937 gen(77);
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto [w, h] : {std::pair{1, 1}, {3, 5}, {17, 2}, {200, 130}}) {  // 200x130: 78,130 bytes, two blocks
        std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w * h * 3));
        for (auto& v : rgb) v = static_cast<std::uint8_t>(byte(gen));
        const auto png = tcomp::io::encode_png_rgb8(rgb, static_cast<std::size_t>(w), static_cast<std::size_t>(h));
        const decoded d = read_png(png);
        CHECK(d.width == static_cast<std::uint32_t>(w));
        CHECK(d.height == static_cast<std::uint32_t>(h));
        CHECK(d.rgb == rgb);
    }
}

TEST_CASE("png: bad sizes and unwritable paths are errors", "[io][png]") {
    std::vector<std::uint8_t> rgb(12);
    CHECK_THROWS_AS(tcomp::io::encode_png_rgb8(rgb, 2, 3), tcomp::shape_error);
    CHECK_THROWS_AS(tcomp::io::encode_png_rgb8(rgb, 0, 4), tcomp::shape_error);
    CHECK_THROWS_AS(tcomp::io::write_png_rgb8("/nonexistent-dir/x.png", rgb, 2, 2), tcomp::io::file_error);
    const auto path = std::filesystem::temp_directory_path() / "tcomp_test_png.png";
    tcomp::io::write_png_rgb8(path, rgb, 2, 2);
    std::ifstream f(path, std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(read_png(bytes).rgb == rgb);
    std::filesystem::remove(path);
}
