// Batch-level kernels: counting the rows that count (before any gradient is written, so the
// batchmean scale 1/N_counted is known on the device without a host synchronization), and the
// deterministic reduction of the per-row losses (fixed-order tree in fp64, no atomics).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../reduction.hpp"
#include "common.cuh"
#include "reduce.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

constexpr int kBatchThreads = 1024;

// header->counted = #{i : label_i != ignore_index} (all rows without labels),
// header->scale = reduction_scale(reduction, counted). One block.
template <class A>
__global__ void __launch_bounds__(kBatchThreads)
    count_rows_kernel(const void* labels, int labels_int32, std::int64_t ignore_index, std::int64_t rows, int reduction,
                      BatchHeader<A>* header) {
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(long long)>);
  long long n = 0;
  for (std::int64_t i = threadIdx.x; i < rows; i += blockDim.x)
    n += (labels == nullptr || read_label(labels, labels_int32, i) != ignore_index) ? 1 : 0;
  n = block_all_reduce(n, storage);
  if (threadIdx.x == 0) {
    header->counted = n;
    header->scale = reduction_scale<A>(Reduction(reduction), std::int64_t(n));
  }
}

// out[0] = A(Σ_i row_loss[i] · scale), the sum in fp64 over a fixed tree; scale from the header
// when given (batchmean), else 1. One block.
template <class A>
__global__ void __launch_bounds__(kBatchThreads)
    reduce_rows_kernel(const A* row_loss, std::int64_t rows, const BatchHeader<A>* header, A* out) {
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(double)>);
  double acc = 0.0;
  for (std::int64_t i = threadIdx.x; i < rows; i += blockDim.x) acc += double(row_loss[i]);
  acc = block_all_reduce(acc, storage);
  if (threadIdx.x == 0) out[0] = A(acc * double(header ? header->scale : A(1)));
}

}  // namespace fusedkd::cuda
