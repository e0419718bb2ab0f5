// Decoupled KD (Zhao et al.), as mdistiller's DKD.py computes it: ℓ = α·TCKD + β·NCKD.
//
// With u = s/τ, v = t/τ, label y and the non-target softmax q_j = exp(x_j) / Σ_{k≠y} exp(x_k):
//   b = [p_y, Σ_{j≠y} p_j]                    (binary target / non-target split)
//   TCKD = τ² Σ_k b_t,k (log b_t,k − log b_s,k)
//   NCKD = τ² Σ_{j≠y} q_t,j (log q_t,j − log q_s,j)
//        = τ² [ (1/τ) Σ_{j≠y} q_t,j (t_j − s_j) − lse_nt(v) + lse_nt(u) ]
//   ∂ℓ/∂s_j = τ [ α (p_s,y − p_t,y)(δ_jy − (1−δ_jy) q_s,j) + β (1−δ_jy)(q_s,j − q_t,j) ]
// Only the non-target sums are streamed; the full lse follows from lse = logaddexp(lse_nt, x_y),
// so log(1 − p_y) = lse_nt − lse keeps its precision when p_y → 1.
#pragma once

#include "../online_softmax.hpp"
#include "../descriptor.hpp"
#include "../row.hpp"

namespace fusedkd {

struct DKDParams {
  double alpha = 1.0;
  double beta = 8.0;
  double temperature = 4.0;
  // Standardize both rows first (standardize.hpp), as the RLD repository's DKD.py `logit_stand`.
  bool logit_standardization = false;

  static constexpr auto fields() {
    return std::make_tuple(param("alpha", &DKDParams::alpha, ParamCheck::Finite),
                           param("beta", &DKDParams::beta, ParamCheck::Finite),
                           param("temperature", &DKDParams::temperature, ParamCheck::Temperature),
                           param("logit_standardization", &DKDParams::logit_standardization));
  }
};

template <class A> struct DKD {
  using Params = DKDParams;
  static constexpr const char* name = "dkd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = true;
  static constexpr long long min_classes = 2;  // the non-target part needs a class besides y

  struct Context {
    A tau, inv_tau, alpha, beta;
    long long y;
    A u_y, v_y;  // s_y/τ, t_y/τ
    FUSEDKD_HD Context(const DKDParams& p, const RowInput<A>& in)
        : tau(A(p.temperature)),
          inv_tau(A(1) / A(p.temperature)),
          alpha(A(p.alpha)),
          beta(A(p.beta)),
          y(in.y),
          u_y(in.s_y * inv_tau),
          v_y(in.t_y * inv_tau) {}
  };

  template <class V> struct StatsT {
    LSEState<V> s_nt;     // lse_nt(s/τ)
    LSEDotState<V> t_nt;  // lse_nt(t/τ) and the cross sum Σ_{j≠y} exp(v_j − m)(t_j − s_j)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J j, V sj, V tj) {
      const auto nt = j != c.y;
      s_nt.push(sj * c.inv_tau, nt);
      t_nt.push(tj * c.inv_tau, tj - sj, nt);
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(s_nt, o.s_nt);
      f(t_nt, o.t_nt);
    }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;
    LogNormalizer<A> s_nt, t_nt;  // of the non-target s/τ and t/τ
    A target_gap;                 // p_s,y − p_t,y
  };

  // A row with a NaN or +inf logit, or no finite one among the non-targets, is NaN: loss and
  // every gradient entry (docs/math.md, "Non-finite inputs"). TCKD and NCKD are never negative.
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    r.s_nt = log_normalizer(st.s_nt);
    r.t_nt = log_normalizer(st.t_nt);
    const A lse_nt_s = r.s_nt.lse(), lse_nt_t = r.t_nt.lse();
    const A lse_s = log_add_exp(lse_nt_s, c.u_y);
    const A lse_t = log_add_exp(lse_nt_t, c.v_y);
    const A log_ps_y = c.u_y - lse_s, log_ps_nt = lse_nt_s - lse_s;
    const A log_pt_y = c.v_y - lse_t, log_pt_nt = lse_nt_t - lse_t;
    const A tau2 = c.tau * c.tau;
    const A tckd = nonnegative(tau2 * (kl_term(log_pt_y, log_ps_y) + kl_term(log_pt_nt, log_ps_nt)));
    const A nckd = nonnegative(tau2 * (st.t_nt.mean_v() * c.inv_tau - lse_nt_t + lse_nt_s));
    const A bad = nan_unless_finite(lse_s) + nan_unless_finite(lse_t) + nan_unless_finite(lse_nt_s) +
                  nan_unless_finite(lse_nt_t);
    r.loss = c.alpha * tckd + c.beta * nckd + bad;
    // p_s,y − p_t,y for the gradient, with m and log z apart (log_ps_y above rounds lse to one number)
    r.target_gap = prob_of_extra(r.s_nt, c.u_y) - prob_of_extra(r.t_nt, c.v_y) + bad;
    r.s_nt.log_z += bad;
    r.t_nt.log_z += bad;
    return r;
  }

  // v_j of the cross sum d = Σ exp(t_j/τ − m_t) v_j: t_j − s_j.
  // The row is a pair of softmaxes at τ over the non-target columns with a cross sum
  // (cross_term, stats_from_sums, grad_from_probs): an executor may keep its exponentials.
  FUSEDKD_HD static bool is_softmax_pair(const Context&) { return true; }
  template <class V> FUSEDKD_HD_FORCEINLINE static V cross_term(V sj, V tj) { return tj - sj; }

  // The statistics from the sums of a pass with fixed references m: z = Σ_{j≠y} exp(x_j − m) for
  // x = s/τ and t/τ, d = Σ_{j≠y} exp(t_j/τ − m_t)(t_j − s_j).
  FUSEDKD_HD static Stats stats_from_sums(A m_s, A z_s, A m_t, A z_t, A d) {
    Stats st;
    st.s_nt = lse_from_sums(m_s, z_s);
    st.t_nt = lse_dot_from_sums(m_t, z_t, d);
    return st;
  }

  // ∂ℓ/∂s_j from the non-target probabilities q_s,j, q_t,j (unused at j = y).
  template <class V, class M>
  FUSEDKD_HD_FORCEINLINE static V grad_from_probs(const Context& c, const Row& r, M is_y, V q_s, V q_t) {
    return select(is_y, c.tau * c.alpha * r.target_gap, c.tau * (c.beta * (q_s - q_t) - c.alpha * r.target_gap * q_s));
  }
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V tj) {
    return grad_from_probs(c, r, j == c.y, r.s_nt.prob(sj * c.inv_tau), r.t_nt.prob(tj * c.inv_tau));
  }
};

}  // namespace fusedkd
