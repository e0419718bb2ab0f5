// Refined logit distillation (Sun et al., 2024), as zju-SWJ/RLD's mdistiller/distillers/RLD.py
// computes it: ℓ = α·SCD + β·MCD. This policy works on the logits it is given; the optional
// logit standardization is applied by the executors (cpu/standardized_rows.hpp, cuda/row_kernels.cuh,
// standardize.hpp), which run this same policy on the standardized rows and chain the gradient
// through the standardization — as for KD and DKD.
//
// SCD (sample confidence), at temperature a = α_τ, with m = argmax_j t_j (first index on ties):
//   b_s = [p_s,y, Σ_{j≠y} p_s,j],  b_t = [p_t,m, Σ_{j≠m} p_t,j]     (p = softmax(x / a))
//   SCD = a² Σ_k b_t,k (log b_t,k − log b_s,k)
// MCD (masked correlation), at temperature τ, over K = {j : t_j < t_y} (y ∉ K):
//   r_j = exp(x_j/τ) / Σ_{k∈K} exp(x_k/τ)   (j ∈ K)
//   MCD = τ² Σ_{j∈K} r_t,j (log r_t,j − log r_s,j)
//       = τ² [ (1/τ) Σ_{j∈K} r_t,j (t_j − s_j) − lse_K(t/τ) + lse_K(s/τ) ],   MCD = 0 when K = ∅
// Gradient (q = non-target softmax of s at a):
//   ∂ℓ/∂s_j = α a (p_s,y − p_t,m)(δ_jy − (1−δ_jy) q_s,j) + β τ [j∈K] (r_s,j − r_t,j)
// K is decided by value (t_j < t_y with t_y gathered before the pass), so it needs no second pass.
#pragma once

#include "../online_softmax.hpp"
#include "../descriptor.hpp"
#include "../row.hpp"

namespace fusedkd {

struct RLDParams {
  double alpha = 1.0;
  double beta = 8.0;
  double temperature = 4.0;
  double alpha_temperature = 1.0;
  bool logit_standardization = false;

  // The op's argument order; the Python function takes logit_standardization before alpha_temperature
  // (the RLD repository's rld_loss order).
  static constexpr auto fields() {
    return std::make_tuple(param("alpha", &RLDParams::alpha, ParamCheck::Finite),
                           param("beta", &RLDParams::beta, ParamCheck::Finite),
                           param("temperature", &RLDParams::temperature, ParamCheck::Temperature),
                           param("alpha_temperature", &RLDParams::alpha_temperature, ParamCheck::Temperature),
                           param("logit_standardization", &RLDParams::logit_standardization));
  }
};

// Σ_j exp(x_j · k) split around the arg-max of the *raw* values x (first index on ties):
// m = max x, rest = Σ_{j≠arg} exp((x_j − m) k). The arg-max is decided before scaling, as
// torch.argmax(logits_teacher) does, so x/a rounding can never create or break a tie.
// The scale k is recorded by the first push (merge needs it); every push must use the same k.
template <class A> struct ScaledTopLSE {
  A m = neg_inf<A>();
  A rest = A(0);
  A k = A(0);
  long long arg = -1;

  FUSEDKD_HD_FORCEINLINE void push(A x, long long j, A scale) {
    if (arg < 0) {
      m = x;
      arg = j;
      k = scale;
    } else if (x > m) {
      rest = (rest + A(1)) * exp_((m - x) * k);  // the old max joins the rest
      m = x;
      arg = j;
    } else {
      rest += exp_((x - m) * k);
    }
  }
  // Merge with a state over other indices; ties go to the lower index.
  FUSEDKD_HD void merge(const ScaledTopLSE& o) {
    if (o.arg < 0) return;
    if (arg < 0) { *this = o; return; }
    const bool take_other = o.m > m || (o.m == m && o.arg < arg);
    if (take_other) {
      rest = o.rest + (rest + A(1)) * exp_((m - o.m) * k);
      m = o.m;
      arg = o.arg;
    } else {
      rest += (o.rest + A(1)) * exp_((o.m - m) * k);
    }
  }
};


template <class A> struct RLD {
  using Params = RLDParams;
  static constexpr const char* name = "rld";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = true;
  static constexpr long long min_classes = 2;  // the binary split needs a class besides y
  // The statistics pass reads t_y (the set K): vocabulary shards gather it first (shard.hpp).
  static constexpr bool stats_read_target_logits = true;

  struct Context {
    A alpha, beta, tau, inv_tau, a, inv_a;  // a = α_τ
    long long y;
    A s_y, t_y;
    FUSEDKD_HD Context(const RLDParams& p, const RowInput<A>& in)
        : alpha(A(p.alpha)),
          beta(A(p.beta)),
          tau(A(p.temperature)),
          inv_tau(A(1) / A(p.temperature)),
          a(A(p.alpha_temperature)),
          inv_a(A(1) / A(p.alpha_temperature)),
          y(in.y),
          s_y(in.s_y),
          t_y(in.t_y) {}
  };

  template <class V> struct StatsT {
    LSEState<V> s_nt_a;    // lse_{j≠y}(s/a)
    ScaledTopLSE<V> t_top;  // teacher arg-max m and Σ_{j≠m} exp((t_j − t_m)/a); scalar V only: the
                            // SIMD rows run RLD through rld_lanes.hpp, not on lane states
    LSEState<V> s_k;       // lse_K(s/τ)
    LSEDotState<V> t_k;    // lse_K(t/τ) and Σ_{j∈K} exp(t_j/τ − m)(t_j − s_j)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J j, V sj, V tj) {
      t_top.push(tj, j, c.inv_a);
      s_nt_a.push(sj * c.inv_a, j != c.y);
      const auto in_k = tj < c.t_y;  // j ∈ K (never y)
      s_k.push(sj * c.inv_tau, in_k);
      t_k.push(tj * c.inv_tau, tj - sj, in_k);
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(s_nt_a, o.s_nt_a);
      f(t_top, o.t_top);
      f(s_k, o.s_k);
      f(t_k, o.t_k);
    }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;
    LogNormalizer<A> s_nt_a;      // of the non-target s/a
    A target_gap;                 // p_s,y − p_t,m at a
    LogNormalizer<A> s_k, t_k;    // of s/τ and t/τ over K
    bool k_nonempty;
  };

  // A row with a NaN or +inf logit, or no finite one (the student's non-targets, the teacher), is
  // NaN: loss and every gradient entry (docs/math.md, "Non-finite inputs"). SCD and MCD are never
  // negative.
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    // SCD: binary splits. Student around y: lse(s/a) = logaddexp(lse_nt, s_y/a).
    const A u_y = c.s_y * c.inv_a;
    r.s_nt_a = log_normalizer(st.s_nt_a);
    const A lse_nt_a_s = r.s_nt_a.lse();
    const A lse_a_s = log_add_exp(lse_nt_a_s, u_y);
    const A log_bs0 = u_y - lse_a_s, log_bs1 = lse_nt_a_s - lse_a_s;
    // Teacher around its arg-max: b_t = [1, rest] / (1 + rest).
    const A log_norm = log_(A(1) + st.t_top.rest);
    const A log_bt0 = -log_norm, log_bt1 = log_(st.t_top.rest) - log_norm;  // log 0 = −inf → kl_term 0
    const A scd = nonnegative(c.a * c.a * (kl_term(log_bt0, log_bs0) + kl_term(log_bt1, log_bs1)));
    A bad = nan_unless_finite(lse_a_s) + nan_unless_finite(lse_nt_a_s) + nan_unless_finite(st.t_top.m) +
            nan_unless_finite(log_norm);
    r.target_gap = prob_of_extra(r.s_nt_a, u_y) - exp_(log_bt0);  // m and log z apart
    // MCD over K; 0 when K is empty.
    r.k_nonempty = st.t_k.m > neg_inf<A>();
    A mcd = A(0);
    r.s_k = LogNormalizer<A>{};
    r.t_k = LogNormalizer<A>{};
    if (r.k_nonempty) {
      r.s_k = log_normalizer(st.s_k);
      r.t_k = log_normalizer(st.t_k);
      const A lse_k_s = r.s_k.lse(), lse_k_t = r.t_k.lse();
      mcd = nonnegative(c.tau * c.tau * (st.t_k.mean_v() * c.inv_tau - lse_k_t + lse_k_s));
      bad += nan_unless_finite(lse_k_s) + nan_unless_finite(lse_k_t);
      r.s_k.log_z += bad;
      r.t_k.log_z += bad;
    }
    r.loss = c.alpha * scd + c.beta * mcd + bad;
    r.target_gap += bad;
    r.s_nt_a.log_z += bad;
    return r;
  }

  // ∂ℓ/∂s_j, from the probabilities it needs: p_nt = exp(s_j/a − lse_{j≠y}(s/a)) (SCD; unused at
  // j = y) and, for j ∈ K, p_k_s = exp(s_j/τ − lse_K(s/τ)), p_k_t = exp(t_j/τ − lse_K(t/τ)) (MCD).
  template <class V, class M> FUSEDKD_HD_FORCEINLINE static V scd_grad(const Context& c, const Row& r, M is_y, V p_nt) {
    return select(is_y, c.alpha * c.a * r.target_gap, -c.alpha * c.a * r.target_gap * p_nt);
  }
  template <class V> FUSEDKD_HD_FORCEINLINE static V mcd_grad(const Context& c, V p_k_s, V p_k_t) {
    return c.beta * c.tau * (p_k_s - p_k_t);
  }
  template <class V, class M>
  FUSEDKD_HD_FORCEINLINE static V grad_from_probs(const Context& c, const Row& r, M is_y, M in_k, V p_nt, V p_k_s,
                                                  V p_k_t) {
    const V scd = scd_grad(c, r, is_y, p_nt);
    return r.k_nonempty ? scd + select(in_k, mcd_grad(c, p_k_s, p_k_t), V(A(0))) : scd;
  }
  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V tj) {
    const V scd = scd_grad(c, r, j == c.y, r.s_nt_a.prob(sj * c.inv_a));
    if (!r.k_nonempty) return scd;
    const V mcd = mcd_grad(c, r.s_k.prob(sj * c.inv_tau), r.t_k.prob(tj * c.inv_tau));
    return scd + select(tj < c.t_y, mcd, V(A(0)));
  }
};

}  // namespace fusedkd
