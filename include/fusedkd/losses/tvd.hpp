// Total variation distance at the token level (../shared/spec/llm_losses.md §2; Liger-Kernel's
// LigerTVDLoss takes probabilities, this takes logits: docs/math_token.md states the difference).
//
// With z = x̃/τ (x̃ = cap(x), token_scale.hpp), q = softmax(z_s) (student), p = softmax(z_t):
//   ℓ = ½ Σ_j |p_j − q_j|,   ∂ℓ/∂z_s,j = ½ q_j (sgn(q_j − p_j) − Σ_k q_k sgn(q_k − p_k))
// (sgn 0 = 0). The statistics pass (lse(z_s), lse(z_t)), the cross pass (Σ|p − q| and
// Σ q sgn(q − p); cross_pass.hpp), the gradient pass. Labels are optional and mark ignored rows.
#pragma once

#include "../cross_pass.hpp"
#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../row.hpp"
#include "token_scale.hpp"

namespace fusedkd {

struct TVDParams {
  double temperature = 1.0;
  double softcap = 0.0;

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &TVDParams::temperature, ParamCheck::Temperature),
                           param("softcap", &TVDParams::softcap, ParamCheck::Softcap));
  }
};

template <class A> struct TVD {
  using Params = TVDParams;
  static constexpr const char* name = "tvd";
  static constexpr bool uses_teacher = true;
  static constexpr bool uses_label = false;
  static constexpr bool optional_labels = true;
  static constexpr const char* label_name = "labels";
  static constexpr long long min_classes = 1;

  struct Context : TokenScale<A> {
    FUSEDKD_HD Context(const TVDParams& p, const RowInput<A>&) : TokenScale<A>(p.temperature, false, p.softcap) {}
  };

  template <class V> using StatsT = TokenLSEPair<V>;  // lse(z_s), lse(z_t)
  using Stats = StatsT<A>;

  struct Row : TokenNormalizers<A> {
    A loss;
    A mean_sign;  // Σ_k q_k sgn(q_k − p_k)
  };

  template <class V> FUSEDKD_HD_FORCEINLINE static V sign(V x) {
    return select(x > V(A(0)), V(A(1)), select(x < V(A(0)), V(A(-1)), V(A(0))));
  }

  FUSEDKD_HD static Row finalize(const Context&, const Stats& st) {
    Row r;
    r.set(st);
    r.loss = r.mean_sign = r.zero_or_nan;  // until finish()
    return r;
  }

  template <class V> struct CrossT {
    SumState<V> abs_diff, mean_sign;  // Σ |q − p|, Σ q sgn(q − p)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, const Row& r, J, V sj, V tj) {
      const V q = r.s.prob(c.z(sj)), p = r.t.prob(c.z(tj));
      abs_diff.push(abs_(q - p));
      mean_sign.push(q * sign(q - p));
    }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) {
      f(abs_diff, o.abs_diff);
      f(mean_sign, o.mean_sign);
    }
    FUSEDKD_HD void merge(const CrossT& o) { zip(o, MergeMembers{}); }
  };
  using Cross = CrossT<A>;

  FUSEDKD_HD static void finish(const Context&, Row& r, const Cross& x) {
    r.loss = A(0.5) * x.abs_diff.v + r.zero_or_nan;  // a sum of |·|: never negative
    r.mean_sign = x.mean_sign.v;
  }

  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J, V sj, V tj) {
    V dz;
    const V q = r.s.prob(c.z(sj, dz)), p = r.t.prob(c.z(tj));
    return dz * (V(A(0.5)) * (q * (sign(q - p) - V(r.mean_sign)))) + V(r.zero_or_nan);
  }
};

}  // namespace fusedkd
