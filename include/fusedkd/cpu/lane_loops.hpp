// The column loops of the CPU executor's SIMD rows. Both visit a remainder of r < W columns as
// the W columns ending at the row's (or block's) end, passing first = W − r, the lanes already
// visited: a sum masks them, a max or a store of equal values need not. Need C ≥ W.
#pragma once

#include <cstdint>

#include "lanes.hpp"

namespace fusedkd::cpu {

// Columns per block of the SIMD statistics: each of the W lanes sums kLaneColumnBlock / W columns
// of a block before the block's sums are combined (a two-level sum, see row_executor.hpp).
constexpr std::int64_t kLaneColumnBlock = 1024;

namespace detail {

// Calls f(j, first) for j = 0, W, 2W, … while a full W fits (first = 0), then, for a remainder,
// once more with j = C − W and first = the lanes already visited. Needs C ≥ W.
template <int W, class F> FUSEDKD_LANES_INLINE void for_lane_blocks(std::int64_t C, F&& f) {
  std::int64_t j = 0;
  for (; j + W <= C; j += W) f(j, 0);
  if (j < C) f(C - W, int(j - (C - W)));
}

// Calls step(j, first) on the W-column steps of each block of kLaneColumnBlock columns (first =
// 0) and, for a remainder of r < W columns, once more on the W columns ending at the block's end
// (first = W − r, the lanes already visited), then end_block(j0) after the block starting at j0.
// The blocking depends only on C and W. Needs C ≥ W.
template <int W, class Step, class EndBlock>
FUSEDKD_LANES_INLINE void for_lane_column_blocks(std::int64_t C, Step&& step, EndBlock&& end_block) {
  for (std::int64_t j0 = 0; j0 < C; j0 += kLaneColumnBlock) {
    const std::int64_t j1 = j0 + kLaneColumnBlock < C ? j0 + kLaneColumnBlock : C;
    std::int64_t j = j0;
    for (; j + W <= j1; j += W) step(j, 0);
    if (j < j1) step(j1 - W, int(j - (j1 - W)));
    end_block(j0);
  }
}

}  // namespace detail

}  // namespace fusedkd::cpu
