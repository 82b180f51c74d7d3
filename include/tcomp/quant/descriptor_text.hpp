// The one canonical text spelling of a descriptor, for recipes, files and tools. These strings are stored in
// files: they will not change.
//
//   policy      := "w=" quantizer [" a=" quantizer] [" s=" sparsity]     (no "a=": float activations)
//   quantizer   := format {":" option}
//   format      := int1..int8 | uint1..uint8 | q<m>.<n> (fixed point, 1 + m + n bits) | binary | ternary
//                | fp8_e4m3 | fp8_e5m2 | fp6_e2m3 | fp6_e3m2 | fp4_e2m1 | fp16 | bf16 | nf4
//   option      := sym | asym                                   scheme          (default sym)
//                | tensor | channel | token | g<G>              granularity     (default tensor)
//                | float | f16 | pow2 | e8m0 | ml<B> | shift<B> | unit   scale kind   (default float)
//                | rne | stoch                                  rounding        (default rne)
//                | minmax | pct<percent> | mse<steps>           observer        (default minmax)
//                | dynamic | static                             activation mode (default dynamic)
//   sparsity    := <N>:<M> | block<R>x<C>[:d<density>] | bitmap[:d<density>]   (default density 0.5)
//
// spell() writes the parts in that order, each option in the order above, and leaves out every default
// except the granularity: "w=int4:g128 a=int8:token". parse() accepts the options of a quantizer in any order
// (each category once), so parse(spell(d)) == d for every valid descriptor, and spell(parse(t)) is t's
// canonical form. A bad spelling is a tcomp::error naming the bad token and listing what is accepted there.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/quant/descriptor.hpp"

namespace tcomp {

namespace detail {

inline constexpr std::string_view named_formats[] = {"binary", "ternary", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3",
                                                     "fp6_e3m2", "fp4_e2m1", "fp16", "bf16", "nf4"};
inline constexpr format_kind named_format_kinds[] = {
    format_kind::binary,   format_kind::ternary,  format_kind::fp8_e4m3, format_kind::fp8_e5m2, format_kind::fp6_e2m3,
    format_kind::fp6_e3m2, format_kind::fp4_e2m1, format_kind::fp16,     format_kind::bf16,     format_kind::nf4};

inline constexpr std::string_view accepted_formats =
    "int1..int8, uint1..uint8, q<m>.<n> (fixed point, 1 + m + n <= 8 bits), binary, ternary, fp8_e4m3, fp8_e5m2, "
    "fp6_e2m3, fp6_e3m2, fp4_e2m1, fp16, bf16, nf4";
inline constexpr std::string_view accepted_options =
    "sym, asym (scheme); tensor, channel, token, g<G> (granularity); float, f16, pow2, e8m0, ml<B>, shift<B>, unit "
    "(scale kind); rne, stoch (rounding); minmax, pct<percent>, mse<steps> (observer); dynamic, static "
    "(activation mode)";
inline constexpr std::string_view accepted_sparsity = "<N>:<M> (e.g. 2:4), block<R>x<C>[:d<density>], bitmap[:d<density>]";
inline constexpr std::string_view accepted_parts = "w=<quantizer> (required), a=<quantizer>, s=<sparsity>";

/// A non-negative decimal integer that is all of `text` (no sign, no spaces), else -1.
inline long long parse_count(std::string_view text) {
    if (text.empty() || text.size() > 12) return -1;
    long long v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || v < 0) return -1;
    return v;
}

/// "99.99" -> 999900 parts per million (at most 4 decimals), else -1.
inline long long parse_percent_ppm(std::string_view text) {
    const auto dot = text.find('.');
    const std::string_view whole = text.substr(0, dot);
    std::string_view frac = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
    if (dot != std::string_view::npos && frac.empty()) return -1;
    if (frac.size() > 4) return -1;
    const long long w = parse_count(whole);
    if (w < 0) return -1;
    long long f = 0;
    if (!frac.empty()) {
        f = parse_count(frac);
        if (f < 0) return -1;
        for (std::size_t i = frac.size(); i < 4; ++i) f *= 10;
    }
    return w * 10000 + f;
}

inline std::string percent_text(int ppm) {
    std::string out = std::to_string(ppm / 10000);
    int frac = ppm % 10000;
    if (frac != 0) {
        std::string digits = std::to_string(frac);
        digits.insert(0, 4 - digits.size(), '0');
        while (digits.back() == '0') digits.pop_back();
        out += "." + digits;
    }
    return out;
}

inline std::string density_text(double d) {
    char buffer[32];
    const auto [p, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);  // shortest round-trip form
    return ec == std::errc() ? std::string(buffer, p) : std::to_string(d);
}

inline std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i)
        if (i == text.size() || text[i] == sep) {
            out.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

}  // namespace detail

inline std::string spell(const format_desc& f) {
    switch (f.kind) {
        case format_kind::int_: return "int" + std::to_string(f.bits);
        case format_kind::uint_: return "uint" + std::to_string(f.bits);
        case format_kind::fixed_point: return "q" + std::to_string(f.integer_bits) + "." + std::to_string(f.fraction_bits);
        default:
            for (std::size_t i = 0; i < std::size(detail::named_format_kinds); ++i)
                if (detail::named_format_kinds[i] == f.kind) return std::string(detail::named_formats[i]);
    }
    return "?";
}

inline std::string spell(const quantizer_desc& q) {
    std::string out = spell(q.format);
    if (q.scheme == scheme_kind::asymmetric) out += ":asym";
    switch (q.granularity) {
        case granularity_kind::tensor: out += ":tensor"; break;
        case granularity_kind::channel: out += ":channel"; break;
        case granularity_kind::token: out += ":token"; break;
        case granularity_kind::group: out += ":g" + std::to_string(q.group_size); break;
    }
    switch (q.scale) {
        case scale_kind::float_: break;
        case scale_kind::pow2: out += ":pow2"; break;
        case scale_kind::e8m0: out += ":e8m0"; break;
        case scale_kind::multi_level: out += ":ml" + std::to_string(q.shift_bits); break;
        case scale_kind::shiftable: out += ":shift" + std::to_string(q.shift_bits); break;
        case scale_kind::unit: out += ":unit"; break;
        case scale_kind::f16: out += ":f16"; break;
    }
    if (q.rounding == rounding_kind::stochastic) out += ":stoch";
    if (q.observer == observer_kind::percentile) out += ":pct" + detail::percent_text(q.observer_param);
    if (q.observer == observer_kind::mse) out += ":mse" + std::to_string(q.observer_param);
    if (q.calibrated) out += ":static";
    return out;
}

inline std::string spell(const sparsity_desc& s) {
    switch (s.kind) {
        case sparsity_kind::dense: return "";
        case sparsity_kind::n_m: return std::to_string(s.n) + ":" + std::to_string(s.m);
        case sparsity_kind::block: {
            std::string out = "block" + std::to_string(s.block_rows) + "x" + std::to_string(s.block_cols);
            if (s.density != 0.5) out += ":d" + detail::density_text(s.density);
            return out;
        }
        case sparsity_kind::bitmap: return s.density != 0.5 ? "bitmap:d" + detail::density_text(s.density) : "bitmap";
    }
    return "?";
}

/// The canonical spelling (see the top of this file).
inline std::string spell(const descriptor& d) {
    std::string out = "w=" + spell(d.weights);
    if (d.activations) out += " a=" + spell(*d.activations);
    if (d.sparsity.kind != sparsity_kind::dense) out += " s=" + spell(d.sparsity);
    return out;
}

/// Parses one format token ("int4", "q1.6", "nf4").
inline format_desc parse_format(std::string_view token, std::string_view where = "descriptor") {
    auto fail = [&](auto&&... why) {
        detail::throw_error<error>(where, ": format \"", token, "\"", why..., "; accepted formats: ",
                                   detail::accepted_formats);
    };
    format_desc f;
    for (std::size_t i = 0; i < std::size(detail::named_formats); ++i)
        if (token == detail::named_formats[i]) {
            f.kind = detail::named_format_kinds[i];
            f.bits = 0;
            return f;
        }
    auto bits_after = [&](std::string_view prefix, format_kind kind) -> bool {
        if (!token.starts_with(prefix)) return false;
        const long long b = detail::parse_count(token.substr(prefix.size()));
        if (b < 0) return false;
        if (b < 1 || b > 8) fail(" has ", b, " bits: ", kind == format_kind::int_ ? "int" : "uint",
                                 "_format<Bits>: Bits must be in 1..8 (tcomp packs integer codes of 1 to 8 bits)");
        f.kind = kind;
        f.bits = static_cast<int>(b);
        return true;
    };
    if (bits_after("uint", format_kind::uint_) || bits_after("int", format_kind::int_)) return f;
    if (token.starts_with("q")) {
        const auto dot = token.find('.');
        if (dot != std::string_view::npos) {
            const long long m = detail::parse_count(token.substr(1, dot - 1));
            const long long n = detail::parse_count(token.substr(dot + 1));
            if (m >= 0 && n >= 0) {
                if (1 + m + n > 8)
                    fail(": fixed_point_format<m, n>: 1 + m + n must be at most 8 bits (tcomp packs codes of 1 to 8 "
                         "bits)");
                f.kind = format_kind::fixed_point;
                f.bits = 0;
                f.integer_bits = static_cast<int>(m);
                f.fraction_bits = static_cast<int>(n);
                return f;
            }
        }
    }
    fail(" is not a format");
    return f;
}

/// Parses a quantizer ("int4:asym:g32"); `where` starts every message. The result is validated.
inline quantizer_desc parse_quantizer(std::string_view text, std::string_view where = "descriptor",
                                      const char* role = "weights") {
    const std::vector<std::string_view> tokens = detail::split(text, ':');
    quantizer_desc q;
    q.format = parse_format(tokens[0], where);
    bool seen[6] = {};  // scheme, granularity, scale, rounding, observer, mode
    constexpr const char* category_names[6] = {"scheme (sym / asym)", "granularity", "scale kind", "rounding",
                                               "observer", "activation mode (dynamic / static)"};
    for (std::size_t i = 1; i < tokens.size(); ++i) {
        const std::string_view t = tokens[i];
        int category = -1;
        auto number_after = [&](std::string_view prefix) -> long long {
            return t.starts_with(prefix) ? detail::parse_count(t.substr(prefix.size())) : -1;
        };
        if (t == "sym" || t == "asym") {
            category = 0;
            q.scheme = t == "asym" ? scheme_kind::asymmetric : scheme_kind::symmetric;
        } else if (t == "tensor" || t == "channel" || t == "token") {
            category = 1;
            q.granularity = t == "tensor" ? granularity_kind::tensor
                            : t == "channel" ? granularity_kind::channel : granularity_kind::token;
        } else if (const long long g = number_after("g"); g >= 0) {
            category = 1;
            q.granularity = granularity_kind::group;
            if (g == 0)
                detail::throw_error<error>(where, ": option \"", t, "\" in \"", text, "\": per_group<G>: the group size "
                                           "G must be positive (per_group<0> has no elements per group)");
            q.group_size = static_cast<index_t>(g);
        } else if (t == "float" || t == "f16" || t == "pow2" || t == "e8m0" || t == "unit") {
            category = 2;
            q.scale = t == "float" ? scale_kind::float_ : t == "f16" ? scale_kind::f16 : t == "pow2" ? scale_kind::pow2
                      : t == "e8m0" ? scale_kind::e8m0 : scale_kind::unit;
        } else if (const long long b = number_after("ml"); b >= 0) {
            category = 2, q.scale = scale_kind::multi_level, q.shift_bits = static_cast<int>(b);
        } else if (const long long b2 = number_after("shift"); b2 >= 0) {
            category = 2, q.scale = scale_kind::shiftable, q.shift_bits = static_cast<int>(b2);
        } else if (t == "rne" || t == "stoch") {
            category = 3;
            q.rounding = t == "stoch" ? rounding_kind::stochastic : rounding_kind::nearest_even;
        } else if (t == "minmax") {
            category = 4, q.observer = observer_kind::min_max, q.observer_param = 0;
        } else if (t.starts_with("pct") && detail::parse_percent_ppm(t.substr(3)) >= 0) {
            category = 4, q.observer = observer_kind::percentile;
            const long long ppm = detail::parse_percent_ppm(t.substr(3));
            q.observer_param = static_cast<int>(ppm > 2000000 ? 2000000 : ppm);
        } else if (const long long s = number_after("mse"); s >= 0) {
            category = 4, q.observer = observer_kind::mse, q.observer_param = static_cast<int>(s > 100000 ? 100000 : s);
        } else if (t == "dynamic" || t == "static") {
            category = 5, q.calibrated = t == "static";
        } else {
            detail::throw_error<error>(where, ": unknown option \"", t, "\" in \"", text,
                                       "\"; accepted after the format: ", detail::accepted_options);
        }
        if (seen[category])
            detail::throw_error<error>(where, ": option \"", t, "\" in \"", text, "\": quantizer: more than one ",
                                       category_names[category], " given");
        seen[category] = true;
    }
    try {
        validate(q, role);
    } catch (const error& e) {
        detail::throw_error<error>(where, ": \"", text, "\": ", e.what());
    }
    return q;
}

inline sparsity_desc parse_sparsity(std::string_view text, std::string_view where = "descriptor") {
    auto fail = [&]() {
        detail::throw_error<error>(where, ": sparsity \"", text, "\" is not one of: ", detail::accepted_sparsity);
    };
    sparsity_desc s;
    std::vector<std::string_view> tokens = detail::split(text, ':');
    auto density = [&](std::size_t at) {
        if (tokens.size() == at) return;
        if (tokens.size() != at + 1 || !tokens[at].starts_with("d")) fail();
        const std::string_view d = tokens[at].substr(1);
        const auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), s.density);
        if (ec != std::errc() || p != d.data() + d.size()) fail();
    };
    if (tokens[0] == "bitmap") {
        s.kind = sparsity_kind::bitmap;
        density(1);
    } else if (tokens[0].starts_with("block")) {
        const std::string_view dims = tokens[0].substr(5);
        const auto x = dims.find('x');
        if (x == std::string_view::npos) fail();
        const long long r = detail::parse_count(dims.substr(0, x)), c = detail::parse_count(dims.substr(x + 1));
        if (r < 0 || c < 0 || r > 65536 || c > 65536) fail();
        s.kind = sparsity_kind::block, s.block_rows = static_cast<int>(r), s.block_cols = static_cast<int>(c);
        density(1);
    } else if (tokens.size() == 2) {
        const long long n = detail::parse_count(tokens[0]), m = detail::parse_count(tokens[1]);
        if (n < 0 || m < 0 || m > 100000) fail();
        s.kind = sparsity_kind::n_m, s.n = static_cast<int>(n), s.m = static_cast<int>(m);
    } else {
        fail();
    }
    try {
        validate(s);
    } catch (const error& e) {
        detail::throw_error<error>(where, ": \"", text, "\": ", e.what());
    }
    return s;
}

/// Parses a policy spelling ("w=int4:g32 a=int8:token s=2:4"); the result passes validate().
inline descriptor parse_descriptor(std::string_view text, std::string_view where = "descriptor") {
    descriptor d;
    bool have_w = false, have_a = false, have_s = false;
    for (std::string_view part : detail::split(text, ' ')) {
        if (part.empty()) continue;  // runs of spaces
        auto once = [&](bool& seen) {
            if (seen) detail::throw_error<error>(where, ": \"", part.substr(0, 2), "\" given twice in \"", text, "\"");
            seen = true;
        };
        if (part.starts_with("w=")) {
            once(have_w);
            d.weights = parse_quantizer(part.substr(2), where, "weights");
        } else if (part.starts_with("a=")) {
            once(have_a);
            d.activations = parse_quantizer(part.substr(2), where, "activations");
        } else if (part.starts_with("s=")) {
            once(have_s);
            d.sparsity = parse_sparsity(part.substr(2), where);
        } else {
            detail::throw_error<error>(where, ": unknown part \"", part, "\" in \"", text, "\"; a policy is: ",
                                       detail::accepted_parts);
        }
    }
    if (!have_w)
        detail::throw_error<error>(where, ": \"", text, "\" has no weight quantizer; a policy is: ",
                                   detail::accepted_parts);
    try {
        validate(d);
    } catch (const error& e) {
        detail::throw_error<error>(where, ": \"", text, "\": ", e.what());
    }
    return d;
}

}  // namespace tcomp
