// The host side of the CUDA kernels, tested without nvcc or a GPU: which policies they run, the weight
// image uploaded to the device (a lossless re-layout of the compressed matrix), the 2:4 metadata words,
// the launch plans and the argument checks. A warp emulation rebuilds the registers of the 2:4 and int4
// kernels from the image through kernel/cuda/fragments.hpp and checks the tile products, so a layout slip
// in the packer or the addressing shows up here, not only on a GPU. (Whether fragments.hpp matches the
// hardware is checked by tests/cuda on a device.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "test_support.hpp"
#include "tcomp/kernel/cuda/launch_plan.hpp"
#include "tcomp/kernel/cuda/weight_image.hpp"
#include "tcomp/quant/describe.hpp"
#include "tcomp/quant/descriptor_text.hpp"
#include "tcomp/quant/presets.hpp"

using namespace tcomp;
namespace fr = tcomp::cuda::fragment;

namespace {

template <class Policy>
void check_round_trip(index_t n, index_t k, std::uint32_t seed) {
    const auto w = tcomp_test::gaussian(n, k, seed);
    const auto cw = compress<Policy>(w.view());
    const cuda::weight_image img = cuda::make_weight_image(cw);
    CHECK(img.kind == cuda::kernel_for<Policy>());
    CHECK(img.rows == n);
    CHECK(img.cols == k);
    const dense_matrix<float> want = dequantize(cw.weights());
    const dense_matrix<float> got = cuda::dequantize_image(img);
    index_t mismatches = 0;
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < k; ++c)
            if (std::memcmp(&want(r, c), &got(r, c), sizeof(float)) != 0) ++mismatches;
    CHECK(mismatches == 0);
}

// Host models of the device conversions in kernel/cuda/mma.cuh, written from their definition.
std::int8_t signed_nibble(unsigned v) { return static_cast<std::int8_t>(static_cast<int>((v & 0xFu) ^ 8u) - 8); }

}  // namespace

TEST_CASE("cuda host: policies map to kernel families", "[cuda]") {
    static_assert(cuda::kernel_for<presets::w8a8>() == cuda::kernel_kind::w8a8);
    static_assert(cuda::kernel_for<presets::w4a8>() == cuda::kernel_kind::w4a8);
    static_assert(cuda::kernel_for<presets::w8a8_2of4>() == cuda::kernel_kind::w8a8_2of4);
    static_assert(cuda::kernel_for<presets::w4a16>() == cuda::kernel_kind::w4a16);
    static_assert(cuda::kernel_for<presets::w8a16>() == cuda::kernel_kind::w8a16);
    CHECK(std::string(cuda::kernel_name(cuda::kernel_kind::w8a8_2of4)) == "w8a8_2of4");
}

TEST_CASE("cuda host: the weight image is the compressed matrix, losslessly", "[cuda]") {
    using w4a16_signed_g32 = policy<quantizer<int_format<4>, symmetric, per_group<32>>, float_activations>;
    using w8a16_asym_g64 = policy<quantizer<uint_format<8>, asymmetric, per_group<64>>, float_activations>;
    using w8a8_per_tensor = policy<quantizer<int_format<8>, symmetric, per_tensor>, presets::int8_per_token>;
    check_round_trip<presets::w8a8>(37, 96, 1);
    check_round_trip<presets::w4a8>(19, 256, 2);
    check_round_trip<presets::w4a16>(21, 384, 3);  // uint4 with zero points
    check_round_trip<w4a16_signed_g32>(9, 160, 4);
    check_round_trip<w8a16_asym_g64>(11, 192, 5);
    check_round_trip<w8a8_per_tensor>(5, 64, 6);
    check_round_trip<presets::w8a8_2of4>(37, 192, 7);  // 3 tiles, the last one padded
    check_round_trip<presets::w8a8_2of4>(16, 64, 8);
}

TEST_CASE("cuda host: image layout details", "[cuda]") {
    const auto cw = compress<presets::w4a16>(tcomp_test::gaussian(3, 256, 9).view());
    const cuda::weight_image img = cuda::make_weight_image(cw);
    CHECK(img.code_bits == 4);
    CHECK_FALSE(img.is_signed);
    CHECK(img.group_size == 128);
    CHECK(img.groups() == 2);
    CHECK(img.row_bytes() == 128);
    CHECK(img.codes.size() == 3 * 128);
    CHECK(img.scales.size() == 6);
    CHECK(img.zero_stride() == 4);             // rows padded to 4 bytes per group
    CHECK(img.zero_points.size() == 2 * 4);
    CHECK(img.metadata.empty());
    CHECK(img.bytes() == 3 * 128 + 6 * 4 + 8);
    // Group-major: the scales of one group for consecutive rows are adjacent (a block copies them at once).
    const auto v = cw.weights().view();
    for (index_t r = 0; r < 3; ++r)
        for (index_t g = 0; g < 2; ++g) {
            CHECK(img.scales[static_cast<std::size_t>(g * 3 + r)] == v.scale(r, g * 128));
            CHECK(img.zero_points[static_cast<std::size_t>(g * 4 + r)] == v.zero_point(r, g * 128));
        }
}

TEST_CASE("cuda host: the 2:4 metadata map is a bijection and inverts", "[cuda]") {
    std::set<std::pair<int, int>> seen;
    for (int row = 0; row < 16; ++row)
        for (int group = 0; group < 16; ++group) {
            const int lane = fr::sp_meta_lane(row, group), shift = fr::sp_meta_shift(row, group);
            REQUIRE(lane >= 0);
            REQUIRE(lane < 32);
            REQUIRE(shift % 4 == 0);
            REQUIRE(shift <= 28);
            CHECK(seen.insert({lane, shift}).second);
            CHECK(fr::sp_meta_row(lane, shift / 4) == row);
            CHECK(fr::sp_meta_group(lane, shift / 4) == group);
        }
    CHECK(seen.size() == 256);
    // Nibbles are {first, second} with first in the low bits; {0,1} = 0b0100.
    CHECK(fr::sp_nibble(0, 1) == 0x4u);
    CHECK(fr::sp_nibble(2, 3) == 0xEu);
}

TEST_CASE("cuda host: fragment maps cover each mma operand exactly once", "[cuda]") {
    std::set<std::pair<int, int>> a8, b8, a16, b16, c;
    for (int lane = 0; lane < 32; ++lane) {
        for (int r = 0; r < 4; ++r)
            for (int j = 0; j < 4; ++j) a8.insert({fr::s8_a_row(lane, r), fr::s8_a_col(lane, r) + j});
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < 4; ++j) b8.insert({fr::s8_b_k(lane, r) + j, fr::s8_b_col(lane)});
        for (int r = 0; r < 4; ++r)
            for (int j = 0; j < 2; ++j) a16.insert({fr::h_a_row(lane, r), fr::h_a_col(lane, r) + j});
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < 2; ++j) b16.insert({fr::h_b_k(lane, r) + j, fr::h_b_col(lane)});
        for (int r = 0; r < 4; ++r) c.insert({fr::c_row(lane, r), fr::c_col(lane, r)});
    }
    CHECK(a8.size() == 16 * 32);   // m16 x k32
    CHECK(b8.size() == 32 * 8);    // k32 x n8
    CHECK(a16.size() == 16 * 16);  // m16 x k16
    CHECK(b16.size() == 16 * 8);   // k16 x n8
    CHECK(c.size() == 16 * 8);
}

TEST_CASE("cuda host: warp emulation of the 2:4 kernel's tile product", "[cuda]") {
    // One 16-row weight tile x 8 tokens x 64 k, registers gathered as sparse_gemm_kernel does (compressed
    // A from the code rows, B from X rows, metadata words as stored), multiplied per the mma.sp definition
    // (each metadata nibble selects the logical k of two consecutive compressed values of its row).
    const index_t n = 21, k = 128;  // two tiles (the second padded), two 64-k chunks
    const auto cw = compress<presets::w8a8_2of4>(tcomp_test::gaussian(n, k, 11).view());
    const cuda::weight_image img = cuda::make_weight_image(cw);
    std::mt19937 gen(12);
    std::uniform_int_distribution<int> code(-128, 127);
    std::vector<std::int8_t> x(static_cast<std::size_t>(8 * k));
    for (auto& v : x) v = static_cast<std::int8_t>(code(gen));

    for (index_t tile = 0; tile < img.tiles(); ++tile)
        for (index_t chunk = 0; chunk < k / 64; ++chunk) {
            std::int64_t d[16][8] = {};
            for (int lane = 0; lane < 32; ++lane) {
                const std::uint32_t meta = img.metadata[static_cast<std::size_t>((tile * (k / 64) + chunk) * 32 + lane)];
                for (int nib = 0; nib < 8; ++nib) {
                    const int row = fr::sp_meta_row(lane, nib), group = fr::sp_meta_group(lane, nib);
                    const index_t wrow = tile * 16 + row;
                    const unsigned bits = (meta >> (4 * nib)) & 0xFu;
                    for (int slot = 0; slot < 2; ++slot) {
                        // Compressed column 2 * group + slot: find the lane and register holding it.
                        const int ccol = 2 * group + slot;
                        int holder = -1, reg = -1;
                        for (int l = 0; l < 32 && holder < 0; ++l)
                            for (int r = 0; r < 4; ++r)
                                if (fr::s8_a_row(l, r) == row && ccol >= fr::s8_a_col(l, r) && ccol < fr::s8_a_col(l, r) + 4)
                                    holder = l, reg = r;
                        REQUIRE(holder >= 0);
                        const index_t byte = chunk * 32 + fr::s8_a_col(holder, reg) + (ccol - fr::s8_a_col(holder, reg));
                        const int a = wrow < n ? static_cast<std::int8_t>(img.codes[static_cast<std::size_t>(wrow * (k / 2) + byte)]) : 0;
                        const int kk = 4 * group + static_cast<int>((bits >> (2 * slot)) & 3u);
                        for (int tok = 0; tok < 8; ++tok)
                            d[row][tok] += static_cast<std::int64_t>(a) * x[static_cast<std::size_t>(tok * k + chunk * 64 + kk)];
                    }
                }
            }
            // Reference: the compressed matrix's own codes (dequantize / scale = the integer code).
            const auto view = cw.weights().view();
            for (int row = 0; row < 16; ++row) {
                const index_t wrow = tile * 16 + row;
                for (int tok = 0; tok < 8; ++tok) {
                    std::int64_t want = 0;
                    if (wrow < n) {
                        std::vector<index_t> cols;
                        view.for_each_in_row(wrow, cols, [&](index_t c, std::uint32_t cc) {
                            if (c / 64 == chunk)
                                want += static_cast<std::int64_t>(int_format<8>::to_integer(cc)) * x[static_cast<std::size_t>(tok * k + c)];
                        });
                    }
                    CHECK(d[row][tok] == want);
                }
            }
        }
}

TEST_CASE("cuda host: int4 weight rows give the int8 B fragments of mma.m16n8k32", "[cuda]") {
    // dense_gemm_kernel's int4 path reads 16 bits at byte k/2 of a code row for B register r (k = s8_b_k)
    // and widens the four nibbles to four int8; this checks that those are W[n][k..k+3] of the matrix.
    const auto cw = compress<presets::w4a8>(tcomp_test::gaussian(8, 128, 13).view());
    const cuda::weight_image img = cuda::make_weight_image(cw);
    for (int lane = 0; lane < 32; ++lane)
        for (int step = 0; step < 4; ++step)
            for (int r = 0; r < 2; ++r) {
                const int nrow = fr::s8_b_col(lane), k0 = 32 * step + fr::s8_b_k(lane, r);
                const std::uint8_t* row = img.codes.data() + nrow * img.row_bytes();
                const unsigned bits16 = row[k0 / 2] | (static_cast<unsigned>(row[k0 / 2 + 1]) << 8);
                for (int j = 0; j < 4; ++j)
                    CHECK(signed_nibble(bits16 >> (4 * j)) == cuda::image_code(img, nrow, k0 + j));
            }
}

TEST_CASE("cuda host: shapes the kernels reject are errors before any launch", "[cuda]") {
    CHECK_THROWS_WITH(cuda::make_weight_image(compress<presets::w8a8>(tcomp_test::gaussian(4, 48, 1).view())),
                      Catch::Contains("K = 48 is not a multiple of 32"));
    CHECK_THROWS_WITH(cuda::make_weight_image(compress<presets::w8a8_2of4>(tcomp_test::gaussian(4, 96, 1).view())),
                      Catch::Contains("not a multiple of 64"));
    using sparse_g32 = policy<quantizer<int_format<8>, symmetric, per_group<32>>, presets::int8_per_token, n_m<2, 4>>;
    CHECK_THROWS_WITH(cuda::make_weight_image(compress<sparse_g32>(tcomp_test::gaussian(4, 128, 1).view())),
                      Catch::Contains("multiple of 64"));
    CHECK_THROWS_AS(cuda::check_weight_shape(cuda::kernel_kind::w8a8, 0, 64, 64, "t"), shape_error);
    CHECK_THROWS_WITH(cuda::check_matmul_arguments(cuda::kernel_kind::w8a8, -1, 16, 16),
                      Catch::Contains("negative"));
    CHECK_THROWS_WITH(cuda::check_matmul_arguments(cuda::kernel_kind::w4a16, 3, 24, 16),
                      Catch::Contains("16-byte aligned"));
    CHECK_THROWS_WITH(cuda::check_matmul_arguments(cuda::kernel_kind::w4a16, 3, 0, 16),
                      Catch::Contains("null"));
    CHECK_NOTHROW(cuda::check_matmul_arguments(cuda::kernel_kind::w4a16, 0, 0, 0));
    CHECK_THROWS_WITH(cuda::check_matmul_arguments(cuda::kernel_kind::w8a8, 65535 * 128 + 1, 16, 16),
                      Catch::Contains("65535 tiles"));
}

TEST_CASE("cuda host: images the kernels cannot read are errors", "[cuda]") {
    const auto cw = compress<presets::w4a16>(tcomp_test::gaussian(5, 128, 3).view());
    const cuda::weight_image good = cuda::make_weight_image(cw);
    CHECK_NOTHROW(cuda::check_image(good, cuda::kernel_kind::w4a16, "t"));
    CHECK_THROWS_WITH(cuda::check_image(good, cuda::kernel_kind::w8a16, "t"), Catch::Contains("the policy runs w8a16"));
    cuda::weight_image wrong_bits = good;
    wrong_bits.code_bits = 8;
    wrong_bits.codes.resize(wrong_bits.codes.size() * 2);  // sizes consistent with 8 bits: still refused
    CHECK_THROWS_WITH(cuda::check_image(wrong_bits, cuda::kernel_kind::w4a16, "t"), Catch::Contains("reads 4-bit"));
    cuda::weight_image short_codes = good;
    short_codes.codes.pop_back();
    CHECK_THROWS_WITH(cuda::check_image(short_codes, cuda::kernel_kind::w4a16, "t"), Catch::Contains("code bytes"));
    cuda::weight_image int_with_zeros = cuda::make_weight_image(compress<presets::w8a8>(tcomp_test::gaussian(5, 128, 3).view()));
    int_with_zeros.zero_points.assign(static_cast<std::size_t>(int_with_zeros.zero_stride()), 0);
    CHECK_THROWS_WITH(cuda::check_image(int_with_zeros, cuda::kernel_kind::w8a8, "t"), Catch::Contains("symmetric"));
    // int32 accumulators: W8A8 with one scale per row overflows past 131071 products (|x|, |w| <= 128).
    CHECK_NOTHROW(cuda::check_weight_shape(cuda::kernel_kind::w8a8, 8, 131040, 131040, "t"));
    CHECK_THROWS_WITH(cuda::check_weight_shape(cuda::kernel_kind::w8a8, 8, 131104, 131104, "t"),
                      Catch::Contains("int32 accumulator"));
    CHECK_NOTHROW(cuda::check_weight_shape(cuda::kernel_kind::w8a8_2of4, 8, 262080, 262080, "t"));  // half kept
    CHECK_NOTHROW(cuda::check_weight_shape(cuda::kernel_kind::w4a8, 8, 1 << 21, 128, "t"));        // groups reset it
}

TEST_CASE("cuda host: launch plans", "[cuda]") {
    using cuda::kernel_kind;
    using cuda::tile_shape;
    // GEMV-shaped (float path, and int paths with one group per row): split K so there are about 2 blocks
    // per SM, >= 4 chunks per slice, every chunk covered, no empty slice.
    for (const kernel_kind kind : {kernel_kind::w4a16, kernel_kind::w8a8})
        for (const index_t k : {64, 256, 4096, 11008 / 32 * 32, 28672})
            for (const index_t n : {8, 4096, 28672}) {
                const auto plan = cuda::plan_launch(kind, 8, n, k, 1, 132);
                const index_t chunks = (k + 63) / 64;
                CHECK(plan.tile == tile_shape::small);
                CHECK(plan.splits >= 1);
                CHECK(plan.splits <= 16);
                CHECK(static_cast<index_t>(plan.splits) * plan.chunks_per_split >= chunks);
                CHECK(static_cast<index_t>(plan.splits - 1) * plan.chunks_per_split < chunks);
                if (plan.splits > 1) CHECK(plan.chunks_per_split >= 4);
            }
    CHECK(cuda::plan_launch(kernel_kind::w4a16, 8, 4096, 4096, 32, 132).splits > 1);
    // Float paths with at most 4 rows: the GEMV kernel (no tile, no split).
    CHECK(cuda::plan_launch(kernel_kind::w4a16, 1, 4096, 4096, 32, 132).tile == tile_shape::gemv);
    CHECK(cuda::plan_launch(kernel_kind::w8a16, 4, 4096, 4096, 1, 132).tile == tile_shape::gemv);
    CHECK(cuda::plan_launch(kernel_kind::w8a16, 5, 4096, 4096, 1, 132).tile == tile_shape::small);
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 1, 4096, 4096, 1, 132).tile == tile_shape::small);
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 1, 4096, 4096, 1, 132).splits > 1);  // exact int32 partials
    // Int paths with several groups per row keep the oracle's k order: never split.
    CHECK(cuda::plan_launch(kernel_kind::w4a8, 1, 4096, 4096, 32, 132).splits == 1);
    CHECK(cuda::plan_launch(kernel_kind::w4a8, 16, 4096, 4096, 32, 132).tile == tile_shape::small);
    // Past M = 16: the 128 x 128 tile when it still gives every SM a block, else 64 x 64.
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 17, 4096, 4096, 1, 132).tile == tile_shape::medium);
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 128, 4096, 4096, 1, 132).tile == tile_shape::medium);
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 4096, 4096, 4096, 1, 132).tile == tile_shape::large);
    // A medium tile that leaves SMs idle splits K (>= 8 chunks per slice) where exactness allows.
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 128, 4096, 4096, 1, 132).splits == 3);
    CHECK(cuda::plan_launch(kernel_kind::w4a16, 128, 4096, 4096, 32, 132).splits == 3);
    CHECK(cuda::plan_launch(kernel_kind::w4a8, 128, 4096, 4096, 32, 132).splits == 1);
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 128, 4096, 256, 1, 132).splits == 1);  // K too short to split
    CHECK(cuda::plan_launch(kernel_kind::w8a8, 4096, 4096, 4096, 1, 132).splits == 1);
    CHECK(cuda::plan_launch(kernel_kind::w8a8_2of4, 32, 4096, 4096, 1, 132).tile == tile_shape::small);
    CHECK(cuda::plan_launch(kernel_kind::w8a8_2of4, 33, 4096, 4096, 1, 132).tile == tile_shape::large);
}

TEST_CASE("cuda kernel table at run time: kernel_for(descriptor) agrees with kernel_for<Policy>()", "[cuda_host]") {
    auto same = []<class P>(std::type_identity<P>) {
        const cuda::kernel_choice c = cuda::kernel_for(describe<P>());
        INFO(spell(describe<P>()) << ": " << c.reason);
        REQUIRE(c.kind.has_value());
        CHECK(*c.kind == cuda::kernel_for<P>());
    };
    same(std::type_identity<presets::w8a8>{});
    same(std::type_identity<presets::w4a8>{});
    same(std::type_identity<presets::w8a8_2of4>{});
    same(std::type_identity<presets::w4a16>{});
    same(std::type_identity<presets::w8a16>{});
    same(std::type_identity<policy<quantizer<int_format<4>, symmetric, per_group<64>>, presets::int8_per_token>>{});
    same(std::type_identity<policy<quantizer<uint_format<8>, asymmetric, per_group<32>>, float_activations>>{});
    // Each refusal in the words of the static_assert that refuses the type (tests/compile_fail/ checks those).
    const std::pair<const char*, const char*> refused[] = {
        {"w=fp8_e4m3:channel", "weights must be 4- or 8-bit integers"},
        {"w=int3:g32", "weights must be 4- or 8-bit integers"},
        {"w=int4:g16 a=int8:token", "weight groups must be a multiple of 32"},
        {"w=int8:channel a=int8:token s=block4x4", "only dense and 2:4 weights"},
        {"w=int8:channel a=int8:asym:token", "symmetric int8"},
        {"w=int8:channel a=int8:tensor", "quantized per token, dynamically"},
        {"w=int8:channel a=int8:tensor:static", "quantized per token, dynamically"},
        {"w=int8:channel a=int8:token:pct99.9", "min_max observer"},
        {"w=uint8:asym:channel a=int8:token", "symmetric signed weights"},
        {"w=int8:g32:shift3 a=int8:token", "shift epilogue"},
        {"w=int4:g32 a=int8:token s=2:4", "2:4 sparsity of int8 weights"},
        {"w=int8:channel s=2:4", "2:4 sparse weights need int8 activations"},
        {"w=int4:asym:g32", "asymmetric weights must be unsigned"},
    };
    for (const auto& [text, words] : refused) {
        const cuda::kernel_choice c = cuda::kernel_for(parse_descriptor(text));
        INFO(text << " -> " << c.reason);
        CHECK_FALSE(c.kind.has_value());
        CHECK_THAT(c.reason, Catch::Contains(words) && Catch::Contains("tcomp::cuda: "));
    }
}
