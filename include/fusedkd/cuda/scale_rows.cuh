// CUDA executor of the gradient scaling in scale_rows.hpp (g ← f_i · g row by row, rows whose
// factor is 1 untouched): autograd's backward of a fused loss, whose forward already wrote
// ∂loss/∂student for an upstream gradient of 1. The factor is read on the device, so the host
// never synchronizes; with f = 1 the kernel reads the factors and writes nothing.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../error.hpp"
#include "../scale_rows.hpp"
#include "common.cuh"
#include "launch_kernel.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

struct ScaleRowsTraits {
  static constexpr int kThreads = 256;
  // Grid-stride beyond this: 1024 blocks of 256 threads are about the resident threads of a
  // 132-SM H100 (2048 per SM).
  static constexpr int kMaxBlocks = 1024;
};

// `lanes` threads per row (a power of two ≤ kThreads), kThreads / lanes rows per block.
template <class T, class A>
__global__ void __launch_bounds__(ScaleRowsTraits::kThreads)
    scale_rows_kernel(T* g, std::int64_t row_stride, std::int64_t rows, std::int64_t cols, RowFactors<A> f, int lanes) {
  if (f.stride == 0 && f(0) == A(1)) return;  // one factor for the batch, and it is 1
  const int rows_per_block = ScaleRowsTraits::kThreads / lanes;
  const int lane = int(threadIdx.x) % lanes;
  const std::int64_t step = std::int64_t(gridDim.x) * rows_per_block;
  for (std::int64_t i = std::int64_t(blockIdx.x) * rows_per_block + int(threadIdx.x) / lanes; i < rows; i += step) {
    const A fi = f(i);
    if (fi == A(1)) continue;
    T* row = g + i * row_stride;
    for (std::int64_t j = lane; j < cols; j += lanes) row[j] = scale_elem(row[j], fi);
  }
}

// Enqueues g[i, j] ← f(i) · g[i, j] on `stream`. g: device pointer, columns contiguous, rows
// `row_stride` elements apart; f.data: device pointer (f.stride 0: one factor).
template <class T, class A>
void scale_rows(T* g, std::int64_t row_stride, std::int64_t rows, std::int64_t cols, RowFactors<A> f,
                cudaStream_t stream) {
  require(rows >= 0 && cols >= 0, "grad: negative size");
  require(f.stride >= 0, "grad_output: negative stride");
  if (rows == 0 || cols == 0) return;
  require(g != nullptr && f.data != nullptr, "scale_rows: null pointer");
  require(rows <= 1 || row_stride >= cols, "grad: row stride < C");
  using Traits = ScaleRowsTraits;
  const int lanes = int(std::min<std::int64_t>(pow2_ceil_int(cols), Traits::kThreads));
  const std::int64_t rows_per_block = Traits::kThreads / lanes;
  const std::int64_t blocks = std::min<std::int64_t>((rows + rows_per_block - 1) / rows_per_block, Traits::kMaxBlocks);
  launch_kernel<Traits::kThreads>("scale_rows_kernel", &scale_rows_kernel<T, A>, unsigned(blocks), Traits::kThreads,
                                  stream, g, row_stride, rows, cols, f, lanes);
  check_cuda(cudaGetLastError(), "scale_rows_kernel launch");
}

}  // namespace fusedkd::cuda
