// A loss's descriptor: what the op layer and the C++ API need to know of a loss besides its math.
//
// Every loss header declares, next to its policy,
//   - on the policy: `name` (the op's name, fusedkd::<name>), `uses_teacher`, `uses_label` (the row
//     reads its label y), `min_classes`; optionally `optional_labels` (labels only mark rows to
//     ignore, and may be left out), `label_name` (default "target"), `weak_logits` (the second
//     logits are a weak head's and receive a gradient: USKD);
//   - on its Params struct: `fields()`, the parameters in the op's argument order, each with its
//     name, its member and its check (`param(...)` below). Their default member initializers are the
//     defaults of the authors' reference code.
// From these: validate(params, acc) (the one validation of the parameters, used by the C++ API,
// the CPU op and the CUDA op), the op schema and the boxed op implementations
// (bindings/schema.hpp, bindings/loss_op.hpp), and the registry's enumerations (registry.hpp).
#pragma once

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "params.hpp"

namespace fusedkd {

// How a parameter is checked: any value, a finite real, a temperature (params.hpp: positive,
// finite and within the range where the loss is well conditioned in the accumulation type), a
// weight in [0, 1], or a softcap (0 for none, else positive and finite).
enum class ParamCheck { Any, Finite, Temperature, UnitInterval, Softcap };

// One parameter: its name (as the Python API and the schema call it), its member, its check.
template <class P, class T> struct ParamField {
  using Params = P;
  using Type = T;
  using Member = T P::*;
  const char* name;
  Member member;
  ParamCheck check;
};

template <class P, class T>
constexpr ParamField<P, T> param(const char* name, T P::*member, ParamCheck check = ParamCheck::Any) {
  return ParamField<P, T>{name, member, check};
}

// f(field) for each of P's parameters, in order.
template <class P, class F> void for_each_param(F&& f) {
  std::apply([&](const auto&... field) { (f(field), ...); }, P::fields());
}

template <class P> constexpr std::size_t param_count() { return std::tuple_size<decltype(P::fields())>::value; }

// The one validation of a loss's parameters; throws fusedkd::Error naming the first bad one.
// acc: the accumulation type the loss runs in (the temperature range depends on it).
template <class P, class = decltype(P::fields())>
void validate(const P& p, Accumulation acc = Accumulation::Double) {
  for_each_param<P>([&](const auto& field) {
    using T = typename std::decay_t<decltype(field)>::Type;
    if constexpr (std::is_floating_point<T>::value) {
      const double v = double(p.*(field.member));
      if (field.check == ParamCheck::Finite) require_finite(v, field.name);
      if (field.check == ParamCheck::Temperature) require_temperature(v, field.name, acc);
      if (field.check == ParamCheck::UnitInterval) require_unit_interval(v, field.name);
      if (field.check == ParamCheck::Softcap) require_softcap(v, field.name);
    }
  });
}

// Which labels a loss takes: none (KD), required (the row reads y), or optional (they only mark
// the rows to ignore: the token-level losses).
enum class LabelUse { None, Required, Optional };

template <class L, class = void> struct has_optional_labels : std::false_type {};
template <class L> struct has_optional_labels<L, std::void_t<decltype(L::optional_labels)>>
    : std::integral_constant<bool, bool(L::optional_labels)> {};

template <class L> constexpr LabelUse label_use() {
  static_assert(!(L::uses_label && has_optional_labels<L>::value), "a loss that reads y needs its labels");
  return L::uses_label ? LabelUse::Required : has_optional_labels<L>::value ? LabelUse::Optional : LabelUse::None;
}

// The labels' argument name: "target" (the vision losses), or the loss's `label_name` ("labels" for
// the token-level losses, as TRL and Hugging Face call them).
template <class L, class = void> struct label_name_of {
  static constexpr const char* value = "target";
};
template <class L> struct label_name_of<L, std::void_t<decltype(L::label_name)>> {
  static constexpr const char* value = L::label_name;
};

// The second logits: the teacher's (a constant), or the weak head's (USKD: `weak_logits`, which
// receive a gradient too).
template <class L, class = void> struct has_weak_logits : std::false_type {};
template <class L> struct has_weak_logits<L, std::void_t<decltype(L::weak_logits)>>
    : std::integral_constant<bool, bool(L::weak_logits)> {};

}  // namespace fusedkd
