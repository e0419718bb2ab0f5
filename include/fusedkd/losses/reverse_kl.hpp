// Reverse KL at the token level, as TRL's generalized_jsd_loss computes it for beta = 1
// (trl/experimental/gkd/gkd_trainer.py; ../shared/spec/llm_losses.md §1). No τ² factor.
//
// With z_s = s/τ, z_t = t/τ, q = softmax(z_s) (student), p = softmax(z_t) (teacher):
//   ℓ = Σ_j q_j (log q_j − log p_j) = Σ_j q_j (z_s,j − z_t,j) − lse(z_s) + lse(z_t)
//   ∂ℓ/∂s_j = (1/τ) q_j (log q_j − log p_j − ℓ)
// One streaming pass keeps lse(z_s) with the student-weighted cross sum Σ_j e^{z_s,j − m}(s_j − t_j)
// and lse(z_t); the gradient pass follows. Labels are optional and only mark the rows to ignore
// (ignore_index, −100 by default).
#pragma once

#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../row.hpp"

namespace fusedkd {

struct ReverseKLParams {
  double temperature = 1.0;

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &ReverseKLParams::temperature, ParamCheck::Temperature));
  }
};

template <class A> struct ReverseKL {
  using Params = ReverseKLParams;
  static constexpr const char* name = "reverse_kl";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr bool optional_labels = true;
  static constexpr const char* label_name = "labels";
  static constexpr long long min_classes = 1;

  struct Context {
    A inv_tau;
    FUSEDKD_HD Context(const ReverseKLParams& p, const RowInput<A>&) : inv_tau(A(1) / A(p.temperature)) {}
  };

  template <class V> struct StatsT {
    LSEDotState<V> s;  // lse(s/τ) and Σ_j exp(s_j/τ − m_s)(s_j − t_j)
    LSEState<V> t;     // lse(t/τ)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J, V sj, V tj) {
      s.push(sj * c.inv_tau, sj - tj);
      t.push(tj * c.inv_tau);
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
    LogNormalizer<A> s, t;  // of s/τ and t/τ
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
    r.loss = nonnegative(st.s.mean_v() * c.inv_tau - lse_s + lse_t) + bad;  // Σ q (z_s − z_t) − lse_s + lse_t
    r.zero_or_nan = bad + nan_unless_finite(r.loss);
    r.s.log_z += r.zero_or_nan;
    r.t.log_z += r.zero_or_nan;
    return r;
  }

  // (1/τ) q_j (log q_j − log p_j − ℓ), log q_j = (z_s,j − m_s) − log z_s (m and log z apart);
  // 0 where s_j = −inf (q_j = 0: the limit, not 0·(−inf)).
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J, V sj, V tj) {
    const V log_q = (sj * c.inv_tau - r.s.m) - r.s.log_z;
    const V log_p = (tj * c.inv_tau - r.t.m) - r.t.log_z;
    return select(sj == neg_inf<A>(), r.zero_or_nan, c.inv_tau * exp_(log_q) * (log_q - log_p - r.loss));
  }
};

}  // namespace fusedkd
