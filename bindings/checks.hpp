// Argument checks and output allocation shared by the CPU and CUDA implementations of the ops.
// Every message names the argument at fault, as the Python API calls it.
#pragma once

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include <fusedkd/dtype.hpp>
#include <fusedkd/numeric.hpp>
#include <fusedkd/reduction.hpp>

namespace fusedkd::binding {

using torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;

// Errors the ops raise: a std::runtime_error (Python: RuntimeError) whose message is the text
// alone. STD_TORCH_CHECK would prefix the function name and the build machine's source path.
template <class... Args> [[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw std::runtime_error(os.str());
}

// The message of an error of the header-only API without its "fusedkd: " prefix, so that it
// starts with the argument's name like the checks below.
inline std::string user_message(const std::exception& e) {
  const std::string what = e.what();
  const std::string prefix = "fusedkd: ";
  return what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what;
}

#define FUSEDKD_CHECK(cond, ...)                     \
  do {                                               \
    if (!(cond)) ::fusedkd::binding::fail(__VA_ARGS__); \
  } while (0)

inline const char* dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return "float32";
    case ScalarType::Double: return "float64";
    case ScalarType::Half: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
    case ScalarType::Long: return "int64";
    case ScalarType::Int: return "int32";
    default: return "a non-floating type";
  }
}

inline bool is_logit_dtype(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::Double || t == ScalarType::Half || t == ScalarType::BFloat16;
}

// A logits argument: 2-D [N, C] of a floating dtype.
inline void check_logits(const Tensor& x, const char* name) {
  FUSEDKD_CHECK(x.dim() == 2, name, " must be 2-D [N, C], got ", x.dim(), " dimension(s)");
  FUSEDKD_CHECK(is_logit_dtype(x.scalar_type()), name, " must be float32, float16, bfloat16 or float64, got ",
                dtype_name(x.scalar_type()));
}

// A second logits argument with the same shape and device as the student; float64 only with float64.
inline void check_pair(const Tensor& student, const Tensor& other, const char* name) {
  check_logits(other, name);
  FUSEDKD_CHECK(other.size(0) == student.size(0) && other.size(1) == student.size(1), name, " has shape [",
                other.size(0), ", ", other.size(1), "] but student_logits has shape [", student.size(0), ", ",
                student.size(1), "]");
  FUSEDKD_CHECK(other.is_cpu() == student.is_cpu() && other.get_device_index() == student.get_device_index(), name,
                " is on a different device than student_logits");
  const bool s64 = student.scalar_type() == ScalarType::Double, o64 = other.scalar_type() == ScalarType::Double;
  FUSEDKD_CHECK(s64 == o64, name, " is ", dtype_name(other.scalar_type()), " but student_logits is ",
                dtype_name(student.scalar_type()), ": float64 inputs must both be float64");
}

// Integer labels [N] on the student's device; name: the labels' argument name.
inline void check_target(const Tensor& student, const Tensor& target, const char* name = "target") {
  FUSEDKD_CHECK(target.scalar_type() == ScalarType::Long || target.scalar_type() == ScalarType::Int, name,
                " must hold integer class labels (int64 or int32), got ", dtype_name(target.scalar_type()));
  FUSEDKD_CHECK(target.dim() == 1 && target.size(0) == student.size(0), name, " must have shape [N] = [",
                student.size(0), "], got ", target.dim(), "-D with ", target.numel(), " element(s)");
  FUSEDKD_CHECK(target.is_cpu() == student.is_cpu() && target.get_device_index() == student.get_device_index(), name,
                " is on a different device than student_logits");
}

inline void check_min_classes(const Tensor& student, int64_t min_classes) {
  FUSEDKD_CHECK(student.size(1) >= min_classes, "student_logits must have at least ", min_classes,
                min_classes == 1 ? " class" : " classes", " (C) for this loss, got C = ", student.size(1));
}

inline Reduction reduction_from(const std::string& name) {
  FUSEDKD_CHECK(name == "batchmean" || name == "sum" || name == "none",
                "reduction must be 'batchmean', 'sum' or 'none', got '", name, "'");
  return parse_reduction(name);
}

// Columns contiguous (the executors take a row stride only); a copy only when they are not.
inline Tensor with_unit_column_stride(const Tensor& x) {
  if (x.size(1) <= 1 || x.stride(1) == 1) {
    if (x.size(0) <= 1 || x.stride(0) >= x.size(1)) return x;
  }
  return torch::stable::contiguous(x);
}

inline Tensor contiguous_1d(const Tensor& x) { return x.numel() <= 1 || x.stride(0) == 1 ? x : torch::stable::contiguous(x); }

inline ScalarType loss_dtype(const Tensor& student) {
  return student.scalar_type() == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
}

// The loss output: [N] for reduction "none", a scalar otherwise.
inline Tensor new_loss(const Tensor& student, Reduction r) {
  if (r == Reduction::None) return torch::stable::new_empty(student, {student.size(0)}, loss_dtype(student));
  return torch::stable::new_empty(student, {}, loss_dtype(student));
}

// scale_grad_'s arguments: grad [N, C] with contiguous columns (as the ops write it), and
// grad_output of the loss's dtype, a scalar or [N], on grad's device.
inline void check_scale_args(const Tensor& grad, const Tensor& grad_output) {
  check_logits(grad, "grad");
  FUSEDKD_CHECK((grad.size(1) <= 1 || grad.stride(1) == 1) && (grad.size(0) <= 1 || grad.stride(0) >= grad.size(1)),
                "grad must have contiguous columns (as the fusedkd ops write it)");
  FUSEDKD_CHECK(grad_output.scalar_type() == loss_dtype(grad), "grad_output must be ", dtype_name(loss_dtype(grad)),
                " (the loss's dtype) for a ", dtype_name(grad.scalar_type()), " grad, got ",
                dtype_name(grad_output.scalar_type()));
  FUSEDKD_CHECK(grad_output.dim() == 0 || (grad_output.dim() == 1 && grad_output.size(0) == grad.size(0)),
                "grad_output must be a scalar or have shape [N] = [", grad.size(0), "], got ", grad_output.dim(),
                "-D with ", grad_output.numel(), " element(s)");
  FUSEDKD_CHECK(grad_output.is_cpu() == grad.is_cpu() && grad_output.get_device_index() == grad.get_device_index(),
                "grad_output is on a different device than grad");
}

// Elements between consecutive rows' factors in grad_output (0: one factor for every row).
inline int64_t factor_stride(const Tensor& grad_output) { return grad_output.dim() == 0 ? 0 : grad_output.stride(0); }

// A gradient output shaped like `like` ([N, C], its dtype) or an empty [0] tensor.
// ∂loss/∂like in grad_t of like's dtype: like's dtype, float32 for float16 (numeric.hpp).
inline ScalarType grad_dtype(const Tensor& like) {
  return like.scalar_type() == ScalarType::Half ? ScalarType::Float : like.scalar_type();
}

inline Tensor new_grad(const Tensor& like, bool compute_grad) {
  if (!compute_grad) return torch::stable::new_empty(like, {0}, grad_dtype(like));
  return torch::stable::new_empty(like, {like.size(0), like.size(1)}, grad_dtype(like));
}

// The logits' runtime dtype for the one dispatch of fusedkd/dtype.hpp (the arguments were checked
// by check_logits / check_pair first, so only supported dtypes reach it).
inline DType dtype_of(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return DType::Float32;
    case ScalarType::Double: return DType::Float64;
    case ScalarType::Half: return DType::Float16;
    case ScalarType::BFloat16: return DType::BFloat16;
    default: fail("unsupported logits dtype ", dtype_name(t));
  }
  return DType::Float32;
}
inline DType dtype_of(const Tensor& x) { return dtype_of(x.scalar_type()); }

// f(Tag<T>{}) for one tensor's element type; f(Tag<TS>{}, Tag<TT>{}) for the pairs check_pair
// accepts, and only those (the CPU row loops are instantiated for exactly these, cpu_rows.hpp).
template <class F> void dispatch_one(ScalarType t, F&& f) { dispatch_dtype(dtype_of(t), "logits", f); }
template <class F> void dispatch_pair(ScalarType a, ScalarType b, F&& f) {
  dispatch_logit_pair(dtype_of(a), dtype_of(b), "teacher_logits", f);
}

template <class F> void dispatch_label(ScalarType t, F&& f) {
  if (t == ScalarType::Int) return f(Tag<std::int32_t>{});
  return f(Tag<std::int64_t>{});
}

}  // namespace fusedkd::binding
