// The top-k teacher KD op (losses/topk_kd.hpp): its schema, from TopKKDParams::fields(), and its
// arguments read off the stack and checked once for the CPU and the CUDA implementation.
//
//   topk_kd(Tensor student, Tensor teacher_topk_logprobs, Tensor teacher_topk_indices, Tensor? labels,
//           float temperature, int tail, float softcap, str reduction, int ignore_index,
//           bool compute_grad, bool grad_private=False) -> (Tensor loss, Tensor grad_student)
//
// student [N, V]; teacher_topk_logprobs [N, k] float32 (float64 with a float64 student): the Python
// API converts them; teacher_topk_indices [N, k] int64 or int32; labels [N] optional (ignore_index
// marks the rows that do not count). Outputs as every loss op's (library.cpp).
#pragma once

#include <torch/csrc/stable/library.h>

#include <optional>
#include <string>
#include <tuple>

#include <fusedkd/losses/topk_kd.hpp>

#include "checks.hpp"
#include "loss_op.hpp"
#include "schema.hpp"

namespace fusedkd::binding {

constexpr const char* kTopKName = "topk_kd";

inline std::string topk_kd_schema() {
  std::string s = std::string(kTopKName) +
                  "(Tensor student, Tensor teacher_topk_logprobs, Tensor teacher_topk_indices, Tensor? labels";
  for_each_param<TopKKDParams>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    s += std::string(", ") + schema_type<T>() + " " + field.name;
  });
  return s + ", str reduction, int ignore_index, bool compute_grad, bool grad_private=False) -> (Tensor loss, "
             "Tensor grad_student)";
}

struct __attribute__((visibility("hidden"))) TopKArgs {
  Tensor student;
  Tensor logprobs;
  Tensor indices;
  std::optional<Tensor> labels;
  TopKKDParams params;
  Reduction reduction = Reduction::BatchMean;
  std::int64_t ignore_index = -100;
  bool compute_grad = false;
};

inline constexpr std::uint64_t kTopKNumArgs = 4 + param_count<TopKKDParams>() + 4;

// Reads the arguments and checks them: student [N, V] logits; logprobs [N, k] in the loss's dtype;
// indices [N, k] int64 / int32; labels [N]; 1 ≤ k ≤ V; the parameters. All on one device.
inline TopKArgs unbox_topk_args(StableIValue* stack, std::uint64_t num_args) {
  using torch::stable::detail::to;
  FUSEDKD_CHECK(num_args == kTopKNumArgs, "fusedkd::topk_kd: the registered schema has ", num_args,
                " arguments, the implementation reads ", kTopKNumArgs);
  TopKArgs a;
  std::uint64_t i = 0;
  a.student = to<Tensor>(stack[i++]);
  a.logprobs = to<Tensor>(stack[i++]);
  a.indices = to<Tensor>(stack[i++]);
  a.labels = to<std::optional<Tensor>>(stack[i++]);
  for_each_param<TopKKDParams>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    a.params.*(field.member) = T(to<unboxed_t<T>>(stack[i++]));
  });
  const std::string reduction = to<std::string>(stack[i++]);
  a.ignore_index = to<std::int64_t>(stack[i++]);
  a.compute_grad = to<bool>(stack[i++]);
  (void)to<bool>(stack[i++]);  // grad_private: read by the Python autograd formula only
  a.reduction = reduction_from(reduction);

  check_logits(a.student, "student_logits");
  const Tensor& s = a.student;
  const Tensor& lp = a.logprobs;
  const Tensor& idx = a.indices;
  const ScalarType want = loss_dtype(s);
  FUSEDKD_CHECK(lp.dim() == 2 && lp.size(0) == s.size(0), "teacher_topk_logprobs must have shape [N, k] with N = ",
                s.size(0), " rows, got ", lp.dim(), "-D");
  FUSEDKD_CHECK(lp.scalar_type() == want, "teacher_topk_logprobs must be ", dtype_name(want), " for a ",
                dtype_name(s.scalar_type()), " student (the Python API converts them), got ", dtype_name(lp.scalar_type()));
  FUSEDKD_CHECK(idx.scalar_type() == ScalarType::Long || idx.scalar_type() == ScalarType::Int,
                "teacher_topk_indices must be int64 or int32, got ", dtype_name(idx.scalar_type()));
  FUSEDKD_CHECK(idx.dim() == 2 && idx.size(0) == lp.size(0) && idx.size(1) == lp.size(1),
                "teacher_topk_indices must have the shape of teacher_topk_logprobs [", lp.size(0), ", ", lp.size(1), "]");
  for (const Tensor* t : {&lp, &idx})
    FUSEDKD_CHECK(t->is_cpu() == s.is_cpu() && t->get_device_index() == s.get_device_index(),
                  t == &lp ? "teacher_topk_logprobs" : "teacher_topk_indices", " is on a different device than student_logits");
  if (a.labels) check_target(s, *a.labels, "labels");
  try {
    validate_topk(a.params, s.scalar_type() == ScalarType::Double ? Accumulation::Double : Accumulation::Float);
    if (s.size(0) > 0) validate_topk_sizes(lp.size(1), s.size(1));
  } catch (const Error& e) {
    fail(user_message(e));
  }
  return a;
}

// The inputs with contiguous columns (a copy only where they are not), their sizes, and the outputs
// allocated as every loss op's: what the CPU and the CUDA implementation both start from.
struct __attribute__((visibility("hidden"))) TopKTensors {
  Tensor student, logprobs, indices, loss, grad;
  std::int64_t N, V, k;
  explicit TopKTensors(const TopKArgs& a)
      : student(with_unit_column_stride(a.student)),
        logprobs(with_unit_column_stride(a.logprobs)),
        indices(with_unit_column_stride(a.indices)),
        loss(new_loss(student, a.reduction)),
        grad(new_grad(student, a.compute_grad)),
        N(student.size(0)),
        V(student.size(1)),
        k(logprobs.size(1)) {}
  // Row strides; a batch of no rows reports its width.
  std::int64_t student_stride() const { return N > 0 ? student.stride(0) : V; }
  std::int64_t logprobs_stride() const { return N > 0 ? logprobs.stride(0) : k; }
  std::int64_t indices_stride() const { return N > 0 ? indices.stride(0) : k; }
};

// The boxed kernel: Run::run(args) returns (loss, grad_student).
template <class Run> void boxed_topk(StableIValue* stack, std::uint64_t num_args, std::uint64_t num_outputs) {
  using torch::stable::detail::from;
  TopKArgs a = unbox_topk_args(stack, num_args);
  FUSEDKD_CHECK(num_outputs == 2, "fusedkd::topk_kd: the registered schema has ", num_outputs, " outputs");
  auto out = Run::run(a);
  stack[0] = from(std::move(std::get<0>(out)));
  stack[1] = from(std::move(std::get<1>(out)));
}

}  // namespace fusedkd::binding
