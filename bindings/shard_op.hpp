// The vocabulary-shard ops of a row-local loss (shard.hpp, cpu/shard_rows.hpp): their schemas,
// from the loss's descriptor, and their arguments read off the stack and checked once.
//
//   <name>_shard_stats(<inputs>) -> Tensor partials                        [N, P] uint8
//   <name>_shard_cross(<inputs>, Tensor partials) -> Tensor cross          [N, X] uint8 (JSD, TVD)
//   <name>_shard_finish(<inputs>, Tensor partials, Tensor? cross, str reduction, bool compute_grad)
//       -> (Tensor loss, Tensor grad_student)
// with <inputs> = Tensor student, [Tensor teacher], [Tensor target | Tensor? labels],
//   <parameters in fields() order>, int vocab_start, int vocab_size, [int ignore_index],
//   Tensor? target_logits.
//
// student (and teacher) are the shard's columns [N, C] of a vocabulary of vocab_size, starting at
// global column vocab_start; labels are global class indices (int64). partials, cross: one row
// state per row of each of the world shards, as an all-gather lays them out ([world, N, P] uint8,
// rank order): their bytes are the trivially copyable ShardPartial / Cross of the loss in the
// accumulation type, exchanged as they are and merged in rank order by every rank.
// target_logits: [N, 2] (s_y, t_y) in the accumulation dtype, for a loss whose statistics pass
// reads them (stats_read_target_logits: RLD); None otherwise. The outputs of _shard_finish are
// those of the loss op (library.cpp) for the shard's columns; the loss is the same on every shard.
#pragma once

#include <torch/csrc/stable/library.h>

#include <optional>
#include <string>

#include <fusedkd/cross_pass.hpp>
#include <fusedkd/descriptor.hpp>
#include <fusedkd/shard.hpp>
#include <fusedkd/standardize.hpp>

#include "checks.hpp"
#include "loss_op.hpp"
#include "schema.hpp"

namespace fusedkd::binding {

enum class ShardStep { Stats, Cross, Finish };

inline const char* shard_suffix(ShardStep step) {
  return step == ShardStep::Stats ? "_shard_stats" : step == ShardStep::Cross ? "_shard_cross" : "_shard_finish";
}

template <template <class> class Loss> std::string shard_op_name(ShardStep step) {
  return std::string(Loss<float>::name) + shard_suffix(step);
}

template <template <class> class Loss> std::string shard_schema(ShardStep step) {
  using Layout = SchemaLayout<Loss>;
  using L = typename Layout::L;
  std::string s = shard_op_name<Loss>(step) + "(Tensor student";
  if (Layout::second) s += ", Tensor teacher";
  if (Layout::labels == LabelUse::Required) s += std::string(", Tensor ") + label_name_of<L>::value;
  if (Layout::labels == LabelUse::Optional) s += std::string(", Tensor? ") + label_name_of<L>::value;
  for_each_param<typename Layout::Params>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    s += std::string(", ") + schema_type<T>() + " " + field.name;
  });
  s += ", int vocab_start, int vocab_size";
  if (Layout::labels != LabelUse::None) s += ", int ignore_index";
  s += ", Tensor? target_logits";
  if (step == ShardStep::Stats) return s + ") -> Tensor";
  if (step == ShardStep::Cross) return s + ", Tensor partials) -> Tensor";
  return s + ", Tensor partials, Tensor? cross, str reduction, bool compute_grad) -> (Tensor loss, Tensor grad_student)";
}

template <template <class> class Loss> struct __attribute__((visibility("hidden"))) ShardArgs {
  using Params = typename Loss<float>::Params;
  Tensor student;
  Tensor teacher;  // the student for a teacher-free loss (never read)
  std::optional<Tensor> labels;
  Params params;
  ShardLayout layout;
  std::int64_t ignore_index = -100;
  std::optional<Tensor> target_logits;
  std::optional<Tensor> partials;
  std::optional<Tensor> cross;
  Reduction reduction = Reduction::BatchMean;
  bool compute_grad = false;
};

// The bytes of one row's state of Loss in the accumulation type of `student`.
template <template <class> class Loss> std::int64_t shard_partial_bytes(const Tensor& student) {
  return student.scalar_type() == ScalarType::Double ? std::int64_t(sizeof(ShardPartial<Loss, double>))
                                                      : std::int64_t(sizeof(ShardPartial<Loss, float>));
}
template <template <class> class Loss> std::int64_t shard_cross_bytes(const Tensor& student) {
  return student.scalar_type() == ScalarType::Double ? std::int64_t(sizeof(cross_t<Loss<double>>))
                                                      : std::int64_t(sizeof(cross_t<Loss<float>>));
}

// An exchanged state tensor: [world, N, bytes] uint8, contiguous, on the student's device.
inline void check_states(const Tensor& states, const Tensor& student, std::int64_t bytes, const char* name) {
  FUSEDKD_CHECK(states.scalar_type() == ScalarType::Byte && states.dim() == 3 && states.size(0) >= 1 &&
                    states.size(1) == student.size(0) && states.size(2) == bytes,
                name, " must be the all-gathered shard states, uint8 [world, N, ", bytes, "] with N = ", student.size(0),
                ", got a tensor of ", states.dim(), " dimension(s)");
  FUSEDKD_CHECK(states.is_contiguous(), name, " must be contiguous");
  FUSEDKD_CHECK(states.is_cpu() == student.is_cpu() && states.get_device_index() == student.get_device_index(), name,
                " is on a different device than student_logits");
}

template <template <class> class Loss>
ShardArgs<Loss> unbox_shard_args(ShardStep step, StableIValue* stack, std::uint64_t num_args) {
  using torch::stable::detail::to;
  using Layout = SchemaLayout<Loss>;
  using L = typename Layout::L;
  const std::uint64_t expected = Layout::first_param + param_count<typename Layout::Params>() + 2 +
                                 (Layout::labels == LabelUse::None ? 0 : 1) + 1 +
                                 (step == ShardStep::Stats ? 0 : step == ShardStep::Cross ? 1 : 4);
  FUSEDKD_CHECK(num_args == expected, "fusedkd::", shard_op_name<Loss>(step), ": the registered schema has ", num_args,
                " arguments, the implementation reads ", expected);
  ShardArgs<Loss> a;
  std::uint64_t i = 0;
  a.student = to<Tensor>(stack[i++]);
  a.teacher = Layout::second ? to<Tensor>(stack[i++]) : a.student;
  if constexpr (Layout::labels == LabelUse::Required) a.labels = to<Tensor>(stack[i++]);
  if constexpr (Layout::labels == LabelUse::Optional) a.labels = to<std::optional<Tensor>>(stack[i++]);
  for_each_param<typename Layout::Params>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    a.params.*(field.member) = T(to<unboxed_t<T>>(stack[i++]));
  });
  a.layout.vocab_start = to<std::int64_t>(stack[i++]);
  a.layout.vocab_size = to<std::int64_t>(stack[i++]);
  if constexpr (Layout::labels != LabelUse::None) a.ignore_index = to<std::int64_t>(stack[i++]);
  a.target_logits = to<std::optional<Tensor>>(stack[i++]);
  if (step != ShardStep::Stats) a.partials = to<Tensor>(stack[i++]);
  if (step == ShardStep::Finish) {
    a.cross = to<std::optional<Tensor>>(stack[i++]);
    a.reduction = reduction_from(to<std::string>(stack[i++]));
    a.compute_grad = to<bool>(stack[i++]);
  }

  // The checks: the loss op's (logits, pair, parameters), then the shard's own.
  const char* second_name = "teacher_logits";
  check_logits(a.student, "student_logits");
  if (Layout::second) check_pair(a.student, a.teacher, second_name);
  FUSEDKD_CHECK(a.layout.vocab_size >= L::min_classes, "vocab_size must be at least ", L::min_classes,
                " for this loss, got ", a.layout.vocab_size);
  FUSEDKD_CHECK(a.layout.vocab_start >= 0 && a.layout.vocab_start + a.student.size(1) <= a.layout.vocab_size,
                "vocab_start = ", a.layout.vocab_start, " with a shard of ", a.student.size(1),
                " columns does not fit in the vocabulary [0, ", a.layout.vocab_size, ")");
  if (a.labels) {
    const char* name = label_name_of<L>::value;
    check_target(a.student, *a.labels, name);
    FUSEDKD_CHECK(a.labels->scalar_type() == ScalarType::Long, name, " of the shard ops must be int64");
  }
  try {
    validate(a.params, a.student.scalar_type() == ScalarType::Double ? Accumulation::Double : Accumulation::Float);
  } catch (const Error& e) {
    fail(user_message(e));
  }
  if constexpr (has_logit_standardization<typename Layout::Params>::value)
    FUSEDKD_CHECK(!standardizes(a.params),
                  "logit_standardization is not supported on vocabulary shards (it needs each row's mean and std "
                  "over the whole vocabulary, and their gradient)");
  const ScalarType acc = loss_dtype(a.student);
  if (stats_read_target_logits<L>::value) {
    FUSEDKD_CHECK(a.target_logits.has_value(), "target_logits: this loss's statistics pass reads the target logits; "
                                               "gather (s_y, t_y) [N, 2] first");
    const Tensor& t = *a.target_logits;
    FUSEDKD_CHECK(t.dim() == 2 && t.size(0) == a.student.size(0) && t.size(1) == 2 && t.scalar_type() == acc &&
                      t.is_contiguous() && t.is_cpu() == a.student.is_cpu() &&
                      t.get_device_index() == a.student.get_device_index(),
                  "target_logits must be a contiguous ", dtype_name(acc), " [N, 2] = [", a.student.size(0),
                  ", 2] tensor on the student's device");
  } else {
    FUSEDKD_CHECK(!a.target_logits.has_value(), "target_logits: this loss takes none (pass None)");
  }
  if (a.partials) check_states(*a.partials, a.student, shard_partial_bytes<Loss>(a.student), "partials");
  if (step == ShardStep::Finish) {
    FUSEDKD_CHECK(a.cross.has_value() == has_cross_pass<L>::value,
                  has_cross_pass<L>::value ? "cross: this loss has a cross pass; pass its all-gathered sums"
                                           : "cross: this loss has no cross pass (pass None)");
    if (a.cross) {
      check_states(*a.cross, a.student, shard_cross_bytes<Loss>(a.student), "cross");
      FUSEDKD_CHECK(a.cross->size(0) == a.partials->size(0), "cross has ", a.cross->size(0),
                    " shards but partials has ", a.partials->size(0));
    }
  }
  return a;
}

}  // namespace fusedkd::binding
