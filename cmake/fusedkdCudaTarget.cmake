# What a CUDA consumer of fusedkd's CUDA headers (fusedkd/cuda/*.cuh) needs, shared by the build
# tree (cmake/FusedkdCuda.cmake: target fusedkd_cuda, alias fusedkd::cuda) and the installed
# package (fusedkdConfig.cmake: imported target fusedkd::cuda). Needs find_package(CUDAToolkit).
function(fusedkd_cuda_usage target core)
  target_link_libraries(${target} INTERFACE ${core} CUDA::cudart_static)
  # No CCCL include path: the headers use no CUB (docs/cuda.md, "Why not cub::BlockReduce").
  target_compile_options(${target} INTERFACE "$<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr;-lineinfo>")
endfunction()
