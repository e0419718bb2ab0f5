// The type-erased API's views of a LossCall, and its dtype dispatch (fusedkd/dtype.hpp): each unit
// instantiates its kernels for every supported (student, teacher) pair through it:
// {float32, float16, bfloat16} × {float32, float16, bfloat16}, and float64 × float64.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include <fusedkd/cuda/launch.cuh>
#include <fusedkd/numeric.hpp>

#include "api.hpp"

namespace fusedkd::kernels::detail {

// The one runtime dtype → template dispatch (fusedkd/dtype.hpp).
template <class F> void dispatch_one(DType t, const char* name, F&& f) { fusedkd::dispatch_dtype(t, name, f); }
template <class F> void dispatch_pair(DType s, DType t, F&& f) { fusedkd::dispatch_logit_pair(s, t, "teacher_logits", f); }

template <class TS, class TT> LogitsView<TS, TT> logits_view(const LossCall& c) {
  return LogitsView<TS, TT>{static_cast<const TS*>(c.student), c.student_row_stride,
                            static_cast<const TT*>(c.teacher), c.teacher_row_stride, c.rows, c.cols};
}

inline cuda::DeviceLabels device_labels(const LossCall& c) {
  return cuda::DeviceLabels{c.labels, c.labels_int32, c.ignore_index};
}

template <class TS> cuda::DeviceOutputs<acc_t<TS>, grad_t<TS>> device_outputs(const LossCall& c) {
  return cuda::DeviceOutputs<acc_t<TS>, grad_t<TS>>{static_cast<acc_t<TS>*>(c.loss), static_cast<grad_t<TS>*>(c.grad),
                                            c.grad_row_stride};
}

inline cuda::Workspace workspace(const LossCall& c) { return cuda::Workspace{c.workspace, c.workspace_bytes}; }
inline cudaStream_t stream(const LossCall& c) { return static_cast<cudaStream_t>(c.stream); }

}  // namespace fusedkd::kernels::detail
