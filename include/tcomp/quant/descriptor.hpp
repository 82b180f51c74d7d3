// The run-time descriptor: a value describing any composition the policy types can express, so recipes,
// files, tools and the mixed-precision search can name, store and compare compositions without their types.
//
//   descriptor
//     weights       quantizer_desc   format, scheme, granularity (+ group), scale kind (+ shift bits),
//                                    rounding, observer (+ parameter), activation mode
//     activations   optional         the activation quantizer; empty = float activations
//     sparsity      sparsity_desc    dense, N:M, block R x C, unstructured bitmap (+ density)
//
// describe<P>() (describe.hpp) derives one from a policy type; descriptor_text.hpp gives the one canonical
// spelling ("w=int4:g32 a=int8:token") and its parser; policy_names.hpp the short names ("w8a8", "nf4").
// validate() rejects every composition the types reject, with the words of their static_asserts.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "tcomp/core/config.hpp"
#include "tcomp/core/error.hpp"
#include "tcomp/core/packed_storage.hpp"

namespace tcomp {

/// Every format the run-time descriptor can name. The numeric values are not stored anywhere (files store
/// the spelling); the spellings (descriptor_text.hpp) are stable.
enum class format_kind : std::uint8_t {
    int_,         // int_format<bits>, bits 1..8
    uint_,        // uint_format<bits>, bits 1..8
    fixed_point,  // fixed_point_format<integer_bits, fraction_bits>, 1 + m + n <= 8
    binary,
    ternary,
    fp8_e4m3,
    fp8_e5m2,
    fp6_e2m3,
    fp6_e3m2,
    fp4_e2m1,
    fp16,
    bf16,
    nf4,
};

struct format_desc {
    format_kind kind = format_kind::int_;
    int bits = 8;           // int_ / uint_ only
    int integer_bits = 0;   // fixed_point only
    int fraction_bits = 0;  // fixed_point only
    friend bool operator==(const format_desc&, const format_desc&) = default;
};

enum class scheme_kind : std::uint8_t { symmetric, asymmetric };
enum class granularity_kind : std::uint8_t { tensor, channel, token, group };
enum class scale_kind : std::uint8_t { float_, pow2, e8m0, multi_level, shiftable, unit, f16 };
enum class rounding_kind : std::uint8_t { nearest_even, stochastic };
enum class observer_kind : std::uint8_t { min_max, percentile, mse };

struct quantizer_desc {
    format_desc format;
    scheme_kind scheme = scheme_kind::symmetric;
    granularity_kind granularity = granularity_kind::tensor;
    index_t group_size = 0;  // granularity group only
    scale_kind scale = scale_kind::float_;
    int shift_bits = 0;  // multi_level / shiftable only
    rounding_kind rounding = rounding_kind::nearest_even;
    observer_kind observer = observer_kind::min_max;
    int observer_param = 0;   // percentile: parts per million; mse: steps
    bool calibrated = false;  // activation mode: static scales (true) or per input (false)

    bool has_zero_point() const { return scheme == scheme_kind::asymmetric; }
    bool per_row() const { return granularity != granularity_kind::tensor; }
    /// Elements along K per scale; 0 = the whole row.
    index_t group() const { return granularity == granularity_kind::group ? group_size : 0; }
    friend bool operator==(const quantizer_desc&, const quantizer_desc&) = default;
};

struct sparsity_desc {
    sparsity_kind kind = sparsity_kind::dense;
    int n = 0, m = 0;                    // n_m
    int block_rows = 0, block_cols = 0;  // block
    double density = 0.5;                // block and bitmap: the kept fraction magnitude pruning aims for
    friend bool operator==(const sparsity_desc& a, const sparsity_desc& b) {
        if (a.kind != b.kind || a.n != b.n || a.m != b.m || a.block_rows != b.block_rows || a.block_cols != b.block_cols)
            return false;
        const bool uses_density = a.kind == sparsity_kind::block || a.kind == sparsity_kind::bitmap;
        return !uses_density || a.density == b.density;
    }
};

struct descriptor {
    quantizer_desc weights;
    std::optional<quantizer_desc> activations;  // empty: float activations
    sparsity_desc sparsity;

    bool quantizes_activations() const { return activations.has_value(); }
    friend bool operator==(const descriptor&, const descriptor&) = default;
};

namespace detail {

/// Code range and kind facts of a format_desc, without the format's type (validation needs only these).
struct format_facts {
    bool integer_grid = true;
    bool sign_grid = false;  // binary: no zero code
    int code_max = 0;
    int bits = 8;
};

inline format_facts facts_of(const format_desc& f) {
    switch (f.kind) {
        case format_kind::int_: return {true, false, (1 << (f.bits - 1)) - 1, f.bits};
        case format_kind::uint_: return {true, false, (1 << f.bits) - 1, f.bits};
        case format_kind::fixed_point: {
            const int b = 1 + f.integer_bits + f.fraction_bits;
            return {true, false, (1 << (b - 1)) - 1, b};
        }
        case format_kind::binary: return {true, true, 1, 1};
        case format_kind::ternary: return {true, false, 1, 2};
        case format_kind::fp8_e4m3:
        case format_kind::fp8_e5m2: return {false, false, 0, 8};
        case format_kind::fp6_e2m3:
        case format_kind::fp6_e3m2: return {false, false, 0, 6};
        case format_kind::fp4_e2m1:
        case format_kind::nf4: return {false, false, 0, 4};
        case format_kind::fp16:
        case format_kind::bf16: return {false, false, 0, 16};
    }
    return {};
}

}  // namespace detail

/// Throws tcomp::error unless the quantizer is a composition the types accept; the message is the
/// static_assert's. `role`: "weights" or "activations" (the policy-level rules differ).
inline void validate(const quantizer_desc& q, const char* role = "weights") {
    auto fail = [&](auto&&... parts) { detail::throw_error<error>(role, ": ", parts...); };
    const format_desc& f = q.format;
    if (f.kind == format_kind::int_ && (f.bits < 1 || f.bits > 8))
        fail("int_format<Bits>: Bits must be in 1..8 (tcomp packs integer codes of 1 to 8 bits; use fp16/bf16 "
             "storage for wider values); got ", f.bits);
    if (f.kind == format_kind::uint_ && (f.bits < 1 || f.bits > 8))
        fail("uint_format<Bits>: Bits must be in 1..8 (tcomp packs integer codes of 1 to 8 bits); got ", f.bits);
    if (f.kind == format_kind::fixed_point) {
        if (f.integer_bits < 0 || f.fraction_bits < 0)
            fail("fixed_point_format<m, n>: integer and fraction bit counts must be non-negative");
        if (1 + f.integer_bits + f.fraction_bits > 8)
            fail("fixed_point_format<m, n>: 1 + m + n must be at most 8 bits (tcomp packs codes of 1 to 8 bits)");
    }
    const detail::format_facts facts = detail::facts_of(f);
    if (q.granularity == granularity_kind::group && q.group_size <= 0)
        fail("per_group<G>: the group size G must be positive (per_group<0> has no elements per group)");
    if (q.granularity != granularity_kind::group && q.group_size != 0)
        fail("a group size (", q.group_size, ") is only meaningful with per_group granularity");
    if ((q.scale == scale_kind::multi_level || q.scale == scale_kind::shiftable) &&
        (q.shift_bits < 1 || q.shift_bits > 8))
        fail("multi_level_scale/shiftable_scale<B>: B (bits of the per-group shift) must be in 1..8; got ",
             q.shift_bits);
    if (q.scale != scale_kind::multi_level && q.scale != scale_kind::shiftable && q.shift_bits != 0)
        fail("shift bits are only meaningful with multi_level_scale or shiftable_scale");
    if (q.observer == observer_kind::percentile && (q.observer_param <= 0 || q.observer_param > 1000000))
        fail("percentile<PPM>: the quantile must be in (0, 1000000] parts per million; got ", q.observer_param);
    if (q.observer == observer_kind::mse && (q.observer_param < 1 || q.observer_param > 1000))
        fail("mse_clip_search<Steps>: Steps must be in 1..1000; got ", q.observer_param);
    if (q.observer == observer_kind::min_max && q.observer_param != 0)
        fail("min_max takes no parameter");
    const bool asym = q.has_zero_point();
    if (asym && !facts.integer_grid)
        fail("quantizer: asymmetric (zero-point) quantization needs an integer format; floating formats are "
             "symmetric");
    if (asym && facts.sign_grid)
        fail("quantizer: asymmetric quantization of a format without zero (binary_format: codes are -1 and +1 "
             "only); use symmetric");
    if (!asym && facts.integer_grid && facts.code_max <= 0)
        fail("quantizer: symmetric quantization maps amax to the largest code, and this format has no positive "
             "code (int_format<1>, fixed_point_format<0, 0>: -1 and 0 only); use asymmetric or uint_format<1>");
    if (q.rounding == rounding_kind::stochastic && !facts.integer_grid)
        fail("quantizer: stochastic rounding is implemented for integer-grid formats only");
    if (q.granularity == granularity_kind::token && q.calibrated)
        fail("quantizer: per_token granularity needs dynamic quantization (tokens are not known at calibration "
             "time); use per_tensor or per_group for calibrated activations");
    const bool needs_groups = q.scale == scale_kind::e8m0 || q.scale == scale_kind::multi_level ||
                              q.scale == scale_kind::shiftable;
    if (needs_groups && q.granularity != granularity_kind::group)
        fail("quantizer: this scale kind (e8m0_scale, multi_level_scale, shiftable_scale) shares exponents "
             "within groups and needs per_group<G>");
    if (q.scale == scale_kind::unit && asym)
        fail("quantizer: unit_scale (the format's own scale) has no zero point; use symmetric");
    if (q.scale == scale_kind::e8m0 && asym) fail("quantizer: e8m0_scale (OCP MX) is symmetric by definition");
}

inline void validate(const sparsity_desc& s) {
    switch (s.kind) {
        case sparsity_kind::dense: return;
        case sparsity_kind::n_m:
            if (s.m < 1 || s.m > 256) detail::throw_error<error>("sparsity: n_m<N, M>: M must be in 1..256; got ", s.m);
            if (s.n < 1)
                detail::throw_error<error>("sparsity: n_m<N, M>: N must be at least 1 (N = 0 prunes everything)");
            if (s.n > s.m)
                detail::throw_error<error>("sparsity: n_m<N, M>: N must not exceed M (keep N of every M weights); got ",
                                           s.n, ":", s.m);
            return;
        case sparsity_kind::block:
            if (s.block_rows < 1 || s.block_cols < 1)
                detail::throw_error<error>("sparsity: block_sparse<R, C>: block dimensions must be positive");
            break;
        case sparsity_kind::bitmap: break;
        default: detail::throw_error<error>("sparsity: unknown kind ", static_cast<int>(s.kind));
    }
    if (!(s.density > 0.0 && s.density <= 1.0))
        detail::throw_error<error>("sparsity: density ", s.density, " must be in (0, 1]");
}

/// Every rule of policy<W, A, S> and its quantizers; throws tcomp::error with the static_assert's words.
inline void validate(const descriptor& d) {
    validate(d.weights, "weights");
    if (d.weights.granularity == granularity_kind::token)
        detail::throw_error<error>("policy: per_token granularity is for activations; weights use per_channel, "
                                   "per_group<G> or per_tensor");
    if (d.activations) {
        validate(*d.activations, "activations");
        if (d.activations->granularity == granularity_kind::channel)
            detail::throw_error<error>("policy: per_channel granularity is for weights (output channels); activations "
                                       "use per_token, per_tensor or per_group<G>");
    }
    validate(d.sparsity);
}

}  // namespace tcomp
