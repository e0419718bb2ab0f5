// What the token-level losses (forward / reverse KL, JSD, TVD; ../shared/spec/llm_losses.md) share:
// the temperature τ, the optional τ² factor, the softcap. Each works in z = cap(x)/τ:
//   ℓ = λ ℓ₀(z_s, z_t),  ∂ℓ/∂s_j = (λ/τ) cap'(s_j) ∂ℓ₀/∂z_s,j,  λ = τ² with temperature_squared, else 1
// (TRL's generalized_jsd_loss has no τ²; NeMo's and Hinton's KD have it).
#pragma once

#include "../config.hpp"
#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../softcap.hpp"

namespace fusedkd {

template <class A> struct TokenScale {
  A inv_tau;      // 1/τ
  A loss_scale;   // λ
  A grad_factor;  // λ/τ
  Softcap<A> cap;
  FUSEDKD_HD TokenScale(double temperature, bool temperature_squared, double softcap)
      : inv_tau(A(1) / A(temperature)),
        loss_scale(temperature_squared ? A(temperature) * A(temperature) : A(1)),
        grad_factor(temperature_squared ? A(temperature) : A(1) / A(temperature)),
        cap(softcap) {}

  // z = cap(x)/τ
  template <class V> FUSEDKD_HD_FORCEINLINE V z(V x) const { return cap.apply(x) * inv_tau; }
  // z, and in dzdx the factor (λ/τ) cap'(x) that turns ∂ℓ₀/∂z into ∂ℓ/∂x
  template <class V> FUSEDKD_HD_FORCEINLINE V z(V x, V& dzdx) const {
    V d;
    const V y = cap.apply(x, d);
    dzdx = d * grad_factor;
    return y * inv_tau;
  }
};

// The statistics pass of the losses whose cross pass needs both normalizers first (JSD, TVD):
// lse(z_s) and lse(z_t).
template <class V> struct TokenLSEPair {
  LSEState<V> s, t;
  template <class Context, class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J, V sj, V tj) {
    s.push(c.z(sj));
    t.push(c.z(tj));
  }
  template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
    f(s, o.s);
    f(t, o.t);
  }
  FUSEDKD_HD void merge(const TokenLSEPair& o) { zip(o, MergeMembers{}); }
};

// Their finalized row before the cross pass: the two log-normalizers and the row's NaN marker. A NaN or
// +inf logit, or no finite one on a side, makes the row NaN (docs/math.md, "Non-finite inputs"): the
// marker is added to both log z, so every probability (and the gradient) is NaN.
template <class A> struct TokenNormalizers {
  LogNormalizer<A> s, t;  // of z_s and z_t
  A zero_or_nan;          // 0, or NaN for a NaN row
  FUSEDKD_HD void set(const TokenLSEPair<A>& st) {
    s = log_normalizer(st.s);
    t = log_normalizer(st.t);
    zero_or_nan = nan_unless_finite(s.lse()) + nan_unless_finite(t.lse());
    s.log_z += zero_or_nan;
    t.log_z += zero_or_nan;
  }
};

// The parameters of forward and reverse KL: TRL's temperature (default 1), the τ² option, the cap.
struct TokenKLParams {
  double temperature = 1.0;
  bool temperature_squared = false;  // multiply the loss by τ² (Hinton's convention; TRL: no)
  double softcap = 0.0;              // c > 0: x ← c·tanh(x/c) on both logits first; 0: none

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &TokenKLParams::temperature, ParamCheck::Temperature),
                           param("temperature_squared", &TokenKLParams::temperature_squared),
                           param("softcap", &TokenKLParams::softcap, ParamCheck::Softcap));
  }
};

}  // namespace fusedkd
