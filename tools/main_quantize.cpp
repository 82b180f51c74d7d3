// tcomp-quantize IN OUT --recipe R.json [--stats S] [--method M] [--verify]: see tcomp_quantize.cpp.
#include "model_tools.hpp"

int main(int argc, char** argv) { return tcomp::tools::quantize_main(argc, argv); }
