// USKD on the GPU: student and weak logits of one dtype (float32, float16, bfloat16, float64).
#include <string>

#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels {

namespace {
template <class F> void dispatch_uskd(const LossCall& c, F&& f) {
  require(c.student_dtype == c.teacher_dtype, std::string("weak_logits must have the dtype of student_logits (") +
                                                  dtype_name(c.student_dtype) + "), got " + dtype_name(c.teacher_dtype));
  detail::dispatch_one(c.student_dtype, "student_logits", f);
}
}  // namespace

template <> std::size_t workspace_size<USKD>(const USKDParams&, const LossCall& c) {
  std::size_t n = 0;
  dispatch_uskd(c, [&](auto tag) {
    using T = typename decltype(tag)::type;
    n = cuda::uskd_workspace_size<T>(c.rows, c.cols);
  });
  return n;
}

template <> void run<USKD>(const USKDParams& p, const LossCall& c) {
  dispatch_uskd(c, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const StudentWeakView<T, T> x{static_cast<const T*>(c.student), c.student_row_stride,
                                       static_cast<const T*>(c.teacher), c.teacher_row_stride, c.rows, c.cols};
    const cuda::USKDDeviceOutputs<A, grad_t<T>> out{static_cast<A*>(c.loss), static_cast<grad_t<T>*>(c.grad), c.grad_row_stride,
                                                    static_cast<grad_t<T>*>(c.grad_weak), c.grad_weak_row_stride};
    cuda::uskd(p, x, detail::device_labels(c), c.reduction, out, detail::workspace(c), detail::stream(c));
  });
}

}  // namespace fusedkd::kernels
