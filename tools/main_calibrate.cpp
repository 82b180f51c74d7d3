// tcomp-calibrate MODEL --data FILE -o STATS: see model_tools.cpp.
#include "model_tools.hpp"

int main(int argc, char** argv) { return tcomp::tools::calibrate_main(argc, argv); }
