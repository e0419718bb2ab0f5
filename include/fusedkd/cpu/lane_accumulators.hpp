// The streaming states of online_softmax.hpp / losses/rld.hpp kept per SIMD lane, so a policy's
// StatsT<FloatLanes<W>> pushes W columns at once. Lane l sees the columns j ≡ l (mod W) of a
// column block; reduce_into() merges the lanes (a fixed tree over them) into the scalar state.
//
// Branch-free per lane, except for a lazy rescale: a lane's m is a reference, not necessarily its
// max. Terms exp(x − m) up to e^kRescaleHeadroom are summed as they are, and the lanes move m to
// their max (z ← z·exp(m_old − m_new)) only when some x exceeds m by more than that — in practice
// on the block's first columns and seldom after. lse = m + log z is the same for any reference,
// and with at most kLaneColumnBlock / W terms of ≤ e^8 per lane the sums stay far from overflow. Lanes start at m = lowest finite float rather
// than −inf, so exp(x − m) is 0 for masked (−inf) columns and never exp(−inf + inf) = NaN; a lane
// that saw no column has z = 0 and is skipped by reduce_into. (An input of +inf gives NaN here
// where the scalar path gives ±inf; both are degenerate.)
#pragma once

#include <limits>

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

// exp(x − m) for a lane reference m is summed without rescaling while x − m ≤ this.
constexpr float kRescaleHeadroom = 8.0f;

// OnlineLSE per lane: m = reference (see above), z = Σ exp(x − m).
template <int W> struct LaneLSE {
  using V = FloatLanes<W>;
  V m = lowest_lanes<W>();
  V z = V(0.0f);

  FUSEDKD_LANES_INLINE void push(V x) {
    V dx = x - m;
    if (any(dx > V(kRescaleHeadroom))) {  // move the references to the lanes' max
      const V m_new = max(m, x);
      z = z * exp_(m - m_new);
      m = m_new;
      dx = x - m;
    }
    z += exp_(dx);
  }
  FUSEDKD_LANES_INLINE void push(V x, LaneMask<W> keep) { push(select(keep, x, V(-INFINITY))); }

  // Lane by lane, merges lanes [first, W) of o (a state over other columns) into this one:
  // M = max(m, m_o), z ← z e^(m − M) + z_o e^(m_o − M).
  FUSEDKD_LANES_INLINE void merge_lanes(const LaneLSE& o, int first) {
    const LaneMask<W> keep = lane_keep<W>(first);
    const V om = select(keep, o.m, lowest_lanes<W>()), oz = select(keep, o.z, V(0.0f));
    const V M = max(m, om);
    z = z * exp_(m - M) + oz * exp_(om - M);
    m = M;
  }

  // Merges lanes [first, W) into `into`: with M = max_l m_l, the lanes sum to (M, Σ_l z_l e^(m_l − M)).
  FUSEDKD_LANES_INLINE void reduce_into(OnlineLSE<float>& into, int first = 0) const {
    const LaneMask<W> keep = lane_keep<W>(first);
    const float M = hmax(select(keep, m, lowest_lanes<W>()));
    OnlineLSE<float> s;
    s.m = M;
    s.z = hsum(select(keep, z * exp_(m - M), V(0.0f)));
    if (s.z != 0.0f) into.merge(s);  // z = 0: no column; NaN joins
  }
};

// OnlineLSEDot per lane (same lazy reference m): also d = Σ exp(x − m) v.
template <int W> struct LaneLSEDot {
  using V = FloatLanes<W>;
  V m = lowest_lanes<W>();
  V z = V(0.0f);
  V d = V(0.0f);

  FUSEDKD_LANES_INLINE void push(V x, V v) {
    V dx = x - m;
    if (any(dx > V(kRescaleHeadroom))) {
      const V m_new = max(m, x);
      const V scale = exp_(m - m_new);
      z = z * scale;
      d = d * scale;
      m = m_new;
      dx = x - m;
    }
    const V w = exp_(dx);
    z += w;
    d += select(w > 0.0f, w * v, V(0.0f));  // x = −inf adds nothing (0 · v is NaN for v = ±inf)
  }
  FUSEDKD_LANES_INLINE void push(V x, V v, LaneMask<W> keep) {
    push(select(keep, x, V(-INFINITY)), select(keep, v, V(0.0f)));
  }

  FUSEDKD_LANES_INLINE void merge_lanes(const LaneLSEDot& o, int first) {  // as LaneLSE's, d like z
    const LaneMask<W> keep = lane_keep<W>(first);
    const V om = select(keep, o.m, lowest_lanes<W>());
    const V M = max(m, om);
    const V a = exp_(m - M), b = select(keep, exp_(om - M), V(0.0f));
    z = z * a + o.z * b;
    d = d * a + select(keep, o.d * b, V(0.0f));  // a lane not merged adds nothing (0 · ±inf is NaN)
    m = M;
  }

  FUSEDKD_LANES_INLINE void reduce_into(OnlineLSEDot<float>& into, int first = 0) const {
    const LaneMask<W> keep = lane_keep<W>(first);
    const float M = hmax(select(keep, m, lowest_lanes<W>()));
    const V scale = select(keep, exp_(m - M), V(0.0f));
    OnlineLSEDot<float> s;
    s.m = M;
    s.z = hsum(z * scale);
    s.d = hsum(d * scale);
    if (s.z != 0.0f) into.merge(s);  // z = 0: no column; NaN joins
  }
};

// OnlineSum per lane.
template <int W> struct LaneSum {
  using V = FloatLanes<W>;
  V v = V(0.0f);
  FUSEDKD_LANES_INLINE void push(V x) { v += x; }
  FUSEDKD_LANES_INLINE void merge_lanes(const LaneSum& o, int first) { v += select(lane_keep<W>(first), o.v, V(0.0f)); }
  FUSEDKD_LANES_INLINE void reduce_into(OnlineSum<float>& into, int first = 0) const {
    into.v += hsum(select(lane_keep<W>(first), v, V(0.0f)));
  }
};

// Merges lanes [first, W) of one lane state into another over other columns (for StatsT::zip).
struct MergeLanes {
  int first = 0;
  template <class LaneState> FUSEDKD_LANES_INLINE void operator()(const LaneState& from, LaneState& into) const {
    into.merge_lanes(from, first);
  }
};

// Merges lanes [first, W) of a lane state into its scalar counterpart (for StatsT::zip).
struct ReduceLanes {
  int first = 0;
  template <class LaneState, class ScalarState>
  FUSEDKD_LANES_INLINE void operator()(const LaneState& lanes, ScalarState& into) const {
    lanes.reduce_into(into, first);
  }
};

}  // namespace fusedkd::cpu

namespace fusedkd {
template <int W> struct Accumulators<cpu::FloatLanes<W>> {
  using LSE = cpu::LaneLSE<W>;
  using LSEDot = cpu::LaneLSEDot<W>;
  using Sum = cpu::LaneSum<W>;
};
}  // namespace fusedkd

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
