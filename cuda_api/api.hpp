// Type-erased host API of the compiled CUDA kernels (cuda_api/*.cu). Plain C++17: includes no
// CUDA header, so g++ code (the torch bindings) can call it; link the objects built from
// cuda_api/*.cu (nvcc) and CUDA's runtime.
//
//   fusedkd::kernels::LossCall call;            // sizes, device pointers, dtypes, strides
//   call.rows = N; call.cols = C; ...
//   call.workspace = ws; call.workspace_bytes = fusedkd::kernels::workspace_size<fusedkd::DKD>(params, call);
//   fusedkd::kernels::run<fusedkd::DKD>(params, call);   // enqueues on call.stream, returns at once
//
// Instantiated for every loss of the registry (include/fusedkd/registry.hpp): the row-local ones
// in generated units (row_local_api.cu, cmake/FusedkdTorch.cmake), USKD in uskd.cu.
//
// Errors (bad sizes, dtypes, pointers, a too small workspace, a failed launch) throw
// fusedkd::Error. Labels are never read on the host: a label outside [0, C) that is not
// ignore_index makes that row's loss and gradient NaN (and so the reduced loss).
#pragma once

#include <cstddef>
#include <cstdint>

#include <fusedkd/dtype.hpp>
#include <fusedkd/losses/topk_kd.hpp>
#include <fusedkd/reduction.hpp>
#include <fusedkd/registry.hpp>

namespace fusedkd::kernels {

// Element types: fusedkd::DType (dtype.hpp), shared with the torch ops' dispatch.
using fusedkd::DType;
using fusedkd::dtype_name;

// One loss evaluation. All pointers are device pointers on the current device.
struct LossCall {
  std::int64_t rows = 0;  // N
  std::int64_t cols = 0;  // C
  // Student logits [N, C], columns contiguous, rows `student_row_stride` elements apart.
  const void* student = nullptr;
  DType student_dtype = DType::Float32;
  std::int64_t student_row_stride = 0;
  // Teacher logits (the row-local losses) or weak logits w = fc(feature) (USKD), [N, C].
  // float64 only together with a float64 student; USKD: the student's dtype.
  const void* teacher = nullptr;
  DType teacher_dtype = DType::Float32;
  std::int64_t teacher_row_stride = 0;
  // Labels [N], int64 (or int32 with labels_int32), contiguous; null for a loss without labels
  // (KD) or when optional labels are not given (every row counts).
  const void* labels = nullptr;
  bool labels_int32 = false;
  std::int64_t ignore_index = -100;
  Reduction reduction = Reduction::BatchMean;
  // Loss output: float32 (float64 for float64 logits), [1] for batchmean/sum, [N] for none.
  void* loss = nullptr;
  // ∂loss/∂student, student dtype (float32 for a float16 student), [N, C] with the given row
  // stride; null: not computed.
  // Already multiplied by the reduction's scale (1/N_counted for batchmean).
  void* grad = nullptr;
  std::int64_t grad_row_stride = 0;
  // USKD: ∂loss/∂weak, likewise.
  void* grad_weak = nullptr;
  std::int64_t grad_weak_row_stride = 0;
  // Device scratch of at least workspace_size(params, call) bytes, 16-byte aligned.
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  // cudaStream_t to enqueue on (null: the legacy default stream).
  void* stream = nullptr;
};

// Workspace bytes a call of Loss needs (depends on rows, cols, dtypes and standardization).
template <template <class> class Loss>
std::size_t workspace_size(const typename Loss<float>::Params& p, const LossCall& call);

// Enqueue Loss (and its gradients where asked) on call.stream. No allocation, no
// synchronization: capturable in a CUDA graph.
template <template <class> class Loss> void run(const typename Loss<float>::Params& p, const LossCall& call);

// USKD (its own two-pass executor, uskd.cu): student and weak logits of one dtype; writes
// call.grad_weak too.
template <> std::size_t workspace_size<USKD>(const USKDParams& p, const LossCall& call);
template <> void run<USKD>(const USKDParams& p, const LossCall& call);

// The vocabulary-shard steps of a row-local loss (shard_call.cuh; include/fusedkd/cuda/
// shard_launch.cuh): a rank's shard [N, C_r] of a vocabulary of vocab_size starting at vocab_start,
// labels global. The states are the loss's ShardPartial / Cross in the accumulation type, their bytes
// exchanged as they are ([world, N] after an all-gather, rank order).
struct ShardCall {
  std::int64_t rows = 0;  // N
  std::int64_t cols = 0;  // C_r, the shard's columns
  const void* student = nullptr;  // as LossCall's, the shard's columns
  DType student_dtype = DType::Float32;
  std::int64_t student_row_stride = 0;
  const void* teacher = nullptr;
  DType teacher_dtype = DType::Float32;
  std::int64_t teacher_row_stride = 0;
  const void* labels = nullptr;  // as LossCall's, global indices
  bool labels_int32 = false;
  std::int64_t ignore_index = -100;
  std::int64_t vocab_start = 0;
  std::int64_t vocab_size = 0;
  const void* target_logits = nullptr;  // [N, 2] accumulation type (RLD), else null
  int world = 1;
  const void* partials = nullptr;  // shard_cross, shard_finish: [world, N] ShardPartial
  const void* cross = nullptr;     // shard_finish of a loss with a cross pass: [world, N] Cross
  void* states = nullptr;          // output of shard_stats ([N] ShardPartial) and shard_cross ([N] Cross)
  Reduction reduction = Reduction::BatchMean;  // shard_finish: as LossCall's
  void* loss = nullptr;
  void* grad = nullptr;
  std::int64_t grad_row_stride = 0;
  void* workspace = nullptr;  // shard_finish: shard_finish_workspace_size bytes
  std::size_t workspace_bytes = 0;
  void* stream = nullptr;
};

// Bytes of one row's ShardPartial / Cross of Loss in the accumulation type of `dtype`.
template <template <class> class Loss> std::size_t shard_partial_bytes(DType student_dtype);
template <template <class> class Loss> std::size_t shard_cross_bytes(DType student_dtype);
template <template <class> class Loss> std::size_t shard_finish_workspace_size(const ShardCall& call);
template <template <class> class Loss> void shard_stats(const typename Loss<float>::Params& p, const ShardCall& call);
// Throws for a loss without a cross pass.
template <template <class> class Loss> void shard_cross(const typename Loss<float>::Params& p, const ShardCall& call);
template <template <class> class Loss> void shard_finish(const typename Loss<float>::Params& p, const ShardCall& call);

// Top-k teacher KD (topk_kd.cu; include/fusedkd/losses/topk_kd.hpp): a sparse teacher of k
// log-probabilities per row at k vocabulary indices. All pointers are device pointers.
struct TopKCall {
  std::int64_t rows = 0;  // N
  std::int64_t cols = 0;  // V
  std::int64_t k = 0;
  const void* student = nullptr;  // [N, V], columns contiguous
  DType student_dtype = DType::Float32;
  std::int64_t student_row_stride = 0;
  const void* logprobs = nullptr;  // [N, k]: float32 (float64 for a float64 student), columns contiguous
  std::int64_t logprobs_row_stride = 0;
  const void* indices = nullptr;  // [N, k]: int64, or int32 with indices_int32; columns contiguous
  bool indices_int32 = false;
  std::int64_t indices_row_stride = 0;
  const void* labels = nullptr;  // [N] or null, as LossCall's
  bool labels_int32 = false;
  std::int64_t ignore_index = -100;
  Reduction reduction = Reduction::BatchMean;
  void* loss = nullptr;  // as LossCall's
  void* grad = nullptr;  // as LossCall's (null: not computed)
  std::int64_t grad_row_stride = 0;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  void* stream = nullptr;
};

std::size_t topk_kd_workspace_size(const TopKKDParams& p, const TopKCall& call);
void topk_kd(const TopKKDParams& p, const TopKCall& call);

// Autograd's backward: grad[i, :] ← factor[i · factor_stride] · grad[i, :] in place, rows whose
// factor is exactly 1 untouched (scale_rows.hpp). factor: float32, or float64 for a float64 grad.
struct ScaleCall {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  void* grad = nullptr;  // [rows, cols], columns contiguous
  DType grad_dtype = DType::Float32;
  std::int64_t grad_row_stride = 0;
  const void* factor = nullptr;
  std::int64_t factor_stride = 0;  // 0: one factor for every row
  void* stream = nullptr;          // cudaStream_t
};

// Enqueues the scaling on call.stream; no synchronization.
void scale_rows(const ScaleCall& call);

}  // namespace fusedkd::kernels
