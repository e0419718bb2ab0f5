// CUDA implementations of the vocabulary-shard ops (shard_op.hpp): the kernels of
// include/fusedkd/cuda/shard_launch.cuh through the type-erased API (cuda_api/shard_call.cuh), on
// torch's current CUDA stream, outputs and workspace from torch's allocator. No host
// synchronization: the collectives between the steps (NCCL) are the only ones.
//
// Difference from the CPU ops, by necessity: labels stay on the device, so a label outside
// [0, vocab_size) that is not ignore_index makes its row's loss and gradient NaN instead of raising.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <tuple>

#include <fusedkd/registry.hpp>

#include "../cuda_api/api.hpp"
#include "checks.hpp"
#include "cuda_stream.hpp"
#include "shard_op.hpp"

namespace fusedkd::binding {
namespace {

// The tensors a call reads, made contiguous where the kernels need it and kept alive with it.
template <template <class> class Loss> struct ShardTensors {
  Tensor student, teacher, labels, target_logits;
  kernels::ShardCall call;

  explicit ShardTensors(const ShardArgs<Loss>& a)
      : student(with_unit_column_stride(a.student)), teacher(with_unit_column_stride(a.teacher)) {
    check_cuda_tensor(a.student, "student_logits");
    check_same_cuda_device(a.student, a.teacher, "teacher_logits");
    if (a.labels) check_same_cuda_device(a.student, *a.labels, label_name_of<Loss<float>>::value);
    const int64_t N = student.size(0), C = student.size(1);
    kernels::ShardCall& c = call;
    c.rows = N;
    c.cols = C;
    c.student = student.data_ptr();
    c.student_dtype = dtype_of(student);
    c.student_row_stride = N > 0 ? student.stride(0) : C;
    c.teacher = teacher.data_ptr();
    c.teacher_dtype = dtype_of(teacher);
    c.teacher_row_stride = N > 0 ? teacher.stride(0) : C;
    if (a.labels) {
      labels = contiguous_1d(*a.labels);
      c.labels = labels.data_ptr();
      c.labels_int32 = labels.scalar_type() == ScalarType::Int;
      c.ignore_index = a.ignore_index;
    }
    c.vocab_start = a.layout.vocab_start;
    c.vocab_size = a.layout.vocab_size;
    if (a.target_logits) {
      target_logits = *a.target_logits;  // checked contiguous on the student's device
      c.target_logits = target_logits.data_ptr();
    }
    if (a.partials) {
      c.partials = a.partials->data_ptr();
      c.world = int(a.partials->size(0));
    }
    if (a.cross) c.cross = a.cross->data_ptr();
    c.reduction = a.reduction;
    c.stream = current_cuda_stream(student.get_device_index());
  }
};

template <class F> void rethrow_as_op_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    fail(user_message(e));
  }
}

template <template <class> class Loss>
void boxed_shard_stats_cuda(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Stats, stack, num_args);
  torch::stable::accelerator::DeviceGuard guard(a.student.get_device_index());
  ShardTensors<Loss> io(a);
  Tensor out = torch::stable::new_empty(a.student, {a.student.size(0), shard_partial_bytes<Loss>(a.student)},
                                        ScalarType::Byte);
  io.call.states = out.data_ptr();
  rethrow_as_op_error([&] { kernels::shard_stats<Loss>(a.params, io.call); });
  stack[0] = torch::stable::detail::from(std::move(out));
}

template <template <class> class Loss>
void boxed_shard_cross_cuda(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Cross, stack, num_args);
  torch::stable::accelerator::DeviceGuard guard(a.student.get_device_index());
  ShardTensors<Loss> io(a);
  Tensor out = torch::stable::new_empty(a.student, {a.student.size(0), shard_cross_bytes<Loss>(a.student)},
                                        ScalarType::Byte);
  io.call.states = out.data_ptr();
  rethrow_as_op_error([&] { kernels::shard_cross<Loss>(a.params, io.call); });
  stack[0] = torch::stable::detail::from(std::move(out));
}

template <template <class> class Loss>
void boxed_shard_finish_cuda(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Finish, stack, num_args);
  torch::stable::accelerator::DeviceGuard guard(a.student.get_device_index());
  ShardTensors<Loss> io(a);
  Tensor loss = new_loss(io.student, a.reduction);
  Tensor grad = new_grad(io.student, a.compute_grad);
  kernels::ShardCall& c = io.call;
  c.loss = loss.data_ptr();
  if (a.compute_grad) {
    c.grad = grad.data_ptr();
    c.grad_row_stride = io.student.size(1);
  }
  rethrow_as_op_error([&] {
    const std::size_t ws_bytes = kernels::shard_finish_workspace_size<Loss>(c);
    Tensor workspace = torch::stable::new_empty(io.student, {int64_t(ws_bytes)}, ScalarType::Byte);
    c.workspace = workspace.data_ptr();
    c.workspace_bytes = ws_bytes;
    kernels::shard_finish<Loss>(a.params, c);
  });
  stack[0] = torch::stable::detail::from(std::move(loss));
  stack[1] = torch::stable::detail::from(std::move(grad));
}

}  // namespace
}  // namespace fusedkd::binding

STABLE_TORCH_LIBRARY_IMPL(fusedkd, CUDA, m) {
  using fusedkd::binding::ShardStep;
#define FUSEDKD_IMPL_SHARD_CUDA(L)                                                                              \
  m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Stats).c_str(),                                 \
         &fusedkd::binding::boxed_shard_stats_cuda<fusedkd::L>);                                                \
  if (fusedkd::has_cross_pass<fusedkd::L<float>>::value)                                                        \
    m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Cross).c_str(),                               \
           &fusedkd::binding::boxed_shard_cross_cuda<fusedkd::L>);                                              \
  m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Finish).c_str(),                                \
         &fusedkd::binding::boxed_shard_finish_cuda<fusedkd::L>);
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_IMPL_SHARD_CUDA)
#undef FUSEDKD_IMPL_SHARD_CUDA
}
