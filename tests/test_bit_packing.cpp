// Bit packing (core/bit_packing.hpp): the layout is a little-endian bit stream, code i in bits
// [i*w, (i+1)*w), bit b of the stream = bit (b % 8) of byte (b / 8).
//
// The reference here packs bit by bit (one stream bit at a time), a different algorithm from the library's
// byte-window one; known vectors were worked out by hand. Buffers are std::vectors of the exact size, so the
// sanitizer build catches any read or write past the end.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/bit_packing.hpp"

namespace {

using namespace tcomp;

std::vector<std::uint8_t> reference_pack(const std::vector<std::uint32_t>& codes, int bits) {
    std::vector<std::uint8_t> out((codes.size() * static_cast<std::size_t>(bits) + 7) / 8, 0);
    for (std::size_t i = 0; i < codes.size(); ++i)
        for (int j = 0; j < bits; ++j)
            if ((codes[i] >> j) & 1u) {
                const std::size_t b = i * static_cast<std::size_t>(bits) + static_cast<std::size_t>(j);
                out[b / 8] = static_cast<std::uint8_t>(out[b / 8] | (1u << (b % 8)));
            }
    return out;
}

bool stream_bit(const std::vector<std::uint8_t>& s, std::size_t b) { return ((s[b / 8] >> (b % 8)) & 1u) != 0; }

std::uint32_t max_code(int bits) { return bits == 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u); }

std::vector<std::uint32_t> random_codes(std::mt19937& rng, std::size_t n, int bits) {
    std::uniform_int_distribution<std::uint32_t> dist(0u, max_code(bits));
    std::vector<std::uint32_t> codes(n);
    for (auto& c : codes) c = dist(rng);
    // Make sure the extremes occur.
    if (n > 0) codes[0] = max_code(bits);
    if (n > 2) codes[n / 2] = 0;
    return codes;
}

template <class Fn>
std::string error_message(Fn&& fn) {
    try {
        fn();
    } catch (const tcomp::error& e) {
        return e.what();
    }
    return "<no exception>";
}

}  // namespace

TEST_CASE("packing: packed_bytes", "[packing]") {
    CHECK(packed_bytes(0, 1) == 0);
    CHECK(packed_bytes(0, 32) == 0);
    CHECK(packed_bytes(1, 1) == 1);
    CHECK(packed_bytes(8, 1) == 1);
    CHECK(packed_bytes(9, 1) == 2);
    CHECK(packed_bytes(3, 3) == 2);   // 9 bits
    CHECK(packed_bytes(8, 3) == 3);   // 24 bits
    CHECK(packed_bytes(2, 4) == 1);
    CHECK(packed_bytes(3, 4) == 2);
    CHECK(packed_bytes(5, 12) == 8);  // 60 bits
    CHECK(packed_bytes(7, 32) == 28);
    CHECK(packed_bytes(33, 3) == 13);  // 99 bits
    for (int bits = 1; bits <= 32; ++bits)
        for (index_t n = 0; n < 40; ++n) {
            INFO("bits " << bits << ", count " << n);
            CHECK(packed_bytes(n, bits) * 8 >= static_cast<std::size_t>(n * bits));
            CHECK(packed_bytes(n, bits) * 8 < static_cast<std::size_t>(n * bits) + 8);
        }
}

TEST_CASE("packing: documented layout, known vectors", "[packing]") {
    std::vector<std::uint8_t> out;
    auto pack = [&](std::vector<std::uint32_t> codes, int bits) {
        out.assign(packed_bytes(static_cast<index_t>(codes.size()), bits), 0xEE);
        pack_codes(codes, bits, out);
        return out;
    };
    // Width 4: low nibble first.
    CHECK(pack({1, 2}, 4) == std::vector<std::uint8_t>{0x21});
    CHECK(pack({0xF, 0x0, 0xA}, 4) == std::vector<std::uint8_t>{0x0F, 0x0A});
    // Width 3, by hand: 1=001 2=010 3=011 | 4=100 5=101 6=110 | 7=111 0=000
    //   byte 0 = bits 0..7  = 1,0,0, 0,1,0, 1,1           -> 0b11010001 = 0xD1
    //   byte 1 = bits 8..15 = 0, 0,0,1, 1,0,1, 0          -> 0b01011000 = 0x58
    //   byte 2 = bits 16..23 = 1,1, 1,1,1, 0,0,0          -> 0b00011111 = 0x1F
    CHECK(pack({1, 2, 3, 4, 5, 6, 7, 0}, 3) == std::vector<std::uint8_t>{0xD1, 0x58, 0x1F});
    //   5=101 3=011 6=110: byte 0 = 1,0,1, 1,1,0, 0,1 -> 0x9D; byte 1 = 1 (and zero padding) -> 0x01
    CHECK(pack({5, 3, 6}, 3) == std::vector<std::uint8_t>{0x9D, 0x01});
    // Width 1: bit i of the stream.
    CHECK(pack({1, 0, 1, 1, 0, 0, 0, 1, 1}, 1) == std::vector<std::uint8_t>{0x8D, 0x01});
    // Width 9: 0x1FF, 0, 0x155 -> 0xFF, 0x01, 0x54, 0x05
    CHECK(pack({0x1FF, 0, 0x155}, 9) == std::vector<std::uint8_t>{0xFF, 0x01, 0x54, 0x05});
    // Width 8/16/32: plain little-endian storage.
    CHECK(pack({0x12, 0xAB}, 8) == std::vector<std::uint8_t>{0x12, 0xAB});
    CHECK(pack({0x1234, 0xBEEF}, 16) == std::vector<std::uint8_t>{0x34, 0x12, 0xEF, 0xBE});
    CHECK(pack({0xDEADBEEFu}, 32) == std::vector<std::uint8_t>{0xEF, 0xBE, 0xAD, 0xDE});
    // Width 2 (int2/ternary): -1 (0b11), 0, +1 (0b01), -1 -> 11 00 01 11 from the LSB: 0b11010011 = 0xD3
    CHECK(pack({3, 0, 1, 3}, 2) == std::vector<std::uint8_t>{0xD3});

    // read_packed on the hand-made streams.
    const std::uint8_t w3[] = {0xD1, 0x58, 0x1F};
    for (index_t i = 0; i < 8; ++i) CHECK(read_packed(w3, i, 3) == static_cast<std::uint32_t>((i + 1) % 8));
    const std::uint8_t w9[] = {0xFF, 0x01, 0x54, 0x05};
    CHECK(read_packed(w9, 0, 9) == 0x1FFu);
    CHECK(read_packed(w9, 1, 9) == 0u);
    CHECK(read_packed(w9, 2, 9) == 0x155u);
}

TEST_CASE("packing: pack/unpack is a bijection for every width 1..32", "[packing]") {
    std::mt19937 rng(20240611u);
    const std::size_t fixed_lengths[] = {0, 1, 2, 3, 7, 8, 9, 13, 31, 33, 64, 101};
    std::uniform_int_distribution<std::size_t> length_dist(0, 150);
    for (int bits = 1; bits <= 32; ++bits) {
        std::vector<std::size_t> lengths(std::begin(fixed_lengths), std::end(fixed_lengths));
        for (int i = 0; i < 3; ++i) lengths.push_back(length_dist(rng));  // random lengths too
        for (std::size_t n : lengths) {
            INFO("bits " << bits << ", count " << n);
            const auto codes = random_codes(rng, n, bits);
            std::vector<std::uint8_t> packed(packed_bytes(static_cast<index_t>(n), bits), 0x5A);
            pack_codes(codes, bits, packed);
            // The layout: identical to the bit-by-bit reference (padding bits zero).
            REQUIRE(packed == reference_pack(codes, bits));
            std::vector<std::uint32_t> back(n, 0xCDCDCDCDu);
            unpack_codes(packed, bits, back);
            REQUIRE(back == codes);
            for (std::size_t i = 0; i < n; ++i) REQUIRE(read_packed(packed.data(), static_cast<index_t>(i), bits) == codes[i]);
        }
        // The other direction: any byte stream whose padding bits are zero is the packing of its unpacking.
        for (std::size_t n : lengths) {
            INFO("bits " << bits << ", count " << n << " (bytes -> codes -> bytes)");
            std::vector<std::uint8_t> bytes(packed_bytes(static_cast<index_t>(n), bits));
            std::uniform_int_distribution<int> byte_dist(0, 255);
            for (auto& b : bytes) b = static_cast<std::uint8_t>(byte_dist(rng));
            const std::size_t used = n * static_cast<std::size_t>(bits);
            if (used % 8 != 0) bytes.back() = static_cast<std::uint8_t>(bytes.back() & ((1u << (used % 8)) - 1u));
            std::vector<std::uint32_t> codes(n);
            unpack_codes(bytes, bits, codes);
            for (auto c : codes) REQUIRE((c & ~max_code(bits)) == 0u);
            std::vector<std::uint8_t> again(bytes.size(), 0xFF);
            pack_codes(codes, bits, again);
            REQUIRE(again == bytes);
        }
    }
}

TEST_CASE("packing: write_packed changes only its own bits", "[packing]") {
    std::mt19937 rng(7u);
    std::uniform_int_distribution<int> byte_dist(0, 255);
    for (int bits = 1; bits <= 32; ++bits) {
        const index_t n = 11;
        const auto codes = random_codes(rng, static_cast<std::size_t>(n), bits);
        for (index_t i = 0; i < n; ++i) {
            std::vector<std::uint8_t> stream(packed_bytes(n, bits));
            for (auto& b : stream) b = static_cast<std::uint8_t>(byte_dist(rng));
            const auto before = stream;
            write_packed(stream.data(), i, bits, codes[static_cast<std::size_t>(i)]);
            INFO("bits " << bits << ", index " << i);
            CHECK(read_packed(stream.data(), i, bits) == codes[static_cast<std::size_t>(i)]);
            const std::size_t first = static_cast<std::size_t>(i) * static_cast<std::size_t>(bits);
            const std::size_t last = first + static_cast<std::size_t>(bits);
            bool neighbours_intact = true;
            for (std::size_t b = 0; b < stream.size() * 8; ++b) {
                if (b >= first && b < last) {
                    if (stream_bit(stream, b) != (((codes[static_cast<std::size_t>(i)] >> (b - first)) & 1u) != 0))
                        neighbours_intact = false;
                } else if (stream_bit(stream, b) != stream_bit(before, b)) {
                    neighbours_intact = false;
                }
            }
            CHECK(neighbours_intact);
            // Codes of the neighbours read back unchanged.
            if (i > 0) CHECK(read_packed(stream.data(), i - 1, bits) == read_packed(before.data(), i - 1, bits));
            if (i + 1 < n) CHECK(read_packed(stream.data(), i + 1, bits) == read_packed(before.data(), i + 1, bits));
        }
        // Extra bits of a too-wide code are masked off by write_packed (only w bits are written).
        std::vector<std::uint8_t> stream(packed_bytes(3, bits), 0);
        if (bits < 32) {
            write_packed(stream.data(), 1, bits, 0xFFFFFFFFu);
            CHECK(read_packed(stream.data(), 0, bits) == 0u);
            CHECK(read_packed(stream.data(), 1, bits) == max_code(bits));
            CHECK(read_packed(stream.data(), 2, bits) == 0u);
        }
    }
}

TEST_CASE("packing: errors", "[packing]") {
    // A code that does not fit the width.
    {
        const std::vector<std::uint32_t> codes = {1, 2, 16, 3};
        std::vector<std::uint8_t> out(packed_bytes(4, 4));
        const std::string msg = error_message([&] { pack_codes(codes, 4, out); });
        CHECK_THAT(msg, Catch::Contains("16") && Catch::Contains("index 2") && Catch::Contains("4 bits"));
        CHECK_THROWS_AS(pack_codes(codes, 4, out), tcomp::error);
        const std::vector<std::uint32_t> one = {2};
        std::vector<std::uint8_t> o1(1);
        CHECK_THROWS_AS(pack_codes(one, 1, o1), tcomp::error);
        const std::vector<std::uint32_t> wide = {0x80000000u};
        std::vector<std::uint8_t> o31(packed_bytes(1, 31));
        CHECK_THROWS_AS(pack_codes(wide, 31, o31), tcomp::error);
        std::vector<std::uint8_t> o32(packed_bytes(1, 32));
        CHECK_NOTHROW(pack_codes(wide, 32, o32));
    }
    // A buffer that is too short, in both directions.
    {
        const std::vector<std::uint32_t> codes(9, 1u);  // 9 x 3 bits = 27 bits = 4 bytes
        std::vector<std::uint8_t> small(3);
        CHECK_THROWS_AS(pack_codes(codes, 3, small), tcomp::error);
        const std::string msg = error_message([&] { pack_codes(codes, 3, small); });
        CHECK_THAT(msg, Catch::Contains("3 bytes") && Catch::Contains("4 needed"));
        std::vector<std::uint32_t> back(9);
        CHECK_THROWS_AS(unpack_codes(small, 3, back), tcomp::error);
        const std::string umsg = error_message([&] { unpack_codes(small, 3, back); });
        CHECK_THAT(umsg, Catch::Contains("3 bytes") && Catch::Contains("4 needed"));
        std::vector<std::uint8_t> exact(4);
        CHECK_NOTHROW(pack_codes(codes, 3, exact));
        CHECK_NOTHROW(unpack_codes(exact, 3, back));
        CHECK(back == codes);
        // Zero codes need no bytes.
        std::vector<std::uint8_t> none;
        std::vector<std::uint32_t> no_codes;
        CHECK_NOTHROW(pack_codes(no_codes, 5, none));
        CHECK_NOTHROW(unpack_codes(none, 5, no_codes));
    }
    // Widths outside 1..32.
    {
        const std::vector<std::uint32_t> codes = {0};
        std::vector<std::uint8_t> out(8);
        std::vector<std::uint32_t> back(1);
        CHECK_THROWS_AS(pack_codes(codes, 0, out), tcomp::error);
        CHECK_THROWS_AS(pack_codes(codes, 33, out), tcomp::error);
        CHECK_THROWS_AS(unpack_codes(out, 0, back), tcomp::error);
        CHECK_THROWS_AS(unpack_codes(out, 33, back), tcomp::error);
        CHECK_THAT(error_message([&] { pack_codes(codes, 33, out); }), Catch::Contains("33"));
    }
}

TEST_CASE("packing: constexpr read/write", "[packing]") {
    constexpr auto roundtrip = [] {
        std::uint8_t s[5] = {};
        write_packed(s, 0, 5, 0x1Bu);
        write_packed(s, 1, 5, 0x04u);
        write_packed(s, 2, 5, 0x1Fu);
        return read_packed(s, 0, 5) == 0x1Bu && read_packed(s, 1, 5) == 0x04u && read_packed(s, 2, 5) == 0x1Fu &&
               s[0] == 0x9Bu && s[1] == 0x7Cu;  // 11011 00100 11111 from the LSB
    };
    STATIC_REQUIRE(roundtrip());
}
