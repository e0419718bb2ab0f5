// KD, DKD and NKD at τ = 1 on one row on SIMD lanes with each exponential computed once (the
// generic row executor computes exp(s/τ − ·) and exp(t/τ − ·) in its statistics pass and again for
// the gradient). Each is a pair of softmaxes at τ over a set of columns J: every column for KD, the
// non-target columns j ≠ y for DKD and NKD (their target terms come from s_y, t_y in finalize),
// with a cross sum d = Σ_J e_t,j v_j, v_j = L::cross_term(s_j, t_j) (t_j − s_j, or s_j for NKD).
//
//   pass 1: M_s = max_{j∈J} s_j, M_t = max_{j∈J} t_j              (references m = M/τ)
//   pass 2: e_s,j = exp(s_j/τ − m_s), e_t,j = exp(t_j/τ − m_t)      (kept in scratch);
//           z_s = Σ_J e_s,  z_t = Σ_J e_t,  d = Σ_J e_t,j v_j
//   pass 3: ∂ℓ/∂s_j = L::grad_from_probs(j = y, e_s,j / z_s, e_t,j / z_t)
//
// The statistics go through L::stats_from_sums to L::finalize. Each lane sums a block of
// kLaneColumnBlock columns, and the block sums are added lane by lane (the two-level sum of the
// other paths); remainders as in lane_loops.hpp. With the references at the maxima over J every
// exponential there is ≤ 1 and nothing is rescaled. A column with t_j = −inf (a masked class) adds
// nothing to d, as in the scalar OnlineLSEDot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "lane_loops.hpp"
#include "lane_row.hpp"
#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

// The row's statistics and, where g is not null, g_j = scale · ∂ℓ/∂s_j (with respect to the
// loaded values), for a loss L whose row is a softmax pair (L::is_softmax_pair(c): KD, DKD, and NKD
// at τ = 1), over every column, or over j ≠ y when L::uses_label.
// load_s(j) / load_t(j) give the W (possibly transformed) values of columns j … j + W − 1.
// scratch: 2C floats (used only with a gradient). Needs C ≥ W.
template <class L, int W, class LoadS, class LoadT, class TG>
FUSEDKD_LANES_INLINE typename L::Row softmax_pair_row_lanes(const typename L::Context& c, std::int64_t C,
                                                            LoadS&& load_s, LoadT&& load_t, TG* g, float scale,
                                                            float* scratch) {
  using V = FloatLanes<W>;
  using I = IndexLanes<W>;
  const float lowest = std::numeric_limits<float>::lowest();
  const long long excluded = [&] {  // DKD sums j ≠ y; −1 matches no column
    if constexpr (L::uses_label)
      return (long long)c.y;
    else
      return -1LL;
  }();
  const LaneMask<W> none = lane_keep<W>(W);
  const auto is_excluded = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {  // only the W columns holding y
    return std::uint64_t(excluded - j) < std::uint64_t(W) ? I::iota(j) == excluded : none;
  };

  // pass 1: maxima over J
  V ms(lowest), mt(lowest);
  detail::for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
    if constexpr (L::uses_label) {
      const LaneMask<W> out = is_excluded(j);
      ms = max(ms, select(out, V(lowest), load_s(j)));
      mt = max(mt, select(out, V(lowest), load_t(j)));
    } else {
      ms = max(ms, load_s(j));
      mt = max(mt, load_t(j));
    }
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
        LaneMask<W> keep = lane_keep<W>(first);
        if constexpr (L::uses_label) keep = keep && !is_excluded(j);
        const V sj = load_s(j), tj = load_t(j);
        const V e_s = exp_(sj * c.inv_tau - m_s), e_t = exp_(tj * c.inv_tau - m_t);
        if (es) {
          store_lanes(es + j, e_s);
          store_lanes(et + j, e_t);
        }
        zs += select(keep, e_s, V(0.0f));
        zt += select(keep, e_t, V(0.0f));
        d += select(keep && e_t > 0.0f, e_t * L::cross_term(sj, tj), V(0.0f));  // a −inf teacher column adds 0, not 0·∞
      },
      [&](std::int64_t) FUSEDKD_LANES_INLINE_LAMBDA {
        zs_total += zs;
        zt_total += zt;
        d_total += d;
        zs = zt = d = V(0.0f);
      });
  const float z_s = hsum(zs_total), z_t = hsum(zt_total);
  const typename L::Row r = L::finalize(c, L::stats_from_sums(m_s, z_s, m_t, z_t, hsum(d_total)));

  // pass 3: the gradient from the kept exponentials (a remainder rewrites equal values; at j = y
  // DKD's e_s may be +inf, which grad_from_probs does not select)
  if (g) {
    const V inv_zs(1.0f / z_s), inv_zt(1.0f / z_t), sc(scale);
    detail::for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
      store_lanes(g + j, sc * L::grad_from_probs(c, r, is_excluded(j), load_lanes<W>(es + j) * inv_zs,
                                                  load_lanes<W>(et + j) * inv_zt));
    });
  }
  return r;
}

// The LaneRow of a loss that declares is_softmax_pair(ctx): the kept-exponential row when the
// context says the row is a softmax pair, the generic program otherwise (NKD at τ ≠ 1).
template <class L> struct LaneRow<L, std::void_t<decltype(&L::is_softmax_pair)>> {
  template <int W, class LoadS, class LoadT, class TG>
  static FUSEDKD_LANES_INLINE typename L::Row run(const typename L::Context& ctx, std::int64_t C, LoadS&& load_s,
                                                  LoadT&& load_t, TG* g, float scale, float* scratch) {
    if (L::is_softmax_pair(ctx)) return softmax_pair_row_lanes<L, W>(ctx, C, load_s, load_t, g, scale, g ? scratch : nullptr);
    return GenericLaneRow<L>::template run<W>(ctx, C, load_s, load_t, g, scale, scratch);
  }
};

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
