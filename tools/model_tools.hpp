// The command-line tools (tcomp-quantize, tcomp-inspect, tcomp-calibrate, tcomp-eval, tcomp-mixed), compiled once into the
// static library tcomp_tools (tcomp_quantize.cpp, tcomp_inspect.cpp, model_tools.cpp as one unity TU): each
// executable is a one-line main (main_<tool>.cpp), so the models, the files and the calibration code are
// compiled once per build, not once per tool.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tcomp::tools {

namespace model_cli {

/// A TAEF2 decoder directory (config.json names the taesd-decoder architecture).
bool is_taef2_dir(const std::filesystem::path& p);

/// Latents of a TAEF2 data file ("latents", N x C x H x W float), rows A..B-1 of "A:B" ("": all).
struct latent_data {
    std::vector<float> values;
    std::int64_t first = 0, n = 0, c = 0, h = 0, w = 0;
};
latent_data read_latents(const std::filesystem::path& path, const std::string& rows, std::int64_t channels);

}  // namespace model_cli

int quantize_main(int argc, char** argv);
int inspect_main(int argc, char** argv);
int calibrate_main(int argc, char** argv);
int eval_main(int argc, char** argv);
int mixed_main(int argc, char** argv);

}  // namespace tcomp::tools
