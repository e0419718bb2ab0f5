// Hard-label cross-entropy of the student, the row program of tf-NKD (teacher-free NKD,
// ../shared/spec/losses.md; python/fusedkd/functional.py tfnkd_loss weights its rows) and the hard
// term of a distillation objective:
//   ℓ = −log p_y = lse(s) − s_y,   ∂ℓ/∂s_j = p_j − δ_jy,   p = softmax(s)
// computed as lse − s_y, not log(softmax): the same value where finite, and no −inf where p_y
// underflows. One pass keeps the lse over the columns j ≠ y, so the target's gradient
// p_y − 1 = −exp(lse_nt − lse) is exact as p_y → 1. No teacher: the executors read none (the op has no
// teacher argument).
#pragma once

#include "../descriptor.hpp"
#include "../online_softmax.hpp"
#include "../row.hpp"

namespace fusedkd {

struct CrossEntropyParams {
  static constexpr auto fields() { return std::make_tuple(); }
};

template <class A> struct CrossEntropy {
  using Params = CrossEntropyParams;
  static constexpr const char* name = "cross_entropy";
  static constexpr bool uses_teacher = false;
  static constexpr bool uses_label = true;
  static constexpr long long min_classes = 1;

  struct Context {
    long long y;
    A s_y;
    FUSEDKD_HD Context(const CrossEntropyParams&, const RowInput<A>& in) : y(in.y), s_y(in.s_y) {}
  };

  template <class V> struct StatsT {
    LSEState<V> nt;  // lse over the columns j ≠ y (the full lse follows from s_y: logaddexp)
    template <class J> FUSEDKD_HD_FORCEINLINE void push(const Context& c, J j, V sj, V) { nt.push(sj, j != c.y); }
    template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) { f(nt, o.nt); }
    FUSEDKD_HD void merge(const StatsT& o) { zip(o, MergeMembers{}); }
  };
  using Stats = StatsT<A>;

  struct Row {
    A loss;
    LogNormalizer<A> s;  // of s over all columns
    A grad_y;            // p_y − 1 = −Σ_{j≠y} p_j
  };

  // A NaN or +inf logit, or no finite one, makes the row NaN (docs/math.md, "Non-finite inputs");
  // a −inf target logit gives ℓ = +inf. Never negative.
  FUSEDKD_HD static Row finalize(const Context& c, const Stats& st) {
    Row r;
    const A m = st.nt.z == A(0) ? c.s_y : st.nt.m;  // C = 1: no other column
    const A log_z_nt = log_(st.nt.z * exp_(st.nt.m - m));
    r.s.m = m;
    r.s.log_z = log_add_exp(log_z_nt, c.s_y - m);  // log Σ_j e^{s_j − m}
    const A bad = nan_unless_finite(r.s.lse());
    r.s.log_z += bad;
    r.loss = nonnegative(r.s.log_z - (c.s_y - m));  // lse − s_y
    r.grad_y = -exp_(log_z_nt - r.s.log_z);         // −(1 − p_y), exact as p_y → 1
    return r;
  }

  template <class V, class J> FUSEDKD_HD_FORCEINLINE static V grad(const Context& c, const Row& r, J j, V sj, V) {
    return select(j == c.y, r.grad_y, r.s.prob(sj));
  }
};

}  // namespace fusedkd
