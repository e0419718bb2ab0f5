// Top-k teacher KD on the GPU: the student in any logits dtype, the teacher's log-probabilities in
// the accumulation type, indices int64 or int32 (read by a flag).
#include "api.hpp"
#include "dispatch.cuh"

#include <fusedkd/cuda/topk_kernels.cuh>

namespace fusedkd::kernels {

std::size_t topk_kd_workspace_size(const TopKKDParams&, const TopKCall& c) {
  std::size_t n = 0;
  detail::dispatch_one(c.student_dtype, "student_logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    n = cuda::topk_kd_workspace_size<T>(c.rows);
  });
  return n;
}

void topk_kd(const TopKKDParams& p, const TopKCall& c) {
  detail::dispatch_one(c.student_dtype, "student_logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const TopKView<T, A, void> x{static_cast<const T*>(c.student), c.student_row_stride, static_cast<const A*>(c.logprobs),
                                 c.logprobs_row_stride, c.indices, c.indices_row_stride, c.rows, c.cols, c.k};
    const cuda::TopKDeviceIndices idx{c.indices, c.indices_int32, c.indices_row_stride};
    const cuda::DeviceLabels labels{c.labels, c.labels_int32, c.ignore_index};
    const cuda::DeviceOutputs<A, grad_t<T>> out{static_cast<A*>(c.loss), static_cast<grad_t<T>*>(c.grad), c.grad_row_stride};
    cuda::topk_kd(p, x, idx, labels, c.reduction, out, cuda::Workspace{c.workspace, c.workspace_bytes},
                  static_cast<cudaStream_t>(c.stream));
  });
}

}  // namespace fusedkd::kernels
