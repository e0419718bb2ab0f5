# What a CUDA consumer of fusedkd's CUDA headers (fusedkd/cuda/*.cuh) needs, shared by the build
# tree (cmake/FusedkdCuda.cmake: target fusedkd_cuda, alias fusedkd::cuda) and the installed
# package (fusedkdConfig.cmake: imported target fusedkd::cuda). Needs find_package(CUDAToolkit).
function(fusedkd_cuda_usage target core)
  target_link_libraries(${target} INTERFACE ${core} CUDA::cudart_static)
  # CUB and cuda/std live under include/cccl in CUDA 13; only nvcc adds that path by itself.
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    if(EXISTS "${_dir}/cccl")
      target_include_directories(${target} INTERFACE "${_dir}/cccl")
      break()
    endif()
  endforeach()
  target_compile_options(${target} INTERFACE "$<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr;-lineinfo>")
endfunction()
