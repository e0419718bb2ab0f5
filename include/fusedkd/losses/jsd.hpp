// The generalized Jensen–Shannon divergence at the token level, exactly as TRL's
// GKDTrainer.generalized_jsd_loss (trl/experimental/gkd/gkd_trainer.py; ../shared/spec/llm_losses.md §1).
//
// With z = x̃/τ (x̃ = cap(x), token_scale.hpp), q = softmax(z_s) (student), p = softmax(z_t)
// (teacher), m = β p + (1 − β) q, log m_j = logaddexp(log β + log p_j, log(1 − β) + log q_j):
//   A_p = Σ_j p_j log(p_j / m_j) = KL(p ‖ m),   A_q = Σ_j q_j log(q_j / m_j) = KL(q ‖ m)
//   ℓ₀ = KL(p ‖ q) = A_p at β = 0 (forward KL: m = q), KL(q ‖ p) = A_q at β = 1 (reverse KL: m = p),
//        β A_p + (1 − β) A_q otherwise (the mixture, which tends to 0 as β → 0 or 1: the
//        reference's discontinuity at the ends is kept);   ℓ = λ ℓ₀ (λ = 1, or τ²)
//   ∂ℓ₀/∂z_s,j = q_j − p_j at β = 0, else w q_j (log(q_j / m_j) − A_q) with w = 1 − β (w = 1 at β = 1)
// The sums A_p, A_q need both normalizers: the statistics pass (lse(z_s), lse(z_t)), the cross
// pass (A_p, A_q; cross_pass.hpp), the gradient pass. Labels are optional and mark ignored rows.
#pragma once

#include "../cross_pass.hpp"
#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../row.hpp"
#include "token_scale.hpp"

namespace fusedkd {

struct JSDParams {
  double beta = 0.5;  // β: 0 forward KL, 1 reverse KL (TRL's default 0.5)
  double temperature = 1.0;
  bool temperature_squared = false;
  double softcap = 0.0;

  static constexpr auto fields() {
    return std::make_tuple(param("beta", &JSDParams::beta, ParamCheck::UnitInterval),
                           param("temperature", &JSDParams::temperature, ParamCheck::Temperature),
                           param("temperature_squared", &JSDParams::temperature_squared),
                           param("softcap", &JSDParams::softcap, ParamCheck::Softcap));
  }
};

template <class A> struct JSD {
  using Params = JSDParams;
  static constexpr const char* name = "jsd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr bool optional_labels = true;
  static constexpr const char* label_name = "labels";
  static constexpr long long min_classes = 1;

  struct Context : TokenScale<A> {
    A beta, log_beta, log_1m_beta;  // β, log β, log(1 − β) (−inf at the ends)
    A q_weight;                     // w
    bool forward, reverse;          // β = 0, β = 1
    FUSEDKD_HD Context(const JSDParams& p, const RowInput<A>&)
        : TokenScale<A>(p.temperature, p.temperature_squared, p.softcap),
          beta(A(p.beta)),
          log_beta(log_(A(p.beta))),
          log_1m_beta(log1p_(-A(p.beta))),
          q_weight(p.beta == 1.0 ? A(1) : A(1) - A(p.beta)),
          forward(p.beta == 0.0),
          reverse(p.beta == 1.0) {}
  };

  template <class V> using StatsT = TokenLSEPair<V>;  // lse(z_s), lse(z_t)
  using Stats = StatsT<A>;

  struct Row : TokenNormalizers<A> {
    A loss;    // λ ℓ₀
    A kl_q_m;  // A_q
  };

  // log q_j, log p_j and log m_j of column j.
  template <class V> struct Logs {
    V q, p, m;
    FUSEDKD_HD_FORCEINLINE Logs(const Context& c, const Row& r, V zs, V zt)
        : q((zs - r.s.m) - r.s.log_z),
          p((zt - r.t.m) - r.t.log_z),
          m(log_add_exp_v(p + V(c.log_beta), q + V(c.log_1m_beta))) {}
  };
  // x log(x / m) from log x and log m, 0 where x = 0.
  template <class V> FUSEDKD_HD_FORCEINLINE static V x_log_x_over_m(V log_x, V log_m) {
    return select(log_x == V(-INFINITY), V(A(0)), exp_(log_x) * (log_x - log_m));
  }

  FUSEDKD_HD static Row finalize(const Context&, const Stats& st) {
    Row r;
    r.set(st);
    r.loss = r.kl_q_m = r.zero_or_nan;  // until finish()
    return r;
  }

  template <class V> struct CrossT {
    SumState<V> kl_p_m, kl_q_m;  // A_p, A_q
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, const Row& r, J, V sj, V tj) {
      const Logs<V> l(c, r, c.z(sj), c.z(tj));
      kl_p_m.push(x_log_x_over_m(l.p, l.m));
      kl_q_m.push(x_log_x_over_m(l.q, l.m));
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(kl_p_m, o.kl_p_m);
      f(kl_q_m, o.kl_q_m);
    }
    FUSEDKD_HD void merge(const CrossT& o) { zip(o, MergeMembers{}); }
  };
  using Cross = CrossT<A>;

  // ℓ from A_p, A_q. A divergence: never negative. At β = 1 a teacher −inf where the student has
  // mass gives ℓ = +inf and a NaN gradient row, as reverse_kl; at β = 0 a student −inf where the
  // teacher has mass gives ℓ = +inf with the finite gradient q − p, as forward_kl.
  FUSEDKD_HD static void finish(const Context& c, Row& r, const Cross& x) {
    const A a_p = x.kl_p_m.v, a_q = x.kl_q_m.v;
    const A l0 = c.forward ? a_p : c.reverse ? a_q : c.beta * a_p + (A(1) - c.beta) * a_q;
    r.loss = c.loss_scale * (nonnegative(l0) + r.zero_or_nan);
    r.kl_q_m = a_q;
    if (!c.forward) r.zero_or_nan += nan_unless_finite(a_q);
  }

  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J, V sj, V tj) {
    V dz;
    const V zs = c.z(sj, dz), zt = c.z(tj);
    const Logs<V> l(c, r, zs, zt);
    const V q = exp_(l.q);
    if (c.forward) return dz * (q - exp_(l.p)) + V(r.zero_or_nan);
    return select(l.q == V(-INFINITY), V(r.zero_or_nan), dz * (V(c.q_weight) * (q * (l.q - l.m - V(r.kl_q_m)))));
  }
};

}  // namespace fusedkd
