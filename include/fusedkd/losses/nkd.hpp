// Normalized KD (Yang et al., ICCV 2023), as cls_KD's dis_losses/nkd.py computes it.
//
// With label y, p = softmax(x) at temperature 1 and the non-target softmax at τ,
// q_j = exp(x_j/τ) / Σ_{k≠y} exp(x_k/τ) (j ≠ y):
//   ℓ = −p_t,y · log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j          (p_t,y is a constant)
//     = p_t,y (lse(s) − s_y) + γ τ² [ lse_nt(s/τ) − (1/τ) Σ_{j≠y} q_t,j s_j ]
//   ∂ℓ/∂s_j = p_t,y (p_s,j − δ_jy) + γ τ (1 − δ_jy)(q_s,j − q_t,j)
// The non-target part is a cross-entropy, not a KL: the teacher's entropy is not subtracted.
// One pass streams the non-target sums at τ and at 1 (j = y skipped); the full lse at 1 follows
// from lse = logaddexp(lse_nt, x_y), so 1 − p_s,y = exp(lse_nt − lse) keeps its precision.
// At τ = 1 (the reference's default) the sums at τ are the sums at 1: the pass streams them once
// and the gradient takes p_s,j = q_s,j · exp(lse_nt(s) − lse(s)), three exponentials fewer per
// column.
#pragma once

#include "../online_softmax.hpp"
#include "../descriptor.hpp"
#include "../row.hpp"

namespace fusedkd {

struct NKDParams {
  double temperature = 1.0;
  double gamma = 1.5;

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &NKDParams::temperature, ParamCheck::Temperature),
                           param("gamma", &NKDParams::gamma, ParamCheck::Finite));
  }
};

template <class A> struct NKD {
  using Params = NKDParams;
  static constexpr const char* name = "nkd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = true;
  static constexpr long long min_classes = 2;  // the non-target part needs a class besides y

  struct Context {
    A tau, inv_tau, gamma;
    bool unit_tau;  // τ = 1: the statistics at τ are those at temperature 1
    long long y;
    A s_y, t_y;  // gathered target logits (temperature 1)
    FUSEDKD_HD Context(const NKDParams& p, const RowInput<A>& in)
        : tau(A(p.temperature)),
          inv_tau(A(1) / A(p.temperature)),
          gamma(A(p.gamma)),
          unit_tau(p.temperature == 1.0),
          y(in.y),
          s_y(in.s_y),
          t_y(in.t_y) {}
  };

  template <class V> struct StatsT {
    LSEState<V> s1_nt;    // lse_nt(s)      (temperature 1; empty when τ = 1)
    LSEState<V> t1_nt;    // lse_nt(t)      (temperature 1; empty when τ = 1)
    LSEState<V> s_nt;     // lse_nt(s/τ)
    LSEDotState<V> t_nt;  // lse_nt(t/τ) and the cross sum Σ_{j≠y} exp(t_j/τ − m) s_j
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J j, V sj, V tj) {
      const auto nt = j != c.y;
      if (c.unit_tau) {  // uniform over the row
        s_nt.push(sj, nt);
        t_nt.push(tj, sj, nt);
        return;
      }
      s1_nt.push(sj, nt);
      t1_nt.push(tj, nt);
      s_nt.push(sj * c.inv_tau, nt);
      t_nt.push(tj * c.inv_tau, sj, nt);
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(s1_nt, o.s1_nt);
      f(t1_nt, o.t1_nt);
      f(s_nt, o.s_nt);
      f(t_nt, o.t_nt);
    }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;
    LogNormalizer<A> s1;          // of s at temperature 1 (all classes): log z from log_add_exp
    LogNormalizer<A> s_nt, t_nt;  // of the non-target s/τ, t/τ
    A pt_y;                       // p_t,y at temperature 1
    A nt_mass_s;                  // 1 − p_s,y = Σ_{j≠y} p_s,j
    A grad_y;                     // ∂ℓ/∂s_y = −p_t,y (1 − p_s,y)
  };

  // A row with a NaN or +inf logit, or no finite one among the non-targets, is NaN: loss and
  // every gradient entry (docs/math.md, "Non-finite inputs"). The cross-entropy is never negative.
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    const OnlineLSE<A>& s1_nt = c.unit_tau ? st.s_nt : st.s1_nt;
    const A lse1_nt_s = s1_nt.lse();
    const A lse1_nt_t = c.unit_tau ? st.t_nt.lse() : st.t1_nt.lse();
    const A lse1_s = log_add_exp(lse1_nt_s, c.s_y);          // lse(s) = logaddexp(lse_nt(s), s_y)
    const A lse1_t = log_add_exp(lse1_nt_t, c.t_y);          // lse(t)
    r.s1.m = s1_nt.m;                                        // lse(s) − m = log(z + exp(s_y − m))
    r.s1.log_z = log_add_exp(log_(s1_nt.z), c.s_y - s1_nt.m);
    const LogNormalizer<A> t1_nt = c.unit_tau ? log_normalizer(st.t_nt) : log_normalizer(st.t1_nt);
    r.pt_y = prob_of_extra(t1_nt, c.t_y);                    // p_t,y (m and log z apart)
    const A neg_log_ps_y = lse1_s - c.s_y;                   // −log p_s,y
    r.s_nt = log_normalizer(st.s_nt);
    r.t_nt = log_normalizer(st.t_nt);
    const A lse_nt_s = r.s_nt.lse(), lse_nt_t = r.t_nt.lse();
    // −Σ_{j≠y} q_t,j log q_s,j = lse_nt(s/τ) − (1/τ) Σ_{j≠y} q_t,j s_j
    const A ce_nt = nonnegative(lse_nt_s - st.t_nt.mean_v() * c.inv_tau);
    const A bad = nan_unless_finite(lse1_s) + nan_unless_finite(lse1_t) + nan_unless_finite(lse1_nt_s) +
                  nan_unless_finite(lse1_nt_t) + nan_unless_finite(lse_nt_s) + nan_unless_finite(lse_nt_t);
    r.pt_y += bad;
    r.loss = r.pt_y * neg_log_ps_y + c.gamma * c.tau * c.tau * ce_nt + bad;
    r.nt_mass_s = exp_(log_(s1_nt.z) - r.s1.log_z);           // 1 − p_s,y = z / (z + exp(s_y − m))
    r.grad_y = -r.pt_y * r.nt_mass_s;                        // p_t,y (p_s,y − 1)
    r.s1.log_z += bad;
    r.s_nt.log_z += bad;
    r.t_nt.log_z += bad;
    return r;
  }

  // At τ = 1 only (unit_tau): v_j of the cross sum d = Σ_{j≠y} exp(t_j − m_t) v_j is s_j, and the
  // statistics from the sums of a pass with fixed references m (z = Σ_{j≠y} exp(x_j − m)).
  // At τ = 1 the row is a pair of softmaxes over the non-target columns with a cross sum
  // (cross_term, stats_from_sums, grad_from_probs); at other τ it streams four sums.
  FUSEDKD_HD static bool is_softmax_pair(const Context& c) { return c.unit_tau; }
  template <class V> FUSEDKD_HD_FORCEINLINE static V cross_term(V sj, V) { return sj; }
  FUSEDKD_HD static Stats stats_from_sums(A m_s, A z_s, A m_t, A z_t, A d) {
    Stats st;
    st.s_nt = lse_from_sums(m_s, z_s);
    st.t_nt = lse_dot_from_sums(m_t, z_t, d);
    return st;
  }
  // At τ = 1, ∂ℓ/∂s_j from q_s,j and q_t,j: q at τ = 1 is q at temperature 1, and
  // p_s,j = q_s,j (1 − p_s,y) for j ≠ y.
  template <class V, class M>
  FUSEDKD_HD_FORCEINLINE static V grad_from_probs(const Context& c, const Row& r, M is_y, V q_s, V q_t) {
    return select(is_y, r.grad_y, r.pt_y * r.nt_mass_s * q_s + c.gamma * (q_s - q_t));
  }

  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V tj) {
    if (c.unit_tau) return grad_from_probs(c, r, j == c.y, r.s_nt.prob(sj), r.t_nt.prob(tj));
    const V ps = r.s1.prob(sj);                             // p_s,j (temperature 1)
    const V q_s = r.s_nt.prob(sj * c.inv_tau);              // q_s,j (τ)
    const V q_t = r.t_nt.prob(tj * c.inv_tau);              // q_t,j (τ)
    return select(j == c.y, r.grad_y, r.pt_y * ps + c.gamma * c.tau * (q_s - q_t));
  }
};

}  // namespace fusedkd
