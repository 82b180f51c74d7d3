// libFuzzer target for the safetensors loader (tcomp/io/safetensors.hpp): any input must either load or throw
// tcomp::error; ASan/UBSan report any out-of-bounds read or undefined behaviour. A loaded file is also written
// back with safetensors_writer and must reload to the same tensors (the writer and the reader agree).
// Build: tests/fuzz/CMakeLists.txt (TCOMP_BUILD_FUZZ=ON, clang++-14); run: scripts/test.sh, stage "fuzz".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include <tcomp/io/safetensors.hpp>

namespace {
volatile float fuzz_sink = 0.0f;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace io = tcomp::io;
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    try {
        const auto file = io::safetensors_file::from_bytes(bytes, "<fuzz>");
        io::safetensors_writer writer;
        float sink = 0.0f;
        for (const auto& t : file.tensors()) {
            for (float v : io::to_float(t)) sink += v;
            if (!file.contains(t.name) || &file.tensor(t.name) != &t) std::abort();
            writer.add(t);
        }
        for (const auto& [k, v] : file.metadata()) writer.set_metadata(k, v);
        fuzz_sink = sink;  // keeps the conversions from being optimised away

        const auto copy = writer.to_bytes();
        const auto again = io::safetensors_file::from_bytes(copy, "<fuzz copy>");  // must not throw
        if (again.tensors().size() != file.tensors().size() || again.metadata() != file.metadata()) std::abort();
        for (const auto& t : file.tensors()) {
            const auto& u = again.tensor(t.name);
            if (u.type != t.type || u.shape != t.shape || u.data.size() != t.data.size()) std::abort();
            for (std::size_t i = 0; i < t.data.size(); ++i)
                if (u.data[i] != t.data[i]) std::abort();
        }
    } catch (const tcomp::error&) {
        // A rejected file: the expected outcome for most inputs.
    }
    return 0;
}
