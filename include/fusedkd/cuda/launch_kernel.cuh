// The one way the executor launches a kernel: launch_kernel<MaxThreads>(name, kernel, grid, block,
// stream, args...). MaxThreads is the kernel's __launch_bounds__ (the same traits constant), so
// every build checks the block size on the host and throws fusedkd::Error with the kernel's name
// instead of a launch failing with "too many resources requested". The arguments are converted
// to the kernel's own parameter types (a function template over them, not a void* array, keeps
// them checked).
//
// nvcc builds launch through cudaLaunchKernelEx (captured by CUDA graphs like <<<...>>>); the
// emulation build (FUSEDKD_SIMT) runs the same kernel on the host's fibers (tests/support/simt).
// No other file of include/fusedkd/cuda uses the <<<...>>> syntax, so both compile the same source.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "../error.hpp"
#include "common.cuh"

namespace fusedkd::cuda {

// Throws unless `block` fits the kernel's __launch_bounds__(MaxThreads). Grid limits are the
// runtime's to check (cudaErrorInvalidConfiguration, also in the emulator).
template <int MaxThreads> inline void check_launch(const char* kernel, dim3 block) {
  static_assert(MaxThreads >= 1 && MaxThreads <= 1024, "__launch_bounds__ must be in [1, 1024]");
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  require(threads >= 1 && threads <= (unsigned long long)MaxThreads,
          std::string(kernel) + ": a block of " + std::to_string(threads) + " threads exceeds the kernel's " +
              "__launch_bounds__(" + std::to_string(MaxThreads) + ")");
}

template <int MaxThreads, class... Params, class... Args>
inline void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                          Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch_kernel: wrong number of kernel arguments");
  check_launch<MaxThreads>(name, block);
#if defined(FUSEDKD_SIMT)
  simt::launch(name, kernel, grid, block, stream, Params(std::forward<Args>(args))...);
  check_cuda(cudaGetLastError(), name);  // a failed emulated launch stops here, like a failed launch call
#else
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  check_cuda(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), name);
#endif
}

}  // namespace fusedkd::cuda
