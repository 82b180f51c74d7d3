// tcomp-mixed T2I_DIR --budget B -o RECIPE: see mixed_tool.cpp.
#include "model_tools.hpp"

int main(int argc, char** argv) { return tcomp::tools::mixed_main(argc, argv); }
