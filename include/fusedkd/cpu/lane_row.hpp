// The row program a loss runs on SIMD lanes: LaneRow<L>::run<W>(ctx, C, load_s, load_t, g, scale,
// scratch) returns the row's statistics (L::Row) and, where g is not null, writes
// g_j = scale · ∂ℓ/∂s_j with respect to the loaded values; load_s(j) / load_t(j) give W (possibly
// transformed: standardized) values of columns j … j + W − 1. The executors (row_executor.hpp,
// standardized_rows.hpp) call it for every loss alike.
//
// The primary template runs the policy's StatsT / grad on W columns at a time (lane_row_stats, the
// cross pass of a loss that has one, then one gradient pass). A loss whose row has a cheaper lane form specializes LaneRow beside that form:
// the softmax-pair losses (softmax_pair_lanes.hpp: each exponential once) and RLD (rld_lanes.hpp).
// A specialization may use at most kLaneRowScratchPerColumn · C floats of scratch.
#pragma once

#include <cstdint>

#include "../cross_pass.hpp"
#include "../online_softmax.hpp"
#include "lane_accumulators.hpp"
#include "lane_loops.hpp"
#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

// Floats of per-thread scratch per column that any LaneRow program may use with a gradient.
constexpr std::int64_t kLaneRowScratchPerColumn = 3;

namespace detail {

// A loss's row statistics on SIMD lanes: load_s(j) / load_t(j) give the W (transformed) values
// of columns j … j + W − 1. Per block of kLaneColumnBlock columns, a remainder of r < W columns is
// pushed as the W columns ending at the block's end into a second lane state, whose last r lanes
// merge lane by lane into the first; the lanes are then reduced into a scalar state (a fixed
// tree over the lanes), and the blocks merge in order. So the result depends only on C and W.
// Needs C ≥ W.
// Any mergeable lane state Lanes with its scalar counterpart Scalar: push(lanes, j) adds columns
// j … j + W − 1.
template <class Lanes, class Scalar, int W, class Push>
FUSEDKD_LANES_INLINE Scalar lane_row_reduce(std::int64_t C, Push&& push) {
  Scalar st;
  for (std::int64_t j0 = 0; j0 < C; j0 += kLaneColumnBlock) {
    const std::int64_t j1 = j0 + kLaneColumnBlock < C ? j0 + kLaneColumnBlock : C;
    Lanes lanes;
    std::int64_t j = j0;
    for (; j + W <= j1; j += W) push(lanes, j);
    if (j < j1) {
      Lanes tail;
      const std::int64_t jt = j1 - W;
      push(tail, jt);
      tail.zip(lanes, MergeLanes{int(j - jt)});
    }
    Scalar part;
    lanes.zip(part, ReduceLanes{});
    if (j0 == 0)
      st = part;
    else
      st.merge(part);
  }
  return st;
}

template <class L, int W, class LoadS, class LoadT>
FUSEDKD_LANES_INLINE typename L::Stats lane_row_stats(const typename L::Context& ctx, std::int64_t C, LoadS&& load_s,
                                                      LoadT&& load_t) {
  using Lanes = typename L::template StatsT<FloatLanes<W>>;
  return lane_row_reduce<Lanes, typename L::Stats, W>(C, [&](Lanes& lanes, std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {
    lanes.push(ctx, IndexLanes<W>::iota(j), load_s(j), load_t(j));
  });
}

// The cross pass (cross_pass.hpp) of a finalized row, blocked like the statistics.
template <class L, int W, class LoadS, class LoadT>
FUSEDKD_LANES_INLINE typename L::Cross lane_row_cross(const typename L::Context& ctx, const typename L::Row& r,
                                                      std::int64_t C, LoadS&& load_s, LoadT&& load_t) {
  using Lanes = typename L::template CrossT<FloatLanes<W>>;
  return lane_row_reduce<Lanes, typename L::Cross, W>(C, [&](Lanes& lanes, std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {
    lanes.push(ctx, r, IndexLanes<W>::iota(j), load_s(j), load_t(j));
  });
}

}  // namespace detail

// The policy's StatsT / grad on W columns at a time. Needs C ≥ W. Uses no scratch.
template <class L> struct GenericLaneRow {
  template <int W, class LoadS, class LoadT, class TG>
  static FUSEDKD_LANES_INLINE typename L::Row run(const typename L::Context& ctx, std::int64_t C, LoadS&& load_s,
                                                  LoadT&& load_t, TG* g, float scale, float* /*scratch*/) {
    typename L::Row r = L::finalize(ctx, detail::lane_row_stats<L, W>(ctx, C, load_s, load_t));
    if constexpr (has_cross_pass<L>::value) L::finish(ctx, r, detail::lane_row_cross<L, W>(ctx, r, C, load_s, load_t));
    if (g) {
      const FloatLanes<W> sc(scale);
      // The remainder stores only its new lanes (store_lanes_from): g may be the student row itself.
      detail::for_lane_blocks<W>(C, [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {
        store_lanes_from(g + j, sc * L::grad(ctx, r, IndexLanes<W>::iota(j), load_s(j), load_t(j)), first);
      });
    }
    return r;
  }
};

template <class L, class = void> struct LaneRow : GenericLaneRow<L> {};

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
