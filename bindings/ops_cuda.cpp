// CUDA implementations of the fusedkd ops: argument checks shared with the CPU ops
// (checks.hpp), outputs and workspace allocated through torch (its caching allocator), kernels
// enqueued on torch's current CUDA stream through the type-erased API of cuda_api/api.hpp.
// No host synchronization anywhere: the ops run inside CUDA graphs and torch.compile'd graphs.
//
// Difference from the CPU ops, by necessity: labels stay on the device, so an out-of-range label
// (not ignore_index) cannot raise an error without a synchronization; it makes the loss and that
// row's gradient NaN instead (the CPU ops raise).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <string>
#include <tuple>

#include <fusedkd/fusedkd.hpp>

#include "../cuda_api/api.hpp"
#include "checks.hpp"
#include "cuda_stream.hpp"
#include "loss_op.hpp"
#include "topk_op.hpp"

namespace fusedkd::binding {
namespace {

using kernels::DType;
using kernels::LossCall;

// Every tensor on the student's CUDA device; names the first that is not.
void check_on_cuda(const Tensor& student, const Tensor& second, const char* second_name, const Tensor* target,
                   const char* target_name) {
  check_cuda_tensor(student, "student_logits");
  check_same_cuda_device(student, second, second_name);
  if (target) check_same_cuda_device(student, *target, target_name);
}

// Allocates the workspace a call needs (`bytes()`) through torch's allocator, points the call at it and
// enqueues it (`run()`); an error of the kernels' API becomes the op's error.
template <class Call, class Bytes, class Run> void run_with_workspace(const Tensor& like, Call& c, Bytes&& bytes, Run&& run) {
  try {
    const std::size_t ws_bytes = bytes();
    Tensor workspace = torch::stable::new_empty(like, {int64_t(ws_bytes)}, ScalarType::Byte);
    c.workspace = workspace.data_ptr();
    c.workspace_bytes = ws_bytes;
    run();
  } catch (const Error& e) {
    fail(user_message(e));
  }
}

// The CUDA op of every loss: a LossCall over (student, second logits, optional labels) with
// outputs allocated like the CPU op's and a workspace tensor, then kernels::run<Loss>.
// Returns (loss, grad_student) or, with weak logits, (loss, grad_student, grad_weak).
struct CudaLoss {
  template <template <class> class Loss> static auto run(const LossArgs<Loss>& a) {
    using L = Loss<float>;
    constexpr bool weak = has_weak_logits<L>::value;
    check_on_cuda(a.student, a.second, weak ? "weak_logits" : "teacher_logits", a.target ? &*a.target : nullptr,
                  label_name_of<L>::value);
    torch::stable::accelerator::DeviceGuard guard(a.student.get_device_index());
    const Tensor student = with_unit_column_stride(a.student);
    const Tensor second = with_unit_column_stride(a.second);
    const int64_t N = student.size(0), C = student.size(1);
    Tensor loss = new_loss(student, a.reduction);
    Tensor grad = new_grad(student, a.compute_grad);
    Tensor grad2 = new_grad(second, a.compute_grad && weak);

    LossCall c;
    c.rows = N;
    c.cols = C;
    c.student = student.data_ptr();
    c.student_dtype = dtype_of(student);
    c.student_row_stride = N > 0 ? student.stride(0) : C;
    c.teacher = second.data_ptr();
    c.teacher_dtype = dtype_of(second);
    c.teacher_row_stride = N > 0 ? second.stride(0) : C;
    Tensor target = student;  // placeholder when there are no labels
    if (a.target) {
      target = contiguous_1d(*a.target);
      c.labels = target.data_ptr();
      c.labels_int32 = target.scalar_type() == ScalarType::Int;
      c.ignore_index = a.ignore_index;
    }
    c.reduction = a.reduction;
    c.loss = loss.data_ptr();
    if (a.compute_grad) {
      c.grad = grad.data_ptr();
      c.grad_row_stride = C;
      if (weak) {
        c.grad_weak = grad2.data_ptr();
        c.grad_weak_row_stride = C;
      }
    }
    c.stream = current_cuda_stream(student.get_device_index());
    run_with_workspace(student, c, [&] { return kernels::workspace_size<Loss>(a.params, c); },
                       [&] { kernels::run<Loss>(a.params, c); });
    if constexpr (weak)
      return std::tuple<Tensor, Tensor, Tensor>{loss, grad, grad2};
    else
      return std::tuple<Tensor, Tensor>{loss, grad};
  }
};

// fusedkd::topk_kd: a TopKCall over (student, teacher log-probabilities, indices, optional labels).
// Indices stay on the device: one outside [0, V) makes its row NaN; duplicates are not detected.
struct CudaTopK {
  static std::tuple<Tensor, Tensor> run(const TopKArgs& a) {
    check_cuda_tensor(a.student, "student_logits");
    check_same_cuda_device(a.student, a.logprobs, "teacher_topk_logprobs");
    check_same_cuda_device(a.student, a.indices, "teacher_topk_indices");
    if (a.labels) check_same_cuda_device(a.student, *a.labels, "labels");
    torch::stable::accelerator::DeviceGuard guard(a.student.get_device_index());
    TopKTensors io(a);
    kernels::TopKCall c;
    c.rows = io.N;
    c.cols = io.V;
    c.k = io.k;
    c.student = io.student.data_ptr();
    c.student_dtype = dtype_of(io.student);
    c.student_row_stride = io.student_stride();
    c.logprobs = io.logprobs.data_ptr();
    c.logprobs_row_stride = io.logprobs_stride();
    c.indices = io.indices.data_ptr();
    c.indices_int32 = io.indices.scalar_type() == ScalarType::Int;
    c.indices_row_stride = io.indices_stride();
    Tensor labels = io.student;  // placeholder when there are no labels
    if (a.labels) {
      labels = contiguous_1d(*a.labels);
      c.labels = labels.data_ptr();
      c.labels_int32 = labels.scalar_type() == ScalarType::Int;
      c.ignore_index = a.ignore_index;
    }
    c.reduction = a.reduction;
    c.loss = io.loss.data_ptr();
    if (a.compute_grad) {
      c.grad = io.grad.data_ptr();
      c.grad_row_stride = io.V;
    }
    c.stream = current_cuda_stream(io.student.get_device_index());
    run_with_workspace(io.student, c, [&] { return kernels::topk_kd_workspace_size(a.params, c); },
                       [&] { kernels::topk_kd(a.params, c); });
    return {io.loss, io.grad};
  }
};

void scale_grad_cuda(Tensor grad, Tensor grad_output) {
  check_cuda_tensor(grad, "grad");
  check_scale_args(grad, grad_output);
  torch::stable::accelerator::DeviceGuard guard(grad.get_device_index());
  kernels::ScaleCall c;
  c.rows = grad.size(0);
  c.cols = grad.size(1);
  c.grad = grad.data_ptr();
  c.grad_dtype = dtype_of(grad);
  c.grad_row_stride = grad.size(0) > 0 ? grad.stride(0) : grad.size(1);
  c.factor = grad_output.data_ptr();
  c.factor_stride = factor_stride(grad_output);
  c.stream = current_cuda_stream(grad.get_device_index());
  try {
    kernels::scale_rows(c);
  } catch (const Error& e) {
    fail(user_message(e));
  }
}

}  // namespace
}  // namespace fusedkd::binding

STABLE_TORCH_LIBRARY_IMPL(fusedkd, CUDA, m) {
#define FUSEDKD_IMPL_LOSS(L) m.impl(fusedkd::L<float>::name, &fusedkd::binding::boxed_loss<fusedkd::L, fusedkd::binding::CudaLoss>);
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_IMPL_LOSS)
  FUSEDKD_BATCH_LOSSES(FUSEDKD_IMPL_LOSS)
#undef FUSEDKD_IMPL_LOSS
  m.impl(fusedkd::binding::kTopKName, &fusedkd::binding::boxed_topk<fusedkd::binding::CudaTopK>);
  m.impl("scale_grad_", TORCH_BOX(&fusedkd::binding::scale_grad_cuda));
}
