// Kernel bodies of the row-local loss family (KD, DKD, NKD, RLD; RLD with standardization),
// one generic set templated on the Loss policy of losses/*.hpp:
//   Context(Params, RowInput), Stats::push(ctx, j, s_j, t_j) / merge, finalize(ctx, stats) -> Row,
//   grad(ctx, row, j, s_j, t_j) -> ∂ℓ/∂s_j.
// Each row: gather s_y / t_y, one pass of Stats::push over the columns, a reduction of the Stats
// (shuffles within a group of lanes, or across the block, or across chunk-blocks through the
// workspace), finalize, for a loss with a cross pass (cross_pass.hpp) a second pass reduced the
// same way and finish, then one pass writing scale · grad. The CPU executor
// (cpu/row_executor.hpp) does the same per row, so results agree up to summation order.
//
// Row kinds: a row whose label is ignore_index gets loss 0 and gradient 0; a row whose label is
// out of [0, C) (which the host cannot check without a synchronization) gets loss NaN and
// gradient NaN; nothing traps.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../batch.hpp"
#include "../cross_pass.hpp"
#include "../numeric.hpp"
#include "../row.hpp"
#include "../standardize.hpp"
#include "common.cuh"
#include "reduce.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

// Everything a row-local kernel needs besides the loss parameters (passed by value).
template <class TS, class TT, class A> struct RowLocalArgs {
  const TS* s = nullptr;
  std::int64_t s_stride = 0;
  const TT* t = nullptr;
  std::int64_t t_stride = 0;
  const void* labels = nullptr;
  int labels_int32 = 0;
  std::int64_t ignore_index = -100;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  A* row_loss = nullptr;         // [rows]: the workspace buffer, or the output for "none"
  grad_t<TS>* grad = nullptr;    // null: no gradient (grad_t: float32 for a float16 student)
  std::int64_t g_stride = 0;
  const BatchHeader<A>* header = nullptr;  // gradient scale from here when non-null, else 1
  int vec = 0;                   // 16-byte vector path allowed (all row bases aligned)
  int group_width = 32;          // Group kernel: lanes per row
  int splits = 1;                // Split kernels
  std::int64_t chunk = 0;
  void* partials = nullptr;      // Split kernels: Stats[rows * splits]
};

template <class TS, class TT, class A>
__device__ __forceinline__ A grad_scale(const RowLocalArgs<TS, TT, A>& a) {
  return a.header ? a.header->scale : A(1);
}

// Kind of row i and its label y for the loss (−1 when the loss reads none). Given labels mark
// ignored rows for every loss (the token-level losses take them for that alone).
template <bool UsesLabel>
__device__ __forceinline__ RowKind classify_row(const void* labels, int is_int32, std::int64_t ignore_index,
                                                std::int64_t rows, std::int64_t cols, std::int64_t i, long long& y) {
  y = -1;
  if (i >= rows) return RowKind::Absent;
  if (labels == nullptr) return RowKind::Normal;
  const long long label = read_label(labels, is_int32, i);
  if (label == ignore_index) return RowKind::Ignored;
  if (label < 0 || label >= cols) return RowKind::BadLabel;
  if (UsesLabel) y = label;
  return RowKind::Normal;
}

// ----------------------------------------------------------------------------- column traversal

// f(j, s_j, t_j) for the columns of [c0, c1) that belong to `lane` of `width`: K-column vectors
// (16-byte loads) when `vec`, then a scalar tail; scalar loads throughout otherwise.
// c0 must keep the vector alignment (0, or a multiple of the chunk).
template <int K, class A, class TS, class TT, class F>
__device__ __forceinline__ void for_cols(const TS* s, const TT* t, std::int64_t c0, std::int64_t c1, int lane,
                                         int width, bool vec, F&& f) {
  std::int64_t tail = c0;
  if (vec) {
    const std::int64_t nvec = (c1 - c0) / K;
#pragma unroll 2
    for (std::int64_t v = lane; v < nvec; v += width) {
      const std::int64_t j = c0 + v * K;
      A sv[K], tv[K];
      load_vec<K>(s + j, sv);
      load_vec<K>(t + j, tv);
#pragma unroll
      for (int k = 0; k < K; ++k) f(j + k, sv[k], tv[k]);
    }
    tail = c0 + nvec * K;
  }
  for (std::int64_t j = tail + lane; j < c1; j += width) f(j, A(load_elem(s + j)), A(load_elem(t + j)));
}

// g_j = f(j, s_j, t_j) written as TG for the lane's columns of [c0, c1), vectorized like for_cols.
template <int K, class A, class TS, class TT, class TG, class F>
__device__ __forceinline__ void for_cols_write(const TS* s, const TT* t, TG* g, std::int64_t c0, std::int64_t c1,
                                               int lane, int width, bool vec, F&& f) {
  std::int64_t tail = c0;
  if (vec) {
    const std::int64_t nvec = (c1 - c0) / K;
#pragma unroll 2
    for (std::int64_t v = lane; v < nvec; v += width) {
      const std::int64_t j = c0 + v * K;
      A sv[K], tv[K], gv[K];
      load_vec<K>(s + j, sv);
      load_vec<K>(t + j, tv);
#pragma unroll
      for (int k = 0; k < K; ++k) gv[k] = f(j + k, sv[k], tv[k]);
      store_vec<K>(g + j, gv);
    }
    tail = c0 + nvec * K;
  }
  for (std::int64_t j = tail + lane; j < c1; j += width) store_elem(g + j, f(j, A(load_elem(s + j)), A(load_elem(t + j))));
}

// g_j = value for the lane's columns of [c0, c1).
template <int K, class A, class TG>
__device__ __forceinline__ void fill_cols(TG* g, std::int64_t c0, std::int64_t c1, int lane, int width, bool vec,
                                          A value) {
  std::int64_t tail = c0;
  if (vec) {
    const std::int64_t nvec = (c1 - c0) / K;
    A gv[K];
#pragma unroll
    for (int k = 0; k < K; ++k) gv[k] = value;
    for (std::int64_t v = lane; v < nvec; v += width) store_vec<K>(g + c0 + v * K, gv);
    tail = c0 + nvec * K;
  }
  for (std::int64_t j = tail + lane; j < c1; j += width) store_elem(g + j, value);
}

template <class A> __device__ __forceinline__ A constant_for(RowKind kind) {
  return kind == RowKind::Ignored ? A(0) : quiet_nan<A>();
}

// ----------------------------------------------------------------------------- row programs

// One whole row on a worker (a lane group or a block). Every lane of the worker must call it,
// including lanes of absent rows (i ≥ rows), because of the reductions.
template <template <class> class Loss, class Params, class TS, class TT, class A, class Worker>
__device__ __forceinline__ void row_local_full(const Params& params, const RowLocalArgs<TS, TT, A>& a, std::int64_t i,
                                               const Worker& w) {
  using L = Loss<A>;
  constexpr int K = VecWidth<TS, TT>::K;
  const bool vec = a.vec != 0;
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  const bool active = kind == RowKind::Normal;
  const std::int64_t C = a.cols;
  const TS* s = a.s + (kind == RowKind::Absent ? 0 : i * a.s_stride);
  const TT* t = a.t + (kind == RowKind::Absent ? 0 : i * a.t_stride);

  RowInput<A> in = active ? gather_row_input<A>(s, t, y) : RowInput<A>{};
  in.y = y;
  const typename L::Context ctx(params, in);
  typename L::Stats st;
  if (active) for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) { st.push(ctx, j, sj, tj); });
  st = w.all_reduce(st);
  typename L::Row r = L::finalize(ctx, st);
  if constexpr (has_cross_pass<L>::value) {  // the second statistics pass (cross_pass.hpp)
    typename L::Cross cross;
    if (active)
      for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) { cross.push(ctx, r, j, sj, tj); });
    L::finish(ctx, r, w.all_reduce(cross));
  }
  if (kind == RowKind::Absent) return;
  if (w.lane == 0) a.row_loss[i] = active ? r.loss : constant_for<A>(kind);
  if (a.grad == nullptr) return;
  grad_t<TS>* g = a.grad + i * a.g_stride;
  if (!active) {
    fill_cols<K>(g, 0, C, w.lane, w.width, vec, constant_for<A>(kind));
    return;
  }
  const A scale = grad_scale(a);
  for_cols_write<K, A>(s, t, g, 0, C, w.lane, w.width, vec,
                       [&](long long j, A sj, A tj) { return scale * L::grad(ctx, r, j, sj, tj); });
}

// Mean / Bessel std of the student and the teacher row at once.
template <class A> struct PairMoments {
  RowMoments<A> s, t;
  __device__ __forceinline__ void merge(const PairMoments& o) {
    s.merge(o.s);
    t.merge(o.t);
  }
};

// One whole row with logit standardization (x̃ = (x − μ)/(ε + σ) for student and teacher):
// moments pass, loss-statistics pass on x̃, and with a gradient the two sums of the chain rule
// and the final write (standardize.hpp). Four reads of the row, which stays in L1/L2.
template <template <class> class Loss, class Params, class TS, class TT, class A, class Worker>
__device__ __forceinline__ void row_local_standardized(const Params& params, const RowLocalArgs<TS, TT, A>& a,
                                                       std::int64_t i, const Worker& w) {
  using L = Loss<A>;
  static_assert(!has_cross_pass<L>::value, "the standardized rows make no cross pass");
  constexpr int K = VecWidth<TS, TT>::K;
  const bool vec = a.vec != 0;
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  const bool active = kind == RowKind::Normal;
  const std::int64_t C = a.cols;
  const TS* s = a.s + (kind == RowKind::Absent ? 0 : i * a.s_stride);
  const TT* t = a.t + (kind == RowKind::Absent ? 0 : i * a.t_stride);

  PairMoments<A> mom;
  if (active) for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long, A sj, A tj) {
      mom.s.push(sj);
      mom.t.push(tj);
    });
  mom = w.all_reduce(mom);
  const Standardization<A> zs(mom.s), zt(mom.t);

  RowInput<A> in;
  in.y = y;
  if (active && y >= 0) {
    in.s_y = zs.apply(A(load_elem(s + y)));
    in.t_y = zt.apply(A(load_elem(t + y)));
  }
  const typename L::Context ctx(params, in);
  typename L::Stats st;
  if (active)
    for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec,
                   [&](long long j, A sj, A tj) { st.push(ctx, j, zs.apply(sj), zt.apply(tj)); });
  st = w.all_reduce(st);
  const typename L::Row r = L::finalize(ctx, st);
  if (kind != RowKind::Absent && w.lane == 0) a.row_loss[i] = active ? r.loss : constant_for<A>(kind);
  if (a.grad == nullptr) return;  // uniform across the worker: no reduction follows for anyone

  StandardizeGradSums<A> sums;
  if (active)
    for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) {
      sums.push(zs, L::grad(ctx, r, j, zs.apply(sj), zt.apply(tj)), sj);
    });
  sums = w.all_reduce(sums);
  if (kind == RowKind::Absent) return;
  grad_t<TS>* g = a.grad + i * a.g_stride;
  if (!active) {
    fill_cols<K>(g, 0, C, w.lane, w.width, vec, constant_for<A>(kind));
    return;
  }
  const A scale = grad_scale(a);
  for_cols_write<K, A>(s, t, g, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) {
    const A gj = L::grad(ctx, r, j, zs.apply(sj), zt.apply(tj));
    return scale * standardize_backward(zs, sums, gj, sj);
  });
}

template <class A> struct StandardizedReduceSize {
  static constexpr std::size_t a = sizeof(PairMoments<A>), b = sizeof(StandardizeGradSums<A>);
  static constexpr std::size_t value = a > b ? a : b;
};

template <std::size_t X, std::size_t Y> struct MaxSize {
  static constexpr std::size_t value = X > Y ? X : Y;
};

// ----------------------------------------------------------------------------- kernels

// Group: G lanes per row, blockDim.x / G rows per block.
template <template <class> class Loss, class Params, class TS, class TT, class A, bool Standardized>
__global__ void __launch_bounds__(GroupKernelTraits::kThreads)
    row_group_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  const int G = a.group_width;
  const GroupWorker w{int(threadIdx.x) & (G - 1), G};
  const std::int64_t i = std::int64_t(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  if constexpr (Standardized)
    row_local_standardized<Loss>(params, a, i, w);
  else
    row_local_full<Loss>(params, a, i, w);
}

// Block: one row per block.
template <template <class> class Loss, class Params, class TS, class TT, class A, bool Standardized>
__global__ void __launch_bounds__(BlockKernelTraits::kMaxThreads)
    row_block_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  using Stats = typename Loss<A>::Stats;
  constexpr std::size_t kStatsBytes = MaxSize<sizeof(Stats), sizeof(cross_t<Loss<A>>)>::value;
  using Storage = BlockReduceStorage<MaxSize<kStatsBytes, StandardizedReduceSize<A>::value>::value>;
  FUSEDKD_SHARED(storage, Storage);
  const BlockWorker<Storage> w{int(threadIdx.x), int(blockDim.x), &storage};
  const std::int64_t i = blockIdx.x;
  if constexpr (Standardized)
    row_local_standardized<Loss>(params, a, i, w);
  else
    row_local_full<Loss>(params, a, i, w);
}

// What a Split row keeps per chunk: the Stats of its columns, and the cross sums of a loss with a
// cross pass (NoCross otherwise).
template <class L> struct SplitPartial {
  typename L::Stats stats;
  cross_t<L> cross;
};

// The columns [c0, c1) of chunk blockIdx.y of a Split row.
struct SplitChunk {
  std::int64_t c0, c1;
  template <class Args> __device__ __forceinline__ explicit SplitChunk(const Args& a)
      : c0(std::int64_t(blockIdx.y) * a.chunk), c1(c0 + a.chunk < a.cols ? c0 + a.chunk : a.cols) {}
};

// The row's Stats: its partials merged in chunk order (every thread identically).
template <class L> __device__ __forceinline__ typename L::Stats merged_stats(const SplitPartial<L>* part, int splits) {
  typename L::Stats st = part[0].stats;
  for (int k = 1; k < splits; ++k) st.merge(part[k].stats);
  return st;
}
template <class L> __device__ __forceinline__ cross_t<L> merged_cross(const SplitPartial<L>* part, int splits) {
  cross_t<L> x = part[0].cross;
  for (int k = 1; k < splits; ++k) x.merge(part[k].cross);
  return x;
}

// Split, step 1: block (row i = blockIdx.x, chunk blockIdx.y) reduces its chunk's Stats into
// partials[i * splits + chunk].stats.
template <template <class> class Loss, class Params, class TS, class TT, class A>
__global__ void __launch_bounds__(SplitKernelTraits::kThreads)
    row_split_stats_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  using L = Loss<A>;
  using Stats = typename L::Stats;
  constexpr int K = VecWidth<TS, TT>::K;
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(Stats)>);
  const std::int64_t i = blockIdx.x;
  const SplitChunk chunk(a);
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  if (kind != RowKind::Normal) return;  // uniform over the block; the gradient kernel handles such rows
  const TS* s = a.s + i * a.s_stride;
  const TT* t = a.t + i * a.t_stride;
  const typename L::Context ctx(params, gather_row_input<A>(s, t, y));
  Stats st;
  for_cols<K, A>(s, t, chunk.c0, chunk.c1, int(threadIdx.x), int(blockDim.x), a.vec != 0,
                 [&](long long j, A sj, A tj) { st.push(ctx, j, sj, tj); });
  st = block_all_reduce(st, storage);
  if (threadIdx.x == 0) static_cast<SplitPartial<L>*>(a.partials)[i * a.splits + blockIdx.y].stats = st;
}

// Split, step 2 of a loss with a cross pass (cross_pass.hpp): merge the row's Stats, finalize,
// reduce the chunk's cross sums into partials[i * splits + chunk].cross.
template <template <class> class Loss, class Params, class TS, class TT, class A>
__global__ void __launch_bounds__(SplitKernelTraits::kThreads)
    row_split_cross_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  using L = Loss<A>;
  using Cross = typename L::Cross;
  constexpr int K = VecWidth<TS, TT>::K;
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(Cross)>);
  const std::int64_t i = blockIdx.x;
  const SplitChunk chunk(a);
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  if (kind != RowKind::Normal) return;
  const TS* s = a.s + i * a.s_stride;
  const TT* t = a.t + i * a.t_stride;
  const typename L::Context ctx(params, gather_row_input<A>(s, t, y));
  SplitPartial<L>* part = static_cast<SplitPartial<L>*>(a.partials) + i * a.splits;
  const typename L::Row r = L::finalize(ctx, merged_stats<L>(part, a.splits));
  Cross x;
  for_cols<K, A>(s, t, chunk.c0, chunk.c1, int(threadIdx.x), int(blockDim.x), a.vec != 0,
                 [&](long long j, A sj, A tj) { x.push(ctx, r, j, sj, tj); });
  x = block_all_reduce(x, storage);
  if (threadIdx.x == 0) part[blockIdx.y].cross = x;
}

// Split, last step: merge the row's partials in chunk order (every thread, identically), finalize
// (and finish, after a cross pass), write the row loss (chunk 0) and the chunk's gradient.
template <template <class> class Loss, class Params, class TS, class TT, class A>
__global__ void __launch_bounds__(SplitKernelTraits::kThreads)
    row_split_grad_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  using L = Loss<A>;
  constexpr int K = VecWidth<TS, TT>::K;
  const std::int64_t i = blockIdx.x;
  const int split = int(blockIdx.y);
  const SplitChunk chunk(a);
  const bool vec = a.vec != 0;
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  if (kind != RowKind::Normal) {
    if (split == 0 && threadIdx.x == 0) a.row_loss[i] = constant_for<A>(kind);
    if (a.grad)
      fill_cols<K>(a.grad + i * a.g_stride, chunk.c0, chunk.c1, int(threadIdx.x), int(blockDim.x), vec,
                   constant_for<A>(kind));
    return;
  }
  const TS* s = a.s + i * a.s_stride;
  const TT* t = a.t + i * a.t_stride;
  const typename L::Context ctx(params, gather_row_input<A>(s, t, y));
  const SplitPartial<L>* part = static_cast<const SplitPartial<L>*>(a.partials) + i * a.splits;
  typename L::Row r = L::finalize(ctx, merged_stats<L>(part, a.splits));
  if constexpr (has_cross_pass<L>::value) L::finish(ctx, r, merged_cross<L>(part, a.splits));
  if (split == 0 && threadIdx.x == 0) a.row_loss[i] = r.loss;
  if (a.grad == nullptr) return;
  const A scale = grad_scale(a);
  for_cols_write<K, A>(s, t, a.grad + i * a.g_stride, chunk.c0, chunk.c1, int(threadIdx.x), int(blockDim.x), vec,
                       [&](long long j, A sj, A tj) { return scale * L::grad(ctx, r, j, sj, tj); });
}

// ----------------------------------------------------------------------------- Split, standardized rows
//
// The standardized row (row_local_standardized) over chunks of a long row: one kernel per pass, each
// block (row i = blockIdx.x, chunk blockIdx.y) reducing its chunk and storing the result in the row's
// partials; every later pass merges the row's partials of the earlier ones in chunk order (every
// thread identically), so the result depends on C only.
//   1. moments of s and t           → partial.moments
//   2. the loss's Stats on x̃        → partial.stats
//   3. finalize; the row loss (chunk 0); with a gradient, the chain rule's sums → partial.sums
//   4. (gradient) the gradient of the chunk, chained through the standardization.

template <class Stats, class A> struct StandardizedPartial {
  PairMoments<A> moments;
  Stats stats;
  StandardizeGradSums<A> sums;
};

// Pass of a standardized Split row: what a block knows after merging the earlier passes' partials.
template <template <class> class Loss, class TS, class TT, class A> struct StandardizedSplitRow {
  using L = Loss<A>;
  using Partial = StandardizedPartial<typename L::Stats, A>;
  const Partial* part;
  int splits;
  __device__ __forceinline__ PairMoments<A> moments() const {
    PairMoments<A> m = part[0].moments;
    for (int k = 1; k < splits; ++k) m.merge(part[k].moments);
    return m;
  }
  __device__ __forceinline__ typename L::Stats stats() const {
    typename L::Stats st = part[0].stats;
    for (int k = 1; k < splits; ++k) st.merge(part[k].stats);
    return st;
  }
  __device__ __forceinline__ StandardizeGradSums<A> sums() const {
    StandardizeGradSums<A> g = part[0].sums;
    for (int k = 1; k < splits; ++k) g.merge(part[k].sums);
    return g;
  }
};

template <template <class> class Loss, class Params, class TS, class TT, class A, int Pass>
__global__ void __launch_bounds__(SplitKernelTraits::kThreads)
    row_split_standardized_kernel(const Params params, const RowLocalArgs<TS, TT, A> a) {
  using L = Loss<A>;
  using Partial = StandardizedPartial<typename L::Stats, A>;
  constexpr int K = VecWidth<TS, TT>::K;
  constexpr std::size_t kReduceBytes = MaxSize<sizeof(typename L::Stats), StandardizedReduceSize<A>::value>::value;
  FUSEDKD_SHARED(storage, BlockReduceStorage<kReduceBytes>);
  const std::int64_t i = blockIdx.x;
  const int split = int(blockIdx.y);
  const std::int64_t c0 = std::int64_t(split) * a.chunk;
  const std::int64_t c1 = c0 + a.chunk < a.cols ? c0 + a.chunk : a.cols;
  const bool vec = a.vec != 0;
  long long y;
  const RowKind kind = classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.cols, i, y);
  if (kind != RowKind::Normal) {  // uniform over the block: constants from the last passes, nothing else
    if (Pass == 3 && split == 0 && threadIdx.x == 0) a.row_loss[i] = constant_for<A>(kind);
    if (Pass == 4) fill_cols<K>(a.grad + i * a.g_stride, c0, c1, int(threadIdx.x), int(blockDim.x), vec, constant_for<A>(kind));
    return;
  }
  const TS* s = a.s + i * a.s_stride;
  const TT* t = a.t + i * a.t_stride;
  Partial* part = static_cast<Partial*>(a.partials) + i * a.splits;
  const StandardizedSplitRow<Loss, TS, TT, A> row{part, a.splits};
  if constexpr (Pass == 1) {
    PairMoments<A> mom;
    for_cols<K, A>(s, t, c0, c1, int(threadIdx.x), int(blockDim.x), vec, [&](long long, A sj, A tj) {
      mom.s.push(sj);
      mom.t.push(tj);
    });
    mom = block_all_reduce(mom, storage);
    if (threadIdx.x == 0) part[split].moments = mom;
    return;
  } else {
    const PairMoments<A> mom = row.moments();
    const Standardization<A> zs(mom.s), zt(mom.t);
    RowInput<A> in;
    in.y = y;
    if (y >= 0) {
      in.s_y = zs.apply(A(load_elem(s + y)));
      in.t_y = zt.apply(A(load_elem(t + y)));
    }
    const typename L::Context ctx(params, in);
    if constexpr (Pass == 2) {
      typename L::Stats st;
      for_cols<K, A>(s, t, c0, c1, int(threadIdx.x), int(blockDim.x), vec,
                     [&](long long j, A sj, A tj) { st.push(ctx, j, zs.apply(sj), zt.apply(tj)); });
      st = block_all_reduce(st, storage);
      if (threadIdx.x == 0) part[split].stats = st;
      return;
    } else {
      const typename L::Row r = L::finalize(ctx, row.stats());
      if constexpr (Pass == 3) {
        if (split == 0 && threadIdx.x == 0) a.row_loss[i] = r.loss;
        if (a.grad == nullptr) return;  // uniform: no reduction follows
        StandardizeGradSums<A> sums;
        for_cols<K, A>(s, t, c0, c1, int(threadIdx.x), int(blockDim.x), vec, [&](long long j, A sj, A tj) {
          sums.push(zs, L::grad(ctx, r, j, zs.apply(sj), zt.apply(tj)), sj);
        });
        sums = block_all_reduce(sums, storage);
        if (threadIdx.x == 0) part[split].sums = sums;
      } else {
        const StandardizeGradSums<A> sums = row.sums();
        const A scale = grad_scale(a);
        for_cols_write<K, A>(s, t, a.grad + i * a.g_stride, c0, c1, int(threadIdx.x), int(blockDim.x), vec,
                             [&](long long j, A sj, A tj) {
                               const A gj = L::grad(ctx, r, j, zs.apply(sj), zt.apply(tj));
                               return scale * standardize_backward(zs, sums, gj, sj);
                             });
      }
    }
  }
}

}  // namespace fusedkd::cuda
