# compile_fail.cmake - run by CTest as `cmake -D... -P compile_fail.cmake`.
#
# Passes only if compiling SOURCE FAILS *and* the compiler output matches the
# regex given on the first line of SOURCE:
#
#     // expect: <CMake regex>
#
# Inputs (-D):
#   COMPILER   the C++ compiler
#   SOURCE     the file that must not compile
#   INCLUDES   include directories, separated by '|'
#   FLAGS      extra flags, separated by '|' (optional)

foreach(var COMPILER SOURCE INCLUDES)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compile_fail.cmake: ${var} is not set")
  endif()
endforeach()

if(NOT EXISTS "${SOURCE}")
  message(FATAL_ERROR "compile_fail.cmake: ${SOURCE} does not exist")
endif()

# The expectation is the first line of the file: "// expect: <regex>".
file(READ "${SOURCE}" _head LIMIT 4096)
string(REGEX MATCH "^[^\n]*" _first_line "${_head}")
string(REGEX REPLACE "\r$" "" _first_line "${_first_line}")
if(NOT _first_line MATCHES "^//[ \t]*expect:[ \t]*(.+)$")
  message(FATAL_ERROR
    "compile_fail.cmake: the first line of ${SOURCE} must be `// expect: <regex>`, got:\n  ${_first_line}")
endif()
string(STRIP "${CMAKE_MATCH_1}" _expect)

set(_args -fsyntax-only -std=c++20 -fdiagnostics-color=never)
string(REPLACE "|" ";" _includes "${INCLUDES}")
foreach(dir IN LISTS _includes)
  if(dir)
    list(APPEND _args "-I${dir}")
  endif()
endforeach()
if(DEFINED FLAGS AND NOT FLAGS STREQUAL "")
  string(REPLACE "|" ";" _flags "${FLAGS}")
  list(APPEND _args ${_flags})
endif()

# LC_ALL=C: plain ASCII quotes in diagnostics, whatever the user's locale.
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env LC_ALL=C "${COMPILER}" ${_args} "${SOURCE}"
  RESULT_VARIABLE _rc
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE  _out
  TIMEOUT 300)

if(_rc EQUAL 0)
  message(FATAL_ERROR
    "compile_fail: ${SOURCE} COMPILED, but it must not.\n"
    "expected a diagnostic matching: ${_expect}")
endif()
if(NOT _out MATCHES "${_expect}")
  message(FATAL_ERROR
    "compile_fail: ${SOURCE} failed to compile (as it should), but the output "
    "does not match the expected regex.\n"
    "expected: ${_expect}\n"
    "compiler exit: ${_rc}\n"
    "---- compiler output ----\n${_out}")
endif()
message(STATUS "compile_fail: ${SOURCE} failed as expected (matched `${_expect}`)")
