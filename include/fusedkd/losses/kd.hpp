// Classic KD (Hinton et al.), as mdistiller's KD.py computes it.
//
//   ℓ = τ² Σ_j p_t,j (log p_t,j − log p_s,j),   p = softmax(x / τ)
//     = τ² [ (1/τ) Σ_j p_t,j (t_j − s_j) − lse(t/τ) + lse(s/τ) ]
//   ∂ℓ/∂s_j = τ (p_s,j − p_t,j),   p_j = exp((x_j/τ − m) − log z)   (m and log z kept apart)
#pragma once

#include "../online_softmax.hpp"
#include "../descriptor.hpp"
#include "../row.hpp"

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

template <class A> struct KD {
  using Params = KDParams;
  static constexpr const char* name = "kd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr long long min_classes = 1;

  struct Context {
    A tau, inv_tau;
    FUSEDKD_HD Context(const KDParams& p, const RowInput<A>&)
        : tau(A(p.temperature)), inv_tau(A(1) / A(p.temperature)) {}
  };

  // Over columns j of values V (a scalar, or SIMD lanes on the CPU):
  template <class V> struct StatsT {
    LSEState<V> s;     // lse(s/τ)
    LSEDotState<V> t;  // lse(t/τ) and Σ_j exp(t_j/τ − m_t) (t_j − s_j)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J, V sj, V tj) {
      s.push(sj * c.inv_tau);
      t.push(tj * c.inv_tau, tj - sj);
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
  };

  // A row with a NaN or +inf logit, or no finite one, is NaN: loss and every gradient entry
  // (docs/math.md, "Non-finite inputs"). The KL is never negative (nonnegative()).
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    r.s = log_normalizer(st.s);
    r.t = log_normalizer(st.t);
    const A lse_s = r.s.lse(), lse_t = r.t.lse();
    const A bad = nan_unless_finite(lse_s) + nan_unless_finite(lse_t);
    r.loss = nonnegative(c.tau * c.tau * (st.t.mean_v() * c.inv_tau - lse_t + lse_s)) + bad;
    r.s.log_z += bad;
    r.t.log_z += bad;
    return r;
  }

  // The row is a pair of softmaxes at τ over every column with the cross sum below
  // (stats_from_sums, grad_from_probs): an executor may keep its exponentials between passes.
  FUSEDKD_HD static bool is_softmax_pair(const Context&) { return true; }

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

  // ∂ℓ/∂s_j from the two softmax probabilities p_s,j and p_t,j (KD has no target column: the
  // mask argument, there for DKD's signature, is unused).
  template <class V, class M>
  FUSEDKD_HD_FORCEINLINE static V grad_from_probs(const Context& c, const Row&, M, V p_s, V p_t) {
    return c.tau * (p_s - p_t);
  }
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V tj) {
    return grad_from_probs(c, r, j, r.s.prob(sj * c.inv_tau), r.t.prob(tj * c.inv_tau));
  }
};

}  // namespace fusedkd
