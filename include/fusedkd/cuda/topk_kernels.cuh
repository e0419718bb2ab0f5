// Top-k teacher KD on the GPU (losses/topk_kd.hpp): three launches.
//   1. count_rows_kernel: N_counted and the reduction's scale in the header (no host synchronization).
//   2. topk_kd_kernel, one block per token row: the student's lse over V (block-strided, one block
//      reduction), the k gathers at the teacher's indices (a second reduction), topk_finalize, then the
//      gradient: q_j c_out over the whole row, a barrier, and the k entries of K rewritten.
//   3. reduce_rows_kernel (batchmean, sum).
// Indices are never read on the host: an index outside [0, V) makes its row's loss and gradient NaN.
// 1 − Q_K: as on the CPU, the estimate −expm1(log Q_K), summed exactly over the complement when a ghost
// tail is below 1/16 (K marked in a shared bitmap; rows of at most 2^18 columns, wider ones keep the
// estimate).
// Duplicate indices within a row are not detected here (the CPU op raises): such a row counts the
// entry twice in the loss and its gradient entry is one of the two writes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../losses/topk_kd.hpp"
#include "../reduction.hpp"
#include "batch_kernels.cuh"
#include "common.cuh"
#include "launch.cuh"
#include "launch_kernel.cuh"
#include "reduce.cuh"
#include "row_kernels.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

struct TopKKernelTraits {
  static constexpr int kThreads = 256;  // one block per row
  // Rows up to this many columns sum a small ghost tail exactly, with K marked in a shared bitmap
  // (32 KiB); wider rows keep the estimate −expm1(log Q_K).
  static constexpr std::int64_t kExactTailMaxCols = std::int64_t(1) << 18;
  static constexpr int kMarkWords = int(kExactTailMaxCols / 32);
};

// The teacher's indices as the device reads them: int64 or int32 (a runtime flag, one instantiation).
struct TopKDeviceIndices {
  const void* data = nullptr;
  bool is_int32 = false;
  std::int64_t row_stride = 0;
};

template <class TS, class A> struct TopKDeviceArgs {
  const TS* s = nullptr;
  std::int64_t s_stride = 0;
  const A* logprobs = nullptr;
  std::int64_t lp_stride = 0;
  const void* indices = nullptr;
  int indices_int32 = 0;
  std::int64_t idx_stride = 0;
  const void* labels = nullptr;
  int labels_int32 = 0;
  std::int64_t ignore_index = -100;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t k = 0;
  A* row_loss = nullptr;
  grad_t<TS>* grad = nullptr;
  std::int64_t g_stride = 0;
  const BatchHeader<A>* header = nullptr;
};

template <class TS, class A>
__global__ void __launch_bounds__(TopKKernelTraits::kThreads)
    topk_kd_kernel(const TopKKDParams p, const TopKDeviceArgs<TS, A> a) {
  using Tr = TopKKernelTraits;
  FUSEDKD_SHARED(storage, BlockReduceStorage<sizeof(TopKGather<A>)>);
  FUSEDKD_SHARED(mark, unsigned[Tr::kMarkWords]);  // K of the row, for its exact tail
  const std::int64_t i = blockIdx.x;
  const int tid = int(threadIdx.x), nt = int(blockDim.x);
  const std::int64_t C = a.cols;
  grad_t<TS>* g = a.grad ? a.grad + i * a.g_stride : nullptr;
  long long y;
  const RowKind kind = classify_row<false>(a.labels, a.labels_int32, a.ignore_index, a.rows, C, i, y);
  if (kind != RowKind::Normal) {  // uniform over the block
    const A v = constant_for<A>(kind);
    if (g)
      for (std::int64_t j = tid; j < C; j += nt) store_elem(g + j, v);
    if (tid == 0) a.row_loss[i] = v;
    return;
  }
  const TokenScale<A> ctx(p.temperature, false, p.softcap);
  const TS* s = a.s + i * a.s_stride;
  const A* lp = a.logprobs + i * a.lp_stride;

  // lse(z) over the row
  OnlineLSE<A> st;
  for (std::int64_t j = tid; j < C; j += nt) st.push(ctx.z(A(load_elem(s + j))));
  st = block_all_reduce(st, storage);
  LogNormalizer<A> n = log_normalizer(st);
  n.log_z += nan_unless_finite(n.lse());

  // the gathers over K; an index outside [0, V) marks the row
  TopKGather<A> gather;
  long long bad = 0;
  for (std::int64_t e = tid; e < a.k; e += nt) {
    const long long j = read_label(a.indices, a.indices_int32, i * a.idx_stride + e);
    if (j < 0 || j >= C) {
      bad = 1;
      continue;
    }
    const A z = ctx.z(A(load_elem(s + j)));
    gather.push(z, (z - n.m) - n.log_z, lp[e]);
  }
  gather = block_all_reduce(gather, storage);
  bad = block_all_reduce(bad, storage);
  // 1 − Q_K: −expm1(log Q_K), or, for a small ghost tail, Σ_{j∉K} e^{z_j − m} / z over the complement
  // (fp64, a fixed-order block reduction), K marked in the shared bitmap. Uniform over the block.
  A one_minus_q = -expm1_(topk_log_q_k(n, gather));
  if (TopKTail(p.tail) == TopKTail::Ghost && one_minus_q < A(kTopKExactTailBelow) && !bad && n.log_z == n.log_z &&
      C <= Tr::kExactTailMaxCols) {
    const int words = int((C + 31) / 32);
    for (int w = tid; w < words; w += nt) mark[w] = 0u;
    __syncthreads();
    for (std::int64_t e = tid; e < a.k; e += nt) {
      const long long j = read_label(a.indices, a.indices_int32, i * a.idx_stride + e);
      atomicOr(&mark[j >> 5], 1u << (j & 31));
    }
    __syncthreads();
    double rest = 0.0;
    for (std::int64_t j = tid; j < C; j += nt)
      if (!((mark[j >> 5] >> (j & 31)) & 1u)) rest += double(exp_(ctx.z(A(load_elem(s + j))) - n.m));
    rest = block_all_reduce(rest, storage);
    one_minus_q = A(rest / double(exp_(n.log_z)));
  }
  TopKRow<A> r = topk_finalize(TopKTail(p.tail), n, gather, one_minus_q);
  if (bad) r.loss = r.c_out = r.c_in = quiet_nan<A>();
  if (tid == 0) a.row_loss[i] = r.loss;
  if (g == nullptr) return;

  // ∂ℓ/∂s_j = scale (1/τ) cap'(s_j) q_j c_out, then the entries of K: q_j c_in − w_j
  const A scale = a.header->scale;
  const A c = scale * r.c_out;
  for (std::int64_t j = tid; j < C; j += nt) {
    A dz;
    const A z = ctx.z(A(load_elem(s + j)), dz);
    store_elem(g + j, c * dz * n.prob(z));
  }
  __syncthreads();  // the dense writes of every thread before the rewrites of K
  for (std::int64_t e = tid; e < a.k; e += nt) {
    const long long j = read_label(a.indices, a.indices_int32, i * a.idx_stride + e);
    if (j < 0 || j >= C) continue;  // the row is NaN already
    A dz;
    const A z = ctx.z(A(load_elem(s + j)), dz);
    store_elem(g + j, scale * dz * topk_grad_in(r, n.prob(z), topk_weight(r, lp[e])));
  }
}

// header | row_loss
template <class TS> inline WorkspaceLayout topk_kd_layout(std::int64_t rows) {
  return make_layout(rows, sizeof(acc_t<TS>), 0, 0, 0);
}
template <class TS> inline std::size_t topk_kd_workspace_size(std::int64_t rows) { return topk_kd_layout<TS>(rows).total; }

// Top-k KD on a batch: student logits x.student [rows, cols], the teacher's log-probabilities
// x.logprobs [rows, k] in the accumulation type and its indices (int64 or int32) [rows, k]. Writes the
// reduced (or per-row, for "none") loss to out.loss and the scaled gradient to out.grad where given.
template <class TS>
void topk_kd(const TopKKDParams& p, const TopKView<TS, acc_t<TS>, void>& x, const TopKDeviceIndices& indices,
             const DeviceLabels& labels, Reduction reduction, const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out,
             const Workspace& ws, cudaStream_t stream) {
  using A = acc_t<TS>;
  validate_topk(p, std::is_same<A, double>::value ? Accumulation::Double : Accumulation::Float);
  detail::check_rows_cols(x.rows, x.cols);
  require(x.cols >= 1, "student_logits: needs at least one class");
  validate_topk_sizes(x.k, x.cols);
  require(out.loss != nullptr, "loss: null output pointer");
  require(x.rows == 0 || (x.student && x.logprobs && indices.data), "topk_kd: null input pointer");
  require(x.rows <= 1 || x.student_row_stride >= x.cols, "student_logits: row stride < V");
  require(out.grad == nullptr || x.rows <= 1 || out.grad_row_stride >= x.cols, "grad: row stride < V");
  detail::check_elem_aligned(x.student, "student_logits");
  const WorkspaceLayout layout = topk_kd_layout<TS>(x.rows);
  char* base = detail::check_workspace(ws, layout.total);

  TopKDeviceArgs<TS, A> a;
  a.s = x.student;
  a.s_stride = x.student_row_stride;
  a.logprobs = x.logprobs;
  a.lp_stride = x.logprobs_row_stride;
  a.indices = indices.data;
  a.indices_int32 = indices.is_int32 ? 1 : 0;
  a.idx_stride = indices.row_stride;
  a.labels = labels.data;
  a.labels_int32 = labels.is_int32 ? 1 : 0;
  a.ignore_index = labels.ignore_index;
  a.rows = x.rows;
  a.cols = x.cols;
  a.k = x.k;
  a.row_loss = reduction == Reduction::None ? out.loss : reinterpret_cast<A*>(base + layout.row_loss);
  a.grad = out.grad;
  a.g_stride = out.grad_row_stride;
  BatchHeader<A>* header = reinterpret_cast<BatchHeader<A>*>(base + layout.header);
  a.header = header;

  // The count runs even for 0 rows: it writes the header the reduction reads.
  launch_kernel<kBatchThreads>("count_rows_kernel", &count_rows_kernel<A>, 1, kBatchThreads, stream, labels.data,
                               labels.is_int32 ? 1 : 0, labels.ignore_index, x.rows, int(reduction), header);
  if (x.rows > 0)
    launch_kernel<TopKKernelTraits::kThreads>("topk_kd_kernel", &topk_kd_kernel<TS, A>, unsigned(x.rows),
                                              TopKKernelTraits::kThreads, stream, p, a);
  if (reduction != Reduction::None)
    launch_kernel<kBatchThreads>("reduce_rows_kernel", &reduce_rows_kernel<A>, 1, kBatchThreads, stream, a.row_loss,
                                 x.rows, reduction == Reduction::BatchMean ? header : nullptr, out.loss);
  check_cuda(cudaGetLastError(), "launching the top-k KD kernels");
}

}  // namespace fusedkd::cuda
