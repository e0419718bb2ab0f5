// Reverse KL at the token level, as TRL's generalized_jsd_loss computes it for beta = 1
// (trl/experimental/gkd/gkd_trainer.py; ../shared/spec/llm_losses.md §1).
//
// With z_s = s̃/τ, z_t = t̃/τ (x̃ = cap(x), token_scale.hpp), q = softmax(z_s) (student),
// p = softmax(z_t) (teacher), λ = 1 (TRL) or τ²:
//   ℓ₀ = Σ_j q_j (log q_j − log p_j) = Σ_j q_j (z_s,j − z_t,j) − lse(z_s) + lse(z_t),  ℓ = λ ℓ₀
//   ∂ℓ/∂s_j = (λ/τ) cap'(s_j) q_j (log q_j − log p_j − ℓ₀)
// One streaming pass keeps lse(z_s) with the student-weighted cross sum Σ_j e^{z_s,j − m}(z_s,j − z_t,j)
// and lse(z_t); the gradient pass follows. Labels are optional and only mark the rows to ignore
// (ignore_index, −100 by default).
#pragma once

#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../row.hpp"
#include "token_scale.hpp"

namespace fusedkd {

template <class A> struct ReverseKL {
  using Params = TokenKLParams;
  static constexpr const char* name = "reverse_kl";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr bool optional_labels = true;
  static constexpr const char* label_name = "labels";
  static constexpr long long min_classes = 1;

  struct Context : TokenScale<A> {
    FUSEDKD_HD Context(const TokenKLParams& p, const RowInput<A>&)
        : TokenScale<A>(p.temperature, p.temperature_squared, p.softcap) {}
  };

  template <class V> struct StatsT {
    LSEDotState<V> s;  // lse(z_s) and Σ_j exp(z_s,j − m_s)(z_s,j − z_t,j)
    LSEState<V> t;     // lse(z_t)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J, V sj, V tj) {
      const V zs = c.z(sj), zt = c.z(tj);
      s.push(zs, zs - zt);
      t.push(zt);
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(s, o.s);
      f(t, o.t);
    }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;                 // λ ℓ₀
    A kl;                   // ℓ₀
    LogNormalizer<A> s, t;  // of z_s and z_t
    A zero_or_nan;          // 0, or NaN for a row whose gradient is NaN
  };

  // NaN or +inf logits, or no finite one on a side: NaN (docs/math.md, "Non-finite inputs"). A
  // teacher −inf where the student has mass: ℓ = +inf, and the gradient row is NaN (its limit is
  // infinite). A student −inf is probability 0 and adds nothing. Never negative (nonnegative()).
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    r.s = log_normalizer(st.s);
    r.t = log_normalizer(st.t);
    const A lse_s = r.s.lse(), lse_t = r.t.lse();
    const A bad = nan_unless_finite(lse_s) + nan_unless_finite(lse_t);
    r.kl = nonnegative(st.s.mean_v() - lse_s + lse_t) + bad;  // Σ q (z_s − z_t) − lse_s + lse_t
    r.loss = c.loss_scale * r.kl;
    r.zero_or_nan = bad + nan_unless_finite(r.kl);
    r.s.log_z += r.zero_or_nan;
    r.t.log_z += r.zero_or_nan;
    return r;
  }

  // (λ/τ) cap'(s_j) q_j (log q_j − log p_j − ℓ₀), log q_j = (z_s,j − m_s) − log z_s (m and log z
  // apart); 0 where z_s,j = −inf (q_j = 0: the limit, not 0·(−inf)).
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J, V sj, V tj) {
    V dz;
    const V zs = c.z(sj, dz), zt = c.z(tj);
    const V log_q = (zs - r.s.m) - r.s.log_z;
    const V log_p = (zt - r.t.m) - r.t.log_z;
    return select(zs == V(-INFINITY), V(r.zero_or_nan), dz * (exp_(log_q) * (log_q - log_p - r.kl)));
  }
};

// 0.1's name of the parameters (temperature first, so ReverseKLParams{τ} still reads the same).
using ReverseKLParams = TokenKLParams;

}  // namespace fusedkd
