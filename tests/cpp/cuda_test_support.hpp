// What the CUDA GoogleTest suites share: whether a device is present (a GPU, or the SIMT emulator's
// one), the skip of a test that needs it, and a device buffer copied from and to host vectors.
#pragma once

#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

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

// `count` elements of T in device memory (freed with it), optionally uploaded from a host vector.
template <class T> struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    if (n) {
      EXPECT_EQ(cudaSuccess, cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)));
    }
  }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) {
    if (n) {
      EXPECT_EQ(cudaSuccess, cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  ~Dev() {
    if (p) cudaFree(p);
  }
  Dev(const Dev&) = delete;
  std::vector<T> get() const {
    std::vector<T> h(n);
    if (n) {
      EXPECT_EQ(cudaSuccess, cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return h;
  }
};
