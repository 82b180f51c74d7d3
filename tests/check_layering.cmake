# The layering of include/tcomp (docs/design.md, "Layering"), checked on every #include "tcomp/...":
#   cmake -DROOT=<dir holding tcomp/> -P check_layering.cmake
# Each folder may include the folders listed for it and nothing else; the back ends under kernel/ do not include
# each other. Fails with one line per violation, naming the header, the include and the rule.
if(NOT ROOT)
  message(FATAL_ERROR "check_layering: pass -DROOT=<directory that holds tcomp/>")
endif()

cmake_minimum_required(VERSION 3.21)
get_filename_component(ROOT "${ROOT}" ABSOLUTE)
set(_low core format sparse quant)
set(allowed_core core)
set(allowed_format core format)
set(allowed_sparse core format sparse)
set(allowed_quant ${_low})
set(allowed_metrics core metrics)
set(allowed_calib ${_low} calib)                         # calibration methods: on the quantization engine
set(allowed_kernel ${_low} kernel)                       # kernel/*.hpp: shared by the back ends
set(allowed_kernel/reference ${_low} kernel kernel/reference)
set(allowed_kernel/cpu ${_low} kernel kernel/cpu)
set(allowed_kernel/cuda ${_low} kernel kernel/cuda)
set(allowed_front ${_low} kernel kernel/reference kernel/cpu kernel/cuda front)   # matmul.hpp, eigen.hpp
set(allowed_io ${_low} metrics calib io)
set(allowed_model ${_low} metrics calib kernel kernel/reference kernel/cpu kernel/cuda front io model)

# The layer of a path under tcomp/: "kernel/cpu" for kernel/cpu/x.hpp, "kernel" for kernel/x.hpp, "front" for
# the top-level headers (tcomp.hpp, the umbrella, is exempt).
function(layer_of path out)
  if(path MATCHES "^kernel/([a-z_]+)/")
    set(${out} "kernel/${CMAKE_MATCH_1}" PARENT_SCOPE)
  elseif(path MATCHES "^([a-z_]+)/")
    set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
  else()
    set(${out} "front" PARENT_SCOPE)
  endif()
endfunction()

file(GLOB_RECURSE headers RELATIVE "${ROOT}/tcomp" "${ROOT}/tcomp/*.hpp" "${ROOT}/tcomp/*.cuh")
set(violations 0)
foreach(h IN LISTS headers)
  if(h STREQUAL "tcomp.hpp")
    continue()
  endif()
  layer_of("${h}" from)
  if(NOT DEFINED allowed_${from})
    message(SEND_ERROR "check_layering: tcomp/${h}: folder '${from}' has no rule in check_layering.cmake")
    math(EXPR violations "${violations} + 1")
    continue()
  endif()
  file(STRINGS "${ROOT}/tcomp/${h}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]tcomp/")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[\"<]tcomp/([^\">]+)[\">].*$" "\\1" target "${line}")
    layer_of("${target}" to)
    if(NOT to IN_LIST allowed_${from})
      message(SEND_ERROR "check_layering: tcomp/${h} includes tcomp/${target}: '${from}' may include only "
                         "${allowed_${from}}")
      math(EXPR violations "${violations} + 1")
    endif()
  endforeach()
endforeach()
list(LENGTH headers n)
if(violations GREATER 0)
  message(FATAL_ERROR "check_layering: ${violations} include(s) against the layering, in ${n} headers")
endif()
message(STATUS "check_layering: ${n} headers, every include points down")
