// libFuzzer target for the descriptor parser (tcomp/quant/descriptor_text.hpp, policy_names.hpp): any text
// must parse or throw tcomp::error; what parses is valid, spells canonically, and reparses to itself.
// Build: tests/fuzz/CMakeLists.txt (TCOMP_BUILD_FUZZ=ON, clang++-14); run: scripts/test.sh, stage "fuzz".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <tcomp/quant/descriptor_text.hpp>
#include <tcomp/quant/policy_names.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const std::optional<tcomp::descriptor> d = tcomp::resolve_policy(text);
        if (!d) return 0;  // "fp32"
        tcomp::validate(*d);  // must not throw: the parser validates
        const std::string canonical = tcomp::spell(*d);
        const tcomp::descriptor again = tcomp::parse_descriptor(canonical);  // must not throw
        if (!(again == *d) || tcomp::spell(again) != canonical) std::abort();
    } catch (const tcomp::error&) {
    }
    return 0;
}
