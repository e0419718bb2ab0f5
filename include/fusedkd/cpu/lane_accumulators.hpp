// The streaming states of online_softmax.hpp / losses/rld.hpp kept per SIMD lane, so a policy's
// StatsT<FloatLanes<W>> pushes W columns at once. Lane l sees the columns j ≡ l (mod W) of a
// column block; reduce_into() merges the lanes, in lane order, into the scalar state.
//
// Branch-free per lane, except that the rescale exp(m_old − m_new) runs only when some lane's
// running max grows (rare after the first columns). Lanes start at m = lowest finite float rather
// than −inf, so exp(x − m) is 0 for masked (−inf) columns and never exp(−inf + inf) = NaN; a lane
// that saw no column has z = 0 and is skipped by reduce_into. (An input of +inf gives NaN here
// where the scalar path gives ±inf; both are degenerate.)
#pragma once

#include <limits>

#include "../losses/rld.hpp"
#include "../online_softmax.hpp"
#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> lowest_lanes() {
  return FloatLanes<W>(std::numeric_limits<float>::lowest());
}

// Lanes [first, W).
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> lane_keep(int first) {
  return IndexLanes<W>::iota(0) >= std::int32_t(first);
}

// OnlineLSE per lane: m = running max, z = Σ exp(x − m).
template <int W> struct LaneLSE {
  using V = FloatLanes<W>;
  V m = lowest_lanes<W>();
  V z = V(0.0f);

  FUSEDKD_LANES_INLINE void push(V x) {
    const LaneMask<W> grow = x > m;
    if (any(grow)) {  // rescale the lanes' sums to their new max
      const V m_new = max(m, x);
      z = z * exp_(m - m_new);
      m = m_new;
    }
    z += exp_(x - m);
  }
  FUSEDKD_LANES_INLINE void push(V x, LaneMask<W> keep) { push(select(keep, x, V(-INFINITY))); }

  // Merges lanes [first, W) into `into`: with M = max_l m_l, the lanes sum to (M, Σ_l z_l e^(m_l − M)).
  void reduce_into(OnlineLSE<float>& into, int first = 0) const {
    const LaneMask<W> keep = lane_keep<W>(first);
    const float M = hmax(select(keep, m, lowest_lanes<W>()));
    OnlineLSE<float> s;
    s.m = M;
    s.z = hsum(select(keep, z * exp_(m - M), V(0.0f)));
    if (s.z > 0.0f) into.merge(s);
  }
};

// OnlineLSEDot per lane: also d = Σ exp(x − m) v.
template <int W> struct LaneLSEDot {
  using V = FloatLanes<W>;
  V m = lowest_lanes<W>();
  V z = V(0.0f);
  V d = V(0.0f);

  FUSEDKD_LANES_INLINE void push(V x, V v) {
    const LaneMask<W> grow = x > m;
    if (any(grow)) {
      const V m_new = max(m, x);
      const V scale = exp_(m - m_new);
      z = z * scale;
      d = d * scale;
      m = m_new;
    }
    const V w = exp_(x - m);
    z += w;
    d += w * v;
  }
  FUSEDKD_LANES_INLINE void push(V x, V v, LaneMask<W> keep) {
    push(select(keep, x, V(-INFINITY)), select(keep, v, V(0.0f)));
  }

  void reduce_into(OnlineLSEDot<float>& into, int first = 0) const {
    const LaneMask<W> keep = lane_keep<W>(first);
    const float M = hmax(select(keep, m, lowest_lanes<W>()));
    const V scale = select(keep, exp_(m - M), V(0.0f));
    OnlineLSEDot<float> s;
    s.m = M;
    s.z = hsum(z * scale);
    s.d = hsum(d * scale);
    if (s.z > 0.0f) into.merge(s);
  }
};

// ScaledTopLSE per lane: m = max x, arg = its column (first on ties within the lane),
// rest = Σ_{j≠arg} exp((x_j − m) k).
template <int W> struct LaneTopLSE {
  using V = FloatLanes<W>;
  V m = lowest_lanes<W>();
  V rest = V(0.0f);
  IndexLanes<W> arg = IndexLanes<W>::filled(-1);
  float k = 0.0f;

  FUSEDKD_LANES_INLINE void push(V x, IndexLanes<W> j, float scale) {
    k = scale;
    const LaneMask<W> grow = x > m;
    const V e = exp_((min(x, m) - max(x, m)) * scale);  // exp(−|x − m| k): the smaller joins the rest
    const V had_arg = select(arg >= 0, V(1.0f), V(0.0f));
    rest = select(grow, (rest + had_arg) * e, rest + e);  // a new max: the old one joins the rest
    m = select(grow, x, m);
    arg = select(grow, j, arg);
  }

  void reduce_into(ScaledTopLSE<float>& into, int first = 0) const {
    for (int l = first; l < W; ++l) {
      if (arg[l] < 0) continue;
      ScaledTopLSE<float> s;
      s.m = m[l];
      s.rest = rest[l];
      s.k = k;
      s.arg = arg[l];
      into.merge(s);
    }
  }
};

// Merges lanes [first, W) of a lane state into its scalar counterpart (for StatsT::zip).
struct ReduceLanes {
  int first = 0;
  template <class LaneState, class ScalarState> void operator()(const LaneState& lanes, ScalarState& into) const {
    lanes.reduce_into(into, first);
  }
};

}  // namespace fusedkd::cpu

namespace fusedkd {
template <int W> struct Accumulators<cpu::FloatLanes<W>> {
  using LSE = cpu::LaneLSE<W>;
  using LSEDot = cpu::LaneLSEDot<W>;
};
template <int W> struct TopLSEAccumulator<cpu::FloatLanes<W>> {
  using type = cpu::LaneTopLSE<W>;
};
}  // namespace fusedkd

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
