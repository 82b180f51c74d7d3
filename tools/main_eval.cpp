// tcomp-eval MODEL [--compressed FILE] --data FILE: see model_tools.cpp.
#include "model_tools.hpp"

int main(int argc, char** argv) { return tcomp::tools::eval_main(argc, argv); }
