// Host launch layer of the CUDA executor: argument checks, the launch plan (traits.cuh), the
// workspace carve-up and the kernel launches on the caller's stream. No allocation, no host
// synchronization: safe inside CUDA graph capture.
//
//   using namespace fusedkd;
//   cuda::Workspace ws{ws_ptr, cuda::dkd_workspace_size<float, float>(N, C)};
//   cuda::DeviceOutputs<float, float> out{loss_ptr, grad_ptr, C};
//   cuda::dkd(DKDParams{}, LogitsView<float, float>{s, C, t, C, N, C}, cuda::DeviceLabels{y, false, -100},
//             Reduction::BatchMean, out, ws, stream);
//
// Launch sequence of a row-local loss: [count kernel: batchmean only] → row kernel(s) →
// [reduce kernel: batchmean/sum]. Every pointer is a device pointer; inputs must not alias
// outputs. Labels out of [0, C) that are not ignore_index make the row's loss and gradient NaN
// (so the reduced loss is NaN): the host never reads labels.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../batch.hpp"
#include "../registry.hpp"
#include "../reduction.hpp"
#include "batch_kernels.cuh"
#include "common.cuh"
#include "launch_kernel.cuh"
#include "row_kernels.cuh"
#include "traits.cuh"
#include "uskd_kernels.cuh"

namespace fusedkd::cuda {

// Where a loss call writes. loss: [1] for batchmean/sum, [rows] for none (always required).
// grad: ∂loss/∂student in grad_t of the student's dtype — the student's, float32 for float16
// (numeric.hpp) — (null: no gradient), already scaled by the reduction (1/N_counted for batchmean).
template <class A, class TG> struct DeviceOutputs {
  A* loss = nullptr;
  TG* grad = nullptr;
  std::int64_t grad_row_stride = 0;
};

template <class A, class TG> struct USKDDeviceOutputs {
  A* loss = nullptr;
  TG* grad_student = nullptr;
  std::int64_t grad_student_row_stride = 0;
  TG* grad_weak = nullptr;
  std::int64_t grad_weak_row_stride = 0;
};

// Caller-provided device scratch of at least *_workspace_size() bytes, 16-byte aligned
// (cudaMalloc gives 256). Its contents need no initialization and are garbage afterwards.
struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

namespace detail {

inline void check_rows_cols(std::int64_t rows, std::int64_t cols) {
  require(rows >= 0, "student_logits: negative number of rows");
  require(rows <= std::int64_t(0x7fffffff), "student_logits: more than 2^31 - 1 rows");
  require(cols >= 0, "student_logits: negative number of classes");
}

inline char* check_workspace(const Workspace& ws, std::size_t need) {
  require(ws.data != nullptr, "workspace: null pointer (need " + std::to_string(need) + " bytes)");
  require(ws.bytes >= need,
          "workspace: " + std::to_string(ws.bytes) + " bytes given, " + std::to_string(need) + " needed");
  require(reinterpret_cast<std::uintptr_t>(ws.data) % 16 == 0, "workspace: pointer must be 16-byte aligned");
  return static_cast<char*>(ws.data);
}

template <class T> inline void check_elem_aligned(const T* p, const char* name) {
  require(reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0, std::string(name) + ": misaligned pointer");
}

}  // namespace detail

// ----------------------------------------------------------------------------- row-local losses

template <template <class> class Loss, class TS, class TT>
inline WorkspaceLayout row_local_layout(std::int64_t rows, std::int64_t cols, bool standardized = false) {
  using A = acc_t<TS>;
  using Stats = typename Loss<A>::Stats;
  const RowPlan plan = plan_row_local(cols, VecWidth<TS, TT>::K);
  const bool split = plan.config == RowConfig::Split;
  const std::size_t partial = standardized ? sizeof(StandardizedPartial<Stats, A>) : sizeof(SplitPartial<Loss<A>>);
  return make_layout(rows, sizeof(A), split ? partial : 0, split ? plan.splits : 0, 0);
}

// Bytes of workspace a row-local loss needs for [rows, cols] (independent of the reduction).
template <template <class> class Loss, class TS, class TT>
inline std::size_t row_local_workspace_size(std::int64_t rows, std::int64_t cols, bool standardized = false) {
  return row_local_layout<Loss, TS, TT>(rows, cols, standardized).total;
}

// Runs a row-local Loss (Standardized: on standardized logits, the loss's logit_standardization).
template <template <class> class Loss, bool Standardized, class Params, class TS, class TT>
void launch_row_local(const Params& params, const LogitsView<TS, TT>& x, const DeviceLabels& labels, Reduction reduction,
                      const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  using A = acc_t<TS>;
  using L = Loss<A>;
  static_assert(std::is_same<acc_t<TS>, acc_t<TT>>::value, "float64 logits must be paired with float64 logits");
  validate(params, accumulation_of<A>());
  detail::check_rows_cols(x.rows, x.cols);
  validate_shape<L>(x);
  require(!L::uses_label || labels.data != nullptr || x.rows == 0,
          std::string(label_name_of<L>::value) + ": this loss needs labels");
  require(out.loss != nullptr, "loss: null output pointer");
  require(out.grad == nullptr || x.rows <= 1 || out.grad_row_stride >= x.cols, "grad_student: row stride < C");
  require(x.rows <= 1 || (x.student_row_stride >= x.cols && (!L::uses_teacher || x.teacher_row_stride >= x.cols)),
          "student_logits/teacher_logits: row stride < C (columns must be contiguous and rows disjoint)");
  detail::check_elem_aligned(x.student, "student_logits");
  detail::check_elem_aligned(x.teacher, "teacher_logits");
  if (out.grad) detail::check_elem_aligned(out.grad, "grad_student");

  const RowPlan plan = plan_row_local(x.cols, VecWidth<TS, TT>::K);
  const WorkspaceLayout layout = row_local_layout<Loss, TS, TT>(x.rows, x.cols, Standardized);
  char* base = detail::check_workspace(ws, layout.total);
  auto* header = reinterpret_cast<BatchHeader<A>*>(base + layout.header);

  RowLocalArgs<TS, TT, A> a;
  a.s = x.student;
  a.s_stride = x.student_row_stride;
  a.t = x.teacher;
  a.t_stride = x.teacher_row_stride;
  if constexpr (!L::uses_teacher && std::is_same<TS, TT>::value) {
    if (a.t == nullptr) {  // a teacher-free loss: the kernels' teacher loads read the student (unused)
      a.t = x.student;
      a.t_stride = x.student_row_stride;
    }
  }
  a.labels = labels.data;  // null: every row counts
  a.labels_int32 = labels.is_int32 ? 1 : 0;
  a.ignore_index = labels.ignore_index;
  a.rows = x.rows;
  a.cols = x.cols;
  a.row_loss = reduction == Reduction::None ? out.loss : reinterpret_cast<A*>(base + layout.row_loss);
  a.grad = out.grad;
  a.g_stride = out.grad_row_stride;
  a.header = reduction == Reduction::BatchMean ? header : nullptr;
  a.vec = vector_aligned(x.student, x.student_row_stride, x.rows) && vector_aligned(x.teacher, x.teacher_row_stride, x.rows) &&
          vector_aligned(out.grad, out.grad_row_stride, x.rows);
  a.group_width = plan.group_width;
  a.splits = plan.splits;
  a.chunk = plan.chunk;
  a.partials = base + layout.partials;

  if (reduction == Reduction::BatchMean)
    launch_kernel<kBatchThreads>("count_rows_kernel", &count_rows_kernel<A>, 1, kBatchThreads, stream, a.labels,
                                 a.labels_int32, a.ignore_index, x.rows, int(reduction), header);
  if (x.rows > 0) {
    switch (plan.config) {
      case RowConfig::Group: {
        const std::int64_t blocks = (x.rows + plan.rows_per_block - 1) / plan.rows_per_block;
        launch_kernel<GroupKernelTraits::kThreads>("row_group_kernel", &row_group_kernel<Loss, Params, TS, TT, A, Standardized>,
                                                   unsigned(blocks), unsigned(plan.threads), stream, params, a);
        break;
      }
      case RowConfig::Block:
        launch_kernel<BlockKernelTraits::kMaxThreads>("row_block_kernel",
                                                      &row_block_kernel<Loss, Params, TS, TT, A, Standardized>,
                                                      unsigned(x.rows), unsigned(plan.threads), stream, params, a);
        break;
      case RowConfig::Split: {
        require(plan.splits <= SplitKernelTraits::kMaxSplits, "student_logits: too many classes");
        const dim3 grid(unsigned(x.rows), unsigned(plan.splits));
        const unsigned threads = unsigned(plan.threads);
        if constexpr (!Standardized) {
          const dim3 grad_grid(unsigned(x.rows), out.grad ? unsigned(plan.splits) : 1u);
          launch_kernel<SplitKernelTraits::kThreads>("row_split_stats_kernel",
                                                     &row_split_stats_kernel<Loss, Params, TS, TT, A>, grid, threads,
                                                     stream, params, a);
          if constexpr (has_cross_pass<L>::value)
            launch_kernel<SplitKernelTraits::kThreads>("row_split_cross_kernel",
                                                       &row_split_cross_kernel<Loss, Params, TS, TT, A>, grid, threads,
                                                       stream, params, a);
          launch_kernel<SplitKernelTraits::kThreads>("row_split_grad_kernel",
                                                     &row_split_grad_kernel<Loss, Params, TS, TT, A>, grad_grid,
                                                     threads, stream, params, a);
        } else {  // moments, statistics, loss (+ the chain rule's sums), gradient
          const dim3 loss_grid(unsigned(x.rows), out.grad ? unsigned(plan.splits) : 1u);
          launch_kernel<SplitKernelTraits::kThreads>("row_split_standardized_kernel<1>",
                                                     &row_split_standardized_kernel<Loss, Params, TS, TT, A, 1>, grid,
                                                     threads, stream, params, a);
          launch_kernel<SplitKernelTraits::kThreads>("row_split_standardized_kernel<2>",
                                                     &row_split_standardized_kernel<Loss, Params, TS, TT, A, 2>, grid,
                                                     threads, stream, params, a);
          launch_kernel<SplitKernelTraits::kThreads>("row_split_standardized_kernel<3>",
                                                     &row_split_standardized_kernel<Loss, Params, TS, TT, A, 3>,
                                                     loss_grid, threads, stream, params, a);
          if (out.grad)
            launch_kernel<SplitKernelTraits::kThreads>("row_split_standardized_kernel<4>",
                                                       &row_split_standardized_kernel<Loss, Params, TS, TT, A, 4>, grid,
                                                       threads, stream, params, a);
        }
        break;
      }
    }
  }
  if (reduction != Reduction::None)
    launch_kernel<kBatchThreads>("reduce_rows_kernel", &reduce_rows_kernel<A>, 1, kBatchThreads, stream,
                                 a.row_loss, x.rows, a.header, out.loss);
  check_cuda(cudaGetLastError(), "launching the loss kernels");
}

// ----------------------------------------------------------------------------- named entry points

// A row-local loss on the logits, or on the standardized logits when its parameters ask for it
// (standardizes(p): KD, DKD, RLD with logit_standardization).
template <template <class> class Loss, class Params, class TS, class TT>
void launch_loss(const Params& p, const LogitsView<TS, TT>& x, const DeviceLabels& labels, Reduction r,
                 const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  if constexpr (has_logit_standardization<Params>::value) {
    if (standardizes(p)) return launch_row_local<Loss, true>(p, x, labels, r, out, ws, stream);
  }
  launch_row_local<Loss, false>(p, x, labels, r, out, ws, stream);
}

template <class TS, class TT>
inline std::size_t kd_workspace_size(std::int64_t rows, std::int64_t cols, bool logit_standardization = false) {
  return row_local_workspace_size<KD, TS, TT>(rows, cols, logit_standardization);
}
template <class TS, class TT>
inline std::size_t dkd_workspace_size(std::int64_t rows, std::int64_t cols, bool logit_standardization = false) {
  return row_local_workspace_size<DKD, TS, TT>(rows, cols, logit_standardization);
}
template <class TS, class TT> inline std::size_t nkd_workspace_size(std::int64_t rows, std::int64_t cols) {
  return row_local_workspace_size<NKD, TS, TT>(rows, cols);
}
template <class TS, class TT>
inline std::size_t rld_workspace_size(std::int64_t rows, std::int64_t cols, bool logit_standardization) {
  return row_local_workspace_size<RLD, TS, TT>(rows, cols, logit_standardization);
}

template <class TS, class TT>
void kd(const KDParams& p, const LogitsView<TS, TT>& x, Reduction r, const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out,
        const Workspace& ws, cudaStream_t stream) {
  launch_loss<KD>(p, x, DeviceLabels{}, r, out, ws, stream);
}

template <class TS, class TT>
void dkd(const DKDParams& p, const LogitsView<TS, TT>& x, const DeviceLabels& labels, Reduction r,
         const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  launch_loss<DKD>(p, x, labels, r, out, ws, stream);
}

template <class TS, class TT>
void nkd(const NKDParams& p, const LogitsView<TS, TT>& x, const DeviceLabels& labels, Reduction r,
         const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  launch_loss<NKD>(p, x, labels, r, out, ws, stream);
}

template <class TS, class TT>
void rld(const RLDParams& p, const LogitsView<TS, TT>& x, const DeviceLabels& labels, Reduction r,
         const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  launch_loss<RLD>(p, x, labels, r, out, ws, stream);
}

// ----------------------------------------------------------------------------- USKD

template <class T> inline WorkspaceLayout uskd_layout(std::int64_t rows, std::int64_t cols) {
  using A = acc_t<T>;
  const int splits = int((cols + USKDKernelTraits::kChunk - 1) / USKDKernelTraits::kChunk);
  return make_layout(rows, sizeof(A), sizeof(A), splits < 1 ? 1 : splits, sizeof(USKDRowStats<A>));
}

template <class T> inline std::size_t uskd_workspace_size(std::int64_t rows, std::int64_t cols) {
  return uskd_layout<T>(rows, cols).total;
}

// USKD: student and weak logits of one dtype; gradients to both (each optional).
template <class T>
void uskd(const USKDParams& p, const StudentWeakView<T, T>& x, const DeviceLabels& labels, Reduction reduction,
          const USKDDeviceOutputs<acc_t<T>, grad_t<T>>& out, const Workspace& ws, cudaStream_t stream) {
  using A = acc_t<T>;
  validate(p);
  detail::check_rows_cols(x.rows, x.cols);
  validate_uskd_shape(x);
  require(labels.data != nullptr || x.rows == 0, "target: USKD needs labels");
  require(out.loss != nullptr, "loss: null output pointer");
  require(x.rows <= 1 || (x.student_row_stride >= x.cols && x.weak_row_stride >= x.cols),
          "student_logits/weak_logits: row stride < C (columns must be contiguous and rows disjoint)");
  require(out.grad_student == nullptr || x.rows <= 1 || out.grad_student_row_stride >= x.cols,
          "grad_student: row stride < C");
  require(out.grad_weak == nullptr || x.rows <= 1 || out.grad_weak_row_stride >= x.cols, "grad_weak: row stride < C");
  detail::check_elem_aligned(x.student, "student_logits");
  detail::check_elem_aligned(x.weak, "weak_logits");
  const int splits = int((x.cols + USKDKernelTraits::kChunk - 1) / USKDKernelTraits::kChunk);
  require(splits <= SplitKernelTraits::kMaxSplits, "student_logits: too many classes");
  const WorkspaceLayout layout = uskd_layout<T>(x.rows, x.cols);
  char* base = detail::check_workspace(ws, layout.total);

  USKDArgs<T, A> a;
  a.s = x.student;
  a.s_stride = x.student_row_stride;
  a.w = x.weak;
  a.w_stride = x.weak_row_stride;
  a.labels = labels.data;
  a.labels_int32 = labels.is_int32 ? 1 : 0;
  a.ignore_index = labels.ignore_index;
  a.rows = x.rows;
  a.cols = x.cols;
  a.row_loss = reduction == Reduction::None ? out.loss : reinterpret_cast<A*>(base + layout.row_loss);
  a.grad_s = out.grad_student;
  a.gs_stride = out.grad_student_row_stride;
  a.grad_w = out.grad_weak;
  a.gw_stride = out.grad_weak_row_stride;
  a.header = reinterpret_cast<BatchHeader<A>*>(base + layout.header);
  a.reduction = int(reduction);
  a.vec = vector_aligned(x.student, x.student_row_stride, x.rows) && vector_aligned(x.weak, x.weak_row_stride, x.rows);
  a.splits = splits;
  a.nt_partials = reinterpret_cast<A*>(base + layout.partials);
  a.row_stats = reinterpret_cast<USKDRowStats<A>*>(base + layout.row_stats);

  // The batch kernel runs even for 0 rows: it writes the header the reduction reads.
  if (x.rows > 0) {
    const RowPlan plan = plan_whole_row(x.cols, VecWidth<T, T>::K);
    a.group_width = plan.group_width;
    if (plan.config == RowConfig::Group) {
      const std::int64_t blocks = (x.rows + plan.rows_per_block - 1) / plan.rows_per_block;
      launch_kernel<GroupKernelTraits::kThreads>("uskd_stats_group_kernel", &uskd_stats_group_kernel<T, A>,
                                                 unsigned(blocks), unsigned(plan.threads), stream, p, a);
    } else {
      launch_kernel<BlockKernelTraits::kMaxThreads>("uskd_stats_block_kernel", &uskd_stats_block_kernel<T, A>,
                                                    unsigned(x.rows), unsigned(plan.threads), stream, p, a);
    }
  }
  launch_kernel<kBatchThreads>("uskd_batch_kernel", &uskd_batch_kernel<T, A>, 1, kBatchThreads, stream, a);
  if (x.rows > 0) {
    using Tr = USKDKernelTraits;
    launch_kernel<Tr::kThreads>("uskd_rank_kernel", &uskd_rank_kernel<T, A>, dim3(unsigned(x.rows), unsigned(splits)),
                                Tr::kThreads, stream, p, a);
    launch_kernel<Tr::kRowLossThreads>("uskd_row_loss_kernel", &uskd_row_loss_kernel<T, A>,
                                       unsigned((x.rows + Tr::kRowLossThreads - 1) / Tr::kRowLossThreads),
                                       Tr::kRowLossThreads, stream, p, a);
  }
  if (reduction != Reduction::None)
    launch_kernel<kBatchThreads>("reduce_rows_kernel", &reduce_rows_kernel<A>, 1, kBatchThreads, stream,
                                 a.row_loss, x.rows, reduction == Reduction::BatchMean ? a.header : nullptr, out.loss);
  check_cuda(cudaGetLastError(), "launching the USKD kernels");
}

}  // namespace fusedkd::cuda
