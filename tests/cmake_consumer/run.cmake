# Builds and runs tests/cmake_consumer both ways, CPU-only, in a fresh WORK_DIR:
#   1. configure fusedkd (no torch, no CUDA, no tests), cmake --install into WORK_DIR/prefix,
#      then the consumer with find_package(fusedkd CONFIG REQUIRED);
#   2. the consumer with add_subdirectory(fusedkd).
# Usage: cmake -DFUSEDKD_SOURCE_DIR=<repo> -DWORK_DIR=<dir> [-DGENERATOR=Ninja] [-DCXX=<compiler>] -P run.cmake
# ctest runs it as cmake_consumer (tests/cpp/CMakeLists.txt).
cmake_minimum_required(VERSION 3.24)
foreach(v FUSEDKD_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake needs -D${v}=...")
  endif()
endforeach()
set(_gen)
if(GENERATOR)
  set(_gen -G "${GENERATOR}")
endif()
set(_cxx)
if(CXX)
  set(_cxx -DCMAKE_CXX_COMPILER=${CXX})
endif()
set(_consumer ${FUSEDKD_SOURCE_DIR}/tests/cmake_consumer)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# Runs a command; on failure prints its output and stops.
function(step name)
  message(STATUS "[cmake_consumer] ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[cmake_consumer] ${name} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# 1. install + find_package
step("install fusedkd" ${CMAKE_COMMAND} -S ${FUSEDKD_SOURCE_DIR} -B ${WORK_DIR}/fusedkd-build ${_gen} ${_cxx}
     -DFUSEDKD_TORCH=OFF -DFUSEDKD_CUDA=OFF -DFUSEDKD_BUILD_TESTS=OFF -DFUSEDKD_BUILD_BENCHMARKS=OFF
     -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
step("install fusedkd (cmake --install)" ${CMAKE_COMMAND} --install ${WORK_DIR}/fusedkd-build)
step("package: configure" ${CMAKE_COMMAND} -S ${_consumer} -B ${WORK_DIR}/package ${_gen} ${_cxx}
     -DFUSEDKD_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
step("package: build" ${CMAKE_COMMAND} --build ${WORK_DIR}/package)
step("package: run" ${WORK_DIR}/package/fusedkd_consumer)
message(STATUS "${last_output}")

# 2. add_subdirectory
step("subdirectory: configure" ${CMAKE_COMMAND} -S ${_consumer} -B ${WORK_DIR}/subdirectory ${_gen} ${_cxx}
     -DFUSEDKD_CONSUMER_MODE=subdirectory -DFUSEDKD_SOURCE_DIR=${FUSEDKD_SOURCE_DIR})
step("subdirectory: build" ${CMAKE_COMMAND} --build ${WORK_DIR}/subdirectory)
step("subdirectory: run" ${WORK_DIR}/subdirectory/fusedkd_consumer)
message(STATUS "${last_output}")
