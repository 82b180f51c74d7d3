// Sparsity: magnitude masks (N:M, block, unstructured) against brute-force selections, shape and density
// errors, compressed sparse storage (values against an independent quantizer model, byte counts against the
// documented layout, metadata bytes decoded by hand), and hostile packed buffers that validate() must reject.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tcomp/format/fp8.hpp"
#include "tcomp/format/integer.hpp"
#include "tcomp/quant/compressed_matrix.hpp"
#include "tcomp/sparse/prune.hpp"

namespace {

using namespace tcomp;

using mask_t = std::vector<std::uint8_t>;

using tcomp_test::gaussian;

/// Values from {-3, -2, -1, 0, 1, 2, 3} * 0.5: many exact magnitude ties, including +x / -x.
dense_matrix<float> tie_heavy(index_t rows, index_t cols, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> dist(-3, 3);
    dense_matrix<float> m(rows, cols);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) m(r, c) = 0.5f * static_cast<float>(dist(gen));
    return m;
}

std::size_t at(index_t r, index_t c, index_t cols) { return static_cast<std::size_t>(r * cols + c); }

// ---------------------------------------------------------------------------------------------------------
// Brute-force selections (independent of prune.hpp: repeated arg-max with a strict comparison, so the lowest
// index wins every tie).
// ---------------------------------------------------------------------------------------------------------
mask_t brute_n_m(const dense_matrix<float>& w, int n, int m) {
    mask_t mask(static_cast<std::size_t>(w.rows() * w.cols()), 0);
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t b = 0; b < w.cols(); b += m)
            for (int pick = 0; pick < n; ++pick) {
                index_t best = -1;
                for (index_t c = b; c < b + m; ++c) {
                    if (mask[at(r, c, w.cols())]) continue;
                    if (best < 0 || std::fabs(w(r, c)) > std::fabs(w(r, best))) best = c;
                }
                mask[at(r, best, w.cols())] = 1;
            }
    return mask;
}

mask_t brute_unstructured(const dense_matrix<float>& w, index_t keep) {
    mask_t mask(static_cast<std::size_t>(w.rows() * w.cols()), 0);
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t pick = 0; pick < keep; ++pick) {
            index_t best = -1;
            for (index_t c = 0; c < w.cols(); ++c) {
                if (mask[at(r, c, w.cols())]) continue;
                if (best < 0 || std::fabs(w(r, c)) > std::fabs(w(r, best))) best = c;
            }
            mask[at(r, best, w.cols())] = 1;
        }
    return mask;
}

/// Tile L1 norms (row-major tile order), each accumulated in double in row-major element order.
std::vector<double> tile_norms(const dense_matrix<float>& w, int br, int bc) {
    const index_t tr = w.rows() / br, tc = w.cols() / bc;
    std::vector<double> norm(static_cast<std::size_t>(tr * tc), 0.0);
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t c = 0; c < w.cols(); ++c)
            norm[static_cast<std::size_t>((r / br) * tc + c / bc)] += std::fabs(static_cast<double>(w(r, c)));
    return norm;
}

mask_t brute_block(const dense_matrix<float>& w, int br, int bc, index_t keep_tiles) {
    const auto norm = tile_norms(w, br, bc);
    const index_t tc = w.cols() / bc;
    std::vector<bool> chosen(norm.size(), false);
    mask_t mask(static_cast<std::size_t>(w.rows() * w.cols()), 0);
    for (index_t pick = 0; pick < keep_tiles; ++pick) {
        std::size_t best = norm.size();
        for (std::size_t t = 0; t < norm.size(); ++t)
            if (!chosen[t] && (best == norm.size() || norm[t] > norm[best])) best = t;
        chosen[best] = true;
        const index_t r0 = static_cast<index_t>(best) / tc * br, c0 = static_cast<index_t>(best) % tc * bc;
        for (index_t r = 0; r < br; ++r)
            for (index_t c = 0; c < bc; ++c) mask[at(r0 + r, c0 + c, w.cols())] = 1;
    }
    return mask;
}

/// round(x) for x >= 0 away from exact ties (the tests avoid .5 cases).
index_t round_count(double x) { return static_cast<index_t>(std::floor(x + 0.5)); }

// ---------------------------------------------------------------------------------------------------------
// N:M
// ---------------------------------------------------------------------------------------------------------
template <int N, int M>
void check_n_m(const dense_matrix<float>& w) {
    INFO("n_m<" << N << ", " << M << "> on " << w.rows() << "x" << w.cols());
    const mask_t mask = magnitude_mask<n_m<N, M>>(w.view());
    REQUIRE(mask.size() == static_cast<std::size_t>(w.rows() * w.cols()));
    for (index_t r = 0; r < w.rows(); ++r)
        for (index_t b = 0; b < w.cols(); b += M) {
            int kept = 0;
            float min_kept = std::numeric_limits<float>::infinity(), max_dropped = -1.0f;
            for (index_t c = b; c < b + M; ++c) {
                const std::uint8_t k = mask[at(r, c, w.cols())];
                REQUIRE((k == 0 || k == 1));
                kept += k;
                if (k) min_kept = std::min(min_kept, std::fabs(w(r, c)));
                else max_dropped = std::max(max_dropped, std::fabs(w(r, c)));
            }
            REQUIRE(kept == N);
            REQUIRE(min_kept >= max_dropped);  // the N largest magnitudes
        }
    CHECK(mask == brute_n_m(w, N, M));  // and among equal magnitudes, the lower columns
}

TEST_CASE("sparse: n_m masks keep exactly N of every M, the largest, ties to the lower index", "[sparse]") {
    const auto g = gaussian(13, 40, 11);     // 40 = 10 runs of 4, 5 of 8, 20 of 2
    const auto t = tie_heavy(9, 24, 12);     // 24 = 6 runs of 4, 3 of 8
    check_n_m<2, 4>(g), check_n_m<2, 4>(t);
    check_n_m<1, 4>(g), check_n_m<1, 4>(t);
    check_n_m<4, 8>(g), check_n_m<4, 8>(t);
    check_n_m<1, 2>(g), check_n_m<1, 2>(t);
    check_n_m<3, 8>(g), check_n_m<3, 8>(t);

    // Hand-made ties: |-2| == |2|, all-equal runs, zeros.
    const float row[12] = {0.5f, -2.0f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f, -0.0f, 3.0f};
    const auto m24 = magnitude_mask<n_m<2, 4>>(matrix_view<const float>(row, 1, 12));
    CHECK(m24 == mask_t{0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1});
    const auto m14 = magnitude_mask<n_m<1, 4>>(matrix_view<const float>(row, 1, 12));
    CHECK(m14 == mask_t{0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("sparse: n_m mask rejects K that is not a multiple of M, naming both", "[sparse]") {
    const auto w = gaussian(3, 10, 1);
    try {
        (void)magnitude_mask<n_m<2, 4>>(w.view());
        FAIL("no exception");
    } catch (const shape_error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("10") != std::string::npos);
        CHECK(msg.find("M = 4") != std::string::npos);
    }
    using Q = quantizer<int_format<8>, per_channel>;
    CHECK_THROWS_AS((compress_matrix<Q, n_m<3, 8>>(w.view())), shape_error);
    // 12 columns: a multiple of 4 but not of 8.
    const auto w12 = gaussian(2, 12, 2);
    CHECK_NOTHROW((magnitude_mask<n_m<2, 4>>(w12.view())));
    CHECK_THROWS_WITH((magnitude_mask<n_m<4, 8>>(w12.view())),
                      Catch::Contains("K = 12") && Catch::Contains("M = 8"));
}

// ---------------------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------------------
template <int R, int C>
void check_block(const dense_matrix<float>& w, double density) {
    INFO("block_sparse<" << R << ", " << C << "> on " << w.rows() << "x" << w.cols() << ", density " << density);
    const mask_t mask = magnitude_mask<block_sparse<R, C>>(w.view(), density);
    const index_t tr = w.rows() / R, tc = w.cols() / C;
    const index_t keep = round_count(density * static_cast<double>(tr * tc));
    REQUIRE(keep > 0);
    index_t kept_tiles = 0;
    for (index_t i = 0; i < tr; ++i)
        for (index_t j = 0; j < tc; ++j) {
            int count = 0;
            for (index_t r = 0; r < R; ++r)
                for (index_t c = 0; c < C; ++c) count += mask[at(i * R + r, j * C + c, w.cols())];
            REQUIRE((count == 0 || count == R * C));  // whole tiles
            kept_tiles += count == R * C;
        }
    REQUIRE(kept_tiles == keep);
    // Kept tiles have the largest L1 norms.
    const auto norm = tile_norms(w, R, C);
    double min_kept = std::numeric_limits<double>::infinity(), max_dropped = -1.0;
    for (index_t t = 0; t < tr * tc; ++t) {
        const double n = norm[static_cast<std::size_t>(t)];
        if (mask[at(t / tc * R, t % tc * C, w.cols())]) min_kept = std::min(min_kept, n);
        else max_dropped = std::max(max_dropped, n);
    }
    REQUIRE(min_kept >= max_dropped);
    CHECK(mask == brute_block(w, R, C, keep));
}

TEST_CASE("sparse: block masks keep whole tiles, round(density * tiles) of them, the largest L1 norms", "[sparse]") {
    check_block<2, 2>(gaussian(10, 14, 21), 0.4);   // 35 tiles -> 14
    check_block<2, 2>(gaussian(10, 14, 22), 0.25);  // 8.75 -> 9
    check_block<2, 2>(tie_heavy(8, 8, 23), 0.3);    // 16 tiles, many equal norms -> 5 (4.8)
    check_block<4, 8>(gaussian(12, 24, 24), 0.3);   // 9 tiles -> 3 (2.7)
    check_block<4, 8>(gaussian(12, 24, 25), 0.6);   // 5 (5.4)
    check_block<1, 16>(gaussian(7, 48, 26), 0.4);   // 21 tiles -> 8 (8.4)
    check_block<1, 16>(tie_heavy(7, 48, 27), 0.75); // 16 (15.75)
    check_block<1, 16>(gaussian(5, 32, 28), 1.0);   // everything

    // Equal norms everywhere: the lowest tile indices (row-major over the tile grid) win.
    const dense_matrix<float> ones(4, 8, 1.0f);
    const auto mask = magnitude_mask<block_sparse<2, 4>>(ones.view(), 0.5);  // 4 tiles, keep 2: tiles 0 and 1
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 8; ++c) CHECK(mask[at(r, c, 8)] == (r < 2 ? 1 : 0));
}

TEST_CASE("sparse: block mask shape and density errors", "[sparse]") {
    const auto w = gaussian(6, 16, 3);
    CHECK_THROWS_AS((magnitude_mask<block_sparse<4, 8>>(w.view())), shape_error);
    CHECK_THROWS_WITH((magnitude_mask<block_sparse<4, 8>>(w.view())),
                      Catch::Contains("6x16") && Catch::Contains("4, 8"));
    const auto w2 = gaussian(8, 20, 4);  // rows fine, cols not a multiple of 8
    CHECK_THROWS_WITH((magnitude_mask<block_sparse<4, 8>>(w2.view())), Catch::Contains("8x20"));
    using Q = quantizer<int_format<8>, per_channel>;
    CHECK_THROWS_AS((compress_matrix<Q, block_sparse<4, 8>>(w.view())), shape_error);
    const auto ok = gaussian(8, 16, 5);
    for (double bad : {0.0, -0.25, 1.0000001, 2.0, std::numeric_limits<double>::quiet_NaN()})
        CHECK_THROWS_AS((magnitude_mask<block_sparse<4, 8>>(ok.view(), bad)), value_error);
}

// ---------------------------------------------------------------------------------------------------------
// Unstructured
// ---------------------------------------------------------------------------------------------------------
void check_unstructured(const dense_matrix<float>& w, double density) {
    INFO("unstructured on " << w.rows() << "x" << w.cols() << ", density " << density);
    const mask_t mask = magnitude_mask<unstructured>(w.view(), density);
    const index_t keep = round_count(density * static_cast<double>(w.cols()));
    for (index_t r = 0; r < w.rows(); ++r) {
        index_t kept = 0;
        for (index_t c = 0; c < w.cols(); ++c) kept += mask[at(r, c, w.cols())];
        REQUIRE(kept == keep);
    }
    CHECK(mask == brute_unstructured(w, keep));
}

TEST_CASE("sparse: unstructured masks keep round(density * cols) largest magnitudes per row", "[sparse]") {
    check_unstructured(gaussian(9, 37, 31), 0.3);    // 11.1 -> 11
    check_unstructured(gaussian(5, 37, 32), 0.45);   // 16.65 -> 17
    check_unstructured(tie_heavy(11, 23, 33), 0.6);  // 13.8 -> 14, ties
    check_unstructured(gaussian(3, 19, 34), 1.0);    // all
    check_unstructured(gaussian(4, 1, 35), 0.9);     // a single column

    const auto w = gaussian(3, 8, 36);
    for (double bad : {0.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
        CHECK_THROWS_AS(magnitude_mask<unstructured>(w.view(), bad), value_error);
    quantize_options opt;
    opt.density = 0.0;
    CHECK_THROWS_AS((compress_matrix<quantizer<int_format<8>, per_channel>, unstructured>(w.view(), opt)), value_error);
}

// ---------------------------------------------------------------------------------------------------------
// Compressed sparse storage
// ---------------------------------------------------------------------------------------------------------
using int4_g32 = quantizer<int_format<4>, symmetric, per_group<32>>;
using uint4_g16_asym = quantizer<uint_format<4>, asymmetric, per_group<16>>;
using int8_pc = quantizer<int_format<8>, per_channel>;
using fp8_pc = quantizer<fp8_e4m3, per_channel>;

struct cell_params {
    float scale = 1.0f;
    int zero = 0;
};

/// Independent model of the quantizers above (min_max observer, float scale, round half to even), from the
/// definitions in quant/scale.hpp and quant/element.hpp: S = amax / code_max (symmetric integer),
/// S = (max(hi,0) - min(lo,0)) / (code_max - code_min) with z = rne(code_min - min(lo,0)/S) (asymmetric),
/// S = amax / 448 (fp8 e4m3); an all-zero (or empty) cell gets S = 1.
template <class Q>
cell_params model_cell(const std::vector<float>& kept) {
    using F = typename Q::format;
    float lo = 0.0f, hi = 0.0f, amax = 0.0f;
    for (float v : kept) lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
    cell_params p;
    if constexpr (Q::has_zero_point) {
        const float s = (hi - lo) / static_cast<float>(F::code_max - F::code_min);
        p.scale = s > 0.0f ? s : 1.0f;
        const double z = std::nearbyint(static_cast<double>(static_cast<float>(F::code_min) - lo / p.scale));
        p.zero = static_cast<int>(std::clamp(z, static_cast<double>(F::code_min), static_cast<double>(F::code_max)));
    } else if constexpr (floating_format<F>) {
        p.scale = amax > 0.0f ? amax / 448.0f : 1.0f;
    } else {
        p.scale = amax > 0.0f ? amax / static_cast<float>(F::code_max) : 1.0f;
    }
    return p;
}

template <class Q>
float model_roundtrip(float x, cell_params p) {
    using F = typename Q::format;
    if constexpr (floating_format<F>) {
        return p.scale * F::decode(F::encode(x / p.scale));
    } else {
        const float shifted = x / p.scale + static_cast<float>(p.zero);
        const double q = std::clamp(std::nearbyint(static_cast<double>(shifted)), static_cast<double>(F::code_min),
                                    static_cast<double>(F::code_max));
        return p.scale * static_cast<float>(static_cast<int>(q) - p.zero);
    }
}

std::size_t bytes_for(index_t count, int bits) { return static_cast<std::size_t>((count * bits + 7) / 8); }

int bits_for_index(int m) {
    int b = 0;
    while ((1 << b) < m) ++b;
    return b;
}

/// The documented layout size: kept codes + scales + zero points + metadata + row offsets.
template <class Q, class S>
std::size_t expected_bytes(index_t rows, index_t cols, const mask_t& mask) {
    static_assert(Q::granularity::per_row && std::is_same_v<typename Q::scale, float_scale>);
    const int b = Q::format::bits;
    std::size_t codes = 0;
    for (index_t r = 0; r < rows; ++r) {
        index_t kept = 0;
        for (index_t c = 0; c < cols; ++c) kept += mask[at(r, c, cols)];
        codes += bytes_for(kept, b);
    }
    const index_t groups = Q::granularity::group_size > 0 ? cols / Q::granularity::group_size : 1;
    const std::size_t scales = static_cast<std::size_t>(rows * groups) * 4;
    const std::size_t zeros = Q::has_zero_point ? bytes_for(rows * groups, b) : 0;
    std::size_t meta = 0, offsets = 0;
    if constexpr (S::kind == sparsity_kind::n_m) meta = static_cast<std::size_t>(rows) * bytes_for(cols / S::m * S::n, bits_for_index(S::m));
    if constexpr (S::kind == sparsity_kind::block) meta = bytes_for((rows / S::block_rows) * (cols / S::block_cols), 1);
    if constexpr (S::kind == sparsity_kind::bitmap) meta = static_cast<std::size_t>(rows) * bytes_for(cols, 1);
    if constexpr (S::kind == sparsity_kind::block || S::kind == sparsity_kind::bitmap)
        offsets = static_cast<std::size_t>(rows + 1) * 8;
    return codes + scales + zeros + meta + offsets;
}

template <class Q, class S>
void check_compressed(const dense_matrix<float>& w, double density) {
    INFO("quantizer " << Q::format::name << "/" << Q::code_bits << " bits, group " << Q::granularity::group_size
                      << ", sparsity " << static_cast<int>(S::kind) << " " << S::n << ":" << S::m << " "
                      << S::block_rows << "x" << S::block_cols << ", " << w.rows() << "x" << w.cols());
    const index_t rows = w.rows(), cols = w.cols();
    quantize_options opt;
    opt.density = density;
    const auto cm = compress_matrix<Q, S>(w.view(), opt);
    mask_t mask(static_cast<std::size_t>(rows * cols), 1);
    if constexpr (S::kind != sparsity_kind::dense) mask = magnitude_mask<S>(w.view(), density);
    const auto v = cm.view();
    REQUIRE(v.rows() == rows);
    REQUIRE(v.cols() == cols);

    // Stored columns are exactly the mask's kept ones, in column order.
    std::vector<index_t> buf;
    for (index_t r = 0; r < rows; ++r) {
        std::vector<index_t> stored, want;
        v.for_each_in_row(r, buf, [&](index_t c, std::uint32_t) { stored.push_back(c); });
        for (index_t c = 0; c < cols; ++c)
            if (mask[at(r, c, cols)]) want.push_back(c);
        REQUIRE(stored == want);
    }

    // Scales and zero points from the kept values only; values against the model.
    const index_t g = Q::granularity::group_size > 0 ? Q::granularity::group_size : cols;
    const auto dq = dequantize(cm);
    const scale_table table = choose_scales<Q>(w.view(), mask);
    int bad_pruned = 0, bad_kept = 0, bad_scale = 0;
    index_t kept_nonzero = 0;
    for (index_t r = 0; r < rows; ++r)
        for (index_t g0 = 0; g0 < cols; g0 += g) {
            std::vector<float> kept;
            for (index_t c = g0; c < g0 + g; ++c)
                if (mask[at(r, c, cols)]) kept.push_back(w(r, c));
            const cell_params p = model_cell<Q>(kept);
            const auto cell = static_cast<std::size_t>(table.cell(r, g0));
            if (v.scale(r, g0) != p.scale || v.zero_point(r, g0) != p.zero || table.effective[cell] != p.scale ||
                table.zero[cell] != p.zero)
                ++bad_scale;
            for (index_t c = g0; c < g0 + g; ++c) {
                if (!mask[at(r, c, cols)]) {
                    bad_pruned += dq(r, c) != 0.0f;
                } else {
                    bad_kept += dq(r, c) != model_roundtrip<Q>(w(r, c), p);
                    kept_nonzero += dq(r, c) != 0.0f;
                }
            }
        }
    CHECK(bad_scale == 0);
    CHECK(bad_pruned == 0);
    CHECK(bad_kept == 0);
    CHECK(kept_nonzero > 0);

    // The other code path: quantizing the pruned dense matrix densely gives the same values.
    dense_matrix<float> pruned(rows, cols);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) pruned(r, c) = mask[at(r, c, cols)] ? w(r, c) : 0.0f;
    const auto dense_dq = dequantize(compress_matrix<Q, dense>(pruned.view()));
    int differ = 0;
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) differ += dense_dq(r, c) != dq(r, c);
    CHECK(differ == 0);

    CHECK(cm.bytes() == expected_bytes<Q, S>(rows, cols, mask));
}

TEST_CASE("sparse: compressed int4 g32 symmetric storage", "[sparse]") {
    check_compressed<int4_g32, n_m<2, 4>>(gaussian(7, 96, 41), 0.5);
    check_compressed<int4_g32, n_m<4, 8>>(gaussian(5, 64, 42), 0.5);
    check_compressed<int4_g32, block_sparse<4, 8>>(gaussian(8, 64, 43), 0.4);
    check_compressed<int4_g32, unstructured>(gaussian(5, 64, 44), 0.3);
    check_compressed<int4_g32, dense>(gaussian(3, 32, 45), 0.5);
}

TEST_CASE("sparse: compressed uint4 g16 asymmetric storage", "[sparse]") {
    check_compressed<uint4_g16_asym, n_m<2, 4>>(gaussian(9, 48, 51), 0.5);
    check_compressed<uint4_g16_asym, n_m<1, 2>>(gaussian(5, 32, 52), 0.5);
    check_compressed<uint4_g16_asym, block_sparse<2, 2>>(gaussian(6, 32, 53), 0.35);
    check_compressed<uint4_g16_asym, unstructured>(gaussian(7, 48, 54), 0.6);
}

TEST_CASE("sparse: compressed int8 per-channel storage", "[sparse]") {
    check_compressed<int8_pc, n_m<1, 4>>(gaussian(11, 36, 61), 0.5);
    check_compressed<int8_pc, n_m<3, 8>>(gaussian(7, 40, 62), 0.5);
    check_compressed<int8_pc, block_sparse<1, 16>>(gaussian(7, 48, 63), 0.4);
    check_compressed<int8_pc, unstructured>(gaussian(9, 37, 64), 0.45);
}

TEST_CASE("sparse: compressed fp8 e4m3 per-channel storage", "[sparse]") {
    check_compressed<fp8_pc, n_m<2, 4>>(gaussian(5, 20, 71), 0.5);
    check_compressed<fp8_pc, n_m<1, 2>>(gaussian(7, 18, 72), 0.5);
    check_compressed<fp8_pc, block_sparse<4, 8>>(gaussian(12, 24, 73), 0.6);
    check_compressed<fp8_pc, unstructured>(gaussian(3, 29, 74), 0.7);
}

TEST_CASE("sparse: 2:4 + int4 g32 byte count on 64x128 matches the layout formula", "[sparse]") {
    const auto w = gaussian(64, 128, 81);
    const auto cm = compress_matrix<int4_g32, n_m<2, 4>>(w.view());
    // codes: 64 rows x 64 kept x 4 bits; metadata: 64 rows x 64 indices x 2 bits; scales: 64 x 4 groups x fp32
    const std::size_t codes = 64 * 64 / 2, metadata = 64 * (32 * 2 * 2) / 8, scales = 64 * 4 * 4;
    CHECK(codes == 2048);
    CHECK(metadata == 1024);
    CHECK(scales == 1024);
    CHECK(cm.storage().codes.size() == codes);
    CHECK(cm.storage().metadata.size() == metadata);
    CHECK(cm.storage().scales.size() == scales);
    CHECK(cm.storage().zero_points.empty());
    CHECK(cm.storage().row_offsets.empty());
    CHECK(cm.bytes() == codes + metadata + scales);
    CHECK(cm.bits_per_weight() == Approx(4.0).epsilon(1e-12));
}

// ---------------------------------------------------------------------------------------------------------
// Metadata bytes decoded by hand
// ---------------------------------------------------------------------------------------------------------
std::uint8_t int8_code(float x, float scale) {
    return static_cast<std::uint8_t>(static_cast<std::int8_t>(std::nearbyint(static_cast<double>(x / scale))));
}

TEST_CASE("sparse: 2:4 metadata and code bytes of a hand-made example", "[sparse]") {
    // Row 0, block 0: |1 5 3 .5| keeps columns 1, 2; block 1: |7 2 6 .25| keeps 0, 2.
    // Row 1, block 0: |0 0 0 4| keeps 3 and (tie among zeros) 0; block 1: all 3 keeps 0, 1.
    const float w[16] = {1.0f, 5.0f, -3.0f, 0.5f, -7.0f, 2.0f, 6.0f, -0.25f,
                         0.0f, 0.0f, 0.0f,  4.0f, 3.0f,  -3.0f, 3.0f, 3.0f};
    const auto cm = compress_matrix<int8_pc, n_m<2, 4>>(matrix_view<const float>(w, 2, 8));
    const auto& s = cm.storage();
    // Layout: per row (8 / 4) * 2 = 4 indices of 2 bits = 1 byte, LSB first, increasing within a block.
    REQUIRE(s.metadata.size() == 2);
    auto idx = [&](int row, int i) { return (s.metadata[static_cast<std::size_t>(row)] >> (2 * i)) & 3; };
    CHECK(idx(0, 0) == 1);
    CHECK(idx(0, 1) == 2);
    CHECK(idx(0, 2) == 0);
    CHECK(idx(0, 3) == 2);
    CHECK(s.metadata[0] == 0x89);  // 0b10'00'10'01
    CHECK(idx(1, 0) == 0);
    CHECK(idx(1, 1) == 3);
    CHECK(idx(1, 2) == 0);
    CHECK(idx(1, 3) == 1);
    CHECK(s.metadata[1] == 0x4C);  // 0b01'00'11'00
    // Codes: 4 int8 two's complement bytes per row in column order; S = row amax / 127 over the kept values.
    REQUIRE(s.codes.size() == 8);
    const float s0 = 7.0f / 127.0f, s1 = 4.0f / 127.0f;
    const std::vector<std::uint8_t> want = {int8_code(5, s0),  int8_code(-3, s0), int8_code(-7, s0), int8_code(6, s0),
                                            int8_code(0, s1),  int8_code(4, s1),  int8_code(3, s1),  int8_code(-3, s1)};
    CHECK(s.codes == want);
    CHECK(s.codes[2] == 0x81);  // -127
    CHECK(s.codes[5] == 0x7F);  // +127
    // Scales: two fp32 little-endian entries.
    REQUIRE(s.scales.size() == 8);
    std::uint32_t bits0 = 0;
    for (int i = 0; i < 4; ++i) bits0 |= static_cast<std::uint32_t>(s.scales[static_cast<std::size_t>(i)]) << (8 * i);
    CHECK(bits0 == tcomp::detail::float_bits(s0));
}

TEST_CASE("sparse: 3:8 metadata packs 3-bit indices across byte boundaries", "[sparse]") {
    // Block 0 keeps columns {1, 4, 7}; block 1 keeps {0, 5, 6} (block-relative).
    const float w[16] = {0.1f, 5.0f, 0.2f, 0.3f, 6.0f, 0.4f, 0.5f, 7.0f, 8.0f, 0.1f, 0.2f, 0.3f, 0.4f, 9.0f, 10.0f, 0.5f};
    const auto cm = compress_matrix<int8_pc, n_m<3, 8>>(matrix_view<const float>(w, 1, 16));
    // Stream: 1 | 4<<3 | 7<<6 | 0<<9 | 5<<12 | 6<<15 = 0x351E1, 18 bits -> 3 bytes.
    CHECK(cm.storage().metadata == std::vector<std::uint8_t>{0xE1, 0x51, 0x03});
    std::vector<index_t> cols, buf;
    cm.view().for_each_in_row(0, buf, [&](index_t c, std::uint32_t) { cols.push_back(c); });
    CHECK(cols == std::vector<index_t>{1, 4, 7, 8, 13, 14});
}

TEST_CASE("sparse: bitmap and block metadata of hand-made examples", "[sparse]") {
    // Unstructured, density 0.3 of 10 columns: 3 per row.
    const float u[20] = {0.1f, -5.0f, 0.2f, 3.0f, 0.0f, 0.0f, 4.0f, 0.3f, 0.0f, 0.05f,
                         7.0f, 0.0f,  0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 9.0f, -8.0f};
    quantize_options opt;
    opt.density = 0.3;
    const auto um = compress_matrix<int8_pc, unstructured>(matrix_view<const float>(u, 2, 10), opt);
    // One bit per element, each row starts on a byte boundary: row 0 bits 1, 3, 6; row 1 bits 0, 8, 9.
    CHECK(um.storage().metadata == std::vector<std::uint8_t>{0x4A, 0x00, 0x01, 0x03});
    CHECK(um.storage().row_offsets == std::vector<std::uint64_t>{0, 3, 6});
    CHECK(um.storage().codes.size() == 6);
    CHECK(um.storage().codes[0] == int8_code(-5.0f, 5.0f / 127.0f));
    CHECK(um.storage().codes[5] == int8_code(-8.0f, 9.0f / 127.0f));

    // Block 2x4 on 4x8: tiles (0,1) and (1,0) are large; density 0.5 keeps those two: bits 1 and 2.
    float b[32];
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 8; ++c) b[r * 8 + c] = ((r < 2) == (c >= 4)) ? 2.0f + static_cast<float>(c) : 0.125f;
    opt.density = 0.5;
    const auto bm = compress_matrix<int8_pc, block_sparse<2, 4>>(matrix_view<const float>(b, 4, 8), opt);
    CHECK(bm.storage().metadata == std::vector<std::uint8_t>{0x06});
    CHECK(bm.storage().row_offsets == std::vector<std::uint64_t>{0, 4, 8, 12, 16});
    const auto dq = dequantize(bm);
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 8; ++c) {
            const bool kept = (r < 2) == (c >= 4);
            if (kept) CHECK(dq(r, c) == Approx(b[r * 8 + c]).epsilon(0.01));
            else CHECK(dq(r, c) == 0.0f);
        }
}

// ---------------------------------------------------------------------------------------------------------
// Hostile buffers
// ---------------------------------------------------------------------------------------------------------
template <class Q, class S>
void expect_rejected(const packed_buffers& b, const char* needle) {
    INFO("expecting a rejection mentioning \"" << needle << "\"");
    const packed_view v = b.view();  // spans over exactly-sized heap buffers: ASan sees any overread
    CHECK_THROWS_AS(v.validate("hostile"), shape_error);
    CHECK_THROWS_WITH(v.validate("hostile"), Catch::Contains(needle));
    CHECK_THROWS_AS((compressed_view<Q, S>(v)), shape_error);
}

TEST_CASE("sparse: hostile N:M buffers are rejected by validate()", "[sparse]") {
    const auto w = gaussian(3, 8, 91);
    const auto cm = compress_matrix<int8_pc, n_m<2, 4>>(w.view());
    const packed_buffers& good = cm.storage();
    REQUIRE_NOTHROW(good.view().validate("good"));
    {  // a valid copy over foreign memory works and reads back the same values
        const packed_buffers copy = good;
        const compressed_view<int8_pc, n_m<2, 4>> view(copy.view());
        const auto a = dequantize(view), e = dequantize(cm);
        for (index_t r = 0; r < 3; ++r)
            for (index_t c = 0; c < 8; ++c) CHECK(a(r, c) == e(r, c));
    }
    auto mutate = [&](auto&& f) {
        packed_buffers b = good;
        f(b);
        return b;
    };
    // Indices out of order (3 then 1) and repeated (2, 2) in row 1, block 1.
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) {
        write_packed(b.metadata.data() + 1, 2, 2, 3u), write_packed(b.metadata.data() + 1, 3, 2, 1u);
    }), "not increasing");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) {
        write_packed(b.metadata.data() + 2, 0, 2, 2u), write_packed(b.metadata.data() + 2, 1, 2, 2u);
    }), "row 2");
    // Wrong metadata size, both ways.
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.metadata.pop_back(); }), "sparsity metadata");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.metadata.push_back(0); }), "sparsity metadata");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.metadata.clear(); }), "sparsity metadata");
    // Codes, scales, zero points, row offsets that the layout does not call for.
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.codes.pop_back(); }), "codes");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.scales.resize(b.scales.size() - 4); }), "scales");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.zero_points.assign(3, 0); }), "zero points");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.row_offsets = {0, 4, 8, 12}; }), "row offsets");
    // Layout numbers that do not describe this matrix.
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.layout.sparse_n = 5; }), "5:4");
    expect_rejected<int8_pc, n_m<2, 4>>(mutate([](packed_buffers& b) { b.layout.cols = 10, b.layout.group_size = 10; }),
                                        "not a multiple of M");
    // A layout that is fine but belongs to another type.
    CHECK_THROWS_AS((compressed_view<int4_g32, n_m<2, 4>>(good.view())), shape_error);
    CHECK_THROWS_AS((compressed_view<int8_pc, n_m<1, 4>>(good.view())), shape_error);
    CHECK_THROWS_AS((compressed_view<int8_pc, unstructured>(good.view())), shape_error);

    // An index >= M: with M = 3 the 2-bit field can hold 3.
    const auto w3 = gaussian(2, 9, 92);
    const auto c3 = compress_matrix<int8_pc, n_m<1, 3>>(w3.view());
    REQUIRE_NOTHROW(c3.storage().view().validate("good"));
    packed_buffers b3 = c3.storage();
    write_packed(b3.metadata.data() + 1, 2, 2, 3u);
    expect_rejected<int8_pc, n_m<1, 3>>(b3, "out of range");
}

TEST_CASE("sparse: hostile row offsets and bitmaps are rejected by validate()", "[sparse]") {
    const auto w = gaussian(3, 10, 93);
    quantize_options opt;
    opt.density = 0.3;
    const auto cm = compress_matrix<int8_pc, unstructured>(w.view(), opt);
    const packed_buffers& good = cm.storage();
    REQUIRE(good.row_offsets == std::vector<std::uint64_t>{0, 3, 6, 9});
    REQUIRE_NOTHROW(good.view().validate("good"));
    auto with_offsets = [&](std::vector<std::uint64_t> offsets) {
        packed_buffers b = good;
        b.row_offsets = std::move(offsets);
        return b;
    };
    using U = unstructured;
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 2, 9}), "outside");                  // decreasing
    expect_rejected<int8_pc, U>(with_offsets({0, 6, 3, 9}), "row 0");                    // decreasing later
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 6, 100}), "outside");                // past the buffer
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 6, ~std::uint64_t{0}}), "outside");  // far past it
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 100, 9}), "outside");
    expect_rejected<int8_pc, U>(with_offsets({1, 3, 6, 9}), "row offset 0");
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 6}), "row offsets");                 // too few
    expect_rejected<int8_pc, U>(with_offsets({0, 3, 6, 9, 9}), "row offsets");           // too many
    expect_rejected<int8_pc, U>(with_offsets({}), "row offsets");
    expect_rejected<int8_pc, U>(with_offsets({0, 2, 6, 9}), "code bytes");               // rows of the wrong length
    {
        packed_buffers b = good;  // buffer longer than the rows
        b.codes.push_back(0);
        expect_rejected<int8_pc, U>(b, "codes have");
    }
    {
        packed_buffers b = good;  // one more kept bit in row 0: its codes no longer fit its offsets
        for (index_t c = 0; c < 10; ++c)
            if (read_packed(b.metadata.data(), c, 1) == 0) {
                write_packed(b.metadata.data(), c, 1, 1u);
                break;
            }
        REQUIRE(b.metadata != good.metadata);
        expect_rejected<int8_pc, U>(b, "row 0");
    }
    {
        packed_buffers b = good;
        b.metadata.pop_back();
        expect_rejected<int8_pc, U>(b, "sparsity metadata");
    }

    // Block: a flipped tile bit changes how many codes rows need.
    const auto wb = gaussian(4, 8, 94);
    opt.density = 0.5;
    const auto bm = compress_matrix<int8_pc, block_sparse<2, 4>>(wb.view(), opt);
    REQUIRE_NOTHROW(bm.storage().view().validate("good"));
    using B = block_sparse<2, 4>;
    {
        packed_buffers b = bm.storage();
        b.metadata[0] = static_cast<std::uint8_t>(b.metadata[0] ^ 0x0F);
        expect_rejected<int8_pc, B>(b, "code bytes");
    }
    {
        packed_buffers b = bm.storage();
        b.metadata.push_back(0xFF);
        expect_rejected<int8_pc, B>(b, "sparsity metadata");
    }
    {
        packed_buffers b = bm.storage();
        b.row_offsets[2] = b.row_offsets[3] + 1;
        expect_rejected<int8_pc, B>(b, "outside");
    }
    {
        packed_buffers b = bm.storage();
        b.layout.block_rows = 3;  // 4 rows are not a multiple of it
        expect_rejected<int8_pc, B>(b, "not a multiple of the block");
    }
}

TEST_CASE("sparse: hostile layouts with huge shapes are rejected, not wrapped around", "[sparse]") {
    // A per-tensor int8 layout of 2^32 x 2^32: rows * row bytes is 2^64, which wraps to 0 in size_t. An empty
    // codes buffer must not pass for it.
    const std::vector<std::uint8_t> scale_bytes(4, 0);
    packed_view v;
    v.layout.rows = index_t{1} << 32;
    v.layout.cols = index_t{1} << 32;
    v.layout.code_bits = 8;
    v.layout.scale_bits = 32;
    v.layout.scale_rows = 1;
    v.layout.scale_cols = 1;
    v.layout.group_size = v.layout.cols;
    v.scales = scale_bytes;
    CHECK_THROWS_AS(v.validate("huge"), shape_error);
    CHECK_THROWS_AS((compressed_view<quantizer<int_format<8>>, dense>(v)), shape_error);

    // No columns, but a scale grid that claims 2^61 entries (2^66 bits).
    packed_view z;
    z.layout.rows = 1;
    z.layout.cols = 0;
    z.layout.group_size = 1;
    z.layout.scale_rows = 1;
    z.layout.scale_cols = index_t{1} << 61;
    CHECK_THROWS_AS(z.validate("huge"), shape_error);
    z.layout.scale_cols = -5;
    CHECK_THROWS_AS(z.validate("negative"), shape_error);
}

}  // namespace
