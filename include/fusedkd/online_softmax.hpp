// Streaming log-sum-exp statistics that merge associatively.
//
// Every loss is built from a handful of these per row. Because merge() is associative (and
// commutative up to rounding), the same state serves a sequential CPU loop, a warp shuffle
// tree, a block reduction and a reduction across row shards.
#pragma once

#include "config.hpp"
#include "numeric.hpp"

namespace fusedkd {

// lse(x) = log Σ_j exp(x_j), kept as (m, z) with m = max_j x_j and z = Σ_j exp(x_j − m).
template <class A> struct OnlineLSE {
  A m = neg_inf<A>();
  A z = A(0);

  FUSEDKD_HD_FORCEINLINE void push(A x) {
    if (x > m) {
      z = z * exp_(m - x) + A(1);  // rescale the old sum to the new max; exp(-inf) = 0 at start
      m = x;
    } else if (!(x == neg_inf<A>())) {  // −inf adds 0 (exp(−inf + inf) would be NaN); NaN makes z NaN
      z += exp_(x - m);
    }
  }
  FUSEDKD_HD_FORCEINLINE void push(A x, bool keep) {  // x joins the set only where keep
    if (keep) push(x);
  }
  FUSEDKD_HD void merge(const OnlineLSE& o) {
    if (o.m > m) {
      z = z * exp_(m - o.m) + o.z;
      m = o.m;
    } else if (o.z != A(0)) {  // o not empty (z ≥ 1), or NaN: a NaN pushed into an empty state
      z += o.z * exp_(o.m - m);
    }
  }
  FUSEDKD_HD A lse() const { return m + log_(z); }
};

// lse(x) together with the softmax-weighted sum of a second quantity v:
//   d = Σ_j exp(x_j − m) v_j,  so that  Σ_j softmax(x)_j v_j = d / z.
// d is rescaled with z whenever the running max grows.
template <class A> struct OnlineLSEDot {
  A m = neg_inf<A>();
  A z = A(0);
  A d = A(0);

  FUSEDKD_HD_FORCEINLINE void push(A x, A v) {
    if (x > m) {
      const A scale = exp_(m - x);
      z = z * scale + A(1);
      d = d * scale + v;
      m = x;
    } else if (!(x == neg_inf<A>())) {  // as OnlineLSE::push: −inf adds nothing, NaN propagates
      const A w = exp_(x - m);
      z += w;
      d += w * v;
    }
  }
  FUSEDKD_HD_FORCEINLINE void push(A x, A v, bool keep) {
    if (keep) push(x, v);
  }
  FUSEDKD_HD void merge(const OnlineLSEDot& o) {
    if (o.m > m) {
      const A scale = exp_(m - o.m);
      z = z * scale + o.z;
      d = d * scale + o.d;
      m = o.m;
    } else if (o.z != A(0)) {  // as OnlineLSE::merge
      const A scale = exp_(o.m - m);
      z += o.z * scale;
      d += o.d * scale;
    }
  }
  FUSEDKD_HD A lse() const { return m + log_(z); }
  FUSEDKD_HD A mean_v() const { return d / z; }  // Σ softmax(x)_j v_j
};

// A plain sum Σ_j v_j: the second-pass sums of the losses whose terms need both normalizers (the
// cross pass, cross_pass.hpp).
template <class A> struct OnlineSum {
  A v = A(0);
  FUSEDKD_HD_FORCEINLINE void push(A x) { v += x; }
  FUSEDKD_HD void merge(const OnlineSum& o) { v += o.v; }
};

// The states of sums taken with a fixed reference m (z = Σ exp(x_j − m), d = Σ exp(x_j − m) v_j),
// as the CPU rows that keep their exponentials compute them.
template <class A> FUSEDKD_HD_INLINE OnlineLSE<A> lse_from_sums(A m, A z) {
  OnlineLSE<A> r;
  r.m = m;
  r.z = z;
  return r;
}
template <class A> FUSEDKD_HD_INLINE OnlineLSEDot<A> lse_dot_from_sums(A m, A z, A d) {
  OnlineLSEDot<A> r;
  r.m = m;
  r.z = z;
  r.d = d;
  return r;
}

// The state a policy's statistics keep for a value type V: the types above for scalars; the CPU
// executor specializes these for its SIMD lanes (cpu/lane_accumulators.hpp), so a policy's
// StatsT<V> is written once for both.
template <class V> struct Accumulators {
  using LSE = OnlineLSE<V>;
  using LSEDot = OnlineLSEDot<V>;
  using Sum = OnlineSum<V>;
};
template <class V> using LSEState = typename Accumulators<V>::LSE;
template <class V> using LSEDotState = typename Accumulators<V>::LSEDot;
template <class V> using SumState = typename Accumulators<V>::Sum;

// Member-wise merge of two states that list their members with zip() (see the loss policies).
struct MergeMembers {
  template <class S> FUSEDKD_HD void operator()(S& into, const S& from) const { into.merge(from); }
};

// A softmax normalizer with its max m and log z kept apart: p_j = exp((x_j − m) − log z). Rounding
// m + log z to one number would cost ε·|lse| in every probability (much more than ε when |x| is
// large); x_j − m is exact or nearly so where p_j matters, and log z ≤ log C.
template <class A> struct LogNormalizer {
  A m = A(0), log_z = A(0);
  FUSEDKD_HD A lse() const { return m + log_z; }  // bit for bit OnlineLSE::lse()
  template <class V> FUSEDKD_HD_FORCEINLINE V prob(V x) const { return exp_((x - m) - log_z); }
};
// For a softmax over the set with normalizer nt plus one more logit x (a target split off):
// p_x = e^(x − m) / (z + e^(x − m)) = 1 / (1 + exp(log z − (x − m))), with m and log z apart (see
// LogNormalizer): one exp and a division, exact at both ends (x − m = ±inf gives 1 or 0).
template <class A> FUSEDKD_HD_INLINE A prob_of_extra(const LogNormalizer<A>& nt, A x) {
  return A(1) / (A(1) + exp_(nt.log_z - (x - nt.m)));
}
template <class S> FUSEDKD_HD_INLINE auto log_normalizer(const S& st) {
  LogNormalizer<decltype(st.m)> n;
  n.m = st.m;
  n.log_z = log_(st.z);
  return n;
}

// 0 for a finite x, NaN for ±inf and NaN: added to a row's statistics, it makes the whole row NaN
// when one of its normalizers is not finite (docs/math.md, "Non-finite inputs").
template <class A> FUSEDKD_HD_INLINE A nan_unless_finite(A x) { return x - x; }

// A quantity that cannot be negative (a divergence, a cross-entropy), computed as x: a negative
// finite x is rounding (the exact value is ≥ 0, so 0 is closer to it than x), −inf an overflow
// (NaN); NaN and +inf pass.
template <class A> FUSEDKD_HD_INLINE A nonnegative(A x) {
  if (x == neg_inf<A>()) return x - x;  // NaN
  return x < A(0) ? A(0) : x;
}

// log(exp(a) + exp(b)), exact when either is -inf.
template <class A> FUSEDKD_HD_INLINE A log_add_exp(A a, A b) {
  const A hi = a > b ? a : b;
  const A lo = a > b ? b : a;
  if (lo == neg_inf<A>()) return hi;
  return hi + log_(A(1) + exp_(lo - hi));
}

// log(e^a + e^b) on values V (scalars or SIMD lanes), branch-free: hi + log1p(e^{lo − hi}), with
// a = b = −inf giving −inf; NaN propagates.
template <class V> FUSEDKD_HD_FORCEINLINE V log_add_exp_v(V a, V b) {
  const auto a_above = a > b;
  const V hi = select(a_above, a, b), lo = select(a_above, b, a);
  return select(hi == V(-INFINITY), hi, hi + log1p_(exp_(lo - hi)));
}

// x · log(x / y) given log x and log y, with 0 · log 0 = 0 (the convention of kl_div / xlogy).
template <class A> FUSEDKD_HD_INLINE A kl_term(A log_x, A log_y) {
  return log_x == neg_inf<A>() ? A(0) : exp_(log_x) * (log_x - log_y);
}

}  // namespace fusedkd
