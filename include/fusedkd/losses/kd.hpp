// Classic KD (Hinton et al.), as mdistiller's KD.py computes it.
//
//   ℓ = τ² Σ_j p_t,j (log p_t,j − log p_s,j),   p = softmax(x / τ)
//     = τ² [ (1/τ) Σ_j p_t,j (t_j − s_j) − lse(t/τ) + lse(s/τ) ]
//   ∂ℓ/∂s_j = τ (p_s,j − p_t,j),   p_j = exp((x_j/τ − m) − log z)   (m and log z kept apart)
#pragma once

#include "../descriptor.hpp"
#include "../row.hpp"
#include "softmax_kl.hpp"

namespace fusedkd {

struct KDParams {
  double temperature = 4.0;
  // Standardize student and teacher rows first, x̃ = (x − μ)/(ε + σ) (standardize.hpp): the
  // `logit_stand` option of "Logit Standardization in Knowledge Distillation" (CVPR 2024) as the
  // RLD repository's KD.py applies it.
  bool logit_standardization = false;

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &KDParams::temperature, ParamCheck::Temperature),
                           param("logit_standardization", &KDParams::logit_standardization));
  }
};

template <class A> struct KDContext {
  A inv_tau, loss_scale, grad_factor;  // 1/τ, τ², τ
  NoSoftcap<A> cap;
  FUSEDKD_HD KDContext(const KDParams& p, const RowInput<A>&)
      : inv_tau(A(1) / A(p.temperature)),
        loss_scale(A(p.temperature) * A(p.temperature)),
        grad_factor(A(p.temperature)) {}
};

// The row program is the softmax pair's forward KL (softmax_kl.hpp) with λ = τ².
template <class A> struct KD : SoftmaxKL<A, KDContext<A>> {
  using Params = KDParams;
  using Context = KDContext<A>;
  static constexpr const char* name = "kd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr long long min_classes = 1;
};

}  // namespace fusedkd
