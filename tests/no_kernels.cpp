// CTest test cpu.no_kernels_warning: a program linked with tcomp::tcomp only (no per-ISA objects of tcomp::cpu).
// kernels_linked() is false, only the reference path exists, and pack() prints the warning that names
// tcomp::cpu to stderr exactly once however often it packs; matmul still runs (on the scalar oracle).
// Exit 0 when all of that holds.
#include <cstdio>
#include <string>

#include "tcomp/matmul.hpp"
#include "tcomp/quant/presets.hpp"

int main() {
    using namespace tcomp;
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
        failures += ok ? 0 : 1;
    };
    check(!cpu::kernels_linked(), "kernels_linked() is false without tcomp::cpu");
    check(cpu::available_paths().size() == 1 && cpu::active_path() == cpu::isa_path::reference,
          "only the reference path is available");

    // Capture stderr while packing twice.
    const std::string log = "no_kernels_stderr.txt";
    std::fflush(stderr);
    if (std::freopen(log.c_str(), "w", stderr) == nullptr) {
        std::printf("FAILED: cannot redirect stderr to %s\n", log.c_str());
        return 1;
    }
    dense_matrix<float> w(64, 256), x(3, 256);
    for (index_t r = 0; r < 64; ++r)
        for (index_t c = 0; c < 256; ++c) w(r, c) = float((r * 7 + c * 13) % 31 - 15) / 16.0f;
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 256; ++c) x(r, c) = float((r * 5 + c * 3) % 17 - 8) / 8.0f;
    const auto compressed = compress<presets::w4a8>(w.view());
    const auto first = cpu::pack(compressed);
    const auto second = cpu::pack(compressed);
    dense_matrix<float> y(3, 64);
    matmul(x.view(), second, y.view());
    std::fflush(stderr);
    std::string captured;
    if (std::FILE* in = std::fopen(log.c_str(), "r")) {
        char buffer[512];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, in)) > 0;) captured.append(buffer, n);
        std::fclose(in);
    }
    std::remove(log.c_str());
    std::printf("captured stderr: %s", captured.c_str());
    check(captured == cpu::detail::no_kernels_warning, "pack() warned exactly once, naming tcomp::cpu");
    check(captured.find("tcomp::cpu") != std::string::npos, "the warning names the target tcomp::cpu");

    const dense_matrix<float> reference = matmul(x.view(), compressed);
    bool same = true;
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 64; ++c) same = same && y(r, c) == reference(r, c);
    check(same && first.rows() == 64, "matmul on the packed weights equals the reference");
    return failures == 0 ? 0 : 1;
}
