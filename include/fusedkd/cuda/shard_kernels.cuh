// Kernel bodies of the vocabulary-shard steps (shard.hpp) of a row-local loss: the CUDA executor of
// what cpu/shard_rows.hpp does on the CPU, one row per worker (a lane group, or a block):
//
//   ShardStep::Stats   the statistics pass over the shard's columns → ShardPartial[rows]
//   ShardStep::Cross   merge the [world][rows] partials, finalize, the cross pass → Cross[rows]
//                      (the losses with a cross pass only: JSD, TVD)
//   ShardStep::Finish  merge, finalize (finish), the row's loss and scale · ∂ℓ/∂s of the shard
//
// Columns are pushed with their global index vocab_start + j, and the row's state is built by
// MergedShardRow (shard.hpp), the CPU executor's code: every rank merges the same bytes in rank
// order, so a row's loss is bit-identical on every rank, whichever executor produced the bytes.
// The whole shard row belongs to one worker (plan_whole_row on the shard's columns): shards are the
// vocabulary over the tensor-parallel ranks, short enough for one block.
//
// Row kinds (labels are global indices): a row whose label is ignore_index contributes an empty
// partial, loss 0 and gradient 0; a label outside [0, vocab_size) (the host cannot check it without
// a synchronization) gives an empty partial and loss NaN, gradient NaN.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../cross_pass.hpp"
#include "../numeric.hpp"
#include "../row.hpp"
#include "../shard.hpp"
#include "common.cuh"
#include "reduce.cuh"
#include "row_kernels.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

enum class ShardStep : int { Stats = 0, Cross = 1, Finish = 2 };

// Everything a shard kernel needs besides the loss parameters (passed by value).
template <class TS, class TT, class A> struct ShardKernelArgs {
  const TS* s = nullptr;
  std::int64_t s_stride = 0;
  const TT* t = nullptr;  // the student for a teacher-free loss (read, never used)
  std::int64_t t_stride = 0;
  const void* labels = nullptr;  // [rows] global indices; null: every row counts
  int labels_int32 = 0;
  std::int64_t ignore_index = -100;
  std::int64_t rows = 0;
  std::int64_t cols = 0;   // the shard's columns
  ShardLayout layout;      // its place in the vocabulary
  const A* target_logits = nullptr;  // [rows, 2] (s_y, t_y) when the statistics pass reads them
  int world = 1;
  const void* parts = nullptr;  // Cross, Finish: ShardPartial[world * rows]
  const void* cross = nullptr;  // Finish (a loss with a cross pass): Cross[world * rows]
  void* states = nullptr;       // Stats: ShardPartial[rows]; Cross: Cross[rows]
  A* row_loss = nullptr;        // Finish: [rows]
  grad_t<TS>* grad = nullptr;   // Finish: null, no gradient
  std::int64_t g_stride = 0;
  const BatchHeader<A>* header = nullptr;  // gradient scale from here when non-null, else 1
  int vec = 0;
  int group_width = 32;
};

template <class TS, class TT, class A>
__device__ __forceinline__ A grad_scale(const ShardKernelArgs<TS, TT, A>& a) {
  return a.header ? a.header->scale : A(1);
}

// One shard row of step Step on a worker. Every lane of the worker calls it, including the lanes
// of absent rows (i ≥ rows), because of the reductions.
template <template <class> class Loss, ShardStep Step, class Params, class TS, class TT, class A, class Worker>
__device__ __forceinline__ void shard_row(const Params& params, const ShardKernelArgs<TS, TT, A>& a, std::int64_t i,
                                          const Worker& w) {
  using L = Loss<A>;
  using Partial = ShardPartial<Loss, A>;
  using Cross = cross_t<L>;
  constexpr int K = VecWidth<TS, TT>::K;
  const bool vec = a.vec != 0;
  long long y;
  // Labels are checked against the whole vocabulary, not the shard.
  const RowKind kind =
      classify_row<L::uses_label>(a.labels, a.labels_int32, a.ignore_index, a.rows, a.layout.vocab_size, i, y);
  const bool active = kind == RowKind::Normal;
  const std::int64_t C = a.cols, j0 = a.layout.vocab_start;
  const TS* s = a.s + (kind == RowKind::Absent ? 0 : i * a.s_stride);
  const TT* t = a.t + (kind == RowKind::Absent ? 0 : i * a.t_stride);

  if constexpr (Step == ShardStep::Stats) {
    // The row's input: the gathered target logits when given, else this shard's when it holds y.
    RowInput<A> in;
    in.y = y;
    const std::int64_t k = active && y >= 0 ? local_label(y, a.layout, C) : -1;
    if (active && y >= 0) {
      if (a.target_logits) {
        in.s_y = a.target_logits[2 * i];
        in.t_y = a.target_logits[2 * i + 1];
      } else if (k >= 0) {
        in.s_y = A(load_elem(s + k));
        in.t_y = L::uses_teacher ? A(load_elem(t + k)) : A(0);
      }
    }
    const typename L::Context ctx(params, in);
    typename L::Stats st;
    if (active)
      for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) {
        st.push(ctx, j0 + j, sj, L::uses_teacher ? tj : A(0));
      });
    st = w.all_reduce(st);
    if (kind == RowKind::Absent || w.lane != 0) return;
    Partial p;
    if (active) {
      p.stats = st;
      if (k >= 0) {
        p.s_y = in.s_y;
        p.t_y = in.t_y;
        p.owns_label = 1;
      }
    }
    static_cast<Partial*>(a.states)[i] = p;
  } else if constexpr (Step == ShardStep::Cross) {
    static_assert(has_cross_pass<L>::value, "the cross step is for the losses with a cross pass");
    const Partial* parts = static_cast<const Partial*>(a.parts);
    Cross x;
    if (active) {
      const MergedShardRow<Loss, A> m(params, y, parts, a.world, a.rows, i, nullptr);
      for_cols<K, A>(s, t, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) {
        x.push(m.ctx, m.row, j0 + j, sj, L::uses_teacher ? tj : A(0));
      });
    }
    x = w.all_reduce(x);
    if (kind == RowKind::Absent || w.lane != 0) return;
    static_cast<Cross*>(a.states)[i] = active ? x : Cross{};
  } else {
    if (kind == RowKind::Absent) return;
    grad_t<TS>* g = a.grad ? a.grad + i * a.g_stride : nullptr;
    if (!active) {
      if (w.lane == 0) a.row_loss[i] = constant_for<A>(kind);
      if (g) fill_cols<K>(g, 0, C, w.lane, w.width, vec, constant_for<A>(kind));
      return;
    }
    const MergedShardRow<Loss, A> m(params, y, static_cast<const Partial*>(a.parts), a.world, a.rows, i,
                                    static_cast<const Cross*>(a.cross));
    if (w.lane == 0) a.row_loss[i] = m.row.loss;
    if (!g) return;
    const A scale = grad_scale(a);
    for_cols_write<K, A>(s, t, g, 0, C, w.lane, w.width, vec, [&](long long j, A sj, A tj) {
      return scale * L::grad(m.ctx, m.row, j0 + j, sj, L::uses_teacher ? tj : A(0));
    });
  }
}

// Group: G lanes per shard row, blockDim.x / G rows per block.
template <template <class> class Loss, ShardStep Step, class Params, class TS, class TT, class A>
__global__ void __launch_bounds__(GroupKernelTraits::kThreads)
    shard_group_kernel(const Params params, const ShardKernelArgs<TS, TT, A> a) {
  const int G = a.group_width;
  const GroupWorker w{int(threadIdx.x) & (G - 1), G};
  const std::int64_t i = std::int64_t(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  shard_row<Loss, Step>(params, a, i, w);
}

// Block: one shard row per block.
template <template <class> class Loss, ShardStep Step, class Params, class TS, class TT, class A>
__global__ void __launch_bounds__(BlockKernelTraits::kMaxThreads)
    shard_block_kernel(const Params params, const ShardKernelArgs<TS, TT, A> a) {
  using L = Loss<A>;
  using Storage = BlockReduceStorage<MaxSize<sizeof(typename L::Stats), sizeof(cross_t<L>)>::value>;
  FUSEDKD_SHARED(storage, Storage);
  const BlockWorker<Storage> w{int(threadIdx.x), int(blockDim.x), &storage};
  shard_row<Loss, Step>(params, a, std::int64_t(blockIdx.x), w);
}

}  // namespace fusedkd::cuda
