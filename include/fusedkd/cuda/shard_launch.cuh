// Host launch layer of the vocabulary-shard steps (shard_kernels.cuh): checks, the plan (a whole
// shard row per worker, plan_whole_row), and the launches on the caller's stream. No allocation, no
// host synchronization. A rank runs, around the exchanges of the states it produces (an all-gather
// of each over the tensor-parallel group, rank order: [world][rows]):
//
//   using namespace fusedkd;
//   cuda::ShardInputs<float, float> in{LogitsView<float, float>{s, C_r, t, C_r, N, C_r},
//                                      cuda::DeviceLabels{y, false, -100}, ShardLayout{start_r, V}, nullptr};
//   cuda::shard_stats<DKD>(DKDParams{}, in, my_parts, stream);            // ShardPartial<DKD, float>[N]
//   ... all-gather my_parts → parts[world * N] ...
//   cuda::shard_finish<DKD>(DKDParams{}, in, parts, nullptr, world, Reduction::BatchMean, out, ws, stream);
//
// A loss with a cross pass (JSD, TVD) runs shard_cross between the two and exchanges its Cross[N]
// the same way; a loss whose statistics pass reads the target logits (RLD) takes (s_y, t_y) [N, 2]
// in ShardInputs::target_logits. Every pointer is a device pointer. Labels are global indices and
// are never read on the host: one outside [0, vocab_size) that is not ignore_index makes its row NaN.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../batch.hpp"
#include "../reduction.hpp"
#include "../shard.hpp"
#include "../standardize.hpp"
#include "batch_kernels.cuh"
#include "launch.cuh"
#include "launch_kernel.cuh"
#include "shard_kernels.cuh"
#include "traits.cuh"

namespace fusedkd::cuda {

// A rank's inputs to every step: its shard's logits [N, C_r], the labels (global), where its
// columns lie, and the gathered target logits (a loss with stats_read_target_logits; else null).
template <class TS, class TT> struct ShardInputs {
  LogitsView<TS, TT> x;
  DeviceLabels labels;
  ShardLayout layout;
  const acc_t<TS>* target_logits = nullptr;
};

// Bytes of workspace shard_finish needs for N rows (the batch header and the row losses).
template <class TS> inline std::size_t shard_finish_workspace_size(std::int64_t rows) {
  return make_layout(rows, sizeof(acc_t<TS>), 0, 0, 0).total;
}

namespace detail {

template <template <class> class Loss, class Params, class TS, class TT>
void check_shard_inputs(const Params& p, const ShardInputs<TS, TT>& in) {
  using A = acc_t<TS>;
  using L = Loss<A>;
  static_assert(std::is_same<acc_t<TS>, acc_t<TT>>::value, "float64 logits must be paired with float64 logits");
  validate(p, accumulation_of<A>());
  require(!standardizes(p), "logit_standardization is not supported on vocabulary shards (it needs each row's mean "
                            "and std over the whole vocabulary)");
  check_rows_cols(in.x.rows, in.x.cols);
  require(in.x.rows == 0 || in.x.student != nullptr, "student_logits: null pointer");
  require(!L::uses_teacher || in.x.rows == 0 || in.x.teacher != nullptr, "teacher_logits: null pointer");
  require(in.layout.vocab_size >= L::min_classes, "vocab_size: this loss needs at least " +
                                                      std::to_string(L::min_classes) + " classes, got " +
                                                      std::to_string(in.layout.vocab_size));
  require(in.layout.vocab_start >= 0 && in.layout.vocab_start + in.x.cols <= in.layout.vocab_size,
          "vocab_start: the shard's columns [" + std::to_string(in.layout.vocab_start) + ", " +
              std::to_string(in.layout.vocab_start + in.x.cols) + ") do not fit in the vocabulary [0, " +
              std::to_string(in.layout.vocab_size) + ")");
  require(!L::uses_label || in.labels.data != nullptr || in.x.rows == 0,
          std::string(label_name_of<L>::value) + ": this loss needs labels");
  require(!stats_read_target_logits<L>::value || in.target_logits != nullptr || in.x.rows == 0,
          "target_logits: this loss's statistics pass reads the target logits; gather (s_y, t_y) [N, 2] first");
  require(in.x.rows <= 1 ||
              (in.x.student_row_stride >= in.x.cols && (!L::uses_teacher || in.x.teacher_row_stride >= in.x.cols)),
          "student_logits/teacher_logits: row stride < C (columns must be contiguous and rows disjoint)");
  check_elem_aligned(in.x.student, "student_logits");
  check_elem_aligned(in.x.teacher, "teacher_logits");
}

template <class A, class TS, class TT> ShardKernelArgs<TS, TT, A> shard_kernel_args(const ShardInputs<TS, TT>& in) {
  ShardKernelArgs<TS, TT, A> a;
  a.s = in.x.student;
  a.s_stride = in.x.student_row_stride;
  a.t = in.x.teacher;
  a.t_stride = in.x.teacher_row_stride;
  if constexpr (std::is_same<TS, TT>::value) {
    if (a.t == nullptr) {  // a teacher-free loss: the kernels' teacher loads read the student (unused)
      a.t = in.x.student;
      a.t_stride = in.x.student_row_stride;
    }
  }
  a.labels = in.labels.data;
  a.labels_int32 = in.labels.is_int32 ? 1 : 0;
  a.ignore_index = in.labels.ignore_index;
  a.rows = in.x.rows;
  a.cols = in.x.cols;
  a.layout = in.layout;
  a.target_logits = in.target_logits;
  a.vec = vector_aligned(in.x.student, in.x.student_row_stride, in.x.rows) &&
          vector_aligned(a.t, a.t_stride, in.x.rows);
  return a;
}

// Launches step Step over every row: Group or Block from the shard's width.
template <template <class> class Loss, ShardStep Step, class Params, class TS, class TT, class A>
void launch_shard_step(const char* name, const Params& p, ShardKernelArgs<TS, TT, A> a, cudaStream_t stream) {
  if (a.rows == 0) return;
  const RowPlan plan = plan_whole_row(a.cols, VecWidth<TS, TT>::K);
  a.group_width = plan.group_width;
  if (plan.config == RowConfig::Group) {
    const std::int64_t blocks = (a.rows + plan.rows_per_block - 1) / plan.rows_per_block;
    launch_kernel<GroupKernelTraits::kThreads>(name, &shard_group_kernel<Loss, Step, Params, TS, TT, A>,
                                               unsigned(blocks), unsigned(plan.threads), stream, p, a);
  } else {
    launch_kernel<BlockKernelTraits::kMaxThreads>(name, &shard_block_kernel<Loss, Step, Params, TS, TT, A>,
                                                  unsigned(a.rows), unsigned(plan.threads), stream, p, a);
  }
}

}  // namespace detail

// Step 1: the shard's partial state of every row into partials[N].
template <template <class> class Loss, class Params, class TS, class TT>
void shard_stats(const Params& p, const ShardInputs<TS, TT>& in, ShardPartial<Loss, acc_t<TS>>* partials,
                 cudaStream_t stream) {
  using A = acc_t<TS>;
  detail::check_shard_inputs<Loss>(p, in);
  require(in.x.rows == 0 || partials != nullptr, "partials: null output pointer");
  ShardKernelArgs<TS, TT, A> a = detail::shard_kernel_args<A>(in);
  a.states = partials;
  detail::launch_shard_step<Loss, ShardStep::Stats>("shard_stats", p, a, stream);
  check_cuda(cudaGetLastError(), "launching the shard statistics kernel");
}

// Step 2 (a loss with a cross pass): with the partials of all shards ([world][N]), the shard's
// cross sums of every row into cross[N].
template <template <class> class Loss, class Params, class TS, class TT>
void shard_cross(const Params& p, const ShardInputs<TS, TT>& in, const ShardPartial<Loss, acc_t<TS>>* parts, int world,
                 cross_t<Loss<acc_t<TS>>>* cross, cudaStream_t stream) {
  using A = acc_t<TS>;
  static_assert(has_cross_pass<Loss<A>>::value, "shard_cross: this loss has no cross pass");
  detail::check_shard_inputs<Loss>(p, in);
  require(world >= 1, "world: at least one shard");
  require(in.x.rows == 0 || (parts != nullptr && cross != nullptr), "partials/cross: null pointer");
  ShardKernelArgs<TS, TT, A> a = detail::shard_kernel_args<A>(in);
  a.world = world;
  a.parts = parts;
  a.states = cross;
  detail::launch_shard_step<Loss, ShardStep::Cross>("shard_cross", p, a, stream);
  check_cuda(cudaGetLastError(), "launching the shard cross kernel");
}

// Step 3: with the partials (and the cross sums of a loss with a cross pass) of all shards, the
// loss (out.loss: [1] for batchmean/sum, [N] for none; the same on every rank) and, when out.grad
// is set, the gradient of the shard's columns, scaled by the reduction.
// Sequence: [count kernel: batchmean] → finish kernel → [reduce kernel: batchmean/sum].
template <template <class> class Loss, class Params, class TS, class TT>
void shard_finish(const Params& p, const ShardInputs<TS, TT>& in, const ShardPartial<Loss, acc_t<TS>>* parts,
                  const cross_t<Loss<acc_t<TS>>>* cross, int world, Reduction reduction,
                  const DeviceOutputs<acc_t<TS>, grad_t<TS>>& out, const Workspace& ws, cudaStream_t stream) {
  using A = acc_t<TS>;
  using L = Loss<A>;
  detail::check_shard_inputs<Loss>(p, in);
  require(world >= 1, "world: at least one shard");
  require(in.x.rows == 0 || parts != nullptr, "partials: null pointer");
  require(!has_cross_pass<L>::value || in.x.rows == 0 || cross != nullptr,
          "cross: this loss has a cross pass; pass its all-gathered sums");
  require(out.loss != nullptr, "loss: null output pointer");
  require(out.grad == nullptr || in.x.rows <= 1 || out.grad_row_stride >= in.x.cols, "grad_student: row stride < C");
  if (out.grad) detail::check_elem_aligned(out.grad, "grad_student");
  const WorkspaceLayout layout = make_layout(in.x.rows, sizeof(A), 0, 0, 0);
  char* base = detail::check_workspace(ws, layout.total);
  auto* header = reinterpret_cast<BatchHeader<A>*>(base + layout.header);

  ShardKernelArgs<TS, TT, A> a = detail::shard_kernel_args<A>(in);
  a.world = world;
  a.parts = parts;
  a.cross = cross;
  a.row_loss = reduction == Reduction::None ? out.loss : reinterpret_cast<A*>(base + layout.row_loss);
  a.grad = out.grad;
  a.g_stride = out.grad_row_stride;
  a.header = reduction == Reduction::BatchMean ? header : nullptr;
  a.vec = a.vec && vector_aligned(out.grad, out.grad_row_stride, in.x.rows);
  if (reduction == Reduction::BatchMean)
    launch_kernel<kBatchThreads>("count_rows_kernel", &count_rows_kernel<A>, 1, kBatchThreads, stream, a.labels,
                                 a.labels_int32, a.ignore_index, in.x.rows, int(reduction), header);
  detail::launch_shard_step<Loss, ShardStep::Finish>("shard_finish", p, a, stream);
  if (reduction != Reduction::None)
    launch_kernel<kBatchThreads>("reduce_rows_kernel", &reduce_rows_kernel<A>, 1, kBatchThreads, stream, a.row_loss,
                                 in.x.rows, a.header, out.loss);
  check_cuda(cudaGetLastError(), "launching the shard finish kernels");
}

}  // namespace fusedkd::cuda
