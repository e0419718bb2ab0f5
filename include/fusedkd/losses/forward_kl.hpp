// Forward KL at the token level, as TRL's generalized_jsd_loss computes it for beta = 0
// (trl/experimental/gkd/gkd_trainer.py; ../shared/spec/llm_losses.md §1):
//   ℓ = λ Σ_j p_j (log p_j − log q_j),  p = softmax(t̃/τ) (teacher), q = softmax(s̃/τ) (student)
//   ∂ℓ/∂s_j = (λ/τ) (q_j − p_j) cap'(s_j)
// with x̃ = cap(x) and λ = 1 (TRL) or τ² (temperature_squared). The row program is KD's
// (softmax_kl.hpp). Labels are optional and only mark the rows to ignore.
#pragma once

#include "../descriptor.hpp"
#include "../row.hpp"
#include "softmax_kl.hpp"
#include "token_scale.hpp"

namespace fusedkd {

template <class A> struct ForwardKLContext : TokenScale<A> {
  FUSEDKD_HD ForwardKLContext(const TokenKLParams& p, const RowInput<A>&)
      : TokenScale<A>(p.temperature, p.temperature_squared, p.softcap) {}
};

template <class A> struct ForwardKL : SoftmaxKL<A, ForwardKLContext<A>> {
  using Params = TokenKLParams;
  using Context = ForwardKLContext<A>;
  static constexpr const char* name = "forward_kl";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr bool optional_labels = true;
  static constexpr const char* label_name = "labels";
  static constexpr long long min_classes = 1;
};

}  // namespace fusedkd
