# Runs one tool command for CTest and checks its exit status and output.
#   cmake -DCOMMAND=<exe|arg|arg...> -DEXPECT_EXIT=<n|nonzero> [-DEXPECT_OUTPUT=<regex>] [-DREQUIRE_PATH=<path>]
#         -P check_tool.cmake
# Arguments are '|'-separated so that paths with ';' survive. stdout and stderr are matched together.
# REQUIRE_PATH (e.g. a shared model): when it does not exist, prints "SKIPPED: ..." and runs nothing (the test's
# SKIP_REGULAR_EXPRESSION then reports it as skipped) - except under CI (CI=true) or TCOMP_REQUIRE_MODELS=1,
# where the models are always present, so a missing one is a failure naming the path (as the unit tests do).
if(DEFINED REQUIRE_PATH AND NOT EXISTS "${REQUIRE_PATH}")
  if("$ENV{CI}" STREQUAL "true" OR "$ENV{TCOMP_REQUIRE_MODELS}" STREQUAL "1")
    message(FATAL_ERROR "${REQUIRE_PATH} not found, and CI requires the models")
  endif()
  message("SKIPPED: ${REQUIRE_PATH} not found")
  return()
endif()
string(REPLACE "|" ";" _command "${COMMAND}")
execute_process(COMMAND ${_command} RESULT_VARIABLE _exit OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
message("${_out}${_err}")
if(EXPECT_EXIT STREQUAL "nonzero")
  if(_exit EQUAL 0)
    message(FATAL_ERROR "expected a non-zero exit status, got 0")
  endif()
elseif(NOT _exit STREQUAL EXPECT_EXIT)
  message(FATAL_ERROR "expected exit status ${EXPECT_EXIT}, got ${_exit}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT "${_out}${_err}" MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "output does not match '${EXPECT_OUTPUT}'")
endif()
