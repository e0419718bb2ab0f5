// Logit softcapping, Gemma 2's `final_logit_softcapping`: x ← c·tanh(x/c) for c > 0, applied to
// student and teacher logits before the temperature (../shared/spec/llm_losses.md §4). Inside the
// kernels: no capped copy of the logits exists. ∂(c·tanh(x/c))/∂x = 1 − tanh²(x/c), computed as
// (1 − tanh)(1 + tanh). ±inf map to ±c, as torch.tanh gives (a −inf logit is no longer masked).
#pragma once

#include "config.hpp"
#include "numeric.hpp"

namespace fusedkd {

// c > 0 caps, c = 0 leaves the logits as they are (the parameters' `softcap`: 0 means none).
template <class A> struct Softcap {
  A c = A(0), inv_c = A(0);
  FUSEDKD_HD explicit Softcap(double cap) : c(A(cap)), inv_c(cap > 0 ? A(1) / A(cap) : A(0)) {}
  FUSEDKD_HD bool on() const { return c > A(0); }

  template <class V> FUSEDKD_HD_FORCEINLINE V apply(V x) const {
    if (!on()) return x;
    return V(c) * tanh_(x * inv_c);
  }
  // The capped value, and in dx its derivative with respect to x.
  template <class V> FUSEDKD_HD_FORCEINLINE V apply(V x, V& dx) const {
    if (!on()) {
      dx = V(A(1));
      return x;
    }
    const V th = tanh_(x * inv_c);
    dx = (V(A(1)) - th) * (V(A(1)) + th);
    return V(c) * th;
  }
};

// The identity, for the losses without a softcap parameter (the same interface, no cost).
template <class A> struct NoSoftcap {
  FUSEDKD_HD static constexpr bool on() { return false; }
  template <class V> FUSEDKD_HD_FORCEINLINE V apply(V x) const { return x; }
  template <class V> FUSEDKD_HD_FORCEINLINE V apply(V x, V& dx) const {
    dx = V(A(1));
    return x;
  }
};

}  // namespace fusedkd
