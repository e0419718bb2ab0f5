// The row program of the forward KL between two softmaxes at temperature τ, shared by Hinton KD
// (kd.hpp: ×τ², no cap) and the token-level forward KL (forward_kl.hpp: ×1 or ×τ², softcap):
//
//   ℓ = λ Σ_j p_t,j (log p_t,j − log p_s,j),   p = softmax(x̃ / τ),  x̃ = cap(x)
//     = λ [ (1/τ) Σ_j p_t,j (t̃_j − s̃_j) − lse(t̃/τ) + lse(s̃/τ) ]
//   ∂ℓ/∂s_j = (λ/τ) (p_s,j − p_t,j) · cap'(s_j),   p_j = exp((x̃_j/τ − m) − log z)  (m, log z apart)
//
// Context supplies inv_tau (1/τ), loss_scale (λ), grad_factor (λ/τ) and cap (softcap.hpp).
#pragma once

#include "../online_softmax.hpp"
#include "../row.hpp"
#include "../softcap.hpp"

namespace fusedkd {

template <class A, class Context> struct SoftmaxKL {
  // Over columns j of values V (a scalar, or SIMD lanes on the CPU):
  template <class V> struct StatsT {
    LSEState<V> s;     // lse(s̃/τ)
    LSEDotState<V> t;  // lse(t̃/τ) and Σ_j exp(t̃_j/τ − m_t) (t̃_j − s̃_j)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J, V sj, V tj) {
      const V s_c = c.cap.apply(sj), t_c = c.cap.apply(tj);
      s.push(s_c * c.inv_tau);
      t.push(t_c * c.inv_tau, t_c - s_c);
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(s, o.s);
      f(t, o.t);
    }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;
    LogNormalizer<A> s, t;  // of s̃/τ and t̃/τ
  };

  // A row with a NaN or +inf logit, or no finite one, is NaN: loss and every gradient entry
  // (docs/math.md, "Non-finite inputs"). The KL is never negative (nonnegative()).
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    r.s = log_normalizer(st.s);
    r.t = log_normalizer(st.t);
    const A lse_s = r.s.lse(), lse_t = r.t.lse();
    const A bad = nan_unless_finite(lse_s) + nan_unless_finite(lse_t);
    r.loss = nonnegative(c.loss_scale * (st.t.mean_v() * c.inv_tau - lse_t + lse_s)) + bad;
    r.s.log_z += bad;
    r.t.log_z += bad;
    return r;
  }

  // Without a cap the row is a pair of softmaxes at τ over every column with the cross sum below
  // (stats_from_sums, grad_from_probs): an executor may keep its exponentials between passes.
  FUSEDKD_HD static bool is_softmax_pair(const Context& c) { return !c.cap.on(); }

  // v_j of the cross sum d = Σ exp(t_j/τ − m_t) v_j: t_j − s_j.
  template <class V> FUSEDKD_HD_FORCEINLINE static V cross_term(V sj, V tj) { return tj - sj; }

  // The statistics from the sums of a pass with fixed references m: z = Σ_j exp(x_j − m) for
  // x = s/τ and t/τ, d = Σ_j exp(t_j/τ − m_t)(t_j − s_j).
  FUSEDKD_HD static Stats stats_from_sums(A m_s, A z_s, A m_t, A z_t, A d) {
    Stats st;
    st.s = lse_from_sums(m_s, z_s);
    st.t = lse_dot_from_sums(m_t, z_t, d);
    return st;
  }

  // ∂ℓ/∂s̃_j from the two softmax probabilities p_s,j and p_t,j (no target column: the mask
  // argument, there for DKD's signature, is unused).
  template <class V, class M>
  FUSEDKD_HD_FORCEINLINE static V grad_from_probs(const Context& c, const Row&, M, V p_s, V p_t) {
    return c.grad_factor * (p_s - p_t);
  }
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V tj) {
    V ds;
    const V s_c = c.cap.apply(sj, ds), t_c = c.cap.apply(tj);
    return ds * grad_from_probs(c, r, j, r.s.prob(s_c * c.inv_tau), r.t.prob(t_c * c.inv_tau));
  }
};

}  // namespace fusedkd
