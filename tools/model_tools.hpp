// The calibration and evaluation commands (tcomp-calibrate, tcomp-eval), compiled once into the static library
// tcomp_model_tools (model_tools.cpp): each executable is a one-line main, so the models and the calibration
// code are compiled once per build, not once per tool.
#pragma once

namespace tcomp::tools {

int calibrate_main(int argc, char** argv);
int eval_main(int argc, char** argv);

}  // namespace tcomp::tools
