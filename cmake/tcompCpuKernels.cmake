# tcomp's CPU SIMD kernels are header templates instantiated once per ISA path in a small translation unit
# compiled with that path's flags (src/cpu/<path>.cpp). This module builds those units for a consumer:
#
#   tcomp_add_cpu_kernels(<name> <source-dir> [LINK <libs>...])
#
# creates the INTERFACE target <name> that links tcomp::tcomp plus the per-path object files; whatever links
# <name> gets run-time ISA dispatch (tcomp/kernel/cpu/dispatch.hpp). Objects are linked directly (not through
# a static archive) because each unit registers itself from a static initialiser that nothing references.
# The units are written with xsimd: the imported target xsimd must exist (find_package(xsimd 8); the package
# config finds it). Non-x86 or non-GCC/Clang toolchains get <name> without SIMD paths (the scalar reference
# runs, and pack() warns once that no SIMD kernels are linked).

function(tcomp_add_cpu_kernels name source_dir)
  cmake_parse_arguments(ARG "" "" "LINK" ${ARGN})
  add_library(${name} INTERFACE)
  target_link_libraries(${name} INTERFACE tcomp::tcomp)

  set(_x86 OFF)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
    set(_x86 ON)
  endif()
  if(NOT _x86 OR NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(STATUS "tcomp: no SIMD CPU paths for ${CMAKE_SYSTEM_PROCESSOR} / ${CMAKE_CXX_COMPILER_ID}")
    return()
  endif()

  if(NOT TARGET xsimd)
    message(FATAL_ERROR "tcomp_add_cpu_kernels: the per-ISA kernels need xsimd 8: call find_package(xsimd 8) first")
  endif()

  # Per path: the flags its kernels may use. -ffp-contract=off keeps the float epilogue's multiply and add
  # separate, as the oracle's, so integer paths match it bit for bit.
  set(_flags_sse41       -msse4.1)
  set(_flags_avx2        -mavx2 -mfma -mf16c -mpopcnt)
  set(_flags_avx_vnni    -mavx2 -mfma -mf16c -mpopcnt -mavxvnni)
  set(_flags_avx512bw    -mavx2 -mfma -mf16c -mpopcnt -mavx512f -mavx512bw -mavx512dq -mavx512vl)
  set(_flags_avx512_vnni -mavx2 -mfma -mf16c -mpopcnt -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni)

  foreach(path sse41 avx2 avx_vnni avx512bw avx512_vnni)
    set(_obj ${name}_${path})
    add_library(${_obj} OBJECT ${source_dir}/${path}.cpp)
    target_link_libraries(${_obj} PRIVATE tcomp::tcomp xsimd ${ARG_LINK})
    target_compile_options(${_obj} PRIVATE ${_flags_${path}} -ffp-contract=off)
    set_target_properties(${_obj} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_sources(${name} INTERFACE $<TARGET_OBJECTS:${_obj}>)
  endforeach()
endfunction()
