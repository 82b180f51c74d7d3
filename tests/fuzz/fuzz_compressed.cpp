// libFuzzer target for the compressed model reader (tcomp/io/compressed_model.hpp, format versions 1 and 2):
// any input must load or throw tcomp::error; every layer of a loaded file must then read (tensor()) and
// dequantize, or throw tcomp::error; ASan/UBSan report anything else.
// Build: tests/fuzz/CMakeLists.txt (TCOMP_BUILD_FUZZ=ON, clang++-14); run: scripts/test.sh, stage "fuzz".
#include <cstddef>
#include <cstdint>
#include <span>

#include <tcomp/io/compressed_model.hpp>

namespace {
volatile float fuzz_sink = 0.0f;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace io = tcomp::io;
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    try {
        const auto file = io::compressed_model_file::from_bytes(bytes, "<fuzz>");
        float sink = 0.0f;
        for (const auto& [name, info] : file.layers()) {
            // Bound the work per input: a header may claim a huge matrix whose data is tiny (it fails its size
            // checks), but a valid huge layer would only make the fuzzer slow.
            if (info.rows * info.cols > (tcomp::index_t{1} << 22)) continue;
            try {
                for (float v : file.floats(name)) sink += v;
            } catch (const tcomp::error&) {
            }
        }
        fuzz_sink = sink;
    } catch (const tcomp::error&) {
    }
    return 0;
}
