// The command-line tools (tcomp-quantize, tcomp-inspect, tcomp-calibrate, tcomp-eval, tcomp-mixed), compiled once into the
// static library tcomp_tools (tcomp_quantize.cpp, tcomp_inspect.cpp, model_tools.cpp as one unity TU): each
// executable is a one-line main (main_<tool>.cpp), so the models, the files and the calibration code are
// compiled once per build, not once per tool.
#pragma once

namespace tcomp::tools {

int quantize_main(int argc, char** argv);
int inspect_main(int argc, char** argv);
int calibrate_main(int argc, char** argv);
int eval_main(int argc, char** argv);
int mixed_main(int argc, char** argv);

}  // namespace tcomp::tools
