// What the CUDA GoogleTest suites share: whether a device is present (a GPU, or the SIMT emulator's
// one), and the skip of a test that needs it.
#pragma once

#include <gtest/gtest.h>

#include <cuda_runtime.h>

inline bool has_cuda_device() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

#define SKIP_WITHOUT_GPU()                                                                         \
  do {                                                                                             \
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device: the CUDA executor tests need a GPU"; \
  } while (0)
