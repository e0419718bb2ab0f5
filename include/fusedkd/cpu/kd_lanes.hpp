// KD on one row on SIMD lanes with each exponential computed once (the generic row executor
// computes exp(s/τ − ·) and exp(t/τ − ·) in its statistics pass and again for the gradient).
//
//   pass 1: M_s = max_j s_j, M_t = max_j t_j                      (references m = M/τ)
//   pass 2: e_s,j = exp(s_j/τ − m_s), e_t,j = exp(t_j/τ − m_t);
//           z_s = Σ e_s,  z_t = Σ e_t,  d = Σ e_t,j (t_j − s_j)   (e_s, e_t kept in scratch)
//   pass 3: ∂ℓ/∂s_j = KD::grad_from_probs(e_s,j / z_s, e_t,j / z_t)
//
// The statistics are KD's (lse = m + log z, the cross sum d), handed to KD::finalize. Each lane
// sums a block of kLaneColumnBlock columns, and the block sums are added lane by lane (the
// two-level sum of the other paths); remainders as in lane_loops.hpp. With the references at the row's
// max every exponential is ≤ 1 and no rescaling is needed. A column with t_j = −inf (a masked
// class) adds nothing to d, as in the scalar OnlineLSEDot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../losses/kd.hpp"
#include "lane_loops.hpp"
#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

// The row's KD statistics and, where g is not null, g_j = scale · ∂ℓ/∂s_j. scratch: 2C floats
// (used only with a gradient). Needs C ≥ W.
template <int W, class TS, class TT, class TG>
FUSEDKD_LANES_INLINE KD<float>::Row kd_row_lanes(const KD<float>::Context& c, std::int64_t C, const TS* s,
                                                 const TT* t, TG* g, float scale, float* scratch) {
  using V = FloatLanes<W>;
  const float lowest = std::numeric_limits<float>::lowest();

  // pass 1: row maxima
  V ms(lowest), mt(lowest);
  detail::for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
    ms = max(ms, load_lanes<W>(s + j));
    mt = max(mt, load_lanes<W>(t + j));
  });
  // m = M/τ, at least the lowest float so that a row of −inf gives z = 0, not exp(−inf + inf)
  const float m_s = std::max(hmax(ms) * c.inv_tau, lowest), m_t = std::max(hmax(mt) * c.inv_tau, lowest);

  // pass 2: sums of the exponentials, kept for pass 3
  float* es = scratch;
  float* et = scratch ? scratch + C : nullptr;
  V zs_total(0.0f), zt_total(0.0f), d_total(0.0f), zs(0.0f), zt(0.0f), d(0.0f);
  detail::for_lane_column_blocks<W>(
      C,
      [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {
        const LaneMask<W> keep = lane_keep<W>(first);
        const V sj = load_lanes<W>(s + j), tj = load_lanes<W>(t + j);
        const V e_s = exp_(sj * c.inv_tau - m_s), e_t = exp_(tj * c.inv_tau - m_t);
        if (es) {
          store_lanes(es + j, e_s);
          store_lanes(et + j, e_t);
        }
        zs += select(keep, e_s, V(0.0f));
        zt += select(keep, e_t, V(0.0f));
        d += select(keep && e_t > 0.0f, e_t * (tj - sj), V(0.0f));  // a −inf teacher column adds 0, not 0·∞
      },
      [&](std::int64_t) FUSEDKD_LANES_INLINE_LAMBDA {
        zs_total += zs;
        zt_total += zt;
        d_total += d;
        zs = zt = d = V(0.0f);
      });
  KD<float>::Stats st;
  st.s.m = m_s;
  st.s.z = hsum(zs_total);
  st.t.m = m_t;
  st.t.z = hsum(zt_total);
  st.t.d = hsum(d_total);
  const KD<float>::Row r = KD<float>::finalize(c, st);

  // pass 3: the gradient from the kept exponentials (a remainder rewrites equal values)
  if (g) {
    const V inv_zs(1.0f / st.s.z), inv_zt(1.0f / st.t.z), sc(scale);
    detail::for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
      store_lanes(g + j, sc * KD<float>::grad_from_probs(c, load_lanes<W>(es + j) * inv_zs, load_lanes<W>(et + j) * inv_zt));
    });
  }
  return r;
}

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
