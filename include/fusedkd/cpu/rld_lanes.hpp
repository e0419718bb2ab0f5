// RLD on one row on SIMD lanes with each exponential computed once (the generic row executor
// evaluates four in its statistics pass and three again for the gradient; the standardized mode
// needed the gradient twice more).
//
//   pass 1: the references: m_nt = max_{j≠y} s_j/a, m_ks = max_{j∈K} s_j/τ, m_kt = max_{j∈K} t_j/τ;
//           M_t = max_j t_j and its first column m (the teacher's arg-max)
//   pass 2: e_nt,j = exp(s_j/a − m_nt), e_ks,j = exp(s_j/τ − m_ks), e_kt,j = exp(t_j/τ − m_kt)
//           (kept in scratch), and exp((t_j − M_t)/a) for the teacher's split;
//           z_nt = Σ_{j≠y} e_nt, rest = Σ_{j≠m} exp((t_j − M_t)/a),
//           z_ks = Σ_{j∈K} e_ks, z_kt = Σ_{j∈K} e_kt, d = Σ_{j∈K} e_kt,j (t_j − s_j)
//   pass 3: ∂ℓ/∂s_j = RLD::grad_from_probs(e_nt/z_nt, e_ks/z_ks, e_kt/z_kt)
//
// The statistics are RLD's, handed to RLD::finalize. Blocking, remainders and masked columns as
// in softmax_pair_lanes.hpp (lane_loops.hpp); the rest of the teacher's split excludes its arg-max column by index, as
// ScaledTopLSE does (no cancellation in Σ − 1 when the teacher is peaked).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../losses/rld.hpp"
#include "lane_loops.hpp"
#include "lane_row.hpp"
#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

// The row's RLD statistics from load_s(j) / load_t(j) (W columns each, any transform). With a
// scratch of 3C floats, leaves ∂ℓ/∂s_j (for an upstream gradient of 1, with respect to the loaded
// values) in scratch[0, C). Needs C ≥ W.
template <int W, class LoadS, class LoadT>
FUSEDKD_LANES_INLINE RLD<float>::Row rld_row_lanes(const RLD<float>::Context& c, std::int64_t C, LoadS&& load_s,
                                                   LoadT&& load_t, float* scratch) {
  using V = FloatLanes<W>;
  using I = IndexLanes<W>;

  // pass 1: the maxima each sum is referred to (over its own columns, so that no sum underflows to
  // 0 behind a larger excluded column), and per lane the first column of the teacher's max (a
  // remainder re-reads columns: a strict > keeps the first).
  const float lowest = std::numeric_limits<float>::lowest();
  const V low(lowest);
  V m_nt = low, mk_s = low, mk_t = low, mt = low;  // s over j ≠ y; s and t over K; t over all
  I arg = I::filled(-1);
  detail::for_lane_blocks<W>(C, [&](std::int64_t k, int) FUSEDKD_LANES_INLINE_LAMBDA {
    const V sk = load_s(k), tk = load_t(k);
    const LaneMask<W> grow = tk > mt, in_k = tk < c.t_y;
    m_nt = max(m_nt, select(I::iota(k) != c.y, sk, low));
    mk_s = max(mk_s, select(in_k, sk, low));
    mk_t = max(mk_t, select(in_k, tk, low));
    mt = select(grow, tk, mt);
    arg = select(grow, I::iota(k), arg);
  });
  const float M_t = hmax(mt);
  long long m_arg = std::numeric_limits<long long>::max();
  for (int l = 0; l < W; ++l)
    if (mt[l] == M_t && arg[l] >= 0 && arg[l] < m_arg) m_arg = arg[l];
  const float r_nt = std::max(hmax(m_nt) * c.inv_a, lowest), r_ks = std::max(hmax(mk_s) * c.inv_tau, lowest),
              r_kt = std::max(hmax(mk_t) * c.inv_tau, lowest);

  // pass 2
  float* e_nt = scratch;
  float* e_ks = scratch ? scratch + C : nullptr;
  float* e_kt = scratch ? scratch + 2 * C : nullptr;
  struct Sums {
    V z_nt{0.0f}, rest{0.0f}, z_ks{0.0f}, z_kt{0.0f}, d{0.0f}, any_k{0.0f};
  };
  const auto step = [&](std::int64_t j, Sums& a, LaneMask<W> keep) FUSEDKD_LANES_INLINE_LAMBDA {
    const V sj = load_s(j), tj = load_t(j);
    const I cols = I::iota(j);
    const V x_nt = exp_(sj * c.inv_a - r_nt), x_ks = exp_(sj * c.inv_tau - r_ks), x_kt = exp_(tj * c.inv_tau - r_kt);
    const V x_top = exp_((tj - M_t) * c.inv_a);
    if (scratch) {
      store_lanes(e_nt + j, x_nt);
      store_lanes(e_ks + j, x_ks);
      store_lanes(e_kt + j, x_kt);
    }
    const LaneMask<W> in_k = keep && (tj < c.t_y);  // j ∈ K (never y)
    a.z_nt += select(keep && (cols != c.y), x_nt, V(0.0f));
    a.rest += select(keep && (cols != m_arg), x_top, V(0.0f));
    a.z_ks += select(in_k, x_ks, V(0.0f));
    a.z_kt += select(in_k, x_kt, V(0.0f));
    a.d += select(in_k && x_kt > 0.0f, x_kt * (tj - sj), V(0.0f));
    a.any_k = select(in_k, V(1.0f), a.any_k);
  };
  Sums total, part;
  detail::for_lane_column_blocks<W>(
      C, [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA { step(j, part, lane_keep<W>(first)); },
      [&](std::int64_t) FUSEDKD_LANES_INLINE_LAMBDA {
        total.z_nt += part.z_nt;
        total.rest += part.rest;
        total.z_ks += part.z_ks;
        total.z_kt += part.z_kt;
        total.d += part.d;
        total.any_k = max(total.any_k, part.any_k);
        part = Sums{};
      });
  const bool k_nonempty = hmax(total.any_k) > 0.0f;
  RLD<float>::Stats st;
  st.s_nt_a.m = r_nt;
  st.s_nt_a.z = hsum(total.z_nt);
  // no lane saw a teacher logit above −inf: no arg-max, as ScaledTopLSE leaves m = −inf (a NaN row)
  st.t_top.m = m_arg == std::numeric_limits<long long>::max() ? -INFINITY : M_t;
  st.t_top.rest = hsum(total.rest);
  st.t_top.k = c.inv_a;
  st.t_top.arg = m_arg;
  const float z_kt = hsum(total.z_kt);
  if (k_nonempty && z_kt != 0.0f) {  // else both stay empty (m = −inf), as the pushes leave them (also
                                     // when every teacher logit in K is −inf: no distribution over K)
    st.s_k.m = r_ks;
    st.s_k.z = hsum(total.z_ks);
    st.t_k.m = r_kt;
    st.t_k.z = z_kt;
    st.t_k.d = hsum(total.d);
  }
  const RLD<float>::Row r = RLD<float>::finalize(c, st);

  // pass 3: the gradient into scratch[0, C), over e_nt. A remainder's W columns overlap columns
  // already overwritten, so they are computed first and stored last (equal values).
  if (scratch) {
    const V inv_nt(1.0f / st.s_nt_a.z), inv_ks(k_nonempty ? 1.0f / st.s_k.z : 0.0f),
        inv_kt(k_nonempty ? 1.0f / st.t_k.z : 0.0f);
    const auto grad_at = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {
      return RLD<float>::grad_from_probs(c, r, I::iota(j) == c.y, load_t(j) < c.t_y, load_lanes<W>(e_nt + j) * inv_nt,
                                         load_lanes<W>(e_ks + j) * inv_ks, load_lanes<W>(e_kt + j) * inv_kt);
    };
    const bool remainder = C % W != 0;
    const std::int64_t tail = C - W;  // the last W columns start here
    V g_tail(0.0f);
    if (remainder) g_tail = grad_at(tail);
    for (std::int64_t j = 0; j + W <= C; j += W) store_lanes(e_nt + j, grad_at(j));
    if (remainder) store_lanes(e_nt + tail, g_tail);
  }
  return r;
}

// RLD's LaneRow: rld_row_lanes, which leaves ∂ℓ/∂s in scratch[0, C), then the scaled copy into g.
template <> struct LaneRow<RLD<float>> {
  template <int W, class LoadS, class LoadT, class TG>
  static FUSEDKD_LANES_INLINE RLD<float>::Row run(const RLD<float>::Context& ctx, std::int64_t C, LoadS&& load_s,
                                                  LoadT&& load_t, TG* g, float scale, float* scratch) {
    const RLD<float>::Row r = rld_row_lanes<W>(ctx, C, load_s, load_t, g ? scratch : nullptr);
    if (g) {
      const FloatLanes<W> sc(scale);
      detail::for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
        store_lanes(g + j, sc * load_lanes<W>(scratch + j));
      });
    }
    return r;
  }
};

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
