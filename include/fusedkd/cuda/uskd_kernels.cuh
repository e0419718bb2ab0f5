// USKD on the GPU (not row-local): four launches.
//   1. uskd_stats (Group for C ≤ 1024, Block beyond): per row, one pass of USKDStats over s and
//      w, then uskd_row_stats() → row_stats[i] in the workspace.
//   2. uskd_batch (one block): N_counted, the gradient scale, mean of u over counted rows (fp64,
//      fixed order) and H_C (fp64).
//   3. uskd_rank (grid rows × ceil(C/1024), 256 threads): the block's 1024 columns get their
//      rank in the row's descending score order by counting, over tiles of 2048 scores in shared
//      memory, how many classes sort before them (uskd_rank_before: ties to the lower index);
//      rank_y likewise with a block reduction. Then both gradients and the block's part of the
//      non-target term, NT partial sums to the workspace. O(C²) comparisons per row, spread over
//      C/1024 blocks: exact ranks with no sort and no extra memory.
//   4. uskd_row_loss: ℓ_i = α T + β Σ NT partials (chunk order) + W; then the common reduction.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../losses/uskd.hpp"
#include "../reduction.hpp"
#include "batch_kernels.cuh"
#include "common.cuh"
#include "reduce.cuh"
#include "row_kernels.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

struct USKDKernelTraits {
  static constexpr int kThreads = 256;
  static constexpr int kColsPerThread = 4;
  static constexpr std::int64_t kChunk = std::int64_t(kThreads) * kColsPerThread;  // columns per block
  static constexpr int kTile = 2048;                                               // scores in shared memory
  static constexpr int kRowLossThreads = 256;                                      // uskd_row_loss: one row per thread
};

template <class T, class A> struct USKDArgs {
  const T* s = nullptr;
  std::int64_t s_stride = 0;
  const T* w = nullptr;
  std::int64_t w_stride = 0;
  const void* labels = nullptr;
  int labels_int32 = 0;
  std::int64_t ignore_index = -100;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  A* row_loss = nullptr;
  grad_t<T>* grad_s = nullptr;  // grad_t: float32 for float16 logits
  std::int64_t gs_stride = 0;
  grad_t<T>* grad_w = nullptr;
  std::int64_t gw_stride = 0;
  BatchHeader<A>* header = nullptr;
  int reduction = 0;
  int vec = 0;
  int group_width = 32;
  int splits = 1;               // rank kernel: blocks per row
  A* nt_partials = nullptr;     // [rows * splits]
  USKDRowStats<A>* row_stats = nullptr;  // [rows]
};

// Pass 1 on a worker.
template <class T, class A, class Worker>
__device__ __forceinline__ void uskd_stats_row(const USKDParams& p, const USKDArgs<T, A>& a, std::int64_t i,
                                               const Worker& wk) {
  constexpr int K = VecWidth<T, T>::K;
  long long y;
  const RowKind kind = classify_row<true>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  const bool active = kind == RowKind::Normal;
  const T* s = a.s + (kind == RowKind::Absent ? 0 : i * a.s_stride);
  const T* w = a.w + (kind == RowKind::Absent ? 0 : i * a.w_stride);
  USKDStats<A> st;
  if (active)
    for_cols<K, A>(s, w, 0, a.cols, wk.lane, wk.width, a.vec != 0, [&](long long j, A sj, A wj) { st.push(y, j, sj, wj); });
  st = wk.all_reduce(st);
  if (kind == RowKind::Absent || wk.lane != 0) return;
  USKDRowStats<A> r{};
  if (active) {
    r = uskd_row_stats(p, st, A(load_elem(s + y)), A(load_elem(w + y)), a.cols);
  } else if (kind == RowKind::BadLabel) {
    const A nan = quiet_nan<A>();
    r = USKDRowStats<A>{nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan};
  }
  a.row_stats[i] = r;
}

template <class T, class A>
__global__ void __launch_bounds__(GroupKernelTraits::kThreads) uskd_stats_group_kernel(const USKDParams p,
                                                                                       const USKDArgs<T, A> a) {
  const int G = a.group_width;
  const GroupWorker w{int(threadIdx.x) & (G - 1), G};
  uskd_stats_row(p, a, std::int64_t(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G, w);
}

template <class T, class A>
__global__ void __launch_bounds__(BlockKernelTraits::kMaxThreads) uskd_stats_block_kernel(const USKDParams p,
                                                                                          const USKDArgs<T, A> a) {
  using Storage = BlockReduceStorage<sizeof(USKDStats<A>)>;
  FUSEDKD_SHARED(storage, Storage);
  const BlockWorker<Storage> w{int(threadIdx.x), int(blockDim.x), &storage};
  uskd_stats_row(p, a, std::int64_t(blockIdx.x), w);
}

// Σ u over counted rows, their number, and Σ 1/k: merged in the batch kernel's fixed tree.
struct USKDBatchAcc {
  double u;
  long long n;
  double h;
  __device__ __forceinline__ void merge(const USKDBatchAcc& o) {
    u += o.u;
    n += o.n;
    h += o.h;
  }
};

// Counted rows, scale, mean u, H_C. One block.
template <class T, class A>
__global__ void __launch_bounds__(kBatchThreads) uskd_batch_kernel(const USKDArgs<T, A> a) {
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(USKDBatchAcc)>);
  USKDBatchAcc acc{0.0, 0, 0.0};
  for (std::int64_t i = threadIdx.x; i < a.rows; i += blockDim.x) {
    if (read_label(a.labels, a.labels_int32, i) == a.ignore_index) continue;
    acc.u += double(a.row_stats[i].u);
    acc.n += 1;
  }
  // H_C = Σ_{k=1}^{C} 1/k, each thread from its large k down, then the fixed tree.
  for (std::int64_t k = a.cols - std::int64_t(threadIdx.x); k >= 1; k -= blockDim.x) acc.h += 1.0 / double(k);
  acc = block_all_reduce(acc, storage);
  if (threadIdx.x == 0) {
    a.header->counted = acc.n;
    a.header->scale = reduction_scale<A>(Reduction(a.reduction), std::int64_t(acc.n));
    a.header->mean_u = acc.n > 0 ? A(acc.u / double(acc.n)) : A(0);
    a.header->harmonic = acc.h;
  }
}

// The ranking score of class j, out of line so that every evaluation of it (rank_y, a block's
// own columns, the tiles) runs the same instructions and compares bit-identically.
template <class T, class A>
__device__ FUSEDKD_NOINLINE A uskd_score_at(const USKDRowStats<A>& st, const T* s, const T* w, std::int64_t j) {
  return uskd_score(st, A(load_elem(s + j)), A(load_elem(w + j)));
}

template <class T, class A>
__global__ void __launch_bounds__(USKDKernelTraits::kThreads) uskd_rank_kernel(const USKDParams p,
                                                                               const USKDArgs<T, A> a) {
  using Tr = USKDKernelTraits;
  constexpr int J = Tr::kColsPerThread;
  FUSEDKD_SHARED(tile, A[Tr::kTile]);
  FUSEDKD_SHARED(storage, BlockReduceStorage<MaxSize<sizeof(A), sizeof(long long)>::value>);
  const std::int64_t i = blockIdx.x;
  const int split = int(blockIdx.y);
  const std::int64_t C = a.cols;
  const std::int64_t c0 = std::int64_t(split) * Tr::kChunk;
  const std::int64_t c1 = c0 + Tr::kChunk < C ? c0 + Tr::kChunk : C;
  const int tid = int(threadIdx.x), nt = int(blockDim.x);
  long long y;
  const RowKind kind = classify_row<true>(a.labels, a.labels_int32, a.ignore_index, a.rows, C, i, y);
  if (kind != RowKind::Normal) {  // uniform over the block
    const A v = constant_for<A>(kind);
    for (std::int64_t j = c0 + tid; j < c1; j += nt) {
      if (a.grad_s) store_elem(a.grad_s + i * a.gs_stride + j, v);
      if (a.grad_w) store_elem(a.grad_w + i * a.gw_stride + j, v);
    }
    if (tid == 0) a.nt_partials[i * a.splits + split] = v;
    return;
  }
  const T* s = a.s + i * a.s_stride;
  const T* w = a.w + i * a.w_stride;
  const USKDRowStats<A> st = a.row_stats[i];

  // rank_y
  const A r_y = uskd_score_at(st, s, w, y);
  long long before_y = 0;
  for (std::int64_t k = tid; k < C; k += nt) before_y += uskd_rank_before(uskd_score_at(st, s, w, k), k, r_y, y) ? 1 : 0;
  before_y = block_all_reduce(before_y, storage);
  const USKDRow<A> r = uskd_row(p, st, y, a.header->mean_u, C, a.header->harmonic, before_y);

  // ranks of the block's own columns j = c0 + tid + q·nt
  A rj[J];
  long long rank[J];
#pragma unroll
  for (int q = 0; q < J; ++q) {
    const std::int64_t j = c0 + tid + std::int64_t(q) * nt;
    rj[q] = j < c1 ? uskd_score_at(st, s, w, j) : A(0);
    rank[q] = 0;
  }
  for (std::int64_t base = 0; base < C; base += Tr::kTile) {
    const int n = int(C - base < Tr::kTile ? C - base : Tr::kTile);
    for (int kk = tid; kk < n; kk += nt) tile[kk] = uskd_score_at(st, s, w, base + kk);
    __syncthreads();
    for (int kk = 0; kk < n; ++kk) {
      const A rk = tile[kk];
      const std::int64_t k = base + kk;
#pragma unroll
      for (int q = 0; q < J; ++q) {
        const std::int64_t j = c0 + tid + std::int64_t(q) * nt;
        rank[q] += uskd_rank_before(rk, k, rj[q], (long long)j) ? 1 : 0;
      }
    }
    __syncthreads();
  }

  // gradients and the non-target partial sum
  const A scale = a.header->scale;
  A nt_sum = A(0);
#pragma unroll
  for (int q = 0; q < J; ++q) {
    const std::int64_t j = c0 + tid + std::int64_t(q) * nt;
    if (j >= c1) continue;
    const A sj = A(load_elem(s + j));
    const A rank1 = A(rank[q] + 1);
    if (j != y) nt_sum += uskd_nt_term(r, sj, rank1);
    if (a.grad_s) store_elem(a.grad_s + i * a.gs_stride + j, scale * uskd_grad_student(r, j == y, sj, rank1));
    if (a.grad_w) store_elem(a.grad_w + i * a.gw_stride + j, scale * uskd_grad_weak(r, j == y, A(load_elem(w + j))));
  }
  nt_sum = block_all_reduce(nt_sum, storage);
  if (tid == 0) a.nt_partials[i * a.splits + split] = nt_sum;
}

// ℓ_i from the row statistics and the NT partials (chunk order). One thread per row.
template <class T, class A>
__global__ void __launch_bounds__(USKDKernelTraits::kRowLossThreads) uskd_row_loss_kernel(const USKDParams p, const USKDArgs<T, A> a) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  long long y;
  const RowKind kind = classify_row<true>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  if (kind == RowKind::Absent) return;
  if (kind != RowKind::Normal) {
    a.row_loss[i] = constant_for<A>(kind);
    return;
  }
  const USKDRowStats<A> st = a.row_stats[i];
  A nt = A(0);
  for (int k = 0; k < a.splits; ++k) nt += a.nt_partials[i * a.splits + k];
  const USKDRow<A> r = uskd_row(p, st, y, a.header->mean_u, a.cols, a.header->harmonic, 0);  // rank_y unused here
  a.row_loss[i] = uskd_row_loss(r, st, nt);
}

}  // namespace fusedkd::cuda
