# Decides whether the CUDA executor is built and with which architectures.
#   FUSEDKD_CUDA=AUTO|ON|OFF      AUTO builds it when nvcc is found (never asks for a GPU).
#   FUSEDKD_CUDA_ARCHS            CMAKE_CUDA_ARCHITECTURES list; default "80-real;90-real;90-virtual"
#                                 (A100, H100, and PTX for later GPUs); "native" on a GPU machine.
set(FUSEDKD_HAS_CUDA OFF)
if(NOT FUSEDKD_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER)
    check_language(CUDA)
  endif()
  if(CMAKE_CUDA_COMPILER)
    set(FUSEDKD_CUDA_ARCHS "80-real;90-real;90-virtual" CACHE STRING "CUDA architectures for fusedkd kernels")
    set(CMAKE_CUDA_ARCHITECTURES ${FUSEDKD_CUDA_ARCHS})
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(FUSEDKD_HAS_CUDA ON)
    message(STATUS "fusedkd: CUDA executor ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${FUSEDKD_CUDA_ARCHS})")
  elseif(FUSEDKD_CUDA STREQUAL "ON")
    message(FATAL_ERROR "fusedkd: FUSEDKD_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "fusedkd: no CUDA compiler found, CUDA executor skipped")
  endif()
endif()

if(FUSEDKD_HAS_CUDA)
  include(fusedkdCudaTarget)  # the same definition the installed package uses
  add_library(fusedkd_cuda INTERFACE)
  add_library(fusedkd::cuda ALIAS fusedkd_cuda)
  fusedkd_cuda_usage(fusedkd_cuda fusedkd)
endif()
