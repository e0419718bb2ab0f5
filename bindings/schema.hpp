// The op schema of a loss, from its descriptor (descriptor.hpp). No torch header: plain strings.
//
//   <name>(Tensor student, [Tensor teacher | Tensor weak], [Tensor target | Tensor? <labels>],
//          <parameters in fields() order>, str reduction, [int ignore_index], bool compute_grad,
//          bool grad_private=False) -> (Tensor loss, Tensor grad_student[, Tensor grad_weak])
//
// The semantics of the shared arguments and outputs are those stated in library.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <fusedkd/descriptor.hpp>

namespace fusedkd::binding {

// The schema type of a parameter's C++ type.
template <class T> constexpr const char* schema_type() {
  if constexpr (std::is_same<T, bool>::value)
    return "bool";
  else if constexpr (std::is_floating_point<T>::value)
    return "float";
  else {
    static_assert(std::is_integral<T>::value, "a loss parameter is a bool, a real or an integer");
    return "int";
  }
}

// Where each shared argument sits in a loss's schema (the boxed ops read the stack by it).
template <template <class> class Loss> struct SchemaLayout {
  using L = Loss<float>;
  using Params = typename L::Params;
  static constexpr LabelUse labels = label_use<L>();
  static constexpr bool weak = has_weak_logits<L>::value;
  static constexpr bool second = L::uses_teacher || weak;  // a teacher or weak logits after the student
  static constexpr std::uint64_t first_param = 1 + (second ? 1 : 0) + (labels == LabelUse::None ? 0 : 1);
  static constexpr std::uint64_t reduction = first_param + param_count<Params>();
  static constexpr std::uint64_t ignore_index = reduction + 1;  // when the loss has labels
  static constexpr std::uint64_t compute_grad = reduction + (labels == LabelUse::None ? 1 : 2);
  static constexpr std::uint64_t grad_private = compute_grad + 1;
  static constexpr std::uint64_t num_args = grad_private + 1;
  static constexpr std::uint64_t num_outputs = weak ? 3 : 2;
};

template <template <class> class Loss> std::string loss_schema() {
  using Layout = SchemaLayout<Loss>;
  using L = typename Layout::L;
  std::string s = std::string(L::name) + "(Tensor student";
  if (Layout::second) s += Layout::weak ? ", Tensor weak" : ", Tensor teacher";
  if (Layout::labels == LabelUse::Required) s += std::string(", Tensor ") + label_name_of<L>::value;
  if (Layout::labels == LabelUse::Optional) s += std::string(", Tensor? ") + label_name_of<L>::value;
  for_each_param<typename Layout::Params>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    s += std::string(", ") + schema_type<T>() + " " + field.name;
  });
  s += ", str reduction";
  if (Layout::labels != LabelUse::None) s += ", int ignore_index";
  s += ", bool compute_grad, bool grad_private=False) -> (Tensor loss, Tensor grad_student";
  s += Layout::weak ? ", Tensor grad_weak)" : ")";
  return s;
}

}  // namespace fusedkd::binding
