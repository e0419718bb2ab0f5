# The torch extension fusedkd._C, built against libtorch's stable ABI (torch >= 2.10).
#
# Torch is located through the Python interpreter (torch.utils.cmake_prefix_path), not through
# find_package(Torch): the stable ABI needs only torch's headers and libtorch_cpu's C shims, and
# skipping TorchConfig.cmake avoids its CUDA/cuDNN discovery, which would tie the build to the
# CUDA version torch was built with.
set(FUSEDKD_HAS_TORCH OFF)
if(FUSEDKD_TORCH STREQUAL "OFF")
  return()
endif()

find_package(Python3 COMPONENTS Interpreter REQUIRED)
execute_process(
  COMMAND ${Python3_EXECUTABLE} -c "import torch, os; print(os.path.dirname(torch.__file__)); print(torch.__version__)"
  OUTPUT_VARIABLE _torch_out RESULT_VARIABLE _torch_rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  if(FUSEDKD_TORCH STREQUAL "ON")
    message(FATAL_ERROR "fusedkd: FUSEDKD_TORCH=ON but 'import torch' failed for ${Python3_EXECUTABLE}")
  endif()
  message(STATUS "fusedkd: torch not importable from ${Python3_EXECUTABLE}, extension skipped")
  return()
endif()
string(REPLACE "\n" ";" _torch_out "${_torch_out}")
list(GET _torch_out 0 FUSEDKD_TORCH_DIR)
list(GET _torch_out 1 FUSEDKD_TORCH_VERSION)
message(STATUS "fusedkd: building the torch extension against torch ${FUSEDKD_TORCH_VERSION} (${FUSEDKD_TORCH_DIR})")

find_library(FUSEDKD_TORCH_CPU_LIB torch_cpu PATHS ${FUSEDKD_TORCH_DIR}/lib NO_DEFAULT_PATH REQUIRED)

# Stable-ABI floor: torch 2.10 (0x020a << 48). One binary loads under every torch from there up.
set(FUSEDKD_TORCH_TARGET_VERSION "0x020a000000000000")

set(_src ${CMAKE_CURRENT_SOURCE_DIR})
set(_fusedkd_ext_sources ${_src}/bindings/ops_cpu.cpp ${_src}/bindings/library.cpp)
if(FUSEDKD_HAS_CUDA AND EXISTS ${_src}/bindings/ops_cuda.cpp)
  file(GLOB _fusedkd_cuda_kernels CONFIGURE_DEPENDS ${_src}/kernels/*.cu)
  list(APPEND _fusedkd_ext_sources ${_src}/bindings/ops_cuda.cpp ${_fusedkd_cuda_kernels})
  set(FUSEDKD_TORCH_CUDA ON)
endif()

add_library(fusedkd_torch MODULE ${_fusedkd_ext_sources})
set_target_properties(fusedkd_torch PROPERTIES OUTPUT_NAME "_C" PREFIX "" CXX_VISIBILITY_PRESET hidden
                                               CUDA_VISIBILITY_PRESET hidden)
target_include_directories(fusedkd_torch PRIVATE ${FUSEDKD_TORCH_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/bindings)
target_compile_definitions(fusedkd_torch PRIVATE TORCH_TARGET_VERSION=${FUSEDKD_TORCH_TARGET_VERSION}
                                                 $<$<BOOL:${FUSEDKD_TORCH_CUDA}>:FUSEDKD_WITH_CUDA>)
target_link_libraries(fusedkd_torch PRIVATE fusedkd ${FUSEDKD_TORCH_CPU_LIB})
if(FUSEDKD_TORCH_CUDA)
  target_link_libraries(fusedkd_torch PRIVATE fusedkd_cuda)
endif()
# Find libtorch_cpu next to torch at run time (the extension is loaded after `import torch`).
set_target_properties(fusedkd_torch PROPERTIES INSTALL_RPATH "$ORIGIN/../torch/lib" BUILD_RPATH "${FUSEDKD_TORCH_DIR}/lib")
set(FUSEDKD_HAS_TORCH ON)

if(SKBUILD)
  install(TARGETS fusedkd_torch LIBRARY DESTINATION fusedkd)
endif()
