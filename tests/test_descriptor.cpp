// The run-time descriptor: describe<P>, the canonical spelling and its parser (round trip, errors naming the
// bad token, the static_assert words for impossible compositions), aliases, the engine agreeing with the typed
// path, NF4, and every composition saved to a version-2 file, loaded bit for bit and run through a model layer.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <tcomp/io/compressed_model.hpp>
#include <tcomp/kernel/reference/matmul.hpp>
#include <tcomp/model/linear.hpp>
#include <tcomp/model/recipe.hpp>
#include <tcomp/quant/compressed_tensor.hpp>
#include <tcomp/quant/describe.hpp>
#include <tcomp/quant/descriptor_text.hpp>
#include <tcomp/quant/policy_names.hpp>
#include <tcomp/quant/presets.hpp>

#include "test_support.hpp"

using namespace tcomp;
using tcomp_test::error_of;
using tcomp_test::gaussian;

namespace {

template <class P>
void check_described(const std::string& spelling) {
    const descriptor d = describe<P>();
    CHECK(spell(d) == spelling);
    CHECK(parse_descriptor(spelling) == d);
    // compress<P> takes its format row from the type (format_info_of<F>), compress(d) from the descriptor's
    // format_kind (format_table.hpp): equal bytes check that describe<P> and the table name the same format
    // and options (a wrong mapping, e.g. e4m3 -> e5m2 or a dropped observer, changes the codes).
    const auto w = gaussian(8, 128, 17);
    quantize_options o;
    o.seed = 3;
    const packed_buffers typed = compress<P>(w.view(), o).weights().storage();
    const packed_buffers runtime = compress(d, w.view(), o).storage;
    CHECK(typed.codes == runtime.codes);
    CHECK(typed.scales == runtime.scales);
    CHECK(typed.zero_points == runtime.zero_points);
    CHECK(typed.metadata == runtime.metadata);
    CHECK(typed.row_offsets == runtime.row_offsets);
    CHECK(typed.tensor_scale == runtime.tensor_scale);
}

bool same_bytes(const packed_buffers& a, const packed_buffers& b) {
    return a.codes == b.codes && a.scales == b.scales && a.zero_points == b.zero_points && a.metadata == b.metadata &&
           a.row_offsets == b.row_offsets && a.tensor_scale == b.tensor_scale;
}

}  // namespace

TEST_CASE("descriptor: describe<P> spells every kind of composition canonically", "[descriptor]") {
    check_described<presets::w8a8>("w=int8:channel a=int8:token");
    check_described<presets::w8a8_static>("w=int8:channel a=int8:tensor:static");
    check_described<presets::w4a16>("w=uint4:asym:g128");
    check_described<presets::w4a8_2of4>("w=int4:g128 a=int8:token s=2:4");
    check_described<presets::w1a1>("w=binary:channel a=binary:token");
    check_described<policy<quantizer<fp4_e2m1, per_group<32>, e8m0_scale>>>("w=fp4_e2m1:g32:e8m0");
    check_described<policy<quantizer<fixed_point_format<1, 6>, per_group<32>, e8m0_scale>>>("w=q1.6:g32:e8m0");
    check_described<policy<quantizer<nf4_format, per_group<64>>>>("w=nf4:g64");
    check_described<policy<quantizer<ternary_format, per_channel, mse_clip_search<20>>>>("w=ternary:channel:mse20");
    check_described<policy<quantizer<int_format<3>, per_group<32>, shiftable_scale<4>>,
                           quantizer<int_format<8>, per_tensor, calibrated, percentile<999900>>, block_sparse<4, 8>>>(
        "w=int3:g32:shift4 a=int8:tensor:pct99.99:static s=block4x8");
    check_described<policy<quantizer<uint_format<4>, asymmetric, per_group<16>, multi_level_scale<2>, stochastic>,
                           float_activations, unstructured>>("w=uint4:asym:g16:ml2:stoch s=bitmap");
    check_described<policy<quantizer<fp8_e4m3, per_channel>, quantizer<fp8_e5m2, per_token>>>(
        "w=fp8_e4m3:channel a=fp8_e5m2:token");
    check_described<policy<quantizer<int_format<8>, per_channel, pow2_scale>, quantizer<uint_format<8>, asymmetric, per_group<64>>, n_m<1, 4>>>(
        "w=int8:channel:pow2 a=uint8:asym:g64 s=1:4");
    check_described<policy<quantizer<fixed_point_format<3, 4>, per_tensor, unit_scale>>>("w=q3.4:tensor:unit");
    check_described<policy<quantizer<int_format<4>, per_group<32>, f16_scale>, presets::int8_per_token>>(
        "w=int4:g32:f16 a=int8:token");
    check_described<policy<quantizer<bf16_format, per_tensor, unit_scale>, quantizer<fp16_format, per_tensor, unit_scale>>>(
        "w=bf16:tensor:unit a=fp16:tensor:unit");
}

TEST_CASE("descriptor: parse(spell(d)) == d for random valid descriptors", "[descriptor]") {
    std::mt19937 gen(2026);
    auto pick = [&](int n) { return static_cast<int>(gen() % static_cast<unsigned>(n)); };
    auto random_quantizer = [&]() {
        quantizer_desc q;
        const int f = pick(13);
        q.format.kind = static_cast<format_kind>(f);
        q.format.bits = 0;
        if (q.format.kind == format_kind::int_ || q.format.kind == format_kind::uint_) q.format.bits = 1 + pick(8);
        if (q.format.kind == format_kind::fixed_point) {
            q.format.integer_bits = pick(4);
            q.format.fraction_bits = pick(4);
        }
        q.scheme = static_cast<scheme_kind>(pick(2));
        q.granularity = static_cast<granularity_kind>(pick(4));
        if (q.granularity == granularity_kind::group) q.group_size = 1 + pick(256);
        q.scale = static_cast<scale_kind>(pick(6));
        if (q.scale == scale_kind::multi_level || q.scale == scale_kind::shiftable) q.shift_bits = 1 + pick(8);
        q.rounding = static_cast<rounding_kind>(pick(2));
        q.observer = static_cast<observer_kind>(pick(3));
        if (q.observer == observer_kind::percentile) q.observer_param = 1 + pick(1000000);
        if (q.observer == observer_kind::mse) q.observer_param = 1 + pick(1000);
        q.calibrated = pick(2) == 1;
        return q;
    };
    int valid = 0;
    for (int i = 0; i < 20000; ++i) {
        descriptor d;
        d.weights = random_quantizer();
        if (pick(2)) d.activations = random_quantizer();
        d.sparsity.kind = static_cast<sparsity_kind>(pick(4));
        if (d.sparsity.kind == sparsity_kind::n_m) d.sparsity.m = 1 + pick(16), d.sparsity.n = 1 + pick(d.sparsity.m);
        if (d.sparsity.kind == sparsity_kind::block) d.sparsity.block_rows = 1 + pick(8), d.sparsity.block_cols = 1 + pick(8);
        if (d.sparsity.kind == sparsity_kind::block || d.sparsity.kind == sparsity_kind::bitmap)
            d.sparsity.density = (1 + pick(1000)) / 1000.0;
        bool ok = true;
        try {
            validate(d);
        } catch (const error&) {
            ok = false;
        }
        if (!ok) {
            // An invalid descriptor's spelling does not parse either.
            CHECK_THROWS_AS(parse_descriptor(spell(d)), error);
            continue;
        }
        ++valid;
        const std::string text = spell(d);
        INFO(text);
        REQUIRE(parse_descriptor(text) == d);
        CHECK(spell(parse_descriptor(text)) == text);
    }
    CHECK(valid > 1000);
}

TEST_CASE("descriptor: options in any order parse to the canonical form", "[descriptor]") {
    CHECK(spell(parse_descriptor("  a=int8:token   w=int4:rne:g32  ")) == "w=int4:g32 a=int8:token");
    CHECK(spell(parse_descriptor("w=uint4:g128:asym:rne:minmax:float")) == "w=uint4:asym:g128");
    CHECK(spell(parse_descriptor("w=int8:channel a=int8:static:tensor:pct99.9")) ==
          "w=int8:channel a=int8:tensor:pct99.9:static");
    CHECK(spell(parse_descriptor("w=int4:g32 s=bitmap:d0.25")) == "w=int4:g32 s=bitmap:d0.25");
    CHECK(spell(parse_descriptor("w=int4:g32 s=block2x4:d0.5")) == "w=int4:g32 s=block2x4");
}

TEST_CASE("descriptor: a bad spelling names the token and lists what is accepted", "[descriptor]") {
    using Catch::Contains;
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=int4:g32:foo"); }),
               Contains("unknown option \"foo\"") && Contains("sym, asym (scheme)") && Contains("g<G>"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=int9:channel"); }),
               Contains("\"int9\"") && Contains("Bits must be in 1..8") && Contains("accepted formats: int1..int8"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=float7:channel"); }),
               Contains("\"float7\" is not a format") && Contains("nf4"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("x=int4:g32"); }),
               Contains("unknown part \"x=int4:g32\"") && Contains("w=<quantizer> (required)"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("a=int8:token"); }), Contains("has no weight quantizer"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=int4:g32 w=int8:channel"); }), Contains("\"w=\" given twice"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=int4:g32:channel"); }),
               Contains("\"channel\"") && Contains("more than one granularity given"));
    CHECK_THAT(error_of([] { (void)parse_descriptor("w=int4:g32 s=3:x"); }),
               Contains("sparsity \"3:x\"") && Contains("block<R>x<C>"));
    CHECK_THAT(error_of([] { (void)resolve_policy("w9a9"); }),
               Contains("unknown policy \"w9a9\"") && Contains("w8a8") && Contains("nf4") && Contains("w=<quantizer>"));
}

TEST_CASE("descriptor: impossible compositions fail with the static_assert's words", "[descriptor]") {
    using Catch::Contains;
    auto err = [](const char* text) { return error_of([&] { (void)parse_descriptor(text); }); };
    CHECK_THAT(err("w=int4:g0"), Contains("per_group<G>: the group size G must be positive"));
    CHECK_THAT(err("w=binary:asym:channel"), Contains("asymmetric quantization of a format without zero"));
    CHECK_THAT(err("w=int4:token"), Contains("per_token granularity is for activations"));
    CHECK_THAT(err("w=int8:channel a=int8:channel"), Contains("per_channel granularity is for weights"));
    CHECK_THAT(err("w=fp8_e4m3:asym:channel"), Contains("asymmetric (zero-point) quantization needs an integer format"));
    CHECK_THAT(err("w=fp4_e2m1:g32:stoch"), Contains("stochastic rounding is implemented for integer-grid formats only"));
    CHECK_THAT(err("w=fp4_e2m1:channel:e8m0"), Contains("shares exponents within groups and needs per_group<G>"));
    CHECK_THAT(err("w=int4:asym:g32:unit"), Contains("unit_scale (the format's own scale) has no zero point"));
    CHECK_THAT(err("w=int8:asym:g32:e8m0"), Contains("e8m0_scale (OCP MX) is symmetric by definition"));
    CHECK_THAT(err("w=int8:channel a=int8:token:static"), Contains("per_token granularity needs dynamic quantization"));
    CHECK_THAT(err("w=int1:channel"), Contains("this format has no positive code"));
    CHECK_THAT(err("w=int4:g32:shift9"), Contains("B (bits of the per-group shift) must be in 1..8"));
    CHECK_THAT(err("w=q4.4:channel"), Contains("1 + m + n must be at most 8 bits"));
    CHECK_THAT(err("w=int4:g32:pct0"), Contains("the quantile must be in (0, 1000000] parts per million"));
    CHECK_THAT(err("w=int4:g32:mse0"), Contains("Steps must be in 1..1000"));
    CHECK_THAT(err("w=int4:g32 s=5:4"), Contains("N must not exceed M"));
    CHECK_THAT(err("w=int4:g32 s=block0x4"), Contains("block dimensions must be positive"));
    CHECK_THAT(err("w=int4:g32 s=bitmap:d1.5"), Contains("density 1.5 must be in (0, 1]"));
}

TEST_CASE("descriptor: every alias is a canonical spelling; the old registry names resolve", "[descriptor]") {
    for (const policy_alias& a : policy_aliases) {
        INFO(a.name);
        CHECK(spell(parse_descriptor(a.spelling)) == a.spelling);
        CHECK(alias_of(parse_descriptor(a.spelling)) == a.name);
        CHECK(canonical_policy(a.name) == a.spelling);
    }
    CHECK_FALSE(resolve_policy("fp32").has_value());
    CHECK(resolve_policy("w4a8_g32") == describe<policy<quantizer<int_format<4>, per_group<32>>, presets::int8_per_token>>());
    CHECK(policy_display(resolve_policy("w=int8:channel a=int8:token")) == "w8a8 (w=int8:channel a=int8:token)");
}

TEST_CASE("nf4: the QLoRA table, nearest value with ties down, NaN to zero, saturation", "[descriptor][nf4]") {
    for (std::uint32_t c = 0; c < 16; ++c) CHECK(nf4_format::encode(nf4_format::decode(c)) == c);
    CHECK(nf4_format::decode(7) == 0.0f);
    CHECK(nf4_format::decode(0) == -1.0f);
    CHECK(nf4_format::decode(15) == 1.0f);
    CHECK(nf4_format::encode(std::numeric_limits<float>::quiet_NaN()) == 7u);
    CHECK(nf4_format::encode(5.0f) == 15u);
    CHECK(nf4_format::encode(-5.0f) == 0u);
    // Brute force: the code is the nearest value; at an exact midpoint the lower value.
    std::mt19937 gen(4);
    std::uniform_real_distribution<float> u(-1.2f, 1.2f);
    for (int i = 0; i < 20000; ++i) {
        const float x = u(gen);
        const std::uint32_t c = nf4_format::encode(x);
        for (std::uint32_t o = 0; o < 16; ++o)
            CHECK_FALSE(std::fabs(nf4_format::decode(o) - x) < std::fabs(nf4_format::decode(c) - x));
    }
    for (std::uint32_t c = 0; c + 1 < 16; ++c) {
        const float mid = (nf4_format::decode(c) + nf4_format::decode(c + 1)) * 0.5f;
        CHECK(nf4_format::encode(mid) == c);
        CHECK(nf4_format::encode(std::nextafter(mid, 2.0f)) == c + 1);
    }
    // As a policy: per group of 64, absmax scale: each group's largest |w| is exact.
    const auto w = gaussian(4, 128, 9);
    const compressed_tensor t = compress(*resolve_policy("nf4"), w.view());
    const auto back = dequantize(t);
    for (index_t r = 0; r < 4; ++r)
        for (index_t g = 0; g < 2; ++g) {
            index_t at = g * 64;
            for (index_t c = g * 64; c < g * 64 + 64; ++c)
                if (std::fabs(w(r, c)) > std::fabs(w(r, at))) at = c;
            CHECK(back(r, at) == w(r, at));
        }
}

namespace {

/// The compositions of the table in docs/files.md: every format x scale kind x sparsity the library supports.
const std::vector<std::string>& file_table() {
    static const std::vector<std::string> table = {
        // integer grids, each scale kind
        "w=int8:channel a=int8:token",
        "w=int4:g32 a=int8:token",
        "w=int4:g32:f16 a=int8:token",
        "w=uint4:asym:g32:f16",
        "w=int2:g32",
        "w=int3:g64:pow2",
        "w=uint4:asym:g32",
        "w=uint8:asym:tensor a=uint8:asym:token",
        "w=int4:g32:ml2",
        "w=int4:g32:shift4 a=int8:g32",
        "w=int8:g32:shift8",
        "w=q1.6:g32:e8m0",
        "w=q3.4:tensor:unit",
        "w=q0.7:channel",
        "w=ternary:channel:mse20",
        "w=binary:channel a=binary:token",
        "w=uint2:asym:g32:stoch",
        "w=int4:g32:pct99.9",
        // floating element formats
        "w=fp8_e4m3:channel",
        "w=fp8_e5m2:channel a=fp8_e4m3:token",
        "w=fp6_e2m3:g32:e8m0",
        "w=fp6_e3m2:g32:e8m0",
        "w=fp4_e2m1:g32:e8m0",
        "w=fp4_e2m1:g32",
        "w=fp16:tensor:unit",
        "w=bf16:tensor:unit",
        "w=nf4:g64",
        // sparsity
        "w=int8:channel a=int8:token s=2:4",
        "w=int4:g32 a=int8:token s=1:4",
        "w=int8:channel s=block4x8",
        "w=int4:g32 s=block2x16:d0.25",
        "w=uint4:asym:g16 s=bitmap",
        "w=fp8_e4m3:channel s=bitmap:d0.3",
        // calibrated activations
        "w=int8:channel a=int8:tensor:static",
        "w=int8:channel a=int8:tensor:f16:static",
        "w=int4:g32 a=uint8:asym:g32:static",
        "w=int8:channel a=int8:g64:shift4:static",
        "w=int8:channel a=int8:tensor:pow2:pct99.9:static",
    };
    return table;
}

}  // namespace

TEST_CASE("compressed file v2: every composition saves, loads bit-identically and runs identically in a layer",
          "[descriptor][compressed_io]") {
    const auto w = gaussian(32, 128, 21, 0.5f);
    const auto calib = gaussian(24, 128, 22);
    const auto x = gaussian(5, 128, 23);
    const std::vector<float> bias = [] {
        std::vector<float> b(32);
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i);
        return b;
    }();
    io::compressed_model_writer writer;
    std::vector<compressed_tensor> in_memory;
    for (const std::string& text : file_table()) {
        INFO(text);
        quantize_options o;
        o.seed = 5;
        compressed_tensor t = compress(parse_descriptor(text), w.view(), o);
        if (t.needs_calibration()) {
            const matrix_view<const float> batches[] = {calib.view()};
            calibrate(t, batches);
        }
        writer.add_compressed("layer." + std::to_string(in_memory.size()) + ".weight", t);
        in_memory.push_back(std::move(t));
    }
    const std::vector<std::byte> bytes = writer.to_bytes();
    const auto file = io::compressed_model_file::from_bytes(bytes);
    CHECK(file.format_version() == "2");
    REQUIRE(file.layers().size() == file_table().size());
    for (std::size_t i = 0; i < in_memory.size(); ++i) {
        const std::string name = "layer." + std::to_string(i) + ".weight";
        INFO(file_table()[i]);
        const compressed_tensor loaded = file.tensor(name);
        CHECK(loaded.desc == in_memory[i].desc);
        CHECK(spell(loaded.desc) == file_table()[i]);
        CHECK(same_bytes(loaded.storage, in_memory[i].storage));
        CHECK(loaded.activation_scales.has_value() == in_memory[i].activation_scales.has_value());
        if (loaded.activation_scales) {
            CHECK(loaded.activation_scales->stored == in_memory[i].activation_scales->stored);
            CHECK(loaded.activation_scales->effective == in_memory[i].activation_scales->effective);
            CHECK(loaded.activation_scales->zero == in_memory[i].activation_scales->zero);
            CHECK(loaded.activation_scales->tensor_scale == in_memory[i].activation_scales->tensor_scale);
        }
        // Through a model layer: the loaded layer computes exactly what the in-memory one does.
        const model::linear a = model::linear::from_compressed(in_memory[i], bias, name);
        const model::linear b = model::linear::from_compressed(loaded, bias, name);
        dense_matrix<float> ya(5, 32), yb(5, 32);
        a.forward(x.view(), ya.view());
        b.forward(x.view(), yb.view());
        CHECK(ya.storage() == yb.storage());
        // And close to the float layer (a loose sanity bound: these are 2..8-bit formats, some pruned).
        double num = 0, den = 0;
        const auto deq = dequantize(loaded);
        for (index_t r = 0; r < 32; ++r)
            for (index_t c = 0; c < 128; ++c) {
                num += (deq(r, c) - w(r, c)) * (deq(r, c) - w(r, c));
                den += w(r, c) * w(r, c);
            }
        CHECK(num / den < 1.0);
    }
    // The layers made from the same descriptor by make() equal the typed-kernel layers when a kernel exists.
    const model::linear typed = model::linear::make("w=int8:channel a=int8:token", w.view(), bias, "typed");
    CHECK(typed.kernel_note().empty());
    CHECK(typed.policy() == "w8a8");
    // NF4, MXFP4 and FP8 weights with float activations, and FP8 / MXFP4 weights with int8 or fp8 tokens: the
    // weight-only kernels (tables, shifts; quantized activations decoded back to float).
    for (const char* name : {"nf4", "mxfp4", "fp8", "fp8_w8a8", "mxfp4_w4a8", "fp8_a8"}) {
        const model::linear l = model::linear::make(name, w.view(), bias, name);
        INFO(name << ": " << l.kernel_note());
        CHECK(l.kernel_note().empty());
        CHECK(l.policy() == name);
    }
    const model::linear ref = model::linear::make("w=fp6_e2m3:g32 a=int8:token", w.view(), bias, "ref");
    // The note is the CPU family table's own reason (cpu::supports) ...
    CHECK_THAT(ref.kernel_note(), Catch::Contains("reference path") &&
                                      Catch::Contains("weight_only kernels: a 6-bit floating format"));
    // ... or, where a family could run the descriptor, that the typed table has no instance of it.
    const model::linear untyped = model::linear::make("w=int4:g64 a=int8:token", w.view(), bias, "untyped");
    CHECK_THAT(untyped.kernel_note(), Catch::Contains("the int_dot kernels could run w=int4:g64 a=int8:token") &&
                                          Catch::Contains("policy_registry.hpp") && Catch::Contains("reference path"));
    CHECK(ref.policy() == "w=fp6_e2m3:g32 a=int8:token");
    // W8A8 with calibrated per-tensor activations: the int_dot kernels with the stored scales, bit for bit the
    // oracle's result; without scales, a layer cannot be made.
    compressed_tensor st = compress(*resolve_policy("w8a8_static"), w.view());
    const matrix_view<const float> batches[] = {calib.view()};
    calibrate(st, batches);
    const model::linear static_layer = model::linear::from_compressed(st, bias, "static");
    CHECK(static_layer.kernel_note().empty());
    CHECK(static_layer.policy() == "w8a8_static");
    dense_matrix<float> ys(5, 32), yo(5, 32);
    static_layer.forward(x.view(), ys.view());
    reference::matmul(x.view(), to_typed<presets::w8a8_static>(st), yo.view(), bias);
    CHECK(ys.storage() == yo.storage());
    CHECK_THAT(error_of([&] { (void)model::linear::make("w8a8_static", w.view(), bias, "uncalibrated"); }),
               Catch::Contains("uncalibrated") && Catch::Contains("calibrated (static) scales"));
}

TEST_CASE("compressed file v2: a descriptor that disagrees with the tensors is rejected before any read",
          "[descriptor][compressed_io]") {
    using Catch::Contains;
    // Built directly: a descriptor whose group does not divide K, and one whose sparsity adds a missing tensor.
    auto file_with = [&](const std::string& policy, const std::string& codes_name, std::vector<std::int64_t> codes_shape) {
        io::safetensors_writer st;
        st.set_metadata("tcomp.format", "tcomp-compressed");
        st.set_metadata("tcomp.format_version", "2");
        st.set_metadata("tcomp.policy.fc.weight", policy);
        st.set_metadata("tcomp.shape.fc.weight", "[8, 64]");
        std::vector<std::byte> codes(static_cast<std::size_t>(codes_shape[0] * codes_shape[1]));
        st.add(codes_name, io::dtype::u8, codes_shape, codes);
        std::vector<float> scales(8);
        st.add_f32("fc.weight.scales", {8, 1}, scales);
        return st.to_bytes();
    };
    const auto bad_group = file_with("w=int8:g48", "fc.weight.codes", {8, 64});
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(bad_group); }),
               Contains("fc.weight") && Contains("not a multiple of the group size 48"));
    const auto wrong_codes = file_with("w=int4:channel", "fc.weight.codes", {8, 64});
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(wrong_codes); }),
               Contains("fc.weight.codes") && Contains("needs [8, 32]"));
    const auto missing_nm = file_with("w=int8:channel s=2:4", "fc.weight.codes", {8, 32});
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(missing_nm); }),
               Contains("fc.weight.nm_indices is missing"));
    const auto bad_text = file_with("w=int8:chanel", "fc.weight.codes", {8, 64});
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(bad_text); }),
               Contains("fc.weight") && Contains("unknown option \"chanel\""));
    // Version 1 named only the old registry: a spelling there is an error.
    io::safetensors_writer v1;
    v1.set_metadata("tcomp.format", "tcomp-compressed");
    v1.set_metadata("tcomp.format_version", "1");
    v1.set_metadata("tcomp.policy.fc.weight", "nf4");
    v1.set_metadata("tcomp.shape.fc.weight", "[8, 64]");
    const auto v1_bytes = v1.to_bytes();
    CHECK_THAT(error_of([&] { (void)io::compressed_model_file::from_bytes(v1_bytes); }),
               Contains("fc.weight") && Contains("version-1 file"));
}

TEST_CASE("compressed file: a version-1 file still loads, its names as aliases", "[descriptor][compressed_io]") {
    const auto w = gaussian(16, 128, 41);
    const auto x = gaussian(3, 128, 42);
    // A version-1 file as the old writer made it: the same tensors, a registry name in the metadata.
    const compressed_tensor t = compress(*resolve_policy("w4a8"), w.view());
    io::safetensors_writer st;
    st.set_metadata("tcomp.format", "tcomp-compressed");
    st.set_metadata("tcomp.format_version", "1");
    st.set_metadata("tcomp.policy.fc.weight", "w4a8");
    st.set_metadata("tcomp.shape.fc.weight", "[16, 128]");
    st.add("fc.weight.codes", io::dtype::u8, {16, 64}, std::as_bytes(std::span(t.storage.codes)));
    std::vector<float> scales(16);
    for (std::size_t i = 0; i < 16; ++i) scales[i] = tcomp::detail::bits_float(read_packed(t.storage.scales.data(), static_cast<index_t>(i), 32));
    st.add_f32("fc.weight.scales", {16, 1}, scales);
    const auto bytes = st.to_bytes();
    const auto file = io::compressed_model_file::from_bytes(bytes);
    CHECK(file.format_version() == "1");
    REQUIRE(file.layers().at("fc.weight").policy == "w4a8");
    const compressed_tensor loaded = file.tensor("fc.weight");
    CHECK(loaded.desc == *resolve_policy("w4a8"));
    CHECK(same_bytes(loaded.storage, t.storage));
    const model::linear a = model::linear::from_compressed(loaded, {}, "fc");
    const model::linear b = model::linear::make("w4a8", w.view(), {}, "fc");
    dense_matrix<float> ya(3, 16), yb(3, 16);
    a.forward(x.view(), ya.view());
    b.forward(x.view(), yb.view());
    CHECK(ya.storage() == yb.storage());
}

// The layering (io/ and below include nothing from model/, and the rest) is the CTest `layering`
// (tests/check_layering.cmake).

TEST_CASE("recipes name policies by alias or by spelling; a bad spelling names the rule", "[descriptor][recipe]") {
    using Catch::Contains;
    const auto r = model::recipe::parse(
        R"({"default": "w=int4:g32 a=int8:token", "layers": [{"match": "fc2", "policy": "nf4"},
            {"match": "fc3", "policy": "w=fp8_e4m3:channel s=2:4"}]})");
    const std::vector<std::string> layers{"fc1", "fc2", "fc3"};
    const model::policy_map m = r.resolve(layers);
    CHECK(m.at("fc1") == "w=int4:g32 a=int8:token");
    CHECK(m.at("fc2") == "nf4");
    const auto w = gaussian(16, 64, 51);
    for (const auto& [layer, policy] : m) {
        const model::linear l = model::linear::make(policy, w.view(), {}, layer);
        CHECK(l.desc().has_value());
    }
    CHECK(model::linear::make(m.at("fc1"), w.view()).policy() == "w4a8_g32");
    CHECK_THAT(error_of([] { (void)model::recipe::parse(R"({"layers": [{"match": "x", "policy": "w=int4:g32:bogus"}]})"); }),
               Contains("layers[0]") && Contains("unknown option \"bogus\""));
}

TEST_CASE("f16 scales: IEEE half scales, 4.5 bits per weight at int4 g32, F16 in the file", "[descriptor][compressed_io]") {
    const auto w = gaussian(16, 128, 31, 0.05f);
    const compressed_tensor h = compress(parse_descriptor("w=int4:g32:f16"), w.view());
    const compressed_tensor f = compress(parse_descriptor("w=int4:g32"), w.view());
    // Q4_0's budget: 4-bit codes and one 16-bit scale per 32 weights.
    CHECK(h.bits_per_weight() == Approx(4.5));
    CHECK(f.bits_per_weight() == Approx(5.0));
    CHECK(h.storage.layout.scale_bits == 16);
    // Each scale is the half nearest the float one (amax / 7): exactly a half, within 2^-11 relative of it.
    const auto ht = compress<policy<quantizer<int_format<4>, per_group<32>, f16_scale>>>(w.view());
    const auto ft = compress<policy<quantizer<int_format<4>, per_group<32>>>>(w.view());
    CHECK(same_bytes(ht.weights().storage(), h.storage));
    const auto hv = ht.weights().view();
    const auto fv = ft.weights().view();
    for (index_t r = 0; r < 16; ++r)
        for (index_t c = 0; c < 128; c += 32) {
            const float s = hv.scale(r, c), ref = fv.scale(r, c);
            CHECK(fp16_format::decode(fp16_format::encode(s)) == s);
            CHECK(std::fabs(s - ref) <= 0x1p-11f * ref);
        }
    // The file holds the halves as an F16 tensor (2 bytes per scale) and loads them bit for bit.
    io::compressed_model_writer writer;
    writer.add_compressed("l.weight", h);
    const std::vector<std::byte> bytes = writer.to_bytes();
    const auto file = io::compressed_model_file::from_bytes(bytes);
    CHECK(same_bytes(file.tensor("l.weight").storage, h.storage));
    const io::safetensors_file raw = io::safetensors_file::from_bytes(bytes);
    CHECK(raw.tensor("l.weight.scales").type == io::dtype::f16);
    CHECK(raw.tensor("l.weight.scales").data.size() == 16 * 4 * 2);
    // Scales are still checked: an infinite half is refused, naming the tensor and the element.
    io::safetensors_writer rewrite;
    for (const io::tensor_view& t : raw.tensors()) {
        std::vector<std::byte> d(t.data.begin(), t.data.end());
        if (t.name == "l.weight.scales") d[4] = std::byte{0x00}, d[5] = std::byte{0xFC};  // element 2: 0xFC00, -Inf
        rewrite.add(t.name, t.type, t.shape, d);
    }
    for (const auto& [key, value] : raw.metadata()) rewrite.set_metadata(key, value);
    CHECK_THROWS_WITH(io::compressed_model_file::from_bytes(rewrite.to_bytes()),
                      Catch::Contains("l.weight.scales") && Catch::Contains("element 2"));
}
