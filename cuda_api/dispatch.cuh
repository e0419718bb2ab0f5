// Runtime dtype → template dispatch for the type-erased API (cuda_api/api.hpp). Each loss's .cu
// file instantiates its kernels for every supported (student, teacher) pair through it:
// {float32, float16, bfloat16} × {float32, float16, bfloat16}, and float64 × float64.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include <fusedkd/cuda/launch.cuh>
#include <fusedkd/numeric.hpp>

#include "api.hpp"

namespace fusedkd::kernels::detail {

template <class T> struct Tag {
  using type = T;
};

template <class F> void dispatch_one(DType t, const char* name, F&& f) {
  switch (t) {
    case DType::Float32: return f(Tag<float>{});
    case DType::Float64: return f(Tag<double>{});
    case DType::Float16: return f(Tag<half_t>{});
    case DType::BFloat16: return f(Tag<bfloat16_t>{});
  }
  throw Error(std::string("fusedkd: ") + name + ": unsupported dtype");
}

// f(Tag<TS>{}, Tag<TT>{}) for a supported pair; float64 only with float64.
template <class F> void dispatch_pair(DType s, DType t, F&& f) {
  const bool s64 = s == DType::Float64, t64 = t == DType::Float64;
  require(s64 == t64, std::string("teacher_logits is ") + dtype_name(t) + " but student_logits is " + dtype_name(s) +
                          ": float64 inputs must both be float64");
  if (s64) return f(Tag<double>{}, Tag<double>{});
  auto narrow = [&](DType d, const char* name, auto&& g) {
    switch (d) {
      case DType::Float32: return g(Tag<float>{});
      case DType::Float16: return g(Tag<half_t>{});
      case DType::BFloat16: return g(Tag<bfloat16_t>{});
      default: throw Error(std::string("fusedkd: ") + name + ": unsupported dtype");
    }
  };
  narrow(s, "student_logits", [&](auto ts) { narrow(t, "teacher_logits", [&](auto tt) { f(ts, tt); }); });
}

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
