// Catch2 main() for tcomp_tests, compiled once into the tcomp_catch_main library.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
