// tcomp-inspect FILE: see tcomp_inspect.cpp.
#include "model_tools.hpp"

int main(int argc, char** argv) { return tcomp::tools::inspect_main(argc, argv); }
