// The boxed loss ops: their arguments read from the stack by the loss's schema layout
// (schema.hpp), checked once for the CPU and the CUDA implementation alike, and the outputs boxed.
//
//   boxed_loss<Loss, Run>: unbox → LossArgs<Loss> → check_loss_args → Run::template run<Loss>(args)
//   → (loss, grad_student[, grad_weak]) on the stack.
#pragma once

#include <torch/csrc/stable/library.h>

#include <optional>
#include <string>
#include <tuple>
#include <type_traits>

#include <fusedkd/descriptor.hpp>

#include "checks.hpp"
#include "schema.hpp"

namespace fusedkd::binding {

// Hidden, as torch's Tensor is: the struct never crosses the extension's boundary.
template <template <class> class Loss> struct __attribute__((visibility("hidden"))) LossArgs {
  using L = Loss<float>;
  using Params = typename L::Params;
  Tensor student;
  Tensor second;                  // teacher_logits, weak_logits (USKD), or the student (teacher-free)
  std::optional<Tensor> target;   // the labels, when given
  Params params;
  Reduction reduction = Reduction::BatchMean;
  std::int64_t ignore_index = -100;
  bool compute_grad = false;
};

// The C++ type a schema type unboxes to: float → double, int → int64_t, bool → bool.
template <class T> using unboxed_t =
    std::conditional_t<std::is_same<T, bool>::value, bool,
                       std::conditional_t<std::is_floating_point<T>::value, double, std::int64_t>>;

// Reads every argument off the stack first (each Tensor takes its reference, so none leaks if a
// check fails later), then parses the reduction.
template <template <class> class Loss> LossArgs<Loss> unbox_loss_args(StableIValue* stack, std::uint64_t num_args) {
  using torch::stable::detail::to;
  using Layout = SchemaLayout<Loss>;
  FUSEDKD_CHECK(num_args == Layout::num_args, "fusedkd::", Layout::L::name, ": the registered schema has ", num_args,
                " arguments, the implementation reads ", Layout::num_args);
  LossArgs<Loss> a;
  std::uint64_t i = 0;
  a.student = to<Tensor>(stack[i++]);
  if constexpr (Layout::second)
    a.second = to<Tensor>(stack[i++]);
  else
    a.second = a.student;  // a teacher-free loss: the executors get the student there and read no teacher
  if constexpr (Layout::labels == LabelUse::Required) a.target = to<Tensor>(stack[i++]);
  if constexpr (Layout::labels == LabelUse::Optional) a.target = to<std::optional<Tensor>>(stack[i++]);
  for_each_param<typename Layout::Params>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    a.params.*(field.member) = T(to<unboxed_t<T>>(stack[i++]));
  });
  const std::string reduction = to<std::string>(stack[i++]);
  if constexpr (Layout::labels != LabelUse::None) a.ignore_index = to<std::int64_t>(stack[i++]);
  a.compute_grad = to<bool>(stack[i++]);
  (void)to<bool>(stack[i++]);  // grad_private: read by the Python autograd formula only
  a.reduction = reduction_from(reduction);
  return a;
}

// The argument checks every implementation makes first: logits [N, C] of a supported dtype, the
// second logits of the same shape and device (float64 only with float64; USKD: the student's
// dtype), labels [N] of an integer type on that device, at least min_classes classes, and the
// parameters (validate: one implementation, in the core) for the student's accumulation type.
template <template <class> class Loss> void check_loss_args(const LossArgs<Loss>& a) {
  using L = Loss<float>;
  const char* second_name = has_weak_logits<L>::value ? "weak_logits" : "teacher_logits";
  check_logits(a.student, "student_logits");
  if (SchemaLayout<Loss>::second) check_pair(a.student, a.second, second_name);
  if (has_weak_logits<L>::value)
    FUSEDKD_CHECK(a.second.scalar_type() == a.student.scalar_type(), "weak_logits must have the dtype of student_logits (",
                  dtype_name(a.student.scalar_type()), "), got ", dtype_name(a.second.scalar_type()));
  if (a.target) check_target(a.student, *a.target, label_name_of<L>::value);
  check_min_classes(a.student, L::min_classes);
  try {
    validate(a.params, a.student.scalar_type() == ScalarType::Double ? Accumulation::Double : Accumulation::Float);
  } catch (const Error& e) {
    fail(user_message(e));
  }
}

// The boxed kernel of Loss: Run::template run<Loss>(args) returns (loss, grad_student) or, with
// weak logits, (loss, grad_student, grad_weak).
template <template <class> class Loss, class Run>
void boxed_loss(StableIValue* stack, std::uint64_t num_args, std::uint64_t num_outputs) {
  using torch::stable::detail::from;
  LossArgs<Loss> a = unbox_loss_args<Loss>(stack, num_args);
  FUSEDKD_CHECK(num_outputs == SchemaLayout<Loss>::num_outputs, "fusedkd::", Loss<float>::name,
                ": the registered schema has ", num_outputs, " outputs");
  check_loss_args(a);
  auto out = Run::template run<Loss>(a);
  std::apply([&](auto&... t) {
    std::uint64_t k = 0;
    ((stack[k++] = from(std::move(t))), ...);
  }, out);
}

}  // namespace fusedkd::binding
