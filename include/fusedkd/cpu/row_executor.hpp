// CPU executor for the row-local losses (KD, DKD, NKD, RLD) on raw logits:
// per row, one pass gathers the loss's streaming statistics, then one pass writes ∂ℓ/∂s.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../batch.hpp"
#include "../numeric.hpp"
#include "../reduction.hpp"
#include "../row.hpp"
#include "isa.hpp"
#include "lane_accumulators.hpp"
#include "lane_loops.hpp"
#include "lanes.hpp"
#include "rld_lanes.hpp"
#include "softmax_pair_lanes.hpp"

namespace fusedkd::cpu {

// Columns per block of reduce_columns (scalar path); the SIMD path's is kLaneColumnBlock
// (lane_loops.hpp).
constexpr std::int64_t kColumnBlock = 256;

// Reduces columns [0, C) into a mergeable state S: push(part, j) for the columns of each block
// of kColumnBlock into a fresh state, then merge the blocks in order. A single sequential float
// sum of many terms behind a dominant one drops each term below half an ulp of the running sum
// (a systematic underestimate, ~1e-4 relative at C = 50000); the two-level sum keeps the error
// at the level of a GPU tree reduction. Deterministic: the blocking depends only on C.
template <class S, class Push> S reduce_columns(std::int64_t C, Push&& push) {
  S total;
  for (std::int64_t j0 = 0; j0 < C; j0 += kColumnBlock) {
    S part;
    const std::int64_t j1 = j0 + kColumnBlock < C ? j0 + kColumnBlock : C;
    for (std::int64_t j = j0; j < j1; ++j) push(part, j);
    if (j0 == 0)
      total = part;
    else
      total.merge(part);
  }
  return total;
}

namespace detail {

// Calls row(i, s, t, g) for the rows in [row_begin, row_end) that count, with their student and
// teacher rows and gradient row (null without a gradient); an ignored row gets loss 0 and a zero
// gradient.
template <class TS, class TT, class TL, class A, class TG, class Row>
FUSEDKD_LANES_INLINE void for_each_counted_row(const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                                               const RowOutputs<A, TG>& out, std::int64_t row_begin,
                                               std::int64_t row_end, Row&& row) {
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    TG* g = out.grad ? out.grad + i * out.grad_row_stride : nullptr;
    if (labels.ignored(i)) {
      if (out.row_loss) out.row_loss[i] = A(0);
      if (g)
        for (std::int64_t j = 0; j < x.cols; ++j) g[j] = from_acc<TG>(A(0));
      continue;
    }
    row(i, x.student + i * x.student_row_stride, x.teacher ? x.teacher + i * x.teacher_row_stride : nullptr, g);
  }
}

// Scalar rows: one push per column (any accumulation type, e.g. fp64).
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows_scalar(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                     const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<A>;
  const std::int64_t C = x.cols;
  for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t_row, TG* g) {
    const TT* t = L::uses_teacher ? t_row : nullptr;
    const typename L::Context ctx(params, gather_row_input<A>(s, t, labels.label(i)));
    const typename L::Stats st = reduce_columns<typename L::Stats>(C, [&](typename L::Stats& part, std::int64_t j) {
      part.push(ctx, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
    });
    const typename L::Row r = L::finalize(ctx, st);
    if (out.row_loss) out.row_loss[i] = r.loss;
    if (g)
      for (std::int64_t j = 0; j < C; ++j)
        g[j] = from_acc<TG>(out.grad_scale * L::grad(ctx, r, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0)));
  });
}

// A loss's row statistics on SIMD lanes: load_s(j) / load_t(j) give the W (transformed) values
// of columns j … j + W − 1. Per block of kLaneColumnBlock columns, a remainder of r < W columns is
// pushed as the W columns ending at the block's end into a second lane state, whose last r lanes
// merge lane by lane into the first; the lanes are then reduced into a scalar state (a fixed
// tree over the lanes), and the blocks merge in order. So the result depends only on C and W.
// Needs C ≥ W.
template <class L, int W, class LoadS, class LoadT>
FUSEDKD_LANES_INLINE typename L::Stats lane_row_stats(const typename L::Context& ctx, std::int64_t C, LoadS&& load_s,
                                                      LoadT&& load_t) {
  using Lanes = typename L::template StatsT<FloatLanes<W>>;
  typename L::Stats st;
  for (std::int64_t j0 = 0; j0 < C; j0 += kLaneColumnBlock) {
    const std::int64_t j1 = j0 + kLaneColumnBlock < C ? j0 + kLaneColumnBlock : C;
    Lanes lanes;
    std::int64_t j = j0;
    for (; j + W <= j1; j += W) lanes.push(ctx, IndexLanes<W>::iota(j), load_s(j), load_t(j));
    if (j < j1) {
      Lanes tail;
      const std::int64_t jt = j1 - W;
      tail.push(ctx, IndexLanes<W>::iota(jt), load_s(jt), load_t(jt));
      tail.zip(lanes, MergeLanes{int(j - jt)});
    }
    typename L::Stats part;
    lanes.zip(part, ReduceLanes{});
    if (j0 == 0)
      st = part;
    else
      st.merge(part);
  }
  return st;
}

// Floats of per-thread scratch lane_row needs for a row of C columns with a gradient.
constexpr std::int64_t lane_row_scratch(std::int64_t C) { return 3 * C; }

// One row on SIMD lanes (fp32 accumulation): returns the row's statistics and, where g is not
// null, writes g_j = scale · ∂ℓ/∂s_j with respect to the loaded values. load_s(j) / load_t(j)
// give W (possibly transformed) values. KD, DKD, NKD at τ = 1 and RLD keep their exponentials
// between passes (softmax_pair_lanes.hpp, rld_lanes.hpp); the other losses run the policy's
// StatsT / grad on W columns at a time. scratch: lane_row_scratch(C) floats. Needs C ≥ W.
template <class L, int W, class LoadS, class LoadT, class TG>
FUSEDKD_LANES_INLINE typename L::Row lane_row(const typename L::Context& ctx, std::int64_t C, LoadS&& load_s,
                                              LoadT&& load_t, TG* g, float scale, float* scratch) {
  using V = FloatLanes<W>;
  if constexpr (std::is_same_v<L, KD<float>> || std::is_same_v<L, DKD<float>> || std::is_same_v<L, NKD<float>>) {
    // softmax_pair_lanes.hpp (NKD at τ = 1 only; at other τ it streams four sums, below)
    bool pair = true;
    if constexpr (std::is_same_v<L, NKD<float>>) pair = ctx.unit_tau;
    if (pair) return softmax_pair_row_lanes<L, W>(ctx, C, load_s, load_t, g, scale, g ? scratch : nullptr);
  }
  if constexpr (std::is_same_v<L, RLD<float>>) {  // rld_lanes.hpp: leaves ∂ℓ/∂s in scratch[0, C)
    const typename L::Row r = rld_row_lanes<W>(ctx, C, load_s, load_t, g ? scratch : nullptr);
    if (g) {
      const V sc(scale);
      for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {
        store_lanes(g + j, sc * load_lanes<W>(scratch + j));
      });
    }
    return r;
  } else {
    const typename L::Row r = L::finalize(ctx, lane_row_stats<L, W>(ctx, C, load_s, load_t));
    if (g) {
      const V sc(scale);
      for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {  // a remainder rewrites equal values
        store_lanes(g + j, sc * L::grad(ctx, r, IndexLanes<W>::iota(j), load_s(j), load_t(j)));
      });
    }
    return r;
  }
}

// SIMD rows (fp32 accumulation): lane_row on each counted row. Rows shorter than W take the
// scalar path. Always inlined into an instruction-set-specific caller.
template <template <class> class Loss, int W, class Params, class TS, class TT, class TL, class TG>
FUSEDKD_LANES_INLINE void run_rows_lanes(const Params& params, const LogitsView<TS, TT>& x,
                                         const LabelsView<TL>& labels, const RowOutputs<float, TG>& out,
                                         std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<float>;
  static_assert(L::uses_teacher, "the row-local losses read a teacher row");
  const std::int64_t C = x.cols;
  if (C < W) return run_rows_scalar<Loss>(params, x, labels, out, row_begin, row_end);
  std::vector<float> scratch(out.grad ? std::size_t(lane_row_scratch(C)) : 0);
  for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t, TG* g)
                                                              FUSEDKD_LANES_INLINE_LAMBDA {
    const typename L::Context ctx(params, gather_row_input<float>(s, t, labels.label(i)));
    const auto load_s = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(s + j); };
    const auto load_t = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(t + j); };
    const typename L::Row r = lane_row<L, W>(ctx, C, load_s, load_t, g, out.grad_scale, scratch.data());
    if (out.row_loss) out.row_loss[i] = r.loss;
  });
}

#if FUSEDKD_CPU_AVX2_DISPATCH
template <template <class> class Loss, class... Args> void run_rows_avx2(const Args&... args) {
  with_avx2_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { run_rows_lanes<Loss, decltype(w)::value>(args...); });
}
#endif
template <template <class> class Loss, class... Args> void run_rows_baseline(const Args&... args) {
  with_baseline_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { run_rows_lanes<Loss, decltype(w)::value>(args...); });
}

}  // namespace detail

// Runs Loss on rows [row_begin, row_end). Labels must have been validated (validate_labels).
// fp32 accumulation takes the SIMD path (AVX2 when the CPU has it, else 128-bit lanes), fp64 the
// scalar one.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
              const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && Loss<A>::uses_teacher && is_lane_element<TS> && is_lane_element<TT>) {
    detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
      detail::run_rows_lanes<Loss, decltype(w)::value>(params, x, labels, out, row_begin, row_end);
    });
  } else {
    detail::run_rows_scalar<Loss>(params, x, labels, out, row_begin, row_end);
  }
}

// Σ_i row_loss[i] in a fixed order, accumulated in double.
template <class A> double sum_rows(const A* row_loss, std::int64_t rows) {
  double total = 0.0;
  for (std::int64_t i = 0; i < rows; ++i) total += double(row_loss[i]);
  return total;
}

// What every whole-batch run does around its row passes: sets out.grad_scale from the reduction,
// gives the rows loss storage when the caller asked for none, runs `rows(out)` on all rows and
// returns the reduced loss (for Reduction::None the sum of the row losses). Out is RowOutputs or
// USKDOutputs (both have row_loss and grad_scale).
template <class A, class Out, class Rows>
A run_batch(Reduction reduction, std::int64_t rows, std::int64_t counted, Out out, Rows&& run) {
  if (reduction != Reduction::None) out.grad_scale = reduction_scale<A>(reduction, counted);
  std::vector<A> scratch;
  if (!out.row_loss) {
    scratch.resize(std::size_t(rows));
    out.row_loss = scratch.data();
  }
  run(out);
  return A(sum_rows(out.row_loss, rows) * double(reduction_scale<A>(reduction, counted)));
}

}  // namespace fusedkd::cpu
